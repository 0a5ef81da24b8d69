//! The limits on what a frame may hold: text, recipients, attributes, topics, names, file
//! offers, moderation requests, reactions; each check says what is wrong, for the error frame.

use chat_core::names;
use chat_core::protocol::{
    Body, ClientFrame, ErrorCode, ErrorFrame, MAX_EXPIRY_SECS, MAX_REACTION_LEN, MessageAttr,
    Outgoing, Target,
};

use crate::config::Config;

/// Most bytes of a file name.
pub(super) const MAX_FILE_NAME: usize = 255;
/// Most attributes on one message.
pub(super) const MAX_ATTRS: usize = 8;
/// Longest room topic, in bytes.
pub(super) const MAX_TOPIC: usize = 300;
/// Longest quit message kept, in bytes.
pub(super) const MAX_QUIT_MESSAGE: usize = 256;

/// Checks an offer's recipient and file name: a name of reasonable length, on one line,
/// without control characters (the recipient makes it safe to save under, whatever it is).
pub(super) fn check_file_offer(to: &str, name: &str) -> Result<(), String> {
    names::validate_text(to, MAX_NAME).map_err(|e| format!("invalid recipient: {e}"))?;
    names::validate_text(name, MAX_FILE_NAME).map_err(|e| format!("invalid file name: {e}"))?;
    if name.trim().is_empty() || name.contains(['\n', '\r', '\t']) {
        return Err("invalid file name: one line, not blank".to_owned());
    }
    Ok(())
}

/// Longest nickname or ban target in a moderation request, in bytes.
pub(super) const MAX_NAME: usize = 128;
/// Longest ban or mute: ten years.
pub(super) const MAX_DURATION_SECS: u64 = 10 * 365 * 86_400;

/// Checks the fields of a moderation or presence request: names and reasons of reasonable
/// size without control characters, reasons and away messages on one line, durations from a
/// second to ten years.
pub(super) fn check_moderation(frame: &ClientFrame) -> Result<(), String> {
    let name = |what: &str, value: &str| {
        names::validate_text(value, MAX_NAME)
            .map_err(|e| format!("invalid {what}: {e}"))
            .and_then(|()| {
                if value.contains(['\n', '\r', '\t']) {
                    Err(format!("invalid {what}: one word, on one line"))
                } else {
                    Ok(())
                }
            })
    };
    let line =
        |what: &str, value: &str| check_topic(value).map_err(|e| format!("invalid {what}: {e}"));
    let room = |value: &Option<String>| match value {
        Some(r) => names::validate_room(r.strip_prefix('#').unwrap_or(r))
            .map_err(|e| format!("invalid room {r:?}: {e}")),
        None => Ok(()),
    };
    let duration = |secs: &Option<u64>| match secs {
        Some(s) if *s == 0 || *s > MAX_DURATION_SECS => {
            Err("a duration is from 1 second to 10 years".to_owned())
        }
        _ => Ok(()),
    };
    match frame {
        ClientFrame::Kick {
            room: r,
            nick,
            reason,
        } => {
            room(r)?;
            name("nickname", nick)?;
            line("reason", reason)
        }
        ClientFrame::Ban {
            target,
            duration_secs,
            reason,
        } => {
            names::validate_text(target, MAX_NAME).map_err(|e| format!("invalid target: {e}"))?;
            duration(duration_secs)?;
            line("reason", reason)
        }
        ClientFrame::Unban { target } => {
            names::validate_text(target, MAX_NAME).map_err(|e| format!("invalid target: {e}"))
        }
        ClientFrame::Mute {
            room: r,
            nick,
            duration_secs,
            reason,
        } => {
            room(r)?;
            name("nickname", nick)?;
            duration(duration_secs)?;
            line("reason", reason)
        }
        ClientFrame::Unmute { room: r, nick } | ClientFrame::Op { room: r, nick, .. } => {
            room(r)?;
            name("nickname", nick)
        }
        ClientFrame::LockTopic { room: r, .. } => room(&Some(r.clone())),
        ClientFrame::Nick { nick } | ClientFrame::Whois { nick } => name("nickname", nick),
        ClientFrame::Away { message } => line("away message", message),
        _ => Ok(()),
    }
}

