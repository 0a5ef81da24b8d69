//! The messages the line client saw in this run (the last [`KEPT`]), for `/search` and for the
//! quote a reply shows; and what `/reply`, `/edit`, `/react`, `/temp`, `/search` and
//! `/mentions` come to.

use std::collections::VecDeque;

use chat_core::protocol::{ChatMessage, ClientFrame, ServerFrame, Target};
use chrono::{DateTime, Utc};

use super::rooms::Rooms;
use super::{Outbound, Step};
use crate::command::{MessageCommand, unsupported};
use crate::line_event::{Found, LineEvent};

/// Messages kept for `/search` and quotes, at most.
pub(super) const KEPT: usize = 1000;

/// Matches asked for per server search.
const SEARCH_PAGE: u32 = 20;

/// One message seen.
#[derive(Debug, Clone)]
struct Seen {
    id: u64,
    at: DateTime<Utc>,
    from: String,
    room: Option<String>,
    text: String,
}

/// The messages seen in this run, oldest first.
#[derive(Debug, Default)]
pub(super) struct SeenMessages {
    kept: VecDeque<Seen>,
    /// The last server search: its pattern, and where its older matches start.
    server_search: Option<(String, Option<u64>)>,
    /// Where the older mentions start, after a `/mentions` (`Some(None)`: none are left).
    mentions_next: Option<Option<u64>>,
}

impl SeenMessages {
    /// Follows a frame from the server: messages are kept, edits change them, deletions and
    /// expiries remove them.
    pub(super) fn track(&mut self, frame: &ServerFrame) {
        match frame {
            ServerFrame::Message(m) => self.keep(m),
            ServerFrame::History { messages, .. } | ServerFrame::Offline(messages) => {
                messages.iter().for_each(|m| self.keep(m));
            }
            ServerFrame::Edited { id, text, .. } => {
                if let Some(seen) = self.kept.iter_mut().find(|s| s.id == *id) {
                    seen.text.clone_from(text);
                }
            }
            ServerFrame::Deleted { id, .. } => self.kept.retain(|s| s.id != *id),
            ServerFrame::Found { pattern, next, .. } => {
                self.server_search = Some((pattern.clone(), *next));
            }
            ServerFrame::Mentions { next, .. } => self.mentions_next = Some(*next),
            _ => {}
        }
    }

    fn keep(&mut self, m: &ChatMessage) {
        if self.kept.iter().any(|s| s.id == m.id) {
            return;
        }
        if self.kept.len() >= KEPT {
            self.kept.pop_front();
        }
        self.kept.push_back(Seen {
            id: m.id,
            at: m.at,
            from: m.from.clone(),
            room: match &m.to {
                Target::Room(room) => Some(room.clone()),
                Target::Users(_) => None,
            },
            text: m.body.text().to_owned(),
        });
    }

    /// Gives each reply among `events` the quoted start of the message it answers, when it
    /// was seen.
    pub(super) fn fill_quotes(&self, events: &mut [LineEvent]) {
        for ev in events {
            if let LineEvent::Message {
                reply_to: Some(id),
                quote,
                ..
            } = ev
                && let Some(seen) = self.kept.iter().find(|s| s.id == *id)
            {
                *quote = Some(crate::extras::quote(&seen.from, &seen.text));
            }
        }
    }

    /// The answer to `/search PATTERN`.
    pub(super) fn search(&self, pattern: &str) -> LineEvent {
        let re = match crate::extras::search_regex(pattern) {
            Ok(re) => re,
            Err(why) => return LineEvent::error(why),
        };
        let matches = self
            .kept
            .iter()
            .filter(|s| re.is_match(&s.text) || re.is_match(&s.from))
            .map(|s| Found {
                id: s.id,
                time: s.at,
                from: s.from.clone(),
                room: s.room.clone(),
                text: s.text.clone(),
            })
            .collect();
        LineEvent::Search {
            time: Utc::now(),
            pattern: pattern.to_owned(),
            matches,
            server: false,
            next: None,
        }
    }
}

