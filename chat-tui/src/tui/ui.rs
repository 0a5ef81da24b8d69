//! Drawing. [`draw`] only reads the [`App`]. Where things go comes from
//! [`layout`](super::layout) and the rows of history from [`entry`](super::entry), which the
//! app uses too (to page and scroll), so both agree without the app calling the drawing code.

use chat_core::names::fold;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, LineGauge, Paragraph};

use super::app::{App, ConnState, Field, Focus, Screen, TabKind, TrustPrompt};
use super::entry::{day_line, entry_lines, pending_lines, unread_line};
use super::layout::{centered, connect_block, connect_layout, layout};
use super::theme::Theme;
use super::wrap::width as text_width;

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    draw_screen(frame, area, app);
    if let Some(prompt) = &app.trust_prompt {
        draw_trust(frame, area, app, prompt);
    }
}

fn draw_screen(frame: &mut Frame, area: Rect, app: &App) {
    match &app.screen {
        Screen::Connect(_) => draw_connect(frame, area, app),
        Screen::Main => {
            let areas = layout(area, app.panes());
            draw_tabs(frame, areas.tabs, app);
            let messages = draw_transfers(frame, areas.messages, app);
            draw_messages(frame, messages, app);
            if let Some(r) = areas.roster {
                draw_roster(frame, r, app);
            }
            draw_status(frame, areas.status, app);
            frame.render_widget(&app.input().view(), areas.input);
            if app.help {
                draw_help(frame, area, app);
            }
        }
    }
}

/// Most progress bars shown at once in a tab.
const MAX_GAUGES: usize = 3;

/// Draws a progress bar for each file transfer with the person of the tab on screen, at the
/// bottom of the message pane; what is left of the pane for the messages.
fn draw_transfers(frame: &mut Frame, area: Rect, app: &App) -> Rect {
    let transfers = app.tab_transfers();
    let n = transfers.len().min(MAX_GAUGES) as u16;
    if n == 0 || area.height < n + 3 {
        return area;
    }
    let [rest, bars] = Layout::vertical([Constraint::Fill(1), Constraint::Length(n)]).areas(area);
    let theme = Theme::of(&app.opts);
    for (i, p) in transfers.into_iter().take(MAX_GAUGES).enumerate() {
        let arrow = if p.outgoing { "↑" } else { "↓" };
        let left = p
            .left()
            .map(|d| format!(", {} left", crate::files::short_duration(d)))
            .unwrap_or_default();
        let label = format!(
            "{arrow} {} {:>3}% {}/s{left} ",
            crate::sanitize::sanitize_line(&p.name),
            p.percent(),
            crate::files::human_size(p.rate as u64),
        );
        let ratio = if p.size == 0 {
            1.0
        } else {
            (p.done as f64 / p.size as f64).clamp(0.0, 1.0)
        };
        let gauge = LineGauge::default()
            .label(label)
            .ratio(ratio)
            .filled_style(theme.gauge())
            .unfilled_style(theme.dim());
        let row = Rect {
            y: bars.y + i as u16,
            height: 1,
            ..bars
        };
        frame.render_widget(gauge, row);
    }
    rest
}

fn draw_messages(frame: &mut Frame, area: Rect, app: &App) {
    if area.height == 0 || area.width == 0 {
        return;
    }
    let tab = &app.tabs[app.active];
    let height = usize::from(area.height);
    // Collected bottom-up; only the entries that show are laid out.
    let mut rows: Vec<Line<'static>> = Vec::with_capacity(height);
    if tab.scroll.is_none() {
        for p in tab.pending.iter().rev() {
            rows.extend(
                pending_lines(&p.body, &app.nick, &app.opts, area.width)
                    .into_iter()
                    .rev(),
            );
        }
    }
    let (bottom, skip) = match (tab.scroll, tab.last_seq()) {
        (Some(a), _) => (Some(a.seq), a.skip),
        (None, last) => (last, 0),
    };
    if let Some(bottom) = bottom {
        let mut seq = bottom;
        let mut skip = skip;
        while rows.len() < height {
            let Some(entry) = tab.entry(seq) else { break };
            let mut lines = entry_lines(entry, &app.opts, area.width, app.entry_view(entry));
            if tab.marker_above(seq) {
                lines.insert(0, unread_line(&app.opts));
            }
            if let Some(day) = tab.day_change(seq, app.today(), app.opts.utc) {
                lines.insert(0, day_line(day, &app.opts));
            }
            lines.truncate(lines.len().saturating_sub(skip));
            skip = 0;
            rows.extend(lines.into_iter().rev());
            if seq == tab.first_seq {
                break;
            }
            seq -= 1;
        }
    }
    rows.truncate(height);
    rows.reverse();
    let top = area.height - rows.len() as u16;
    let area = Rect {
        y: area.y + top,
        height: area.height - top,
        ..area
    };
    frame.render_widget(Paragraph::new(rows), area);
}

