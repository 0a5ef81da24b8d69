//! Tabs: the lobby, rooms and private conversations, each with its history, its unread count
//! and its scroll position; opening, selecting and closing them; and adding entries and notices
//! (which is where unread counts and highlights come from).

use std::collections::{BTreeSet, VecDeque};

use chat_core::names::fold;
use chat_core::protocol::{ClientFrame, DEFAULT_ROOM};
use chrono::NaiveDate;

use super::{App, ConnState, Effect, Entry, EntryKind, Pending};
use crate::command::unsupported;
use crate::tui::entry::day_of;

impl App {
    /// Index of the tab for `kind`, a private one opened (without focus) if needed.
    pub(super) fn tab_for(&mut self, kind: &TabKind) -> usize {
        match kind {
            TabKind::Lobby => 0,
            TabKind::Private { .. } | TabKind::Group { .. } => self.tab_of(kind.clone()),
            TabKind::Room { name } => self.room_tab(name),
        }
    }

    /// Index of the tab of room `name` (the lobby's is 0), opened (without focus) if needed.
    pub fn room_tab(&mut self, name: &str) -> usize {
        if fold(name) == DEFAULT_ROOM {
            return 0;
        }
        self.tab_of(TabKind::Room {
            name: name.to_owned(),
        })
    }

    /// Index of the tab showing `kind`, opened (without focus) if needed.
    fn tab_of(&mut self, kind: TabKind) -> usize {
        if let Some(i) = self.tabs.iter().position(|t| t.kind.is(&kind)) {
            return i;
        }
        self.tabs.push(Tab::new(kind));
        self.tabs.len() - 1
    }

    /// The tab of room `name` (the lobby's is 0), if it has one: only entering a room opens
    /// its tab, so a late answer about a room just left opens nothing.
    pub(super) fn known_room_tab(&self, name: &str) -> Option<usize> {
        if fold(name) == DEFAULT_ROOM {
            return Some(0);
        }
        let kind = TabKind::Room {
            name: name.to_owned(),
        };
        self.tabs.iter().position(|t| t.kind.is(&kind))
    }

    /// Index of the private tab for `nick`, opened (without focus) if needed.
    pub fn open_tab(&mut self, nick: &str) -> usize {
        self.tab_of(TabKind::Private {
            nick: nick.to_owned(),
        })
    }

    /// Shows tab `i` (if it exists); its unread count is cleared.
    pub fn select_tab(&mut self, i: usize) {
        if i < self.tabs.len() {
            self.active = i;
            self.tabs[i].unread = 0;
            self.tabs[i].highlight = false;
            self.input.cancel_completion();
            self.end_selection();
        }
    }

    /// Closes tab `i`; a room's tab is closed by leaving the room (when connected).
    pub(super) fn close_tab(&mut self, i: usize) -> Vec<Effect> {
        if i == 0 {
            self.notice_active("the lobby cannot be closed", true);
            return Vec::new();
        }
        if let TabKind::Room { name } = &self.tabs[i].kind
            && self.conn == ConnState::Connected
        {
            let part = ClientFrame::Part { room: name.clone() };
            // A server without rooms (version 1) has nothing to leave: the tab just closes.
            if unsupported(&part, self.server_version).is_none() {
                return vec![Effect::Send(part)];
            }
        }
        self.remove_tab(i);
        Vec::new()
    }

    /// Removes tab `i`, saying so if unsent messages go with it.
    pub(super) fn remove_tab(&mut self, i: usize) {
        let tab = self.tabs.remove(i);
        if !tab.pending.is_empty() {
            self.notice(
                0,
                &format!(
                    "{} unsent message(s) to {} discarded with the tab",
                    tab.pending.len(),
                    tab.kind.title()
                ),
                true,
            );
        }
        let active = if self.active >= i {
            self.active.saturating_sub(1)
        } else {
            self.active
        };
        self.select_tab(active);
        if let TabKind::Room { name } = &tab.kind {
            self.room_rosters.remove(&fold(name));
        }
    }

    /// Shows the next tab with a private message or a mention, else the next with unread
    /// messages (Alt-A).
    pub(super) fn next_active_tab(&mut self) {
        let n = self.tabs.len();
        let order = (1..n).map(|k| (self.active + k) % n);
        let target = order
            .clone()
            .find(|&i| self.tabs[i].highlight)
            .or_else(|| order.clone().find(|&i| self.tabs[i].unread > 0));
        if let Some(i) = target {
            self.select_tab(i);
        }
    }