/// What a command about a message comes to, typed in `rooms.current`, for a server that
/// speaks protocol `version` and takes messages up to `max_len` bytes long.
pub(super) fn step(m: MessageCommand, rooms: &Rooms, max_len: usize, version: u16) -> Step {
    let m = match m.resolved(|nick| rooms.latest_from(nick)) {
        Ok(m) => m,
        Err(why) => return Step::Show(LineEvent::error(why)),
    };
    if let Some(why) = m.unsupported(version) {
        return Step::NotSent(LineEvent::error(why.clone()), why);
    }
    let attrs = m.attrs();
    let (frame, text) = match m {
        MessageCommand::Search(pattern) => return Step::Show(rooms.seen.search(&pattern)),
        MessageCommand::ServerSearch(pattern) => {
            let (pattern, before) = match (pattern.is_empty(), &rooms.seen.server_search) {
                (false, _) => (pattern, None),
                (true, Some((last, Some(next)))) => (last.clone(), Some(*next)),
                (true, Some((last, None))) => {
                    let why = format!("no older stored message matches /{last}/");
                    return Step::Show(LineEvent::error(why));
                }
                (true, None) => {
                    let why = "/search -s REGEX searches what the server stored".to_owned();
                    return Step::Show(LineEvent::error(why));
                }
            };
            let search = ClientFrame::Search {
                pattern,
                before,
                limit: SEARCH_PAGE,
            };
            (search, 0)
        }
        MessageCommand::Mentions { more } => {
            let before = match (more, rooms.seen.mentions_next) {
                (false, _) => None,
                (true, Some(Some(next))) => Some(next),
                (true, _) => {
                    let why = "no older mentions: /mentions lists the latest".to_owned();
                    return Step::Show(LineEvent::error(why));
                }
            };
            let limit = SEARCH_PAGE;
            (ClientFrame::Mentions { before, limit }, 0)
        }
        MessageCommand::Reply { text, .. } | MessageCommand::Temp { text, .. }
            if text.len() > max_len =>
        {
            return too_long(text.len(), max_len);
        }
        MessageCommand::Reply { text, .. } | MessageCommand::Temp { text, .. } => {
            return Step::Send(Outbound::Attr(rooms.current.clone(), text, attrs));
        }
        MessageCommand::Edit { id, text } => {
            let len = text.len();
            (ClientFrame::Edit { id, text }, len)
        }
        MessageCommand::React { id, emoji } => (ClientFrame::React { id, emoji }, 0),
        // Made into `Reply` and `React` above.
        MessageCommand::ReplyLatest { .. } | MessageCommand::ReactLatest { .. } => {
            return Step::Show(LineEvent::error("no such message".to_owned()));
        }
    };
    if text > max_len {
        return too_long(text, max_len);
    }
    match unsupported(&frame, version) {
        Some(why) => Step::Show(LineEvent::error(why)),
        None => Step::Send(Outbound::Frame(frame)),
    }
}

