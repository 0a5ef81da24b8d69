//! File transfers in the line mode: the agent's [`FileEvent`]s as line events, and their text.

use chat_core::protocol::sha256_hex;
use chrono::Utc;

use super::LineEvent;
use crate::files::{FileEvent, human_size, short_duration};

impl LineEvent {
    /// The line event for a file agent's event (`None`: nothing to show).
    pub fn from_file(event: FileEvent, me: &str) -> Option<Self> {
        let time = Utc::now();
        Some(match event {
            FileEvent::Offered { id, to, name, size } => LineEvent::FileOffer {
                time,
                id,
                outgoing: true,
                from: me.to_owned(),
                to,
                name,
                size,
                sha256: None,
            },
            FileEvent::Incoming(info) => LineEvent::FileOffer {
                time,
                id: info.id,
                outgoing: false,
                from: info.from,
                to: me.to_owned(),
                name: info.name,
                size: info.size,
                sha256: Some(sha256_hex(&info.sha256)),
            },
            FileEvent::Progress(p) => LineEvent::FileProgress {
                time,
                id: p.id,
                outgoing: p.outgoing,
                percent: p.percent(),
                bytes_per_sec: p.rate as u64,
                peer: p.peer,
                name: p.name,
                done: p.done,
                size: p.size,
            },
            FileEvent::Done { progress, path } => LineEvent::FileDone {
                time,
                id: progress.id,
                outgoing: progress.outgoing,
                peer: progress.peer,
                name: progress.name,
                size: progress.size,
                path: path.map(|p| p.display().to_string()),
            },
            FileEvent::Failed {
                id,
                outgoing,
                peer,
                name,
                reason,
            } => LineEvent::FileFailed {
                time,
                id,
                outgoing,
                peer,
                name,
                reason,
            },
            FileEvent::Notice(message) => LineEvent::error(message),
        })
    }

    /// A file event's text, after its time (already made safe to print).
    pub(super) fn file_text(&self) -> String {
        match self {
            LineEvent::FileOffer {
                id,
                outgoing: false,
                from,
                name,
                size,
                sha256,
                ..
            } => format!(
                "{from} offers {name} ({}, SHA-256 {}): /accept {id} or /decline {id}",
                human_size(*size),
                sha256.as_deref().map_or("?", |h| &h[..h.len().min(16)]),
            ),
            LineEvent::FileOffer {
                id, to, name, size, ..
            } => format!(
                "offered {name} ({}) to {to}, waiting for an answer (/cancel {id})",
                human_size(*size)
            ),
            LineEvent::FileProgress {
                outgoing,
                peer,
                name,
                size,
                done: 0,
                ..
            } => {
                let dir = if *outgoing { "to" } else { "from" };
                format!("{name} {dir} {peer}: started ({})", human_size(*size))
            }
            LineEvent::FileProgress {
                outgoing,
                peer,
                name,
                size,
                percent,
                bytes_per_sec,
                done,
                ..
            } => {
                let dir = if *outgoing { "to" } else { "from" };
                let left = size.saturating_sub(*done);
                let eta = match bytes_per_sec {
                    0 => String::new(),
                    r => format!(
                        ", {} left",
                        short_duration(std::time::Duration::from_secs(left.div_ceil(*r)))
                    ),
                };
                format!(
                    "{name} {dir} {peer}: {percent}% of {}, {}/s{eta}",
                    human_size(*size),
                    human_size(*bytes_per_sec)
                )
            }
            LineEvent::FileDone {
                outgoing: true,
                peer,
                name,
                size,
                ..
            } => format!(
                "sent {name} ({}) to {peer}: received and verified",
                human_size(*size)
            ),
            LineEvent::FileDone {
                peer,
                name,
                size,
                path,
                ..
            } => format!(
                "received {name} ({}) from {peer}, SHA-256 verified: saved as {}",
                human_size(*size),
                path.as_deref().unwrap_or("?")
            ),
            LineEvent::FileFailed {
                outgoing,
                peer,
                name,
                reason,
                ..
            } => {
                let dir = if *outgoing { "to" } else { "from" };
                format!("{name} {dir} {peer} failed: {reason}")
            }
            _ => String::new(),
        }
    }
}
