//! Line events as text for people: one line each (a multi-line message continues indented),
//! starting with its time, with everything received made safe to print first.

use chat_core::protocol::{DEFAULT_ROOM, DisconnectReason};
use chrono::{DateTime, Local, Utc};

use super::{LineEvent, RoomLine};
use crate::sanitize::{sanitize_line, sanitize_text};

impl LineEvent {
    /// Human-readable text: one line, or several for multi-line messages (continuation lines
    /// are indented so that every event starts with its time). `me` is our own nickname,
    /// shown as "you" in private-message labels; `utc` shows UTC instead of local time.
    pub fn to_text(&self, me: &str, utc: bool) -> String {
        self.to_text_on(me, utc, Utc::now())
    }

    /// [`LineEvent::to_text`] as of `now`: a message from the server's history, or kept for
    /// us, sent on another day than `now`'s also shows its date (`2026-12-03 12:01:15
    /// (earlier) ...`).
    pub fn to_text_on(&self, me: &str, utc: bool, now: DateTime<Utc>) -> String {
        self.sanitized().render(me, utc, now)
    }

    /// A copy safe to print: no control characters anywhere, newlines only inside message
    /// text, no bidirectional overrides (nothing received can drive or disguise the terminal).
    fn sanitized(&self) -> LineEvent {
        let mut ev = self.clone();
        let one = |s: &mut String| *s = sanitize_line(s);
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
                quote,
                ..
            } => {
                one(from);
                room.iter_mut().for_each(one);
                to.iter_mut().flatten().for_each(one);
                quote.iter_mut().for_each(one);
                *text = sanitize_text(text);
            }
            LineEvent::Join { nick, room, .. } => {
                one(nick);
                one(room);
            }
            LineEvent::Leave {
                nick,
                message,
                room,
                ..
            } => {
                one(nick);
                one(message);
                one(room);
            }
            LineEvent::Entered { room, topic, .. } => {
                one(room);
                one(topic);
            }
            LineEvent::Parted { room, .. }
            | LineEvent::CurrentRoom { room, .. }
            | LineEvent::HistoryEnd { room, .. } => one(room),
            LineEvent::Rooms { rooms, .. } => {
                for r in rooms {
                    one(&mut r.name);
                    one(&mut r.topic);
                }
            }
            LineEvent::Topic {
                room, topic, by, ..
            } => {
                one(room);
                one(topic);
                one(by);
            }
            LineEvent::Queued { to, .. } | LineEvent::PrivateHistoryEnd { with: to, .. } => {
                to.iter_mut().for_each(one);
            }
            LineEvent::Registered { nick, .. } => one(nick),
            LineEvent::PasswordChanged { .. } => {}
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
            LineEvent::Moderation {
                by,
                target,
                room,
                reason,
                text,
                ..
            } => {
                for s in [by, target, reason, text] {
                    one(s);
                }
                room.iter_mut().for_each(one);
            }
            LineEvent::NickChanged { old, new, .. } => {
                one(old);
                one(new);
            }
            LineEvent::Away { nick, message, .. } => {
                one(nick);
                message.iter_mut().for_each(one);
            }
            LineEvent::Ops { room, ops, .. } => {
                one(room);
                ops.iter_mut().for_each(one);
            }
            LineEvent::Bans { bans, .. } => {
                for b in bans {
                    one(&mut b.target);
                    one(&mut b.by);
                    one(&mut b.reason);
                }
            }
            LineEvent::Whois {
                nick,
                rooms_in_common,
                away,
                ..
            } => {
                one(nick);
                rooms_in_common.iter_mut().for_each(one);
                away.iter_mut().for_each(one);
            }
            LineEvent::Ignored { nicks, .. } => nicks.iter_mut().for_each(one),
            LineEvent::FileOffer { from, to, name, .. } => {
                one(from);
                one(to);
                one(name);
            }
            LineEvent::FileProgress { peer, name, .. } | LineEvent::FileDone { peer, name, .. } => {
                one(peer);
                one(name);
            }
            LineEvent::FileFailed {
                peer, name, reason, ..
            } => {
                one(peer);
                one(name);
                one(reason);
            }
            LineEvent::Deleted { room, by, .. } => {
                one(by);
                room.iter_mut().for_each(one);
            }
            LineEvent::Edited { .. }
            | LineEvent::Reactions { .. }
            | LineEvent::Search { .. }
            | LineEvent::Mentions { .. } => {
                ev.sanitize_change();
            }
        }
        ev
    }

    fn render(&self, me: &str, utc: bool, now: DateTime<Utc>) -> String {
        let stamp = |t: &DateTime<Utc>| time_of_day(t, utc);
        match self {
            LineEvent::Welcome {
                time,
                address,
                nick,
                requested_nick,
                nick_changed,
                roster,
                ..
            } => welcome_text(
                &stamp(time),
                address,
                nick,
                requested_nick,
                *nick_changed,
                roster,
            ),
            LineEvent::Message {
                time,
                from,
                room,
                to,
                text,
                action,
                own,
                history,
                reply_to,
                expires_in,
                quote,
                ..
            } => {
                let who = message_label(from, room.as_deref(), to.as_deref(), *action, *own, me);
                let who = match (reply_to, quote) {
                    (Some(_), Some(quote)) => format!("{who} (↳ {quote})"),
                    (Some(id), None) => format!("{who} (↳ #{id})"),
                    (None, _) => who,
                };
                let (stamp, who) = if *history {
                    (dated(time, utc, now), format!("(earlier) {who}"))
                } else {
                    (stamp(time), who)
                };
                // Continuation lines start under the text, past the time.
                let indent = " ".repeat(stamp.chars().count() + 1);
                let body = text.replace('\n', &format!("\n{indent}"));
                let expiry = expires_in
                    .map(|s| format!(" (⏳ {})", crate::extras::time_left(u64::from(s))))
                    .unwrap_or_default();
                format!("{stamp} {who} {body}{expiry}")
            }
            LineEvent::Entered { time, room, topic } if topic.is_empty() => {
                format!("{} * you joined #{room}", stamp(time))
            }
            LineEvent::Entered { time, room, topic } => {
                format!("{} * you joined #{room}; topic: {topic}", stamp(time))
            }
            LineEvent::Parted { time, room } => format!("{} * you left #{room}", stamp(time)),
            LineEvent::CurrentRoom { time, room } => {
                format!("{} * talking in #{room}", stamp(time))
            }
            LineEvent::Rooms { time, rooms } => rooms_text(&stamp(time), rooms),
            LineEvent::Topic {
                time,
                room,
                topic,
                by,
            } => match topic.as_str() {
                "" => format!("{} * {by} cleared the topic of #{room}", stamp(time)),
                topic => format!("{} * {by} set the topic of #{room}: {topic}", stamp(time)),
            },
            LineEvent::HistoryEnd {
                time,
                room,
                count,
                more,
            } => history_end_text(&stamp(time), &format!("of #{room}"), "", *count, *more),
            LineEvent::PrivateHistoryEnd {
                time,
                with,
                count,
                more,
            } => {
                let with = with.join(",");
                let place = format!("with {with}");
                history_end_text(&stamp(time), &place, &format!(" {with}"), *count, *more)
            }
            LineEvent::Queued { time, to } => format!(
                "{} * {} offline: the message is kept for when they log in",
                stamp(time),
                to.join(", ")
            ),
            LineEvent::Registered { time, nick } => format!(
                "{} * {nick} is now registered: log in with --password next time",
                stamp(time)
            ),
            LineEvent::PasswordChanged { time } => {
                format!("{} * your password was changed", stamp(time))
            }
            LineEvent::Join {
                time,
                room,
                nick,
                relayed,
            } => {
                let via = if *relayed { " (guest, via relay)" } else { "" };
                format!("{} * {nick} joined{}{via}", stamp(time), in_room(room))
            }
            LineEvent::Leave {
                time,
                room,
                nick,
                reason,
                message,
            } => leave_text(&stamp(time), room, nick, *reason, message),
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
                retrying,
            } => rate_limited_text(&stamp(time), *retry_after_ms, *retrying),
            LineEvent::Disconnected {
                time,
                reason,
                message,
            } => disconnected_text(&stamp(time), reason, message),
            LineEvent::Help { lines } => lines.join("\n"),
            LineEvent::Moderation { time, text, .. } => format!("{} ! {text}", stamp(time)),
            LineEvent::NickChanged { time, old, new } if old == me => {
                format!("{} * you are now {new}", stamp(time))
            }
            LineEvent::NickChanged { time, old, new } => {
                format!("{} * {old} is now {new}", stamp(time))
            }
            LineEvent::Away {
                time,
                nick,
                message: Some(message),
            } => format!("{} * {nick} is away: {message}", stamp(time)),
            LineEvent::Away { time, nick, .. } => format!("{} * {nick} is back", stamp(time)),
            LineEvent::Ops { time, room, ops } if ops.is_empty() => {
                format!("{} * #{room} has no operator online", stamp(time))
            }
            LineEvent::Ops { time, room, ops } => {
                format!("{} * operators of #{room}: {}", stamp(time), ops.join(", "))
            }
            LineEvent::Bans { time, bans } => {
                let mut out = format!("{} * {} bans", stamp(time), bans.len());
                for b in bans {
                    let until = b.until.as_deref().unwrap_or("lifted");
                    let reason = if b.reason.is_empty() { "" } else { ": " };
                    out.push_str(&format!(
                        "\n    {} by {}, until {until}{reason}{}",
                        b.target, b.by, b.reason
                    ));
                }
                out
            }
            LineEvent::Whois {
                time,
                nick,
                account,
                relayed,
                operator,
                since,
                idle_secs,
                rooms_in_common,
                away,
            } => {
                let who = match (account, relayed) {
                    (true, _) => "an account",
                    (false, true) => "a guest via a relay",
                    (false, false) => "a guest",
                };
                let op = if *operator { ", server operator" } else { "" };
                let rooms = if rooms_in_common.is_empty() {
                    "no rooms in common".to_owned()
                } else {
                    format!("in common: #{}", rooms_in_common.join(", #"))
                };
                let away = away
                    .as_ref()
                    .map(|a| format!(", away: {a}"))
                    .unwrap_or_default();
                format!(
                    "{} * {nick}: {who}{op}, online since {}, idle {}, {rooms}{away}",
                    stamp(time),
                    dated(since, utc, now),
                    idle(*idle_secs)
                )
            }
            LineEvent::Deleted { time, .. }
            | LineEvent::Edited { time, .. }
            | LineEvent::Reactions { time, .. }
            | LineEvent::Search { time, .. }
            | LineEvent::Mentions { time, .. } => {
                self.change_text(&stamp(time), |t| dated(t, utc, now))
            }
            LineEvent::Ignored { time, nicks } if nicks.is_empty() => {
                format!("{} * you ignore nobody", stamp(time))
            }
            LineEvent::Ignored { time, nicks } => {
                format!("{} * you ignore {}", stamp(time), nicks.join(", "))
            }
            LineEvent::FileOffer { time, .. }
            | LineEvent::FileProgress { time, .. }
            | LineEvent::FileDone { time, .. }
            | LineEvent::FileFailed { time, .. } => {
                format!("{} * {}", stamp(time), self.file_text())
            }
        }
    }
}

