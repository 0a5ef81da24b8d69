//! Moderation and presence commands: `/kick`, `/ban`, `/mute`, `/op`, `/nick`, `/away`,
//! `/whois`, `/delete` and the rest, with their durations (`10m`) and `-s` for the server.

use chat_core::protocol::ClientFrame;

use super::Command;

/// A moderation or presence request, before it is given the room it is typed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModCommand {
    /// `/kick [-s] NICK [reason]`: out of the current room (off the server with `-s`, or
    /// from the lobby).
    Kick {
        nick: String,
        reason: String,
        server: bool,
    },
    /// `/ban NICK|ADDRESS|account:NAME [DURATION] [reason]`.
    Ban {
        target: String,
        duration: Option<u64>,
        reason: String,
    },
    /// `/unban TARGET`.
    Unban(String),
    /// `/bans`.
    Bans,
    /// `/mute [-s] NICK [DURATION] [reason]`: in the current room (everywhere with `-s`).
    Mute {
        nick: String,
        duration: Option<u64>,
        reason: String,
        server: bool,
    },
    /// `/unmute [-s] NICK`.
    Unmute { nick: String, server: bool },
    /// `/op [-s] NICK`, `/deop [-s] NICK`: of the current room (of the server with `-s`).
    Op {
        nick: String,
        server: bool,
        grant: bool,
    },
    /// `/locktopic`, `/unlocktopic`: of the current room.
    LockTopic(bool),
    /// `/nick NEW`.
    Nick(String),
    /// `/away [message]`; `/back` (an empty message).
    Away(String),
    /// `/whois NICK`.
    Whois(String),
    /// `/delete ID`: one's own message, or anyone's as an operator.
    Delete(u64),
    /// `/delete NICK`: the latest message from NICK in the current tab or room.
    DeleteLast(String),
}

impl ModCommand {
    /// The request, for a line typed in `room` (`None`: in a private conversation).
    pub fn frame(self, room: Option<&str>) -> Result<ClientFrame, String> {
        let room = room.map(str::to_owned);
        let in_room = |what: &str| {
            room.clone().ok_or_else(|| {
                format!("{what} works in a room's tab (or with -s, for the whole server)")
            })
        };
        Ok(match self {
            ModCommand::Kick {
                nick,
                reason,
                server,
            } => ClientFrame::Kick {
                room: if server { None } else { room },
                nick,
                reason,
            },
            ModCommand::Ban {
                target,
                duration,
                reason,
            } => ClientFrame::Ban {
                target,
                duration_secs: duration,
                reason,
            },
            ModCommand::Unban(target) => ClientFrame::Unban { target },
            ModCommand::Bans => ClientFrame::ListBans,
            ModCommand::Mute {
                nick,
                duration,
                reason,
                server,
            } => ClientFrame::Mute {
                room: if server {
                    None
                } else {
                    Some(in_room("/mute")?)
                },
                nick,
                duration_secs: duration,
                reason,
            },
            ModCommand::Unmute { nick, server } => ClientFrame::Unmute {
                room: if server {
                    None
                } else {
                    Some(in_room("/unmute")?)
                },
                nick,
            },
            ModCommand::Op {
                nick,
                server,
                grant,
            } => ClientFrame::Op {
                room: if server { None } else { Some(in_room("/op")?) },
                nick,
                grant,
            },
            ModCommand::LockTopic(locked) => ClientFrame::LockTopic {
                room: room.ok_or("/locktopic works in a room's tab")?,
                locked,
            },
            ModCommand::Nick(nick) => ClientFrame::Nick { nick },
            ModCommand::Away(message) => ClientFrame::Away { message },
            ModCommand::Whois(nick) => ClientFrame::Whois { nick },
            ModCommand::Delete(id) => ClientFrame::Delete { id },
            ModCommand::DeleteLast(nick) => {
                return Err(format!("no message from {nick} here to delete"));
            }
        })
    }
}

/// A duration as typed: a number and a unit, `s`, `m`, `h`, `d` or `w` (`30s`, `10m`, `2h`,
/// `7d`); `None` for anything else.
pub fn parse_duration(s: &str) -> Option<u64> {
    let unit = s.chars().last()?;
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return None,
    };
    let n: u64 = s[..s.len() - 1].parse().ok()?;
    (n > 0).then(|| n.checked_mul(scale)).flatten()
}