/// A text over the server's limit, refused here.
fn too_long(len: usize, max_len: usize) -> Step {
    Step::NotSent(
        LineEvent::error(format!(
            "message not sent: it is {len} bytes long; the limit is {max_len}"
        )),
        format!("longer than the server's limit of {max_len} bytes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::protocol::{Body, MessageAttr};

    fn message(id: u64, from: &str, text: &str, attrs: Vec<MessageAttr>) -> ServerFrame {
        ServerFrame::Message(ChatMessage {
            id,
            at: Utc::now(),
            from: from.into(),
            to: Target::Room("lobby".into()),
            body: Body::Text(text.into()),
            attrs,
            tag: None,
        })
    }

    #[test]
    fn replies_quote_what_was_seen_and_search_finds_it_with_ids() {
        let mut seen = SeenMessages::default();
        seen.track(&message(1, "alice", "Coffee at ten?", vec![]));
        seen.track(&message(2, "bob", "tea for me", vec![]));
        let reply = message(3, "bob", "sure", vec![MessageAttr::ReplyTo(1)]);
        seen.track(&reply);
        let mut shown = LineEvent::from_frame(reply, "carol");
        seen.fill_quotes(&mut shown);
        assert!(
            matches!(&shown[0], LineEvent::Message { quote: Some(q), reply_to: Some(1), .. }
                if q == "alice: Coffee at ten?"),
            "{shown:?}"
        );
        let found = seen.search("coffee|TEA");
        assert!(matches!(&found, LineEvent::Search { matches, .. } if matches.is_empty()));
        let LineEvent::Search { matches, .. } = seen.search("coffee|tea") else {
            panic!("not a search answer");
        };
        assert_eq!(matches.iter().map(|m| m.id).collect::<Vec<_>>(), [1, 2]);
        // An edit changes what is found; a deletion removes it.
        seen.track(&ServerFrame::Edited {
            id: 2,
            room: Some("lobby".into()),
            text: "water".into(),
            by: "bob".into(),
            at: Utc::now(),
        });
        seen.track(&ServerFrame::Deleted {
            id: 1,
            room: Some("lobby".into()),
            by: String::new(),
            at: Utc::now(),
        });
        let LineEvent::Search { matches, .. } = seen.search("coffee|tea|water") else {
            panic!("not a search answer");
        };
        assert_eq!(matches.iter().map(|m| m.id).collect::<Vec<_>>(), [2]);
        assert!(matches!(seen.search("(oops"), LineEvent::Error { .. }));
    }

    #[test]
    fn only_the_last_messages_are_kept() {
        let mut seen = SeenMessages::default();
        for id in 0..(KEPT as u64 + 10) {
            seen.track(&message(id, "bob", "same", vec![]));
        }
        let LineEvent::Search { matches, .. } = seen.search("same") else {
            panic!("not a search answer");
        };
        assert_eq!(matches.len(), KEPT);
        assert_eq!(matches[0].id, 10);
    }

    #[test]
    fn message_commands_become_frames_or_messages_with_attributes() {
        let rooms = Rooms::default();
        let send = |m, version| match step(m, &rooms, 100, version) {
            Step::Send(Outbound::Frame(f)) => Ok(Some(f)),
            Step::Send(Outbound::Attr(room, text, attrs)) => {
                assert_eq!(room, "lobby");
                assert!(!text.is_empty());
                Err(attrs)
            }
            _ => Ok(None),
        };
        let edit = MessageCommand::Edit {
            id: 4,
            text: "new".into(),
        };
        assert_eq!(
            send(edit.clone(), 6),
            Ok(Some(ClientFrame::Edit {
                id: 4,
                text: "new".into()
            }))
        );
        // An older server is not sent what it cannot decode.
        assert_eq!(send(edit, 5), Ok(None));
        let react = MessageCommand::React {
            id: 4,
            emoji: "👍".into(),
        };
        assert!(matches!(
            send(react, 6),
            Ok(Some(ClientFrame::React { id: 4, .. }))
        ));
        let reply = MessageCommand::Reply {
            id: 4,
            text: "yes".into(),
        };
        assert_eq!(send(reply, 5), Err(vec![MessageAttr::ReplyTo(4)]));
        let temp = MessageCommand::Temp {
            secs: 60,
            text: "soon gone".into(),
        };
        assert_eq!(send(temp.clone(), 6), Err(vec![MessageAttr::ExpiresIn(60)]));
        assert!(matches!(step(temp, &rooms, 100, 5), Step::NotSent(..)));
        let long = MessageCommand::Reply {
            id: 1,
            text: "x".repeat(101),
        };
        assert!(matches!(step(long, &rooms, 100, 6), Step::NotSent(..)));
    }

    #[test]
    fn a_nickname_names_its_latest_message_in_the_room() {
        let mut rooms = Rooms::default();
        rooms.track(&message(7, "bob", "first", vec![]));
        rooms.track(&message(9, "bob", "latest", vec![]));
        let reply = MessageCommand::ReplyLatest {
            nick: "Bob".into(),
            text: "yes".into(),
        };
        assert!(matches!(
            step(reply, &rooms, 100, 6),
            Step::Send(Outbound::Attr(_, _, attrs)) if attrs == [MessageAttr::ReplyTo(9)]
        ));
        let react = MessageCommand::ReactLatest {
            nick: "carol".into(),
            emoji: "👍".into(),
        };
        assert!(matches!(
            step(react, &rooms, 100, 6),
            Step::Show(LineEvent::Error { message, .. }) if message.contains("no message from carol")
        ));
    }
}