/// Idle time for people: "42 s", "5 min", "3 h 2 min".
fn idle(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        _ => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
    }
}

/// The time of day, to the second, in UTC or local time.
fn time_of_day(t: &DateTime<Utc>, utc: bool) -> String {
    if utc {
        t.format("%H:%M:%S").to_string()
    } else {
        t.with_timezone(&Local).format("%H:%M:%S").to_string()
    }
}

/// The time of day of `t`, after its date when that is not the day of `now` (both in UTC or
/// local time).
fn dated(t: &DateTime<Utc>, utc: bool, now: DateTime<Utc>) -> String {
    let day = |t: &DateTime<Utc>| {
        if utc {
            t.date_naive()
        } else {
            t.with_timezone(&Local).date_naive()
        }
    };
    let time = time_of_day(t, utc);
    if day(t) == day(&now) {
        time
    } else {
        format!("{} {time}", day(t).format("%Y-%m-%d"))
    }
}

/// A message refused for going too fast, sent again by itself (`retrying`) or not.
fn rate_limited_text(stamp: &str, retry_after_ms: u32, retrying: bool) -> String {
    let secs = f64::from(retry_after_ms) / 1000.0;
    if retrying {
        format!("{stamp} ! rate limited: sending it again in {secs:.1} s")
    } else {
        format!("{stamp} ! rate limited: message not sent; wait {secs:.1} s")
    }
}

