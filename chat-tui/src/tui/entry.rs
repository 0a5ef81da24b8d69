//! One line of a tab's history: what it holds ([`Entry`]), and the rows it takes on screen at
//! a given width ([`entry_lines`], [`entry_height`]), with the line that marks a new day above
//! it when it starts one ([`day_line`]). The app counts rows to scroll and the drawing code
//! draws them; both go through the same functions, which take no `App`.

use chat_core::protocol::Body;
use chrono::{DateTime, Local, NaiveDate, Utc};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};

use super::config::Options;
use super::theme::Theme;
use super::wrap::{width as text_width, wrap};

/// One line of history.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The message's id, for a message (so that a deletion can find it).
    pub id: Option<u64>,
    /// What happened.
    pub kind: EntryKind,
}

/// A message or a notice.
#[derive(Debug, Clone, PartialEq)]
pub enum EntryKind {
    /// A chat message.
    Message {
        from: String,
        text: String,
        action: bool,
        /// Sent by us.
        own: bool,
        /// Mentions our nickname.
        mention: bool,
        /// From the server's history (or kept while we were offline): shown dimmed, with
        /// its original time.
        history: bool,
        /// The message it answers, quoted above its text.
        reply: Option<Quote>,
        /// Its text was replaced since it was sent.
        edited: bool,
        /// The reactions it got, in the order first given.
        reactions: Vec<Reacted>,
        /// When it expires (its time plus its `ExpiresIn`).
        expires: Option<DateTime<Utc>>,
    },
    /// Something the client or the server says (joins, leaves, errors, ...).
    Notice { text: String, error: bool },
}

/// The message a reply answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    /// Its id.
    pub id: u64,
    /// Its start, `alice: the first words…`, once found in the tab (else the id shows).
    pub text: Option<String>,
}

/// One emoji given to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reacted {
    /// The emoji.
    pub emoji: String,
    /// How many gave it.
    pub count: usize,
    /// We are among them.
    pub mine: bool,
}

/// How an entry is drawn besides what it holds: the time (an expiring message shows the time
/// it has left) and whether it is the selected message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    /// The wall-clock time the screen is drawn at.
    pub now: DateTime<Utc>,
    /// The entry is the selected message (it shows its id).
    pub selected: bool,
}

/// How many rows `entry` takes at `width` columns, drawn as `view` says.
pub fn entry_height(entry: &Entry, opts: &Options, width: u16, view: View) -> usize {
    entry_lines(entry, opts, width, view).len()
}

/// The calendar day of `at`, in UTC or in local time (as the times are shown).
pub fn day_of(at: DateTime<Utc>, utc: bool) -> NaiveDate {
    if utc {
        at.date_naive()
    } else {
        at.with_timezone(&Local).date_naive()
    }
}

/// The line drawn above the first entry of a day when the entry before it is of another day
/// (or, at the top of a tab, when that day is not today): `── Thursday 3 December 2026 ──`.
/// It takes one row, whatever the width (a narrow pane cuts it).
pub fn day_line(day: NaiveDate, opts: &Options) -> Line<'static> {
    let text = format!("── {} ──", day.format("%A %-d %B %Y"));
    Line::from(Span::styled(text, Theme::of(opts).dim()))
}

/// The line drawn above the first message that arrived while the tab was not on screen.
pub fn unread_line(opts: &Options) -> Line<'static> {
    Line::from(Span::styled(
        "── unread ──────────",
        Theme::of(opts).marker(),
    ))
}

fn time(at: DateTime<Utc>, utc: bool) -> String {
    if utc {
        at.format("%H:%M").to_string()
    } else {
        at.with_timezone(&Local).format("%H:%M").to_string()
    }
}

/// The rows of one history entry at `width` columns, drawn as `view` says.
pub fn entry_lines(entry: &Entry, opts: &Options, width: u16, view: View) -> Vec<Line<'static>> {
    let theme = Theme::of(opts);
    let stamp = Span::styled(format!("{} ", time(entry.at, opts.utc)), theme.dim());
    match &entry.kind {
        EntryKind::Message { .. } => message_lines(entry, stamp, opts, width, view),
        EntryKind::Notice { text, error } => {
            let style = if *error { theme.error() } else { theme.dim() };
            let prefix = vec![stamp, Span::styled("-- ", style)];
            wrapped(prefix, text, style, width)
        }
    }
}

