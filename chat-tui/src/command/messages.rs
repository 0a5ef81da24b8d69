//! Commands about one message: `/reply`, `/edit`, `/react`, `/temp` (a message that expires),
//! `/search` and `/mentions`.

use chat_core::protocol::{MAX_EXPIRY_SECS, MAX_REACTION_LEN, MessageAttr};

use super::{Command, parse_duration};

/// A command about a message, or one that makes a message with attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageCommand {
    /// `/reply ID text`: a message to the current tab that answers message `id`.
    Reply { id: u64, text: String },
    /// `/reply NICK text`: answers the latest message from `nick` in the current tab.
    ReplyLatest { nick: String, text: String },
    /// `/edit ID text`: replaces the text of message `id`.
    Edit { id: u64, text: String },
    /// `/react ID EMOJI`: adds our reaction to message `id`, or takes it back.
    React { id: u64, emoji: String },
    /// `/react NICK EMOJI`: the same for the latest message from `nick` in the current tab.
    ReactLatest { nick: String, emoji: String },
    /// `/temp DURATION text`: a message to the current tab that expires after `secs`.
    Temp { secs: u32, text: String },
    /// `/search REGEX`: finds messages in the scrollback.
    Search(String),
    /// `/search -s REGEX` (or `--server`): asks the server to search what it stored; empty:
    /// the older matches of the last such search.
    ServerSearch(String),
    /// `/mentions`: the stored messages that mentioned us since our previous login (an
    /// account's); `more`: the older ones of the last answer (`/mentions more`).
    Mentions { more: bool },
}

/// The first protocol version whose servers delete expiring messages.
const EXPIRY_VERSION: u16 = 6;

impl MessageCommand {
    /// Why a server of protocol `version` is not sent this command, if it is not: a `/temp`
    /// message it would not delete. (Frames it cannot decode: [`super::unsupported`].)
    pub fn unsupported(&self, version: u16) -> Option<String> {
        matches!(self, MessageCommand::Temp { .. } if version < EXPIRY_VERSION).then(|| {
            format!(
                "not sent: the server speaks protocol version {version} and would not delete \
                 the message when it expires (version {EXPIRY_VERSION} does)"
            )
        })
    }

    /// The command with "the latest message from NICK" replaced by that message's id, which
    /// `latest` finds in the current tab; or why it cannot be.
    pub fn resolved(self, latest: impl Fn(&str) -> Option<u64>) -> Result<Self, String> {
        let id = |nick: &str| {
            latest(nick).ok_or_else(|| {
                format!(
                    "no message from {nick} here to answer or react to (a message id works too)"
                )
            })
        };
        Ok(match self {
            MessageCommand::ReplyLatest { nick, text } => MessageCommand::Reply {
                id: id(&nick)?,
                text,
            },
            MessageCommand::ReactLatest { nick, emoji } => MessageCommand::React {
                id: id(&nick)?,
                emoji,
            },
            other => other,
        })
    }

    /// The attributes of the message this command sends (`/reply`, `/temp`).
    pub fn attrs(&self) -> Vec<MessageAttr> {
        match self {
            MessageCommand::Reply { id, .. } => vec![MessageAttr::ReplyTo(*id)],
            MessageCommand::Temp { secs, .. } => vec![MessageAttr::ExpiresIn(*secs)],
            _ => Vec::new(),
        }
    }
}

/// A message id as typed: `123` or `#123`.
fn message_id(word: &str) -> Option<u64> {
    word.strip_prefix('#').unwrap_or(word).parse().ok()
}

/// `WORD rest`, the rest not blank.
fn word_and_text(args: &str) -> Option<(&str, &str)> {
    let (word, text) = args.trim_start().split_once(char::is_whitespace)?;
    let text = text.trim_start();
    (!text.trim().is_empty()).then_some((word, text))
}

/// How long a `/temp` message lives, from `30s`, `5m`, `2h` or `1d`.
pub fn expiry(word: &str) -> Result<u32, String> {
    let secs = parse_duration(word).ok_or_else(|| {
        format!("{word:?} is not a duration: use a number and s, m, h or d (30s, 5m, 2h, 1d)")
    })?;
    u32::try_from(secs)
        .ok()
        .filter(|s| *s <= MAX_EXPIRY_SECS)
        .ok_or_else(|| "a message can live at most 30 days (30d)".to_owned())
}