/// The welcome: who we are, and who is online.
fn welcome_text(
    stamp: &str,
    address: &str,
    nick: &str,
    requested_nick: &str,
    nick_changed: Option<&str>,
    roster: &[String],
) -> String {
    let mut s = format!("{stamp} * connected to {address} as {nick}");
    match nick_changed {
        Some("registered") => s.push_str(&format!(
            " ({requested_nick} is a registered nickname: log in with --password to use it)"
        )),
        Some(_) => s.push_str(&format!(" ({requested_nick} was taken)")),
        None => {}
    }
    s.push_str(&format!(
        "\n{stamp} * {} online: {}",
        roster.len(),
        roster.join(", ")
    ));
    s
}

/// Who a message is from, and where: `<alice>` or `* alice` in the lobby, `#room <alice>` in
/// another room (the lobby's lines stay as they always were), `[PM alice → you]` in private
/// (`me` is shown as "you").
fn message_label(
    from: &str,
    room: Option<&str>,
    to: Option<&[String]>,
    action: bool,
    own: bool,
    me: &str,
) -> String {
    let who = match to {
        None if action => format!("* {from}"),
        None => format!("<{from}>"),
        Some(targets) => {
            let you = |n: &str| if n == me { "you" } else { n }.to_owned();
            let names: Vec<String> = targets.iter().map(|t| you(t)).collect();
            let sender = if own {
                "you".to_owned()
            } else {
                from.to_owned()
            };
            let label = format!("[PM {sender} → {}]", names.join(", "));
            if action {
                format!("{label} * {from}")
            } else {
                label
            }
        }
    };
    match room.filter(|r| *r != DEFAULT_ROOM) {
        Some(room) => format!("#{room} {who}"),
        None => who,
    }
}

