//! The hub's state of the chat: who is online ([`Member`]) and the rooms ([`Room`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;

use chat_core::names::{self, NickKeys};
use chat_core::protocol::{MessageId, Timestamp};

use super::conn::{Caps, ConnId};
use super::roster::{Listed, Order};
use crate::event::SharedMessage;
use crate::outbox::Outbox;
use crate::store::{LastLogin, Notes};

/// Everyone online, by connection. Boxed: a map grows by doubling, and its empty slots then
/// cost 16 bytes each rather than a whole member (memory per connection,
/// docs/architecture.md).
pub(super) type Members = HashMap<ConnId, Box<Member>>;

/// Every room, by key ([`room_key`]).
pub(super) type Rooms = HashMap<String, Room>;

/// One admitted connection.
#[derive(Debug)]
pub(super) struct Member {
    pub nick: String,
    pub keys: NickKeys,
    pub addr: SocketAddr,
    pub relayed: bool,
    pub outbox: Arc<Outbox>,
    /// What its protocol version understands.
    pub caps: Caps,
    /// The key of the account logged in to (the nickname's, unless `/nick` changed it).
    pub account: Option<String>,
    /// Rooms this connection created.
    pub rooms_created: u32,
    /// Admitted at.
    pub since: Timestamp,
    /// The id the next message had when it took its nickname (at its admission, or its latest
    /// `/nick`): a guest is who sent or received a message under that nickname only if it held
    /// it since before (ids only grow).
    pub nick_from_id: MessageId,
    /// Its last message (or its admission), for `whois`.
    pub last_active: Timestamp,
    /// Its away message, and who was told it already.
    pub away: Option<Box<Away>>,
    /// Its account's login before this one, from which its mentions are listed (`None`: none
    /// recorded, or a guest).
    pub previous_login: Option<LastLogin>,
}

/// A member who is away.
#[derive(Debug)]
pub(super) struct Away {
    pub message: String,
    /// Who got the away message back after a private message (once each).
    pub told: HashSet<ConnId>,
}

impl Member {
    /// The account's key when logged in (a copy: callers keep it while they change the hub).
    pub fn account_key(&self) -> Option<String> {
        self.account.clone()
    }

    /// Logged in to an account.
    pub fn logged_in(&self) -> bool {
        self.account.is_some()
    }

    /// Who they are for bans and mutes: their account, or their address (its /64 for IPv6).
    pub fn identity(&self) -> String {
        match &self.account {
            Some(key) => crate::bans::account_target(key),
            None => crate::bans::address_target(self.addr.ip()),
        }
    }
}

impl Listed for Member {
    fn sort_key(&self) -> &str {
        &self.keys.folded
    }
    fn nick(&self) -> &str {
        &self.nick
    }
    fn relayed(&self) -> bool {
        self.relayed
    }
}

/// A room: its members, topic and latest messages.
#[derive(Debug)]
pub(super) struct Room {
    pub name: String,
    pub topic: String,
    /// Members and their queues, so fan-out needs no second lookup.
    pub members: HashMap<ConnId, Arc<Outbox>>,
    /// The same members in roster order.
    pub order: Order,
    /// Its latest messages, oldest first, replayed to whoever enters (the records the
    /// fan-out, the store and the sinks share).
    pub recent: VecDeque<SharedMessage>,
    /// Older messages than `recent` are stored.
    pub older: bool,
    /// A guest created it: empty, with no account in it, it expires sooner.
    pub by_guest: bool,
    /// Its last message or entry (or its creation).
    pub last_used: Timestamp,
    /// Accounts that are in it (online or not): a room with any never expires.
    pub accounts: u32,
    /// Its operators' accounts (stored).
    pub ops: HashSet<String>,
    /// Its operators who are guests (for as long as they are connected).
    pub guest_ops: HashSet<ConnId>,
    /// Only its operators may set the topic.
    pub topic_locked: bool,
    /// The edits and reactions of those of `recent` that have any.
    pub notes: HashMap<MessageId, Notes>,
}

impl Room {
    /// An empty room, used now.
    pub fn new(name: String, topic: String) -> Self {
        Room {
            name,
            topic,
            members: HashMap::new(),
            order: Order::default(),
            recent: VecDeque::new(),
            older: false,
            by_guest: false,
            last_used: chrono::Utc::now(),
            accounts: 0,
            ops: HashSet::new(),
            guest_ops: HashSet::new(),
            topic_locked: false,
            notes: HashMap::new(),
        }
    }

    /// Whether it may go: nobody in it, online or by account.
    pub fn unused(&self) -> bool {
        self.members.is_empty() && self.accounts == 0
    }

    /// Whether `conn` is a member.
    pub fn has(&self, conn: ConnId) -> bool {
        self.members.contains_key(&conn)
    }

    /// Forgets the notes of messages no longer among the recent ones (older than the oldest).
    pub fn trim_notes(&mut self) {
        match self.recent.front().map(|m| m.id) {
            Some(first) => self.notes.retain(|id, _| *id >= first),
            None => self.notes.clear(),
        }
    }
}

/// The key a room is stored under: the name without `#`, case-folded. Names already in
/// canonical form (the usual case, e.g. `lobby`) skip the Unicode folding.
pub(super) fn room_key(room: &str) -> String {
    let name = room.strip_prefix('#').unwrap_or(room);
    let canonical = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'));
    if canonical {
        name.to_owned()
    } else {
        names::fold(name)
    }
}
