//! Changes to messages in the line mode: edits, reactions, deletions and expiries, and the
//! answers to `/search` and `/mentions`, with their text.

use chat_core::protocol::{ChatMessage, Reaction, ServerFrame};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{LineEvent, millis};
use crate::sanitize::sanitize_line;

/// One emoji given to a message: how many gave it, and who.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReactionLine {
    pub emoji: String,
    pub count: usize,
    pub nicks: Vec<String>,
}

impl From<Reaction> for ReactionLine {
    fn from(r: Reaction) -> Self {
        ReactionLine {
            emoji: r.emoji,
            count: r.nicks.len(),
            nicks: r.nicks,
        }
    }
}

/// A message found by `/search`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Found {
    pub id: u64,
    #[serde(serialize_with = "millis")]
    pub time: DateTime<Utc>,
    pub from: String,
    /// Its room; absent for a private message.
    pub room: Option<String>,
    pub text: String,
}

impl From<ChatMessage> for Found {
    fn from(m: ChatMessage) -> Self {
        let (room, _) = m.to.into_parts();
        Found {
            id: m.id,
            time: m.at,
            from: m.from,
            room,
            text: m.body.into_parts().0,
        }
    }
}

impl LineEvent {
    /// The event of an edit or of a message's reactions (`None` for another frame); `now`
    /// stamps reactions, which carry no time.
    pub(super) fn from_change(frame: ServerFrame, now: DateTime<Utc>) -> Option<Self> {
        Some(match frame {
            ServerFrame::Edited {
                id,
                room,
                text,
                by,
                at,
            } => LineEvent::Edited {
                time: at,
                id,
                room,
                text,
                by,
            },
            ServerFrame::Reactions {
                id,
                room,
                reactions,
            } => LineEvent::Reactions {
                time: now,
                id,
                room,
                reactions: reactions.into_iter().map(ReactionLine::from).collect(),
            },
            ServerFrame::Found {
                pattern,
                messages,
                next,
            } => LineEvent::Search {
                time: now,
                pattern,
                matches: messages.into_iter().map(Found::from).collect(),
                server: true,
                next,
            },
            ServerFrame::Mentions {
                since,
                messages,
                next,
            } => LineEvent::Mentions {
                time: now,
                since,
                matches: messages.into_iter().map(Found::from).collect(),
                next,
            },
            _ => return None,
        })
    }

    /// Makes the fields of a change or a search answer safe to print (see `sanitized`).
    pub(super) fn sanitize_change(&mut self) {
        let one = |s: &mut String| *s = sanitize_line(s);
        match self {
            LineEvent::Edited { room, text, by, .. } => {
                one(text);
                one(by);
                room.iter_mut().for_each(one);
            }
            LineEvent::Reactions {
                room, reactions, ..
            } => {
                room.iter_mut().for_each(one);
                for r in reactions {
                    one(&mut r.emoji);
                    r.nicks.iter_mut().for_each(one);
                }
            }
            LineEvent::Search {
                pattern, matches, ..
            } => {
                one(pattern);
                matches.iter_mut().for_each(Found::sanitize);
            }
            LineEvent::Mentions { matches, .. } => matches.iter_mut().for_each(Found::sanitize),
            _ => {}
        }
    }

    /// The text of a change or a search answer, after the time stamp `stamp`; `when` shows
    /// the time of a message found.
    pub(super) fn change_text(
        &self,
        stamp: &str,
        when: impl Fn(&DateTime<Utc>) -> String,
    ) -> String {
        match self {
            LineEvent::Deleted { id, expired, .. } if *expired => {
                format!("{stamp} * message {id} expired")
            }
            LineEvent::Deleted { id, by, .. } => {
                format!("{stamp} * message {id} was deleted by {by}")
            }
            LineEvent::Edited { id, text, by, .. } => {
                format!("{stamp} * {by} edited message {id}: {text}")
            }
            LineEvent::Reactions { id, reactions, .. } if reactions.is_empty() => {
                format!("{stamp} * message {id} has no reactions left")
            }
            LineEvent::Reactions { id, reactions, .. } => {
                let each: Vec<String> = reactions
                    .iter()
                    .map(|r| format!("{} {} ({})", r.emoji, r.count, r.nicks.join(", ")))
                    .collect();
                format!("{stamp} * reactions to message {id}: {}", each.join("  "))
            }
            LineEvent::Search {
                pattern,
                matches,
                server,
                next,
                ..
            } => {
                let more = if next.is_some() {
                    " (/search -s for older ones)"
                } else {
                    ""
                };
                let (kind, none) = if *server {
                    ("stored ", "no stored message you can read")
                } else {
                    ("", "no message seen in this run")
                };
                let noun = if matches.len() == 1 {
                    "message matches"
                } else {
                    "messages match"
                };
                let head = match matches.len() {
                    0 => format!("{stamp} * {none} matches /{pattern}/{more}"),
                    n => format!("{stamp} * {n} {kind}{noun} /{pattern}/{more}:"),
                };
                listed(head, matches, when)
            }
            LineEvent::Mentions {
                since,
                matches,
                next,
                ..
            } => {
                let since = since.as_ref().map_or_else(
                    || "since your account exists".to_owned(),
                    |t| format!("since your last login ({})", when(t)),
                );
                let more = if next.is_some() {
                    " (/mentions more for older ones)"
                } else {
                    ""
                };
                let head = match matches.len() {
                    0 => format!("{stamp} * nothing mentioned you {since}{more}"),
                    1 => format!("{stamp} * 1 message mentioned you {since}{more}:"),
                    n => {
                        format!("{stamp} * {n} messages mentioned you {since}, newest first{more}:")
                    }
                };
                listed(head, matches, when)
            }
            _ => String::new(),
        }
    }
}

impl Found {
    fn sanitize(&mut self) {
        let one = |s: &mut String| *s = sanitize_line(s);
        one(&mut self.from);
        one(&mut self.text);
        self.room.iter_mut().for_each(one);
    }
}

/// `head`, then a line for each message found: its id, time, place, sender and text.
fn listed(mut out: String, matches: &[Found], when: impl Fn(&DateTime<Utc>) -> String) -> String {
    for m in matches {
        let place = m
            .room
            .as_deref()
            .map(|r| format!("#{r} "))
            .unwrap_or_default();
        out.push_str(&format!(
            "\n    #{} {} {place}<{}> {}",
            m.id,
            when(&m.time),
            m.from,
            m.text
        ));
    }
    out
}