/// A topic is one line of valid text, or empty.
pub(super) fn check_topic(topic: &str) -> Result<(), String> {
    if topic.contains(['\n', '\r']) {
        Err("a topic is one line".to_owned())
    } else if topic.is_empty() {
        Ok(())
    } else {
        names::validate_text(topic, MAX_TOPIC).map_err(|e| e.to_string())
    }
}

/// Checks a message before it goes to the hub, so that the hub's work stays minimal.
/// A message's text (or an edit's): valid, and no longer than `--max-message-len`.
pub(super) fn check_text(text: &str, config: &Config) -> Result<(), (ErrorCode, names::TextError)> {
    names::validate_text(text, config.max_message_len).map_err(|e| {
        let code = match e {
            names::TextError::TooLong { .. } => ErrorCode::MessageTooLong {
                max: u32::try_from(config.max_message_len).unwrap_or(u32::MAX),
            },
            _ => ErrorCode::InvalidText,
        };
        (code, e)
    })
}

/// A reaction: one emoji, without blanks or control characters.
/// Checks whom a private history request names: one to `max_targets` nicknames.
pub(super) fn check_conversation(
    with: &[String],
    config: &Config,
) -> Result<(), (ErrorCode, String)> {
    if with.is_empty() || with.len() > config.max_targets {
        let max = u32::try_from(config.max_targets).unwrap_or(u32::MAX);
        let message = format!("name 1 to {max} people whose conversation with you to show");
        return Err((ErrorCode::BadTargets { max }, message));
    }
    match with.iter().find(|n| n.is_empty() || n.len() > MAX_NAME) {
        Some(nick) => Err((
            ErrorCode::InvalidText,
            format!("{nick:?} is not a nickname"),
        )),
        None => Ok(()),
    }
}

pub(super) fn check_reaction(emoji: &str) -> Result<(), String> {
    names::validate_text(emoji, MAX_REACTION_LEN).map_err(|e| format!("invalid reaction: {e}"))?;
    if emoji.is_empty() || emoji.chars().any(char::is_whitespace) {
        return Err("a reaction is one emoji, without spaces".to_owned());
    }
    Ok(())
}

pub(super) fn check_outgoing(msg: &Outgoing, config: &Config) -> Result<(), ErrorFrame> {
    let err = |code, message: String| ErrorFrame {
        tag: Some(msg.tag),
        code,
        message,
    };
    let text = match &msg.body {
        Body::Text(t) | Body::Action(t) => t,
    };
    if let Err((code, e)) = check_text(text, config) {
        return Err(err(code, e.to_string()));
    }
    match &msg.to {
        Target::Room(room) => {
            if let Err(e) = names::validate_room(room.strip_prefix('#').unwrap_or(room)) {
                return Err(err(ErrorCode::NoSuchRoom(room.clone()), e.to_string()));
            }
        }
        Target::Users(users) => {
            if users.is_empty() || users.len() > config.max_targets {
                let max = u32::try_from(config.max_targets).unwrap_or(u32::MAX);
                return Err(err(
                    ErrorCode::BadTargets { max },
                    format!("a private message needs 1 to {max} recipients"),
                ));
            }
        }
    }
    if msg.attrs.len() > MAX_ATTRS {
        return Err(err(
            ErrorCode::Unsupported,
            format!("at most {MAX_ATTRS} message attributes are allowed"),
        ));
    }
    if let Some(secs) = MessageAttr::expires_in(&msg.attrs)
        && !(1..=MAX_EXPIRY_SECS).contains(&secs)
    {
        return Err(err(
            ErrorCode::InvalidText,
            format!(
                "a message may expire 1 second to {} days after it is sent",
                MAX_EXPIRY_SECS / 86_400
            ),
        ));
    }
    Ok(())
}

/// A quit message without control characters, cut to [`MAX_QUIT_MESSAGE`] bytes.
pub(super) fn clean_quit_message(reason: &str) -> String {
    let mut out: String = reason.chars().filter(|c| !c.is_control()).collect();
    if out.len() > MAX_QUIT_MESSAGE {
        let mut cut = MAX_QUIT_MESSAGE;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}
