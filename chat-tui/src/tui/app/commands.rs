//! What each line typed on the main screen does: plain text and `/me` go to the tab's room or
//! user, the other `/commands` become requests or act here. Each returns the effects and
//! whether the input line is kept (the line was refused here, so that it can be corrected).

use chat_core::names::fold;
use chat_core::protocol::{Body, ClientFrame, DEFAULT_ROOM, Password, Target};

use super::{App, Effect, EntryKind, TabKind};
use crate::command::{Command, ModCommand, room_name};

impl App {
    /// Carries out a parsed line; returns the effects and whether to keep the input line.
    pub(super) fn command(&mut self, command: Command) -> (Vec<Effect>, bool) {
        let tab = self.tabs[self.active].kind.clone();
        match command {
            Command::Say(text) => self.send_to_tab(tab, Body::Text(text), Vec::new()),
            Command::Me(text) => self.send_to_tab(tab, Body::Action(text), Vec::new()),
            // To one person, their tab; to several, the tab of that group.
            Command::Msg { to, text } => match TabKind::private(&to, &self.nick) {
                Some(tab) => {
                    let to = Target::Users(tab.people().to_vec());
                    self.send(tab, to, Body::Text(text), Vec::new())
                }
                None => self.refuse("that is you; pick someone else to talk to"),
            },
            Command::Query(nick) => self.query(&nick),
            Command::Who => {
                let room = tab.room().unwrap_or(DEFAULT_ROOM).to_owned();
                self.request(ClientFrame::Who { room })
            }
            Command::Clear => {
                self.clear_tab();
                (Vec::new(), false)
            }
            Command::Close => (self.close_tab(self.active), false),
            Command::Join(room) => self.join(&room),
            Command::Part(room) => self.part(room.as_deref(), &tab),
            Command::Rooms => self.request(ClientFrame::ListRooms),
            Command::Topic(topic) => self.set_topic(topic, &tab),
            Command::History(limit) => self.older_history(limit, &tab),
            Command::PrivateHistory { with, limit } => self.history_with(with, limit),
            Command::Register(password) => {
                let frame = ClientFrame::Register {
                    password: password.clone(),
                };
                self.change_password(frame, password)
            }
            Command::Password(password) => {
                let frame = ClientFrame::SetPassword {
                    password: password.clone(),
                };
                self.change_password(frame, password)
            }
            Command::Room(room) => self.show_room(&room),
            Command::Mod(ModCommand::DeleteLast(nick)) => match self.last_from(&nick) {
                Some(id) => self.request(ClientFrame::Delete { id }),
                None => self.refuse(&format!("no message from {nick} in this tab")),
            },
            Command::Mod(m) => match m.frame(tab.room()) {
                Ok(frame) => self.request(frame),
                Err(why) => self.refuse(&why),
            },
            Command::Ignore(nick) => self.ignore(nick),
            Command::Unignore(nick) => self.unignore(&nick),
            Command::Reconnect => (self.reconnect_now(), false),
            Command::File(f) => self.file_command(f),
            Command::Message(m) => self.message_command(m, tab),
            Command::Help => {
                self.help = true;
                (Vec::new(), false)
            }
            Command::Quit(reason) => (self.quit(reason), false),
            Command::Invalid(why) => self.refuse(&why),
        }
    }

    /// A line that cannot be carried out: says why, and keeps the line for correcting.
    pub(super) fn refuse(&mut self, why: &str) -> (Vec<Effect>, bool) {
        self.notice_active(why, true);
        (Vec::new(), true)
    }

    /// `/query NICK` (and Enter in the roster): shows the private tab for `nick`, opened if
    /// needed.
    pub(super) fn query(&mut self, nick: &str) -> (Vec<Effect>, bool) {
        if fold(nick) == fold(&self.nick) {
            return self.refuse("that is you; pick someone else to talk to");
        }
        let i = self.open_tab(nick);
        self.select_tab(i);
        (Vec::new(), false)
    }

    /// `/clear`: empties the tab on screen (its entries keep their sequence numbers).
    fn clear_tab(&mut self) {
        let tab = &mut self.tabs[self.active];
        tab.first_seq += tab.entries.len() as u64;
        tab.entries.clear();
        tab.scroll = None;
    }