/// `[-s] NICK rest`: whether `-s` was given, the nickname, and the rest.
pub(super) fn server_flag(args: &str) -> (bool, Option<&str>, &str) {
    let (server, args) = match args.strip_prefix("-s") {
        Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => {
            (true, rest.trim_start())
        }
        _ => (false, args),
    };
    match args.split_once(char::is_whitespace) {
        Some((nick, rest)) => (server, Some(nick), rest.trim()),
        None if args.is_empty() => (server, None, ""),
        None => (server, Some(args), ""),
    }
}

/// `[DURATION] [reason]`.
pub(super) fn duration_and_reason(rest: &str) -> (Option<u64>, String) {
    let (first, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    match parse_duration(first) {
        Some(secs) => (Some(secs), after.trim().to_owned()),
        None => (None, rest.trim().to_owned()),
    }
}

/// The moderation and presence commands, or `None` for another name.
pub(super) fn parse_mod(name: &str, args: &str) -> Option<Command> {
    let (server, nick, rest) = server_flag(args);
    let one = |usage: &str| match args.split_whitespace().collect::<Vec<_>>()[..] {
        [word] => Ok(word.to_owned()),
        _ => Err(Command::Invalid(format!("usage: {usage}"))),
    };
    let m = match name {
        "kick" | "k" => match nick {
            Some(nick) => ModCommand::Kick {
                nick: nick.to_owned(),
                reason: rest.to_owned(),
                server,
            },
            None => return Some(Command::Invalid("usage: /kick [-s] NICK [reason]".into())),
        },
        "ban" => match args.split_once(char::is_whitespace) {
            _ if args.is_empty() => {
                let usage = "usage: /ban NICK|ADDRESS|account:NAME [DURATION like 1h, 7d] [reason]";
                return Some(Command::Invalid(usage.into()));
            }
            Some((target, rest)) => {
                let (duration, reason) = duration_and_reason(rest.trim());
                ModCommand::Ban {
                    target: target.to_owned(),
                    duration,
                    reason,
                }
            }
            None => ModCommand::Ban {
                target: args.to_owned(),
                duration: None,
                reason: String::new(),
            },
        },
        "unban" => match one("/unban NICK|ADDRESS|account:NAME") {
            Ok(target) => ModCommand::Unban(target),
            Err(invalid) => return Some(invalid),
        },
        "bans" => ModCommand::Bans,
        "mute" => match nick {
            Some(nick) => {
                let (duration, reason) = duration_and_reason(rest);
                ModCommand::Mute {
                    nick: nick.to_owned(),
                    duration,
                    reason,
                    server,
                }
            }
            None => {
                let usage = "usage: /mute [-s] NICK [DURATION like 10m] [reason]";
                return Some(Command::Invalid(usage.into()));
            }
        },
        "unmute" | "op" | "deop" => match (nick, rest) {
            (Some(nick), "") => {
                let nick = nick.to_owned();
                match name {
                    "unmute" => ModCommand::Unmute { nick, server },
                    _ => ModCommand::Op {
                        nick,
                        server,
                        grant: name == "op",
                    },
                }
            }
            _ => return Some(Command::Invalid(format!("usage: /{name} [-s] NICK"))),
        },
        "locktopic" => ModCommand::LockTopic(true),
        "unlocktopic" => ModCommand::LockTopic(false),
        "nick" => match one("/nick NEW-NICKNAME") {
            Ok(nick) => ModCommand::Nick(nick),
            Err(invalid) => return Some(invalid),
        },
        "away" => ModCommand::Away(args.trim().to_owned()),
        "back" => ModCommand::Away(String::new()),
        "whois" | "wi" => match one("/whois NICK") {
            Ok(nick) => ModCommand::Whois(nick),
            Err(invalid) => return Some(invalid),
        },
        "delete" | "del" => match args.split_whitespace().collect::<Vec<_>>()[..] {
            [word] => match word.trim_start_matches('#').parse::<u64>() {
                Ok(id) => ModCommand::Delete(id),
                Err(_) => ModCommand::DeleteLast(word.to_owned()),
            },
            _ => {
                let usage = "usage: /delete ID, or /delete NICK (their latest message here)";
                return Some(Command::Invalid(usage.into()));
            }
        },
        "ignore" => {
            return Some(match args.split_whitespace().collect::<Vec<_>>()[..] {
                [] => Command::Ignore(None),
                [nick] => Command::Ignore(Some(nick.to_owned())),
                _ => Command::Invalid("usage: /ignore [NICK]".into()),
            });
        }
        "unignore" => {
            return Some(match one("/unignore NICK") {
                Ok(nick) => Command::Unignore(nick),
                Err(invalid) => invalid,
            });
        }
        _ => return None,
    };
    Some(Command::Mod(m))
}
