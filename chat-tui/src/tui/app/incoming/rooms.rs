//! Rooms: entering one (after `/join`, or at login for an account's rooms), leaving one, the
//! list of every room, and topics.

use chat_core::names::fold;
use chat_core::protocol::RoomInfo;

use crate::sanitize::sanitize_line;
use crate::tui::app::{App, Effect, TabKind};

impl App {
    /// We are in `room`: its tab opens, and comes on screen if it was asked for with `/join`.
    pub(super) fn entered(&mut self, room: &str, topic: &str) -> Vec<Effect> {
        let i = self.room_tab(room);
        let focus = self.joining.as_deref() == Some(fold(room).as_str());
        if focus {
            self.joining = None;
            self.select_tab(i);
        }
        self.quiet_rosters.insert(fold(room));
        if !self.entered.insert(fold(room)) {
            return Vec::new();
        }
        let room = sanitize_line(room);
        let text = if topic.is_empty() {
            format!("you are in #{room}")
        } else {
            format!("you are in #{room}; topic: {}", sanitize_line(topic))
        };
        self.notice(i, &text, false);
        Vec::new()
    }

    /// We left `room`: its tab closes.
    pub(super) fn parted(&mut self, room: &str) -> Vec<Effect> {
        let kind = TabKind::Room {
            name: room.to_owned(),
        };
        if let Some(i) = self.tabs.iter().position(|t| t.kind.is(&kind)) {
            self.remove_tab(i);
        }
        let room = sanitize_line(room);
        self.notice_active(&format!("you left #{room}"), false);
        Vec::new()
    }

    /// Every room (the answer to `/rooms`), shown in the tab on screen.
    pub(super) fn rooms(&mut self, rooms: Vec<RoomInfo>) -> Vec<Effect> {
        self.notice_active(&format!("{} rooms:", rooms.len()), false);
        for r in rooms {
            let mut text = format!("  #{} ({})", r.name, r.members);
            if !r.topic.is_empty() {
                text.push_str(&format!(": {}", r.topic));
            }
            self.notice_active(&sanitize_line(&text), false);
        }
        Vec::new()
    }

    /// `by` set (or cleared) the topic of `room`.
    pub(super) fn topic(&mut self, room: &str, topic: &str, by: &str) -> Vec<Effect> {
        let Some(i) = self.known_room_tab(room) else {
            return Vec::new();
        };
        let text = if topic.is_empty() {
            format!("{by} cleared the topic")
        } else {
            format!("{by} set the topic: {topic}")
        };
        self.notice(i, &sanitize_line(&text), false);
        Vec::new()
    }
}
