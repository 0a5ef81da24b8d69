//! Parsing of what the user types: plain text or a `/command`.

use chat_core::protocol::{ClientFrame, DEFAULT_ROOM, PROTOCOL_VERSION, Password};

/// What a typed line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A public message to the current room.
    Say(String),
    /// An action (`/me waves`).
    Me(String),
    /// A private message to one or several nicknames (`/msg alice,bob text`).
    Msg { to: Vec<String>, text: String },
    /// List who is online.
    Who,
    /// Leave, with an optional reason.
    Quit(String),
    /// Show the commands.
    Help,
    /// Open (or focus) a private conversation (full-screen client).
    Query(String),
    /// Clear the current tab (full-screen client).
    Clear,
    /// Close the current tab (full-screen client).
    Close,
    /// Reconnect now instead of waiting (full-screen client).
    Reconnect,
    /// Join (or create) a room: `/join #rust`.
    Join(String),
    /// Leave a room (the current one when `None`).
    Part(Option<String>),
    /// List every room.
    Rooms,
    /// Set the current room's topic (empty clears it).
    Topic(String),
    /// Fetch older messages of the current room (the count, default 50).
    History(u32),
    /// Register the current nickname with this password.
    Register(Password),
    /// Change the account's password.
    Password(Password),
    /// Make a joined room the current one (line client) or show its tab.
    Room(String),
    /// A command that cannot be carried out; the text says why.
    Invalid(String),
}

/// Messages `/history` asks for when no count is given.
pub const DEFAULT_HISTORY_PAGE: u32 = 50;

/// What a server speaking an older protocol `version` lacks that a user would miss, if
/// anything (version 3 only refines how nicknames are refused).
pub fn older_server(version: u16) -> Option<String> {
    (version < 2).then(|| {
        format!(
            "the server speaks protocol version {version} (this client: {PROTOCOL_VERSION}): \
             rooms besides #{DEFAULT_ROOM}, history and accounts are not available"
        )
    })
}

/// Why `frame` cannot go to a server that speaks protocol `version`, if it cannot: an older
/// server cannot decode a newer request and would end the connection.
pub fn unsupported(frame: &ClientFrame, version: u16) -> Option<String> {
    let needs = frame.since_version();
    (needs > version).then(|| {
        format!(
            "not sent: that command needs protocol version {needs}, and the server speaks \
             version {version} (an older chat-server)"
        )
    })
}

/// The room name as the server wants it: without a leading `#`.
pub fn room_name(room: &str) -> &str {
    room.strip_prefix('#').unwrap_or(room)
}

/// The help text of the line client.
pub const HELP: &[&str] = &[
    "commands:",
    "  text              send text to the room",
    "  /msg NICK text    private message (several: /msg alice,bob text)",
    "  /me action        send an action (* you waves)",
    "  /who              list who is in the current room",
    "  /join #room       join a room (created if it does not exist); it becomes current",
    "  /part [#room]     leave a room (the current one)",
    "  /room #room       make a joined room the current one",
    "  /rooms            list the rooms, their members and topics",
    "  /topic text       set the current room's topic",
    "  /history [N]      show N older messages of the current room (default 50)",
    "  /register PASS    register your nickname (log in later with --password)",
    "  /password PASS    change your password",
    "  /quit [reason]    leave (end of input and Ctrl-C do the same)",
    "  /help             this list",
    "  //text            send text that starts with '/'",
];

