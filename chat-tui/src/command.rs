//! Parsing of what the user types: plain text or a `/command`.

use chat_core::protocol::{ClientFrame, DEFAULT_ROOM, PROTOCOL_VERSION, Password};

mod messages;
mod moderation;
pub use messages::{MessageCommand, expiry, reaction_problem};
use moderation::parse_mod;
pub use moderation::{ModCommand, parse_duration};

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
    /// `/history NICK[,NICK...] [N]`: older messages of the private conversation with them
    /// (an account's; the count, default 50).
    PrivateHistory { with: Vec<String>, limit: u32 },
    /// Register the current nickname with this password.
    Register(Password),
    /// Change the account's password.
    Password(Password),
    /// Make a joined room the current one (line client) or show its tab.
    Room(String),
    /// A moderation or presence request (`/kick`, `/ban`, `/nick`, `/away`, `/whois`, ...).
    Mod(ModCommand),
    /// Hide someone's messages (`/ignore NICK`), or list whom (`/ignore`).
    Ignore(Option<String>),
    /// Show someone's messages again.
    Unignore(String),
    /// A file transfer: `/file NICK PATH`, `/accept`, `/decline`, `/cancel`.
    File(FileCommand),
    /// About one message: `/reply`, `/edit`, `/react`, `/temp`, `/search`.
    Message(MessageCommand),
    /// A command that cannot be carried out; the text says why.
    Invalid(String),
}

/// A file transfer command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileCommand {
    /// `/file NICK PATH`: offer a file.
    Send {
        to: String,
        path: std::path::PathBuf,
    },
    /// `/accept [ID]` (the latest offer when no id is given).
    Accept(Option<u64>),
    /// `/decline [ID]`.
    Decline(Option<u64>),
    /// `/cancel [ID]` (the latest transfer).
    Cancel(Option<u64>),
}

/// `~/x` as a path in the home folder; anything else as typed.
pub fn expand_home(path: &str) -> std::path::PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => std::path::Path::new(&home).join(rest),
        _ if path == "~" => std::env::var_os("HOME").map_or_else(|| path.into(), Into::into),
        _ => path.into(),
    }
}