fn draw_tabs(frame: &mut Frame, area: Rect, app: &App) {
    let theme = Theme::of(&app.opts);
    let labels: Vec<Span> = app
        .tabs
        .iter()
        .enumerate()
        .map(|(i, tab)| {
            let mut label = format!(" {}:{}", i + 1, tab.kind.label());
            // A private tab whose person (or every one of a group) is not online.
            let offline = match &tab.kind {
                TabKind::Private { .. } | TabKind::Group { .. } => {
                    app.conn == ConnState::Connected
                        && !tab.kind.people().iter().any(|n| app.is_online(n))
                }
                TabKind::Lobby | TabKind::Room { .. } => false,
            };
            if offline {
                label.push_str(" (offline)");
            }
            if tab.unread > 0 {
                label.push_str(&format!(" ({})", tab.unread));
            }
            label.push(' ');
            let style = if i == app.active {
                theme.bar().add_modifier(Modifier::BOLD)
            } else if tab.highlight {
                theme.mention()
            } else if tab.unread > 0 {
                Style::default().add_modifier(Modifier::BOLD)
            } else if offline {
                theme.dim()
            } else {
                Style::default()
            };
            Span::styled(label, style)
        })
        .collect();
    // When the tabs do not fit, drop tabs on the left of the active one (marked with '‹',
    // highlighted if one of them has activity) until it shows.
    let width = usize::from(area.width);
    let span_w = |s: &Span| text_width(&s.content) + 1;
    let fits = |first: usize| {
        let marker = if first > 0 { 2 } else { 0 };
        marker + labels[first..=app.active].iter().map(span_w).sum::<usize>() <= width
    };
    let mut first = 0;
    while first < app.active && !fits(first) {
        first += 1;
    }
    let mut spans = Vec::new();
    if first > 0 {
        let hidden_activity = app.tabs[..first].iter().any(|t| t.unread > 0);
        let style = if hidden_activity {
            theme.mention()
        } else {
            theme.dim()
        };
        spans.push(Span::styled("‹ ", style));
    }
    for label in labels.into_iter().skip(first) {
        spans.push(label);
        spans.push(Span::raw(" "));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_roster(frame: &mut Frame, area: Rect, app: &App) {
    let theme = Theme::of(&app.opts);
    let focused = app.focus == Focus::Roster;
    let block = Block::default()
        .borders(Borders::LEFT)
        .border_style(if focused {
            theme.fg(Color::Yellow)
        } else {
            theme.dim()
        });
    let inner = block.inner(area);
    frame.render_widget(Clear, area);
    frame.render_widget(block, area);
    let connected = app.conn == ConnState::Connected;
    let roster = app.shown_roster();
    let header = if connected {
        match app.tabs[app.active].kind.room() {
            Some(room) if room != chat_core::protocol::DEFAULT_ROOM => {
                format!("#{room}: {}", roster.len())
            }
            _ => format!("{} online", roster.len()),
        }
    } else {
        "offline".to_owned()
    };
    let mut lines = vec![Line::styled(
        header,
        Style::default().add_modifier(Modifier::BOLD),
    )];
    let visible = usize::from(inner.height.saturating_sub(1));
    let first = if focused && app.roster_selected >= visible {
        app.roster_selected + 1 - visible
    } else {
        0
    };
    let me = fold(&app.nick);
    let room = app.shown_room();
    for (i, user) in roster.iter().enumerate().skip(first).take(visible) {
        let own = fold(&user.nick) == me;
        let mut style = theme.nick(&user.nick);
        if app.away.contains_key(&fold(&user.nick)) {
            style = style.add_modifier(Modifier::DIM);
        }
        if user.relayed {
            style = style.add_modifier(Modifier::ITALIC);
        }
        if own {
            style = style.add_modifier(Modifier::BOLD);
        }
        if !connected {
            style = style.add_modifier(Modifier::DIM);
        }
        if focused && i == app.roster_selected {
            style = style.add_modifier(Modifier::REVERSED);
        }
        let mark = match (own, app.is_op(&room, &user.nick)) {
            (true, true) => "•@",
            (false, true) => " @",
            (true, false) => "• ",
            (false, false) => "  ",
        };
        lines.push(Line::from(vec![
            Span::styled(mark, theme.dim()),
            Span::styled(crate::sanitize::sanitize_line(&user.nick), style),
        ]));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn draw_status(frame: &mut Frame, area: Rect, app: &App) {
    let theme = Theme::of(&app.opts);
    let state = match &app.conn {
        ConnState::Idle => "not connected".to_owned(),
        ConnState::Connecting => "connecting…".to_owned(),
        ConnState::Connected => "connected".to_owned(),
        ConnState::Waiting { until, .. } => {
            let left = until.saturating_duration_since(app.now());
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            format!("disconnected — reconnecting in {secs}s")
        }
        ConnState::Stopped { .. } => "disconnected — /reconnect to try again".to_owned(),
        ConnState::Quitting => "quitting…".to_owned(),
    };
    let state_style = match app.conn {
        ConnState::Connected => theme.bar(),
        _ => theme.bar().add_modifier(Modifier::BOLD),
    };
    let nick = Span::styled(
        format!("{} ", app.nick),
        theme.bar().add_modifier(Modifier::BOLD),
    );
    if let Some(selection) = app.selection_status() {
        // The selection's keys need the room: the state only when it is not the usual one.
        let mut spans = Vec::new();
        if !matches!(app.conn, ConnState::Connected) {
            spans.push(Span::styled(format!(" [{state}]"), state_style));
        }
        spans.push(Span::raw(" "));
        spans.push(nick);
        spans.push(Span::styled(
            format!("│ {selection} "),
            theme.bar().add_modifier(Modifier::BOLD),
        ));
        draw_bar(frame, area, &theme, spans);
        return;
    }
    let mut spans = vec![
        Span::styled(format!(" [{state}] "), state_style),
        nick,
        Span::styled(
            format!("│ {} ", app.tabs[app.active].kind.label()),
            theme.bar(),
        ),
    ];
    if let Some(lag) = app.lag {
        spans.push(Span::styled(
            format!("│ lag {} ms ", lag.as_millis()),
            theme.bar(),
        ));
    }
    if app.tabs[app.active].scroll.is_some() {
        spans.push(Span::styled(
            "│ scrolled back (End) ",
            theme.bar().add_modifier(Modifier::BOLD),
        ));
    }
    let hidden = app.tabs[app.active].hidden;
    if hidden > 0 {
        spans.push(Span::styled(
            format!("│ {hidden} hidden (ignored) "),
            theme.bar(),
        ));
    }
    if app.focus == Focus::Roster {
        spans.push(Span::styled(
            "│ roster: Enter opens a tab · w whois · i ignore · k kick · m mute · b ban ",
            theme.bar(),
        ));
    }
    draw_bar(frame, area, &theme, spans);
}

/// The status bar's `spans`, and "F1 help", which always shows at the right; the rest is cut
/// if the terminal is narrow.
fn draw_bar(frame: &mut Frame, area: Rect, theme: &Theme, spans: Vec<Span<'_>>) {
    let [left, right] =
        Layout::horizontal([Constraint::Fill(1), Constraint::Length(9)]).areas(area);
    frame.render_widget(Paragraph::new(Line::from(spans)).style(theme.bar()), left);
    frame.render_widget(Paragraph::new("│ F1 help").style(theme.bar()), right);
}

/// Every key and command, as the help overlay shows them.
pub const HELP: &[(&str, &str)] = &[
    (
        "Enter  Alt-Enter",
        "send (roster: open a private tab) · new line",
    ),
    (
        "Tab  Shift-Tab",
        "complete a name or :emoji: · to and from the roster",
    ),
    ("Up / Down", "recall sent lines · move in the roster"),
    (
        "Ctrl-A/E/W/U/K",
        "start/end · rub out word/to start/to end (Ctrl-Y)",
    ),
    (
        "Alt-1..9  Alt-A",
        "tab N · next with activity · Ctrl-N/P next, prev",
    ),
    ("Alt-W  F2", "close the tab (not the lobby) · roster on/off"),
    (
        "PgUp / PgDn",
        "scroll (wheel too) · End: live · Shift-drag selects",
    ),
    (
        "Alt-Up / Alt-Down",
        "select a message: r reply · e edit · d delete · + react",
    ),
    (
        "/msg NICK text",
        "private message · /msg a,b text: a group tab",
    ),
    ("/query NICK", "open a private tab · /me action: an action"),
    (
        "/who /part /rooms",
        "who is here · leave the room · list every room",
    ),
    ("/join #room", "join (or create) a room: it gets a tab"),
    (
        "/topic /history N",
        "set the topic · N older messages · /clear tab",
    ),
    (
        "/register PASS",
        "claim your nickname · /password PASS changes it",
    ),
    (
        "/close  /mentions",
        "close this tab · what mentioned you · /reconnect now",
    ),
    (
        "/nick /away /whois",
        "rename · away (/back) · who is it · /ignore NICK",
    ),
    (
        "roster: w i k m b",
        "whois, ignore, kick, mute, ban; Enter confirms",
    ),
    (
        "/file NICK PATH",
        "send a file (Tab: path) · /accept /decline /cancel",
    ),
    (
        "/reply /edit ID",
        "answer · change message ID (text) · /react ID :+1:",
    ),
    (
        "/temp 5m text",
        "expires (30s 5m 2h 1d) · /search [-s: server] RE: n N",
    ),
    (
        "/kick /mute /ban",
        "operators: [-s] NICK [10m] [why] · /op /delete",
    ),
    (
        "/quit  Ctrl-C",
        "leave (/quit reason) · //text sends \"/text\"",
    ),
];

fn draw_help(frame: &mut Frame, area: Rect, app: &App) {
    let theme = Theme::of(&app.opts);
    let key_w = HELP.iter().map(|(k, _)| text_width(k)).max().unwrap_or(0);
    let lines: Vec<Line> = HELP
        .iter()
        .map(|(k, v)| {
            Line::from(vec![
                Span::styled(
                    format!(" {k:<key_w$}  "),
                    theme.fg(Color::Yellow).add_modifier(Modifier::BOLD),
                ),
                Span::raw(*v),
            ])
        })
        .collect();
    let w = lines.iter().map(Line::width).max().unwrap_or(0) as u16 + 3;
    let h = lines.len() as u16 + 2;
    let popup = centered(area, w, h);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::bordered()
                .title(" help ")
                .title_bottom(" Esc closes "),
        ),
        popup,
    );
}

/// The server's certificate, over whatever is on screen: the question on first use, the
/// refusal when it changed.
fn draw_trust(frame: &mut Frame, area: Rect, app: &App, prompt: &TrustPrompt) {
    let theme = Theme::of(&app.opts);
    let style = if prompt.asks() {
        Style::default()
    } else {
        theme.error()
    };
    let w = area.width.clamp(20, 76);
    let inner = usize::from(w.saturating_sub(4).max(1));
    let mut lines = Vec::new();
    for (i, text) in prompt.text().into_iter().enumerate() {
        if i > 0 {
            lines.push(Line::raw(""));
        }
        let line_style = if i == 0 || text.contains("SHA256:") {
            style.add_modifier(Modifier::BOLD)
        } else {
            style
        };
        // Folded here, as the paragraph would fold it, so that the box is as tall as needed.
        for range in super::wrap::wrap(&text, inner, inner) {
            lines.push(Line::styled(text[range].to_owned(), line_style));
        }
    }
    let rows = lines.len() as u16;
    let popup = centered(area, w, rows + 2);
    let title = if prompt.asks() {
        " trust this server? "
    } else {
        " certificate refused "
    };
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::bordered()
                .title(title)
                .title_bottom(prompt.keys())
                .padding(ratatui::widgets::Padding::horizontal(1)),
        ),
        popup,
    );
}

