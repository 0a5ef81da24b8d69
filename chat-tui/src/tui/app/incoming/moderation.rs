//! Moderation and presence from the server: operators' actions (shown in the room they concern,
//! with the bell when they concern us), bans, operators of each room, nickname changes (every
//! roster and private tab follows), away messages and `whois`.

use chat_core::names::fold;
use chat_core::protocol::{BanInfo, DEFAULT_ROOM, ModAction, ModNotice, UserInfo, WhoisInfo};

use crate::sanitize::sanitize_line;
use crate::tui::app::{App, Effect, TabKind};

impl App {
    /// An operator acted: told in the room's tab (the tab on screen for the server's), with the
    /// bell when it concerns us.
    pub(super) fn moderated(&mut self, notice: ModNotice) -> Vec<Effect> {
        let text = sanitize_line(&notice.describe());
        let about_me = fold(&notice.target) == fold(&self.nick);
        // Kicked out of a room, whose tab closes: told in the lobby's.
        let kicked_out = about_me && notice.action == ModAction::Kick;
        let i = notice
            .room
            .as_deref()
            .filter(|_| !kicked_out)
            .and_then(|room| self.known_room_tab(room))
            .unwrap_or(if kicked_out { 0 } else { self.active });
        self.notice(i, &text, about_me);
        if about_me && matches!(notice.action, ModAction::Mute) {
            let line = "you can read but not speak until it ends or an operator unmutes you";
            self.notice(i, line, true);
        }
        if about_me {
            vec![Effect::Bell]
        } else {
            Vec::new()
        }
    }

    /// The answer to `/bans`.
    pub(super) fn bans(&mut self, bans: Vec<BanInfo>) -> Vec<Effect> {
        self.notice_active(&format!("{} bans", bans.len()), false);
        for ban in bans {
            let until = ban.until.map_or_else(
                || "until lifted".to_owned(),
                |u| format!("until {}", u.format("%Y-%m-%d %H:%M UTC")),
            );
            let reason = if ban.reason.is_empty() {
                String::new()
            } else {
                format!(": {}", ban.reason)
            };
            let line = format!("  {} by {}, {until}{reason}", ban.target, ban.by);
            self.notice_active(&sanitize_line(&line), false);
        }
        Vec::new()
    }

    /// Who the operators of a room are (the roster marks them).
    pub(super) fn room_ops(&mut self, room: &str, ops: Vec<String>) -> Vec<Effect> {
        let ops = ops.iter().map(|n| fold(n)).collect();
        self.ops.insert(fold(room), ops);
        Vec::new()
    }

    /// Whether `nick` is an operator of `room`.
    pub fn is_op(&self, room: &str, nick: &str) -> bool {
        self.ops
            .get(&fold(room))
            .is_some_and(|ops| ops.contains(&fold(nick)))
    }

    /// Someone went away or came back: the roster dims them; their private tab says so.
    pub(super) fn away_changed(&mut self, nick: &str, message: Option<String>) -> Vec<Effect> {
        let key = fold(nick);
        let shown = sanitize_line(nick);
        let was = self.away.contains_key(&key);
        match message {
            Some(message) => {
                let message = sanitize_line(&message);
                let text = format!("{shown} is away: {message}");
                if key == fold(&self.nick) {
                    self.notice_active(&format!("you are away: {message}"), false);
                } else {
                    // Their private tab says so (also when a message to them got it back).
                    self.notice_private(&shown, &text);
                }
                self.away.insert(key, message);
            }
            None => {
                self.away.remove(&key);
                if key == fold(&self.nick) {
                    self.notice_active("you are back", false);
                } else if was {
                    self.notice_private(&shown, &format!("{shown} is back"));
                }
            }
        }
        Vec::new()
    }

    /// Someone (or we) changed nickname: rosters, operators, away messages and private tabs
    /// follow, and the rooms we share with them say so.
    pub(super) fn nick_changed(&mut self, old: &str, new: &str) -> Vec<Effect> {
        let (old_key, new_key) = (fold(old), fold(new));
        let shown = format!("{} is now {}", sanitize_line(old), sanitize_line(new));
        let rename = |roster: &mut Vec<UserInfo>| {
            for user in roster.iter_mut().filter(|u| fold(&u.nick) == old_key) {
                user.nick = new.to_owned();
            }
        };
        let in_lobby = self.roster.iter().any(|u| fold(&u.nick) == old_key);
        self.change_roster(rename);
        let rooms: Vec<String> = self
            .room_rosters
            .iter()
            .filter(|(_, r)| r.iter().any(|u| fold(&u.nick) == old_key))
            .map(|(k, _)| k.clone())
            .collect();
        let me = old_key == fold(&self.nick);
        for room in &rooms {
            self.change_room_roster(room, rename);
            if let Some(i) = self.known_room_tab(room).filter(|_| !me) {
                self.notice(i, &shown, false);
            }
        }
        for ops in self.ops.values_mut() {
            if ops.remove(&old_key) {
                ops.insert(new_key.clone());
            }
        }
        if let Some(message) = self.away.remove(&old_key) {
            self.away.insert(new_key.clone(), message);
        }
        if me {
            self.nick = new.to_owned();
            self.notice_active(&format!("you are now {}", sanitize_line(new)), false);
            return Vec::new();
        }
        if in_lobby {
            self.notice(0, &shown, false);
        }
        // Their private tab now talks to the new name.
        for tab in &mut self.tabs {
            match &mut tab.kind {
                TabKind::Private { nick } if fold(nick) == old_key => *nick = new.to_owned(),
                TabKind::Group { nicks } => {
                    for nick in nicks.iter_mut().filter(|n| fold(n) == old_key) {
                        *nick = new.to_owned();
                    }
                }
                _ => {}
            }
        }
        self.notice_private(new, &shown);
        Vec::new()
    }

    /// The answer to `/whois`.
    pub(super) fn whois(&mut self, w: WhoisInfo) -> Vec<Effect> {
        let who = match (w.account, w.relayed) {
            (true, _) => "logged in to their account",
            (false, true) => "a guest, through a relay",
            (false, false) => "a guest",
        };
        let op = if w.operator { ", server operator" } else { "" };
        let since = w
            .since
            .with_timezone(&chrono::Local)
            .format("%Y-%m-%d %H:%M");
        let idle = match w.idle_secs {
            0..60 => format!("{} s", w.idle_secs),
            60..3600 => format!("{} min", w.idle_secs / 60),
            s => format!("{} h {} min", s / 3600, s % 3600 / 60),
        };
        let rooms = if w.rooms_in_common.is_empty() {
            "no rooms in common".to_owned()
        } else {
            format!("in common: #{}", w.rooms_in_common.join(", #"))
        };
        let away = w.away.map(|a| format!(" · away: {a}")).unwrap_or_default();
        let text = format!(
            "{}: {who}{op} · online since {since} · idle {idle} · {rooms}{away}",
            w.nick
        );
        self.notice_active(&sanitize_line(&text), false);
        Vec::new()
    }

    /// The room whose roster the sidebar shows (the lobby for private tabs).
    pub fn shown_room(&self) -> String {
        self.tabs[self.active]
            .kind
            .room()
            .unwrap_or(DEFAULT_ROOM)
            .to_owned()
    }
}
