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
    },
    /// Something the client or the server says (joins, leaves, errors, ...).
    Notice { text: String, error: bool },
}

/// How many rows `entry` takes at `width` columns.
pub fn entry_height(entry: &Entry, opts: &Options, width: u16) -> usize {
    entry_lines(entry, opts, width).len()
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

fn time(at: DateTime<Utc>, utc: bool) -> String {
    if utc {
        at.format("%H:%M").to_string()
    } else {
        at.with_timezone(&Local).format("%H:%M").to_string()
    }
}

/// The rows of one history entry at `width` columns.
pub fn entry_lines(entry: &Entry, opts: &Options, width: u16) -> Vec<Line<'static>> {
    let theme = Theme::of(opts);
    let stamp = Span::styled(format!("{} ", time(entry.at, opts.utc)), theme.dim());
    match &entry.kind {
        EntryKind::Message {
            from,
            text,
            action,
            own,
            mention,
            history,
        } => {
            let mut nick_style = theme.nick(from);
            if *own {
                nick_style = nick_style.add_modifier(Modifier::BOLD);
            }
            if *history {
                // Replayed from the server's history: dimmed, with its original time.
                let dim = Style::default().add_modifier(Modifier::DIM);
                let who = if *action {
                    format!("* {from} ")
                } else {
                    format!("<{from}> ")
                };
                return wrapped(vec![stamp, Span::styled(who, dim)], text, dim, width);
            }
            let prefix = if *action {
                vec![
                    stamp,
                    Span::raw("* "),
                    Span::styled(from.clone(), nick_style),
                    Span::raw(" "),
                ]
            } else {
                vec![
                    stamp,
                    Span::styled("<", theme.dim()),
                    Span::styled(from.clone(), nick_style),
                    Span::styled("> ", theme.dim()),
                ]
            };
            let body = if *mention {
                theme.mention()
            } else {
                Style::default()
            };
            wrapped(prefix, text, body, width)
        }
        EntryKind::Notice { text, error } => {
            let style = if *error { theme.error() } else { theme.dim() };
            let prefix = vec![stamp, Span::styled("-- ", style)];
            wrapped(prefix, text, style, width)
        }
    }
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
