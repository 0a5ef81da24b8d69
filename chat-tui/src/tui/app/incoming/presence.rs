//! Who is online and who is in which room: joins, leaves and rosters, for the lobby (which is
//! everyone online) and for the other rooms, and the rosters kept sorted.

use chat_core::names::fold;
use chat_core::protocol::{DEFAULT_ROOM, DisconnectReason, UserInfo};

use crate::sanitize::sanitize_line;
use crate::tui::app::{App, Effect, TabKind};

impl App {
    /// The people the sidebar shows: the members of the room on screen (everyone online in
    /// the lobby and in private tabs).
    pub fn shown_roster(&self) -> &[UserInfo] {
        match &self.tabs[self.active].kind {
            TabKind::Room { name } => self.room_rosters.get(&fold(name)).map_or(&[], |v| v),
            _ => &self.roster,
        }
    }

    /// Is `nick` online (in the roster)?
    pub fn is_online(&self, nick: &str) -> bool {
        let key = fold(nick);
        self.roster.iter().any(|u| fold(&u.nick) == key)
    }

    /// Someone came online (the lobby) or entered a room we are in.
    pub(super) fn joined(&mut self, room: &str, user: UserInfo) -> Vec<Effect> {
        if fold(room) != DEFAULT_ROOM {
            self.joined_room(room, user);
            return Vec::new();
        }
        let nick = sanitize_line(&user.nick);
        let guest = if user.relayed { " (relayed guest)" } else { "" };
        self.notice(0, &format!("{nick} joined{guest}"), false);
        self.notice_private(&nick, &format!("{nick} is online"));
        let key = fold(&user.nick);
        self.change_roster(|roster| {
            roster.retain(|u| fold(&u.nick) != key);
            roster.push(user);
        });
        Vec::new()
    }

    /// Someone entered room `room` (not the lobby).
    fn joined_room(&mut self, room: &str, user: UserInfo) {
        let nick = sanitize_line(&user.nick);
        let Some(i) = self.known_room_tab(room) else {
            return;
        };
        self.notice(
            i,
            &format!("{nick} joined #{}", self.tabs[i].kind.title()),
            false,
        );
        let key = fold(&user.nick);
        self.change_room_roster(room, |roster| {
            roster.retain(|u| fold(&u.nick) != key);
            roster.push(user);
        });
    }

    /// Someone went offline (left the lobby) or left a room we are in.
    pub(super) fn left(
        &mut self,
        room: &str,
        nick: &str,
        reason: DisconnectReason,
        message: &str,
    ) -> Vec<Effect> {
        let key = fold(nick);
        let why = left_why(reason, message);
        if fold(room) != DEFAULT_ROOM {
            self.change_room_roster(room, |roster| {
                roster.retain(|u| fold(&u.nick) != key);
            });
            let nick = sanitize_line(nick);
            if let Some(i) = self.known_room_tab(room) {
                self.notice(i, &format!("{nick} left ({why})"), false);
            }
            return Vec::new();
        }
        self.change_roster(|roster| roster.retain(|u| fold(&u.nick) != key));
        let nick = sanitize_line(nick);
        self.notice(0, &format!("{nick} left ({why})"), false);
        self.notice_private(
            &nick,
            &format!(
                "{nick} left ({why}); a message reaches them now only if they have an account"
            ),
        );
        // The name we asked for (held by a stale session of ours, say) is free again.
        if key == fold(&self.requested_nick) && key != fold(&self.nick) {
            let text = format!(
                "the nickname {} is free again: /reconnect to take it",
                self.requested_nick
            );
            self.notice(0, &text, false);
        }
        Vec::new()
    }

    /// Who is in `room`: everyone online for the lobby. Shown when asked for (`/who`), not
    /// when it comes with entering a room.
    pub(super) fn roster_of(&mut self, room: &str, users: Vec<UserInfo>) -> Vec<Effect> {
        let names: Vec<String> = users.iter().map(|u| sanitize_line(&u.nick)).collect();
        let text = format!("in #{room} ({}): {}", names.len(), names.join(", "));
        if fold(room) == DEFAULT_ROOM {
            self.set_roster(users);
            self.notice_active(
                &format!("online ({}): {}", names.len(), names.join(", ")),
                false,
            );
        } else if let Some(i) = self.known_room_tab(room) {
            self.change_room_roster(room, |roster| *roster = users);
            if !self.quiet_rosters.remove(&fold(room)) {
                self.notice(i, &sanitize_line(&text), false);
            }
        }
        Vec::new()
    }

    /// Changes the roster of a room other than the lobby, keeping it sorted.
    pub(super) fn change_room_roster(
        &mut self,
        room: &str,
        change: impl FnOnce(&mut Vec<UserInfo>),
    ) {
        let roster = self.room_rosters.entry(fold(room)).or_default();
        change(roster);
        sort_roster(roster);
    }

    /// Replaces the roster of everyone online.
    pub(in crate::tui::app) fn set_roster(&mut self, users: Vec<UserInfo>) {
        self.change_roster(|roster| *roster = users);
    }

    /// Changes the roster, keeping it sorted and the selection on the same person.
    pub(super) fn change_roster(&mut self, change: impl FnOnce(&mut Vec<UserInfo>)) {
        let selected = self.roster.get(self.roster_selected).map(|u| fold(&u.nick));
        change(&mut self.roster);
        // Members first, then relayed guests, each alphabetically.
        sort_roster(&mut self.roster);
        let kept = selected.and_then(|key| self.roster.iter().position(|u| fold(&u.nick) == key));
        self.roster_selected = kept.unwrap_or(self.roster_selected);
        self.roster_selected = self
            .roster_selected
            .min(self.roster.len().saturating_sub(1));
    }
}

/// Roster order: members first, then relayed guests, each alphabetically.
fn sort_roster(roster: &mut [UserInfo]) {
    roster.sort_by_cached_key(|u| (u.relayed, fold(u.nick.trim_start_matches('*'))));
}

/// Why someone left, as shown: the reason, and the message when it says more.
fn left_why(reason: DisconnectReason, message: &str) -> String {
    let message = sanitize_line(message);
    if message.is_empty() || message == reason.describe() {
        reason.describe().to_owned()
    } else {
        format!("{}: {message}", reason.describe())
    }
}
