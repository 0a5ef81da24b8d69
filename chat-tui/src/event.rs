//! What the line client shows: server frames turned into [`LineEvent`]s, each rendered either
//! as one human-readable line (`12:04:31 <alice> hi`) or as one JSON object.

use chat_core::protocol::{Body, DisconnectReason, ServerFrame, Target, Welcome};
use chrono::{DateTime, Local, Utc};

use serde::Serialize;

/// One thing to show the user.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LineEvent {
    /// Connected.
    Welcome {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        /// The address connected to.
        address: String,
        /// Server software.
        server: String,
        nick: String,
        requested_nick: String,
        /// Why the nickname differs from the requested one.
        nick_changed: Option<&'static str>,
        roster: Vec<String>,
    },
    /// A public or private message (our own included: that is the server's acknowledgement).
    Message {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        id: u64,
        from: String,
        /// The room of a public message.
        room: Option<String>,
        /// Recipients of a private message.
        to: Option<Vec<String>>,
        text: String,
        action: bool,
        /// Sent by us.
        own: bool,
    },
    /// Someone joined.
    Join {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        nick: String,
        relayed: bool,
    },
    /// Someone left.
    Leave {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        nick: String,
        reason: DisconnectReason,
        message: String,
    },
    /// Answer to `/who`.
    Roster {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        room: String,
        users: Vec<String>,
    },
    /// A request failed.
    Error {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        message: String,
    },
    /// A message was refused by the rate limit.
    RateLimited {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        retry_after_ms: u32,
    },
    /// The server closed the connection, or it was lost.
    Disconnected {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        reason: String,
        message: String,
    },
    /// Local help text.
    Help { lines: Vec<String> },
}

impl LineEvent {
    /// The welcome from the server at `address`, as an event.
    pub fn welcome(w: &Welcome, address: &str) -> Self {
        LineEvent::Welcome {
            time: w.server_time,
            address: address.to_owned(),
            server: w.server.clone(),
            nick: w.nick.clone(),
            requested_nick: w.requested_nick.clone(),
            nick_changed: w.nick_change.map(|_| "taken"),
            roster: w.roster.iter().map(|u| u.nick.clone()).collect(),
        }
    }

    /// Turns a server frame into an event; frames not shown to the user give `None`.
    pub fn from_frame(frame: ServerFrame, me: &str) -> Option<Self> {
        let now = Utc::now();
        Some(match frame {
            ServerFrame::Message(m) => {
                let (room, to) = match m.to {
                    Target::Room(r) => (Some(r), None),
                    Target::Users(u) => (None, Some(u)),
                };
                let (text, action) = match m.body {
                    Body::Text(t) => (t, false),
                    Body::Action(t) => (t, true),
                };
                LineEvent::Message {
                    time: m.at,
                    id: m.id,
                    own: m.from == me,
                    from: m.from,
                    room,
                    to,
                    text,
                    action,
                }
            }
            ServerFrame::Joined { user, at, .. } => LineEvent::Join {
                time: at,
                nick: user.nick,
                relayed: user.relayed,
            },
            ServerFrame::Left {
                nick,
                reason,
                message,
                at,
                ..
            } => LineEvent::Leave {
                time: at,
                nick,
                reason,
                message,
            },
            ServerFrame::Roster { room, users } => LineEvent::Roster {
                time: now,
                room,
                users: users.into_iter().map(|u| u.nick).collect(),
            },
            ServerFrame::Error(e) => LineEvent::Error {
                time: now,
                message: e.message,
            },
            ServerFrame::RateLimited { retry_after_ms, .. } => LineEvent::RateLimited {
                time: now,
                retry_after_ms,
            },
            ServerFrame::Bye { reason, message } => LineEvent::Disconnected {
                time: now,
                reason: reason.describe().to_owned(),
                message,
            },
            ServerFrame::Rejected(r) => LineEvent::Disconnected {
                time: now,
                reason: "rejected".to_owned(),
                message: r.message,
            },
            ServerFrame::Welcome(w) => LineEvent::welcome(&w, ""),
            ServerFrame::Pong { .. } => return None,
        })
    }