/// Every room, one line each.
fn rooms_text(stamp: &str, rooms: &[RoomLine]) -> String {
    let mut s = format!("{stamp} * {} rooms:", rooms.len());
    for r in rooms {
        s.push_str(&format!("\n{stamp} * #{} ({})", r.name, r.members));
        if !r.topic.is_empty() {
            s.push_str(&format!(": {}", r.topic));
        }
    }
    s
}

/// The end of a page of a room's history: how many, and whether there are older ones.
/// "12 earlier messages of #rust; nothing older": `place` says of what, `args` what
/// `/history` takes to go on.
fn history_end_text(stamp: &str, place: &str, args: &str, count: usize, more: bool) -> String {
    let older = if more {
        format!("; /history{args} shows older ones")
    } else {
        "; nothing older".to_owned()
    };
    match count {
        0 => format!("{stamp} * no earlier messages {place}{older}"),
        1 => format!("{stamp} * 1 earlier message {place}{older}"),
        n => format!("{stamp} * {n} earlier messages {place}{older}"),
    }
}

/// The connection ended: we left, or the server or the network ended it.
fn disconnected_text(stamp: &str, reason: &str, message: &str) -> String {
    match (reason, message.is_empty()) {
        ("quit", true) => format!("{stamp} * you left"),
        ("quit", false) => format!("{stamp} * you left ({message})"),
        _ => format!("{stamp} * disconnected ({reason}): {message}"),
    }
}

/// Someone left the lobby or a room: the reason shows unless it is an ordinary leaving.
fn leave_text(
    stamp: &str,
    room: &str,
    nick: &str,
    reason: DisconnectReason,
    message: &str,
) -> String {
    let place = in_room(room);
    match (reason, message.is_empty()) {
        (DisconnectReason::Quit, true) => format!("{stamp} * {nick} left{place}"),
        (DisconnectReason::Quit, false) => format!("{stamp} * {nick} left{place} ({message})"),
        (DisconnectReason::LeftRoom, _) => format!("{stamp} * {nick} left{place}"),
        (r, _) => format!("{stamp} * {nick} left{place} ({r})"),
    }
}

/// " #room" for rooms other than the lobby, whose lines stay as they always were.
fn in_room(room: &str) -> String {
    if room == DEFAULT_ROOM || room.is_empty() {
        String::new()
    } else {
        format!(" #{room}")
    }
}