/// The rows of a chat message: the quote of the message it answers, its text (with its id
/// when selected, "(edited)", the time it has left), and its reactions.
fn message_lines(
    entry: &Entry,
    stamp: Span<'static>,
    opts: &Options,
    width: u16,
    view: View,
) -> Vec<Line<'static>> {
    let EntryKind::Message {
        from,
        text,
        action,
        own,
        mention,
        history,
        reply,
        edited,
        reactions,
        expires,
    } = &entry.kind
    else {
        return Vec::new();
    };
    let theme = Theme::of(opts);
    let dim = Style::default().add_modifier(Modifier::DIM);
    let expired = expires.is_some_and(|at| at <= view.now);
    let mut body = if expired {
        crate::tui::app::EXPIRED.to_owned()
    } else {
        text.clone()
    };
    if *edited && !expired {
        body.push_str(" (edited)");
    }
    if let Some(at) = expires.filter(|_| !expired) {
        let millis = u64::try_from((at - view.now).num_milliseconds()).unwrap_or(0);
        body.push_str(&format!(
            " ⏳ {}",
            crate::extras::time_left(millis.div_ceil(1000))
        ));
    }
    let mut prefix = vec![stamp];
    if view.selected {
        let id = entry.id.map(|id| format!("#{id}")).unwrap_or_default();
        prefix.push(Span::styled(
            format!("{id} "),
            theme.bar().add_modifier(Modifier::BOLD),
        ));
    }
    let (who, mut style) = if *history {
        // Replayed from the server's history: dimmed, with its original time.
        let who = if *action {
            format!("* {from} ")
        } else {
            format!("<{from}> ")
        };
        prefix.push(Span::styled(who, dim));
        (None, dim)
    } else {
        let mut nick_style = theme.nick(from);
        if *own {
            nick_style = nick_style.add_modifier(Modifier::BOLD);
        }
        let body_style = if *mention {
            theme.mention()
        } else {
            Style::default()
        };
        (Some(nick_style), body_style)
    };
    if let Some(nick_style) = who {
        if *action {
            prefix.extend([
                Span::raw("* "),
                Span::styled(from.clone(), nick_style),
                Span::raw(" "),
            ]);
        } else {
            prefix.extend([
                Span::styled("<", theme.dim()),
                Span::styled(from.clone(), nick_style),
                Span::styled("> ", theme.dim()),
            ]);
        }
    }
    if view.selected {
        style = style.add_modifier(Modifier::REVERSED);
    }
    let mut lines = Vec::new();
    if let Some(quote) = reply {
        let text = match &quote.text {
            Some(start) => format!("↳ {start}"),
            None => format!("↳ message {}", quote.id),
        };
        lines.push(Line::from(vec![
            Span::raw("      "),
            Span::styled(text, theme.dim()),
        ]));
    }
    lines.extend(wrapped(prefix, &body, style, width));
    if !reactions.is_empty() && !expired {
        lines.push(reactions_line(reactions));
    }
    lines
}

/// A message's reactions on one row, under its text: `👍 2  🎉 1`, ours in bold.
fn reactions_line(reactions: &[Reacted]) -> Line<'static> {
    let mut spans = vec![Span::raw("      ")];
    for (i, r) in reactions.iter().enumerate() {
        if i > 0 {
            spans.push(Span::raw("  "));
        }
        let style = if r.mine {
            Style::default().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
        } else {
            Style::default()
        };
        spans.push(Span::styled(format!("{} {}", r.emoji, r.count), style));
    }
    Line::from(spans)
}

/// The rows of a message that `nick` typed and that is not sent yet, at `width` columns.
pub fn pending_lines(body: &Body, nick: &str, opts: &Options, width: u16) -> Vec<Line<'static>> {
    let theme = Theme::of(opts);
    let dim = theme.dim().add_modifier(Modifier::ITALIC);
    let (text, action) = match body {
        Body::Text(t) => (t, false),
        Body::Action(t) => (t, true),
    };
    let who = if action {
        format!("* {nick} ")
    } else {
        format!("<{nick}> ")
    };
    let prefix = vec![Span::styled("pending ", dim), Span::styled(who, dim)];
    wrapped(prefix, text, dim, width)
}

/// Lays `text` out after `prefix`, continuation rows indented under the text.
fn wrapped(prefix: Vec<Span<'static>>, text: &str, style: Style, width: u16) -> Vec<Line<'static>> {
    let width = usize::from(width.max(1));
    let prefix_w: usize = prefix.iter().map(|s| text_width(&s.content)).sum();
    let indent = if prefix_w <= width / 2 {
        prefix_w
    } else {
        2.min(width - 1)
    };
    let text = text.replace('\t', "    ");
    let first = if prefix_w >= width {
        width - indent
    } else {
        width - prefix_w
    };
    let rows = wrap(&text, first, width - indent);
    let mut lines = Vec::with_capacity(rows.len());
    let mut prefix = Some(prefix);
    for range in rows {
        let piece = Span::styled(text[range].to_owned(), style);
        let line = match prefix.take() {
            Some(mut spans) => {
                if prefix_w >= width {
                    // The prefix alone fills the row: text starts on the next one.
                    lines.push(Line::from(spans));
                    Line::from(vec![Span::raw(" ".repeat(indent)), piece])
                } else {
                    spans.push(piece);
                    Line::from(spans)
                }
            }
            None => Line::from(vec![Span::raw(" ".repeat(indent)), piece]),
        };
        lines.push(line);
    }
    lines
}