/// `/file`, `/accept`, `/decline`, `/cancel`.
fn parse_file(name: &str, args: &str) -> Option<Command> {
    let id = |usage: &str| match args.trim() {
        "" => Ok(None),
        n => n
            .trim_start_matches('#')
            .parse::<u64>()
            .map(Some)
            .map_err(|_| Command::Invalid(format!("usage: {usage}"))),
    };
    let made = |r: Result<Option<u64>, Command>, f: fn(Option<u64>) -> FileCommand| {
        r.map_or_else(|e| e, |id| Command::File(f(id)))
    };
    Some(match name {
        "file" | "send" => match args.trim().split_once(char::is_whitespace) {
            Some((to, path)) if !path.trim().is_empty() => Command::File(FileCommand::Send {
                to: to.to_owned(),
                path: expand_home(path.trim()),
            }),
            _ => Command::Invalid("usage: /file NICK PATH".into()),
        },
        "accept" => made(id("/accept [ID]"), FileCommand::Accept),
        "decline" => made(id("/decline [ID]"), FileCommand::Decline),
        "cancel" => made(id("/cancel [ID]"), FileCommand::Cancel),
        _ => return None,
    })
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

/// `/history [N]` (the current room), `/history NICK[,NICK...] [N]` (a private conversation).
fn history(args: &str) -> Command {
    let usage = || Command::Invalid("usage: /history [NICK] [N], N from 1 to 500".into());
    let count = |n: Option<&str>| match n.map(str::parse::<u32>) {
        None => Some(DEFAULT_HISTORY_PAGE),
        Some(Ok(n)) if (1..=500).contains(&n) => Some(n),
        Some(_) => None,
    };
    let mut words = args.split_whitespace();
    let (first, second) = (words.next(), words.next());
    if words.next().is_some() {
        return usage();
    }
    match first {
        None => Command::History(DEFAULT_HISTORY_PAGE),
        Some(n) if n.chars().all(|c| c.is_ascii_digit()) && second.is_none() => {
            count(Some(n)).map_or_else(usage, Command::History)
        }
        Some(people) => match count(second) {
            Some(limit) => Command::PrivateHistory {
                with: people
                    .split(',')
                    .map(|n| n.trim_start_matches('@').to_owned())
                    .filter(|n| !n.is_empty())
                    .collect(),
                limit,
            },
            None => usage(),
        },
    }
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
    "  /history NICK [N] older messages of your private conversation with NICK (accounts)",
    "  /register PASS    register your nickname (log in later with --password)",
    "  /password PASS    change your password",
    "  /nick NEW         change your nickname",
    "  /away [message]   mark yourself away (/back, or /away alone, to come back)",
    "  /whois NICK       who someone is: account, since when, idle, rooms in common",
    "  /ignore [NICK]    hide someone's messages (alone: list); /unignore NICK",
    "  /file NICK PATH   send a file; /accept, /decline or /cancel [ID] (latest: no ID)",
    "  /reply ID text    answer message ID, or NICK's latest (ids: /search, --json)",
    "  /edit ID text     replace the text of your message ID",
    "  /react ID EMOJI   react to message ID, or NICK's latest (👍, :+1:); again: undo",
    "  /temp 5m text     a message that expires (30s, 5m, 2h, 1d; at most 30d)",
    "  /search REGEX     messages seen in this run that match, with their ids",
    "  /search -s REGEX  stored messages you may read that match (again: older ones)",
    "  /mentions         what mentioned you since your last login (accounts; more: older)",
    "  /quit [reason]    leave (end of input and Ctrl-C do the same)",
    "  /help             this list",
    "  //text            send text that starts with '/'",
    "operators:",
    "  /kick [-s] NICK [reason]          out of the room (-s: off the server)",
    "  /mute [-s] NICK [10m] [reason]    can read, cannot speak (-s: everywhere)",
    "  /unmute [-s] NICK",
    "  /op [-s] NICK, /deop [-s] NICK    room operator (-s: server operator)",
    "  /locktopic, /unlocktopic          only operators may set the topic",
    "  /delete ID|NICK                   a message, or NICK's latest here (your own: anyone)",
    "  /ban NICK|ADDRESS|account:NAME [7d] [reason]    /unban TARGET    /bans",
];

/// Parses one typed line; `None` for a blank line. A command may follow leading spaces or
/// new lines: `  /register PASS` is the command, not a message that would show the password
/// to the room.
pub fn parse(line: &str) -> Option<Command> {
    // What is said gets its `:shortcodes:` as emoji.
    let emoji = |t: String| crate::emoji::expand(&t).into_owned();
    Some(match parse_line(line)? {
        Command::Say(text) => Command::Say(emoji(text)),
        Command::Me(text) => Command::Me(emoji(text)),
        Command::Msg { to, text } => Command::Msg {
            to,
            text: emoji(text),
        },
        Command::Message(m) => messages::with_emoji(m),
        other => other,
    })
}

/// [`parse`], before the emoji.
fn parse_line(line: &str) -> Option<Command> {
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
        "history" => history(args),
        "register" => match args.trim() {
            "" => Command::Invalid("usage: /register PASSWORD".into()),
            pass => Command::Register(pass.into()),
        },
        "password" | "passwd" => match args.trim() {
            "" => Command::Invalid("usage: /password NEW-PASSWORD".into()),
            pass => Command::Password(pass.into()),
        },
        other => match parse_file(other, args)
            .or_else(|| messages::parse_message(other, args))
            .or_else(|| parse_mod(other, args.trim_end()))
        {
            Some(command) => command,
            None => Command::Invalid(format!(
                "unknown command /{other}; /help lists the commands"
            )),
        },
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
        let private = |with: &[&str], limit| {
            Some(Command::PrivateHistory {
                with: with.iter().map(|n| (*n).to_owned()).collect(),
                limit,
            })
        };
        assert_eq!(parse("/history bob"), private(&["bob"], 50));
        assert_eq!(parse("/history @bob 20"), private(&["bob"], 20));
        assert_eq!(parse("/history bob,carol"), private(&["bob", "carol"], 50));
        for bad in [
            "/history 0",
            "/history 501",
            "/history bob x",
            "/history bob 2 3",
        ] {
            assert!(matches!(parse(bad), Some(Command::Invalid(_))), "{bad}");
        }
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
    fn moderation_commands_take_flags_durations_and_reasons() {
        let m = |line: &str| match parse(line) {
            Some(Command::Mod(m)) => m,
            other => panic!("{line}: {other:?}"),
        };
        assert_eq!(
            m("/kick bob spamming links"),
            ModCommand::Kick {
                nick: "bob".into(),
                reason: "spamming links".into(),
                server: false
            }
        );
        assert_eq!(
            m("/kick -s bob"),
            ModCommand::Kick {
                nick: "bob".into(),
                reason: String::new(),
                server: true
            }
        );
        assert_eq!(
            m("/ban 203.0.113.7 7d flood"),
            ModCommand::Ban {
                target: "203.0.113.7".into(),
                duration: Some(7 * 86_400),
                reason: "flood".into()
            }
        );
        assert_eq!(
            m("/ban bob being rude"),
            ModCommand::Ban {
                target: "bob".into(),
                duration: None,
                reason: "being rude".into()
            }
        );
        assert_eq!(
            m("/mute bob 10m calm down"),
            ModCommand::Mute {
                nick: "bob".into(),
                duration: Some(600),
                reason: "calm down".into(),
                server: false
            }
        );
        assert_eq!(
            m("/op -s carol"),
            ModCommand::Op {
                nick: "carol".into(),
                server: true,
                grant: true
            }
        );
        assert_eq!(m("/back"), ModCommand::Away(String::new()));
        assert_eq!(m("/delete 42"), ModCommand::Delete(42));
        assert_eq!(m("/delete bob"), ModCommand::DeleteLast("bob".into()));
        assert_eq!(m("/away lunch"), ModCommand::Away("lunch".into()));
        assert_eq!(parse("/ignore"), Some(Command::Ignore(None)));
        assert_eq!(
            parse("/ignore bob"),
            Some(Command::Ignore(Some("bob".into())))
        );
        assert_eq!(parse_duration("30s"), Some(30));
        assert_eq!(parse_duration("2h"), Some(7200));
        assert_eq!(parse_duration("0m"), None);
        assert_eq!(parse_duration("soon"), None);
        // The room comes from where it is typed.
        assert!(matches!(
            m("/mute bob").frame(Some("rust")),
            Ok(ClientFrame::Mute { room: Some(r), .. }) if r == "rust"
        ));
        assert!(m("/mute bob").frame(None).is_err());
        assert!(matches!(
            m("/kick bob").frame(None),
            Ok(ClientFrame::Kick { room: None, .. })
        ));
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
    fn shortcodes_in_what_is_said_become_emoji() {
        assert_eq!(parse("done :tada:"), Some(Command::Say("done 🎉".into())));
        assert_eq!(
            parse("/me waves :wave:"),
            Some(Command::Me("waves 👋".into()))
        );
        assert_eq!(
            parse("/msg bob :+1: :)"),
            Some(Command::Msg {
                to: vec!["bob".into()],
                text: "👍 :)".into()
            })
        );
        assert_eq!(
            parse("/topic :tada:"),
            Some(Command::Topic(":tada:".into()))
        );
    }

    #[test]
    fn file_commands() {
        assert_eq!(
            parse("/file bob my report.pdf"),
            Some(Command::File(FileCommand::Send {
                to: "bob".into(),
                path: "my report.pdf".into()
            }))
        );
        assert_eq!(
            parse("/accept"),
            Some(Command::File(FileCommand::Accept(None)))
        );
        assert_eq!(
            parse("/decline #3"),
            Some(Command::File(FileCommand::Decline(Some(3))))
        );
        assert_eq!(
            parse("/cancel 12"),
            Some(Command::File(FileCommand::Cancel(Some(12))))
        );
        if let Some(home) = std::env::var_os("HOME") {
            assert_eq!(
                expand_home("~/a.txt"),
                std::path::Path::new(&home).join("a.txt")
            );
        }
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
            "/history x y z",
            "/history 0",
            "/register",
            "/password",
            "/kick",
            "/ban",
            "/op",
            "/op a b",
            "/nick",
            "/nick a b",
            "/whois",
            "/unignore",
            "/delete",
            "/delete a b",
            "/file",
            "/file bob",
            "/accept x",
            "/cancel 1 2",
        ] {
            match parse(bad) {
                Some(Command::Invalid(why)) => assert!(!why.is_empty()),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