/// Why `emoji` cannot be a reaction, if it cannot.
pub fn reaction_problem(emoji: &str) -> Option<String> {
    if emoji.is_empty() || emoji.chars().any(char::is_whitespace) {
        Some("a reaction is one emoji (or one word), like 👍 or :tada:".to_owned())
    } else if emoji.len() > MAX_REACTION_LEN {
        Some(format!(
            "a reaction is at most {MAX_REACTION_LEN} bytes long; {emoji:?} is {}",
            emoji.len()
        ))
    } else {
        None
    }
}

/// The commands about a message, or `None` for another name.
pub(super) fn parse_message(name: &str, args: &str) -> Option<Command> {
    let invalid = |usage: &str| Command::Invalid(format!("usage: {usage}"));
    let with_id = |usage: &str| match word_and_text(args) {
        Some((word, text)) => match message_id(word) {
            Some(id) => Ok((id, text.to_owned())),
            None => Err(Command::Invalid(format!(
                "{word:?} is not a message id (a number; Alt-Up selects a message and shows its \
                 id); usage: {usage}"
            ))),
        },
        None => Err(invalid(usage)),
    };
    // A nickname where an id goes: that person's latest message in the tab.
    let nick = |word: &str| {
        let nick = word.trim_start_matches('@').trim_end_matches([':', ',']);
        (!nick.is_empty() && !nick.starts_with('#')).then(|| nick.to_owned())
    };
    let made = match name {
        "reply" | "re" => match word_and_text(args) {
            Some((word, text)) if message_id(word).is_none() && nick(word).is_some() => {
                Ok(MessageCommand::ReplyLatest {
                    nick: nick(word).unwrap_or_default(),
                    text: text.to_owned(),
                })
            }
            _ => {
                with_id("/reply ID|NICK text").map(|(id, text)| MessageCommand::Reply { id, text })
            }
        },
        "edit" => with_id("/edit ID text").map(|(id, text)| MessageCommand::Edit { id, text }),
        "react" => match word_and_text(args) {
            Some((word, emoji)) if message_id(word).is_none() && nick(word).is_some() => {
                Ok(MessageCommand::ReactLatest {
                    nick: nick(word).unwrap_or_default(),
                    emoji: emoji.trim().to_owned(),
                })
            }
            _ => with_id("/react ID|NICK EMOJI").map(|(id, emoji)| MessageCommand::React {
                id,
                emoji: emoji.trim().to_owned(),
            }),
        },
        "temp" => match word_and_text(args) {
            Some((word, text)) => match expiry(word) {
                Ok(secs) => Ok(MessageCommand::Temp {
                    secs,
                    text: text.to_owned(),
                }),
                Err(why) => Err(Command::Invalid(why)),
            },
            None => Err(invalid("/temp DURATION text (30s, 5m, 2h, 1d)")),
        },
        "search" | "find" => match args.trim().split_once(' ').unwrap_or((args.trim(), "")) {
            ("", _) => Err(invalid("/search REGEX")),
            ("-s" | "--server", pattern) => {
                Ok(MessageCommand::ServerSearch(pattern.trim().to_owned()))
            }
            _ => Ok(MessageCommand::Search(args.trim().to_owned())),
        },
        "mentions" => match args.trim() {
            "" => Ok(MessageCommand::Mentions { more: false }),
            "more" | "-m" => Ok(MessageCommand::Mentions { more: true }),
            _ => Err(invalid("/mentions, then /mentions more for older ones")),
        },
        _ => return None,
    };
    Some(made.map_or_else(|e| e, Command::Message))
}