    /// `/join #room`: the room's tab comes on screen when the server says it is entered.
    fn join(&mut self, room: &str) -> (Vec<Effect>, bool) {
        let room = room_name(room).to_owned();
        let folded = fold(&room);
        self.request_then(ClientFrame::Join { room }, |app| {
            app.joining = Some(folded);
        })
    }

    /// `/part [#room]`: leaves the room named, or the one on screen.
    fn part(&mut self, room: Option<&str>, tab: &TabKind) -> (Vec<Effect>, bool) {
        match room.map(room_name).or(tab.room()) {
            Some(room) => {
                let room = room.to_owned();
                self.request(ClientFrame::Part { room })
            }
            None => self.refuse("/part #room, or /part in a room's tab"),
        }
    }

    /// `/topic text`: sets the topic of the room on screen.
    fn set_topic(&mut self, topic: String, tab: &TabKind) -> (Vec<Effect>, bool) {
        match tab.room() {
            Some(room) => {
                let room = room.to_owned();
                self.request(ClientFrame::SetTopic { room, topic })
            }
            None => self.refuse("/topic works in a room's tab"),
        }
    }

    /// `/history [N]`: asks for the page of the room's history before the oldest message shown.
    fn older_history(&mut self, limit: u32, tab: &TabKind) -> (Vec<Effect>, bool) {
        if matches!(tab, TabKind::Private { .. } | TabKind::Group { .. }) {
            return self.older_private_history(limit);
        }
        let Some(room) = tab.room() else {
            return self.refuse("/history works in a room's tab or a private one");
        };
        let room = room.to_owned();
        let before = self.tabs[self.active].oldest_id;
        let folded = fold(&room);
        let history = ClientFrame::History {
            room,
            before,
            limit,
        };
        self.request_then(history, |app| {
            app.history_asked.insert(folded);
        })
    }

    /// `/register` or `/password`: the new password is used for reconnecting once the server
    /// confirms it.
    fn change_password(&mut self, frame: ClientFrame, password: Password) -> (Vec<Effect>, bool) {
        self.request_then(frame, |app| app.new_password = Some(password))
    }

    /// `/ignore [NICK]`: hides someone's messages from now on (kept for the next start), or
    /// lists whom.
    fn ignore(&mut self, nick: Option<String>) -> (Vec<Effect>, bool) {
        let Some(nick) = nick else {
            let list = self.ignored.list();
            let text = if list.is_empty() {
                "you ignore nobody".to_owned()
            } else {
                format!("you ignore {}", list.join(", "))
            };
            self.notice_active(&text, false);
            return (Vec::new(), false);
        };
        if fold(&nick) == fold(&self.nick) {
            return self.refuse("that is you");
        }
        match self.ignored.add(&nick) {
            Ok(()) => {
                let text =
                    format!("you ignore {nick}: their messages are hidden (/unignore {nick})");
                self.notice_active(&text, false);
                (Vec::new(), false)
            }
            Err(why) => self.refuse(&why),
        }
    }

    /// `/unignore NICK`.
    fn unignore(&mut self, nick: &str) -> (Vec<Effect>, bool) {
        match self.ignored.remove(nick) {
            Ok(true) => {
                self.notice_active(&format!("you no longer ignore {nick}"), false);
                (Vec::new(), false)
            }
            Ok(false) => self.refuse(&format!("you were not ignoring {nick}")),
            Err(why) => self.refuse(&why),
        }
    }

    /// The id of the latest message from `nick` in the tab on screen.
    pub(super) fn last_from(&self, nick: &str) -> Option<u64> {
        let key = fold(nick);
        self.tabs[self.active]
            .entries
            .iter()
            .rev()
            .find_map(|e| match &e.kind {
                EntryKind::Message { from, .. } if fold(from) == key => e.id,
                _ => None,
            })
    }

    /// `/room #name`: shows the tab of a room we are in.
    fn show_room(&mut self, room: &str) -> (Vec<Effect>, bool) {
        match self.known_room_tab(room_name(room)) {
            Some(i) => {
                self.select_tab(i);
                (Vec::new(), false)
            }
            None => self.refuse(&format!("you are not in #{}: /join it", room_name(room))),
        }
    }
}