fn draw_connect(frame: &mut Frame, area: Rect, app: &App) {
    let Screen::Connect(form) = &app.screen else {
        return;
    };
    let theme = Theme::of(&app.opts);
    let areas = connect_layout(area);
    frame.render_widget(Clear, areas.popup);
    frame.render_widget(connect_block().title(" chat-tui — connect "), areas.popup);
    for ((l, f), label, field, kind) in [
        (areas.fields[0], "Nickname", &form.nick, Field::Nick),
        (areas.fields[1], "Password", &form.password, Field::Password),
        (areas.fields[2], "Server", &form.server, Field::Server),
    ] {
        let label_style = if kind == form.field {
            Style::default().add_modifier(Modifier::BOLD)
        } else {
            theme.dim()
        };
        frame.render_widget(Paragraph::new(label).style(label_style), l);
        // A copy, laid out by the app already: drawing writes nothing back.
        frame.render_widget(&field.clone(), f);
    }
    let message = if form.connecting {
        Line::styled(format!("connecting to {}…", app.server), theme.dim())
    } else if let Some(e) = &form.error {
        Line::styled(e.clone(), theme.error())
    } else {
        Line::styled(
            "no password: join as a guest (/register claims the nickname); a relay's \
             address works the same way",
            theme.dim(),
        )
    };
    frame.render_widget(
        Paragraph::new(message).wrap(ratatui::widgets::Wrap { trim: false }),
        areas.message,
    );
    frame.render_widget(
        Paragraph::new("Enter connect · Tab next field · Esc quit").style(theme.dim()),
        areas.keys,
    );
}