    /// Adds `entry` to tab `i`, dropping the oldest beyond the scrollback; `counts` makes it
    /// unread (and `highlight` highlighted) unless the tab is on screen.
    pub(super) fn push(&mut self, i: usize, entry: Entry, counts: bool, highlight: bool) {
        let scrollback = self.opts.scrollback.max(1);
        let viewed = i == self.active;
        let tab = &mut self.tabs[i];
        let mut entry = entry;
        tab.find_quote(&mut entry);
        tab.entries.push_back(entry);
        // The ids of messages long scrolled away are forgotten, the oldest first.
        while tab.ids.len() > scrollback.saturating_mul(2) {
            tab.ids.pop_first();
        }
        while tab.entries.len() > scrollback {
            tab.entries.pop_front();
            tab.first_seq += 1;
        }
        if let Some(a) = &mut tab.scroll
            && a.seq < tab.first_seq
        {
            *a = Anchor {
                seq: tab.first_seq,
                skip: 0,
            };
        }
        if counts && !viewed {
            if tab.unread == 0 {
                // Not above the tab's very first entry: there is nothing read before it.
                tab.unread_from = tab.last_seq().filter(|&seq| seq > tab.first_seq);
            }
            tab.unread += 1;
            tab.highlight |= highlight;
        }
    }

    /// Adds a notice to tab `i` (notices are never unread).
    pub(super) fn notice(&mut self, i: usize, text: &str, error: bool) {
        let entry = Entry {
            at: self.wall,
            id: None,
            kind: EntryKind::Notice {
                text: text.to_owned(),
                error,
            },
        };
        self.push(i, entry, false, false);
    }

    /// Adds a notice to the tab on screen.
    pub(super) fn notice_active(&mut self, text: &str, error: bool) {
        self.notice(self.active, text, error);
    }

    /// Adds a notice to the private tab for `nick` and to every group tab `nick` is in.
    pub(super) fn notice_private(&mut self, nick: &str, text: &str) {
        let tabs: Vec<usize> = (0..self.tabs.len())
            .filter(|&i| self.tabs[i].kind.with(nick))
            .collect();
        for i in tabs {
            self.notice(i, text, false);
        }
    }
}

/// A tab: the lobby or a private conversation.
#[derive(Debug)]
pub struct Tab {
    /// What the tab shows.
    pub kind: TabKind,
    /// The history, oldest first, bounded by [`Options::scrollback`].
    pub entries: VecDeque<Entry>,
    /// Sequence number of `entries[0]`; entries keep their numbers as old ones are dropped.
    pub first_seq: u64,
    /// Messages received while the tab was not on screen.
    pub unread: usize,
    /// The first entry that arrived unread since the tab was last on screen: the unread marker
    /// is drawn above it (it stays while the tab is read, until the next unread one).
    pub unread_from: Option<u64>,
    /// Among them, a private message or a mention.
    pub highlight: bool,
    /// `None` when showing the newest lines, else the position scrolled back to.
    pub scroll: Option<Anchor>,
    /// Typed while disconnected; sent in order after reconnecting.
    pub pending: Vec<Pending>,
    /// How many messages at the front of `pending` were put back (refused by the rate limit,
    /// or unconfirmed when the connection dropped) since the queue last went out: the next one
    /// goes behind them, so that they go out again in the order they were first sent.
    pub(super) refused: usize,
    /// Ids of the messages shown (history replayed after a reconnect is not shown twice).
    pub(super) ids: BTreeSet<u64>,
    /// The oldest and newest message ids shown.
    pub(super) oldest_id: Option<u64>,
    pub(super) newest_id: Option<u64>,
    /// Messages from ignored people not shown here.
    pub hidden: usize,
}

/// A position in a tab's history: the entry at the bottom of the pane and how many of its
/// rows are hidden below the pane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    /// Sequence number of the entry at the bottom.
    pub seq: u64,
    /// Rows of that entry below the bottom of the pane.
    pub skip: usize,
}

/// What a tab shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TabKind {
    /// The public room everyone is in.
    Lobby,
    /// A private conversation with one user.
    Private { nick: String },
    /// Another room (`/join #name`).
    Room { name: String },
    /// A private conversation with several people at once (`/msg erin,dave`, or a private
    /// message to us and others): what is typed here goes to all of them.
    Group { nicks: Vec<String> },
}

impl TabKind {
    /// The private conversation with the people of a private message other than `me`: one
    /// person's tab, or a group's (in the order given, each once); `None` when only `me` is
    /// left.
    pub fn private(people: &[String], me: &str) -> Option<TabKind> {
        let mut nicks: Vec<String> = Vec::with_capacity(people.len());
        for nick in people {
            if fold(nick) != fold(me) && !nicks.iter().any(|n| fold(n) == fold(nick)) {
                nicks.push(nick.clone());
            }
        }
        match nicks.len() {
            0 => None,
            1 => nicks.pop().map(|nick| TabKind::Private { nick }),
            _ => Some(TabKind::Group { nicks }),
        }
    }

    /// The tab's title: a room's or a person's name, or the names of a group.
    pub fn title(&self) -> String {
        match self {
            TabKind::Lobby => DEFAULT_ROOM.to_owned(),
            TabKind::Private { nick } => nick.clone(),
            TabKind::Room { name } => name.clone(),
            TabKind::Group { nicks } => nicks.join(", "),
        }
    }