    /// One JSON object (no newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!("{{\"type\":\"error\",\"message\":\"{e}\"}}"))
    }

    /// Human-readable text: one line, or several for multi-line messages (continuation lines
    /// are indented so that every event starts with its time). `me` is our own nickname,
    /// shown as "you" in private-message labels; `utc` shows UTC instead of local time.
    pub fn to_text(&self, me: &str, utc: bool) -> String {
        self.sanitized().render(me, utc)
    }

    /// A copy safe to print: no control characters anywhere, newlines only inside message
    /// text, no bidirectional overrides (nothing received can drive or disguise the terminal).
    fn sanitized(&self) -> LineEvent {
        let mut ev = self.clone();
        let one = |s: &mut String| *s = clean(s, false);
        match &mut ev {
            LineEvent::Welcome {
                address,
                server,
                nick,
                requested_nick,
                roster,
                ..
            } => {
                for s in [address, server, nick, requested_nick] {
                    one(s);
                }
                roster.iter_mut().for_each(one);
            }
            LineEvent::Message {
                from,
                room,
                to,
                text,
                ..
            } => {
                one(from);
                room.iter_mut().for_each(one);
                to.iter_mut().flatten().for_each(one);
                *text = clean(text, true);
            }
            LineEvent::Join { nick, .. } => one(nick),
            LineEvent::Leave { nick, message, .. } => {
                one(nick);
                one(message);
            }
            LineEvent::Roster { room, users, .. } => {
                one(room);
                users.iter_mut().for_each(one);
            }
            LineEvent::Error { message, .. } => one(message),
            LineEvent::Disconnected {
                reason, message, ..
            } => {
                one(reason);
                one(message);
            }
            LineEvent::Help { .. } | LineEvent::RateLimited { .. } => {}
        }
        ev
    }

    fn render(&self, me: &str, utc: bool) -> String {
        let stamp = |t: &DateTime<Utc>| {
            if utc {
                t.format("%H:%M:%S").to_string()
            } else {
                t.with_timezone(&Local).format("%H:%M:%S").to_string()
            }
        };
        match self {
            LineEvent::Welcome {
                time,
                address,
                server: _,
                nick,
                requested_nick,
                nick_changed,
                roster,
            } => {
                let mut s = format!("{} * connected to {address} as {nick}", stamp(time));
                if nick_changed.is_some() {
                    s.push_str(&format!(" ({requested_nick} was taken)"));
                }
                s.push_str(&format!(
                    "\n{} * {} online: {}",
                    stamp(time),
                    roster.len(),
                    roster.join(", ")
                ));
                s
            }
            LineEvent::Message {
                time,
                from,
                to,
                text,
                action,
                own,
                ..
            } => {
                let who = match to {
                    None if *action => format!("* {from}"),
                    None => format!("<{from}>"),
                    Some(targets) => {
                        let you = |n: &str| {
                            if n == me {
                                "you".to_owned()
                            } else {
                                n.to_owned()
                            }
                        };
                        let names: Vec<String> = targets.iter().map(|t| you(t)).collect();
                        let sender = if *own { "you".to_owned() } else { from.clone() };
                        let label = format!("[PM {sender} → {}]", names.join(", "));
                        if *action {
                            format!("{label} * {from}")
                        } else {
                            label
                        }
                    }
                };
                let indent = " ".repeat(9);
                let body = text.replace('\n', &format!("\n{indent}"));
                format!("{} {who} {body}", stamp(time))
            }
            LineEvent::Join {
                time,
                nick,
                relayed,
            } => {
                let via = if *relayed { " (guest, via relay)" } else { "" };
                format!("{} * {nick} joined{via}", stamp(time))
            }
            LineEvent::Leave {
                time,
                nick,
                reason,
                message,
            } => match (reason, message.is_empty()) {
                (DisconnectReason::Quit, true) => format!("{} * {nick} left", stamp(time)),
                (DisconnectReason::Quit, false) => {
                    format!("{} * {nick} left ({message})", stamp(time))
                }
                (r, _) => format!("{} * {nick} left ({r})", stamp(time)),
            },
            LineEvent::Roster { time, room, users } => format!(
                "{} * {} online in {room}: {}",
                stamp(time),
                users.len(),
                users.join(", ")
            ),
            LineEvent::Error { time, message } => format!("{} ! {message}", stamp(time)),
            LineEvent::RateLimited {
                time,
                retry_after_ms,
            } => format!(
                "{} ! rate limited: message not sent; wait {:.1} s",
                stamp(time),
                f64::from(*retry_after_ms) / 1000.0
            ),
            LineEvent::Disconnected {
                time,
                reason,
                message,
            } => match (reason.as_str(), message.is_empty()) {
                ("quit", true) => format!("{} * you left", stamp(time)),
                ("quit", false) => format!("{} * you left ({message})", stamp(time)),
                _ => format!("{} * disconnected ({reason}): {message}", stamp(time)),
            },
            LineEvent::Help { lines } => lines.join("\n"),
        }
    }
}