/// A message command with its `:shortcodes:` as emoji; a reaction that is not one emoji, or
/// is too long, is refused here.
pub(super) fn with_emoji(mut m: MessageCommand) -> Command {
    let expand = |t: &mut String| *t = crate::emoji::expand(t).into_owned();
    match &mut m {
        MessageCommand::Reply { text, .. }
        | MessageCommand::ReplyLatest { text, .. }
        | MessageCommand::Edit { text, .. }
        | MessageCommand::Temp { text, .. } => expand(text),
        MessageCommand::React { emoji, .. } | MessageCommand::ReactLatest { emoji, .. } => {
            expand(emoji);
            if let Some(why) = reaction_problem(emoji) {
                return Command::Invalid(why);
            }
        }
        // A pattern is searched as typed.
        MessageCommand::Search(_)
        | MessageCommand::ServerSearch(_)
        | MessageCommand::Mentions { .. } => {}
    }
    Command::Message(m)
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    fn m(line: &str) -> MessageCommand {
        match parse(line) {
            Some(Command::Message(m)) => m,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn invalid(line: &str) -> String {
        match parse(line) {
            Some(Command::Invalid(why)) => why,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn reply_edit_react_temp_and_search() {
        assert_eq!(
            m("/reply 12 sure :tada:"),
            MessageCommand::Reply {
                id: 12,
                text: "sure 🎉".into()
            }
        );
        assert_eq!(
            m("/reply #7   with  spaces kept"),
            MessageCommand::Reply {
                id: 7,
                text: "with  spaces kept".into()
            }
        );
        assert_eq!(
            m("/edit 3 fixed typo :+1:"),
            MessageCommand::Edit {
                id: 3,
                text: "fixed typo 👍".into()
            }
        );
        assert_eq!(
            m("/react 3 :+1:"),
            MessageCommand::React {
                id: 3,
                emoji: "👍".into()
            }
        );
        assert_eq!(
            m("/react #4 🎉"),
            MessageCommand::React {
                id: 4,
                emoji: "🎉".into()
            }
        );
        assert_eq!(
            m("/temp 30s gone soon"),
            MessageCommand::Temp {
                secs: 30,
                text: "gone soon".into()
            }
        );
        assert_eq!(
            m("/temp 1d :wave:"),
            MessageCommand::Temp {
                secs: 86_400,
                text: "👋".into()
            }
        );
        assert_eq!(
            m("/temp 30d x").attrs(),
            [MessageAttr::ExpiresIn(30 * 86_400)]
        );
        assert_eq!(m("/reply 9 x").attrs(), [MessageAttr::ReplyTo(9)]);
        assert_eq!(
            m("/search  (?i)coffee|tea "),
            MessageCommand::Search("(?i)coffee|tea".into())
        );
        // The pattern is searched as typed: no emoji in it.
        assert_eq!(m("/search :tada:"), MessageCommand::Search(":tada:".into()));
        assert_eq!(
            m("/search -s coffee (at|by) ten"),
            MessageCommand::ServerSearch("coffee (at|by) ten".into())
        );
        assert_eq!(
            m("/find --server tea"),
            MessageCommand::ServerSearch("tea".into())
        );
        assert_eq!(m("/search -s"), MessageCommand::ServerSearch(String::new()));
        assert_eq!(m("/mentions"), MessageCommand::Mentions { more: false });
        assert_eq!(m("/mentions more"), MessageCommand::Mentions { more: true });
    }

    #[test]
    fn bad_message_commands_say_why() {
        for bad in [
            "/reply",
            "/reply 12",
            "/reply 12  ",
            "/edit",
            "/edit 4",
            "/react",
            "/react 3",
            "/temp",
            "/temp 5m",
            "/search",
            "/search   ",
            "/mentions of me",
        ] {
            assert!(invalid(bad).starts_with("usage:"), "{bad}");
        }
        assert_eq!(
            m("/reply @bob: sure :tada:"),
            MessageCommand::ReplyLatest {
                nick: "bob".into(),
                text: "sure 🎉".into()
            }
        );
        assert_eq!(
            m("/react bob :+1:"),
            MessageCommand::ReactLatest {
                nick: "bob".into(),
                emoji: "👍".into()
            }
        );
        let latest = |nick: &str| (nick == "bob").then_some(41);
        assert_eq!(
            m("/react bob :+1:").resolved(latest),
            Ok(MessageCommand::React {
                id: 41,
                emoji: "👍".into()
            })
        );
        let none = m("/reply carol hi").resolved(latest).expect_err("none");
        assert!(none.contains("no message from carol"), "{none}");
        assert!(invalid("/edit x1 hi").contains("not a message id"));
        assert!(invalid("/react 3 thumbs up").contains("one emoji"));
        assert!(invalid("/react 3 :nosuchshortcode_at_all_really_long:").contains("at most 32"));
        assert!(invalid("/temp soon hello").contains("not a duration"));
        assert!(invalid("/temp 0s hello").contains("not a duration"));
        assert!(invalid("/temp 31d hello").contains("at most 30 days"));
        assert!(invalid("/temp 5w hello").contains("at most 30 days"));
        assert_eq!(expiry("2h"), Ok(7200));
        assert!(reaction_problem("👍🏽").is_none());
        assert!(reaction_problem("").is_some());
    }
}