    /// The tab's label: rooms are shown as `#name`.
    pub fn label(&self) -> String {
        match self {
            TabKind::Room { name } => format!("#{name}"),
            other => other.title(),
        }
    }

    /// The room this tab talks in, if it is one.
    pub fn room(&self) -> Option<&str> {
        match self {
            TabKind::Lobby => Some(DEFAULT_ROOM),
            TabKind::Room { name } => Some(name),
            TabKind::Private { .. } | TabKind::Group { .. } => None,
        }
    }

    /// The people a private conversation is with (none for a room).
    pub fn people(&self) -> &[String] {
        match self {
            TabKind::Private { nick } => std::slice::from_ref(nick),
            TabKind::Group { nicks } => nicks,
            TabKind::Lobby | TabKind::Room { .. } => &[],
        }
    }

    /// A private conversation that `nick` is part of.
    pub(super) fn with(&self, nick: &str) -> bool {
        self.people().iter().any(|n| fold(n) == fold(nick))
    }

    /// The same tab (names compared case-folded; a group's whatever their order).
    pub(super) fn is(&self, other: &TabKind) -> bool {
        let folded = |nicks: &[String]| {
            let mut keys: Vec<String> = nicks.iter().map(|n| fold(n)).collect();
            keys.sort();
            keys
        };
        match (self, other) {
            (TabKind::Lobby, TabKind::Lobby) => true,
            (TabKind::Private { nick: a }, TabKind::Private { nick: b })
            | (TabKind::Room { name: a }, TabKind::Room { name: b }) => fold(a) == fold(b),
            (TabKind::Group { nicks: a }, TabKind::Group { nicks: b }) => folded(a) == folded(b),
            _ => false,
        }
    }
}

/// Sequence number of a new tab's first entry (see [`Tab::first_seq`]).
const FIRST_SEQ: u64 = 1 << 40;

impl Tab {
    /// An empty tab showing `kind`.
    pub(super) fn new(kind: TabKind) -> Self {
        Tab {
            kind,
            entries: VecDeque::new(),
            // Room below: older history is added in front, numbered downwards.
            first_seq: FIRST_SEQ,
            unread: 0,
            unread_from: None,
            highlight: false,
            scroll: None,
            pending: Vec::new(),
            refused: 0,
            ids: BTreeSet::new(),
            oldest_id: None,
            newest_id: None,
            hidden: 0,
        }
    }

    /// Records that message `id` is shown here; false if it already was.
    pub(super) fn saw(&mut self, id: u64) -> bool {
        if !self.ids.insert(id) {
            return false;
        }
        self.oldest_id = Some(self.oldest_id.map_or(id, |o| o.min(id)));
        self.newest_id = Some(self.newest_id.map_or(id, |n| n.max(id)));
        true
    }

    /// Gives a reply the quoted start of the message it answers, when this tab shows it.
    pub(super) fn find_quote(&self, entry: &mut Entry) {
        let EntryKind::Message {
            reply: Some(quote), ..
        } = &mut entry.kind
        else {
            return;
        };
        if quote.text.is_some() || !self.ids.contains(&quote.id) {
            return;
        }
        quote.text = self.entries.iter().find_map(|e| match &e.kind {
            EntryKind::Message { from, text, .. } if e.id == Some(quote.id) => {
                Some(crate::extras::quote(from, text))
            }
            _ => None,
        });
    }

    /// Sequence number of the newest entry.
    pub fn last_seq(&self) -> Option<u64> {
        (!self.entries.is_empty()).then(|| self.first_seq + self.entries.len() as u64 - 1)
    }

    /// The entry with sequence number `seq`.
    pub fn entry(&self, seq: u64) -> Option<&Entry> {
        seq.checked_sub(self.first_seq)
            .and_then(|i| self.entries.get(i as usize))
    }

    /// Whether the unread marker goes above entry `seq`.
    pub fn marker_above(&self, seq: u64) -> bool {
        self.unread_from == Some(seq) && self.entry(seq).is_some()
    }

    /// The day to announce above entry `seq` ([`day_line`](crate::tui::entry::day_line)):
    /// its own, when the entry before it is of another day, or, for the first entry, when it
    /// is not of `today`. Worked out as it is drawn, so that history added above, entries
    /// dropped from the top and `/clear` leave every day line where it belongs. `utc` says in
    /// which time zone days are counted.
    pub fn day_change(&self, seq: u64, today: NaiveDate, utc: bool) -> Option<NaiveDate> {
        let day = day_of(self.entry(seq)?.at, utc);
        let before = match seq.checked_sub(1).and_then(|s| self.entry(s)) {
            Some(entry) => day_of(entry.at, utc),
            None => today,
        };
        (day != before).then_some(day)
    }
}