fn millis<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// Makes text received from elsewhere safe to print on one terminal line.
pub fn sanitize_line(s: &str) -> String {
    clean(s, false)
}

/// Makes received text safe to show in a terminal, keeping its newlines and tabs.
pub fn sanitize_text(s: &str) -> String {
    clean(s, true)
}

/// Replaces control characters (newlines too unless `multiline`; tabs are kept) and
/// bidirectional overrides and isolates with U+FFFD.
fn clean(s: &str, multiline: bool) -> String {
    s.chars()
        .map(|c| {
            let allowed = c == '\t' || (multiline && c == '\n');
            let bidi = matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
            if (c.is_control() && !allowed) || bidi {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, 12, 4, 31)
            .single()
            .expect("time")
    }

    fn msg(from: &str, to: Option<Vec<&str>>, text: &str, action: bool, own: bool) -> LineEvent {
        LineEvent::Message {
            time: at(),
            id: 1,
            from: from.into(),
            room: to.is_none().then(|| "lobby".into()),
            to: to.map(|t| t.into_iter().map(String::from).collect()),
            text: text.into(),
            action,
            own,
        }
    }

    #[test]
    fn message_lines() {
        let t = |e: LineEvent| e.to_text("me", true);
        assert_eq!(
            t(msg("alice", None, "hi", false, false)),
            "12:04:31 <alice> hi"
        );
        assert_eq!(
            t(msg("alice", None, "waves", true, false)),
            "12:04:31 * alice waves"
        );
        assert_eq!(
            t(msg("alice", Some(vec!["me"]), "psst", false, false)),
            "12:04:31 [PM alice → you] psst"
        );
        assert_eq!(
            t(msg(
                "alice",
                Some(vec!["me", "carol"]),
                "both",
                false,
                false
            )),
            "12:04:31 [PM alice → you, carol] both"
        );
        assert_eq!(
            t(msg("me", Some(vec!["bob"]), "hey", false, true)),
            "12:04:31 [PM you → bob] hey"
        );
        assert_eq!(
            t(msg("alice", None, "one\ntwo", false, false)),
            "12:04:31 <alice> one\n         two"
        );
    }

    #[test]
    fn nothing_received_can_drive_the_terminal() {
        let line = msg("alice", None, "\u{1b}[2Jboom\u{7}", false, false).to_text("me", true);
        assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
        assert!(line.contains("boom"));
        // A hostile server cannot start a fake line through a nickname or a reason.
        let fake = msg("mallory\n12:00:00 <admin>", None, "x", false, false).to_text("me", true);
        assert_eq!(fake.lines().count(), 1, "{fake:?}");
        let spoof = msg("eve", None, "abc\u{202E}fed", false, false).to_text("me", true);
        assert!(!spoof.contains('\u{202E}'));
    }

    #[test]
    fn presence_lines() {
        let left = |reason, message: &str| LineEvent::Leave {
            time: at(),
            nick: "bob".into(),
            reason,
            message: message.into(),
        };
        assert_eq!(
            left(DisconnectReason::Quit, "").to_text("me", true),
            "12:04:31 * bob left"
        );
        assert_eq!(
            left(DisconnectReason::Quit, "lunch").to_text("me", true),
            "12:04:31 * bob left (lunch)"
        );
        assert_eq!(
            left(DisconnectReason::SendQueueExceeded, "x").to_text("me", true),
            "12:04:31 * bob left (send queue exceeded)"
        );
        let join = LineEvent::Join {
            time: at(),
            nick: "*g".into(),
            relayed: true,
        };
        assert_eq!(
            join.to_text("me", true),
            "12:04:31 * *g joined (guest, via relay)"
        );
    }

    #[test]
    fn json_has_a_type_and_millisecond_times() {
        let json: serde_json::Value =
            serde_json::from_str(&msg("alice", None, "hi", false, false).to_json()).expect("json");
        assert_eq!(json["type"], "message");
        assert_eq!(json["time"], "2026-11-21T12:04:31.000Z");
        assert_eq!(json["room"], "lobby");
    }
}