/// Parses one typed line; `None` for a blank line. A command may follow leading spaces or
/// new lines: `  /register PASS` is the command, not a message that would show the password
/// to the room.
pub fn parse(line: &str) -> Option<Command> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return None;
    }
    let command = line.trim_start();
    if let Some(rest) = command.strip_prefix("//") {
        return Some(Command::Say(format!("/{rest}")));
    }
    let Some(rest) = command.strip_prefix('/') else {
        return Some(Command::Say(line.to_owned()));
    };
    let (name, args) = match rest.split_once(char::is_whitespace) {
        Some((n, a)) => (n, a.trim_start()),
        None => (rest, ""),
    };
    Some(match name.to_ascii_lowercase().as_str() {
        "msg" | "m" => {
            let (to, text) = match args.split_once(char::is_whitespace) {
                Some((to, text)) if !text.trim().is_empty() => (to, text.trim_start()),
                _ => return Some(Command::Invalid("usage: /msg NICK text".into())),
            };
            let to: Vec<String> = to
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            if to.is_empty() {
                return Some(Command::Invalid("usage: /msg NICK text".into()));
            }
            Command::Msg {
                to,
                text: text.to_owned(),
            }
        }
        "me" if !args.trim().is_empty() => Command::Me(args.to_owned()),
        "me" => Command::Invalid("usage: /me action".into()),
        "who" | "names" => Command::Who,
        "quit" | "exit" => Command::Quit(args.trim().to_owned()),
        "help" | "?" => Command::Help,
        "query" | "q" => match args.split_whitespace().collect::<Vec<_>>()[..] {
            [nick] => Command::Query(nick.to_owned()),
            _ => Command::Invalid("usage: /query NICK".into()),
        },
        "clear" => Command::Clear,
        "close" | "wc" => Command::Close,
        "reconnect" => Command::Reconnect,
        "join" | "j" => match args.split_whitespace().collect::<Vec<_>>()[..] {
            [room] => Command::Join(room.to_owned()),
            _ => Command::Invalid("usage: /join #room".into()),
        },
        "part" | "leave" => match args.split_whitespace().collect::<Vec<_>>()[..] {
            [] => Command::Part(None),
            [room] => Command::Part(Some(room.to_owned())),
            _ => Command::Invalid("usage: /part [#room]".into()),
        },
        "room" => match args.split_whitespace().collect::<Vec<_>>()[..] {
            [room] => Command::Room(room.to_owned()),
            _ => Command::Invalid("usage: /room #room".into()),
        },
        "rooms" | "list" => Command::Rooms,
        "topic" => Command::Topic(args.trim().to_owned()),
        "history" => match args.trim() {
            "" => Command::History(DEFAULT_HISTORY_PAGE),
            n => match n.parse::<u32>() {
                Ok(n) if (1..=500).contains(&n) => Command::History(n),
                _ => Command::Invalid("usage: /history [N], N from 1 to 500".into()),
            },
        },
        "register" => match args.trim() {
            "" => Command::Invalid("usage: /register PASSWORD".into()),
            pass => Command::Register(pass.into()),
        },
        "password" | "passwd" => match args.trim() {
            "" => Command::Invalid("usage: /password NEW-PASSWORD".into()),
            pass => Command::Password(pass.into()),
        },
        other => Command::Invalid(format!(
            "unknown command /{other}; /help lists the commands"
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_and_commands() {
        assert_eq!(parse("hello"), Some(Command::Say("hello".into())));
        assert_eq!(parse("  "), None);
        assert_eq!(parse("hi\r"), Some(Command::Say("hi".into())));
        assert_eq!(
            parse("//etc/passwd"),
            Some(Command::Say("/etc/passwd".into()))
        );
        assert_eq!(
            parse("/msg bob  psst, hey"),
            Some(Command::Msg {
                to: vec!["bob".into()],
                text: "psst, hey".into()
            })
        );
        assert_eq!(
            parse("/MSG bob,carol hi"),
            Some(Command::Msg {
                to: vec!["bob".into(), "carol".into()],
                text: "hi".into()
            })
        );
        assert_eq!(parse("/me waves"), Some(Command::Me("waves".into())));
        assert_eq!(parse("/who"), Some(Command::Who));
        assert_eq!(parse("/quit"), Some(Command::Quit(String::new())));
        assert_eq!(
            parse("/quit see you"),
            Some(Command::Quit("see you".into()))
        );
        assert_eq!(parse("/help"), Some(Command::Help));
        assert_eq!(parse("/query bob"), Some(Command::Query("bob".into())));
        assert_eq!(parse("/clear"), Some(Command::Clear));
        assert_eq!(parse("/close"), Some(Command::Close));
        assert_eq!(parse("/reconnect"), Some(Command::Reconnect));
        assert_eq!(parse("/join #rust"), Some(Command::Join("#rust".into())));
        assert_eq!(parse("/part"), Some(Command::Part(None)));
        assert_eq!(parse("/part #go"), Some(Command::Part(Some("#go".into()))));
        assert_eq!(parse("/room rust"), Some(Command::Room("rust".into())));
        assert_eq!(parse("/rooms"), Some(Command::Rooms));
        assert_eq!(
            parse("/topic all about it"),
            Some(Command::Topic("all about it".into()))
        );
        assert_eq!(parse("/history"), Some(Command::History(50)));
        assert_eq!(parse("/history 20"), Some(Command::History(20)));
        assert_eq!(
            parse("/register s3cret pass"),
            Some(Command::Register("s3cret pass".into()))
        );
        assert_eq!(
            parse("/password new"),
            Some(Command::Password("new".into()))
        );
    }

    #[test]
    fn a_command_after_leading_blanks_is_still_the_command() {
        // Sent as text, these would show the password to the whole room.
        assert_eq!(
            parse("  /register s3cret"),
            Some(Command::Register("s3cret".into()))
        );
        assert_eq!(
            parse("\n/password new"),
            Some(Command::Password("new".into()))
        );
        assert_eq!(parse("\t/who"), Some(Command::Who));
        // Text keeps its leading blanks; `//` still sends a slash.
        assert_eq!(parse("  indented"), Some(Command::Say("  indented".into())));
        assert_eq!(
            parse("  //not a command"),
            Some(Command::Say("/not a command".into()))
        );
    }

    #[test]
    fn mistakes_explain_themselves() {
        for bad in [
            "/msg",
            "/msg bob",
            "/msg bob   ",
            "/me",
            "/frobnicate",
            "/query",
            "/query a b",
            "/join",
            "/join a b",
            "/history x",
            "/history 0",
            "/register",
            "/password",
        ] {
            match parse(bad) {
                Some(Command::Invalid(why)) => assert!(!why.is_empty()),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
