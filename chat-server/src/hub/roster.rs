//! A room's members in roster order, and the frames that carry a roster (`Welcome`, and
//! `Roster` answering `Who`) encoded straight from the hub's state.
//!
//! Every login sends the newcomer the whole roster, so with thousands of people online that
//! is the join path's main cost. The order is kept as members come and go (a binary search and
//! a move of 8-byte ids), so nothing is sorted per join, and the frames are serialized from
//! borrowed nicknames into one buffer sized in advance, so no copy of the roster is built
//! and thrown away per join. The bytes are exactly those of the owned [`chat_core::protocol::ServerFrame`]
//! variants (checked by the tests below).

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use chat_core::frame::{FrameError, encode_frame_into};
use chat_core::protocol::{Limits, NickChange, RoomInfo, Timestamp};
use serde::ser::{SerializeSeq, SerializeStruct, SerializeStructVariant};
use serde::{Serialize, Serializer};

use super::conn::ConnId;

/// What the roster needs to know of a member.
pub(crate) trait Listed {
    /// The key the roster is sorted by (the folded nickname, unique among members).
    fn sort_key(&self) -> &str;
    /// The nickname as shown.
    fn nick(&self) -> &str;
    /// Connected through a relay.
    fn relayed(&self) -> bool;
}

impl<T: Listed + ?Sized> Listed for Box<T> {
    fn sort_key(&self) -> &str {
        (**self).sort_key()
    }
    fn nick(&self) -> &str {
        (**self).nick()
    }
    fn relayed(&self) -> bool {
        (**self).relayed()
    }
}

/// Members of one room, sorted by [`Listed::sort_key`].
#[derive(Debug, Default)]
pub(crate) struct Order {
    ids: Vec<ConnId>,
}

impl Order {
    /// Adds `conn`, whose key is `key`, in its place.
    pub(crate) fn insert<M: Listed>(
        &mut self,
        conn: ConnId,
        key: &str,
        members: &HashMap<ConnId, M>,
    ) {
        let at = self
            .ids
            .partition_point(|id| members.get(id).is_some_and(|m| m.sort_key() < key));
        self.ids.insert(at, conn);
    }

    /// Removes `conn` if it is listed.
    pub(crate) fn remove(&mut self, conn: ConnId) {
        if let Some(at) = self.ids.iter().position(|&id| id == conn) {
            self.ids.remove(at);
        }
    }

    fn listed<'a, M: Listed>(
        &'a self,
        members: &'a HashMap<ConnId, M>,
    ) -> impl Iterator<Item = &'a M> + Clone + 'a {
        self.ids.iter().filter_map(|id| members.get(id))
    }
}

/// A roster as a sequence of `UserInfo`, written from borrowed members.
struct Users<'a, M, I> {
    members: I,
    _member: std::marker::PhantomData<&'a M>,
}

impl<'a, M: Listed + 'a, I: Iterator<Item = &'a M> + Clone> Serialize for Users<'a, M, I> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.members.clone().count()))?;
        for m in self.members.clone() {
            seq.serialize_element(&UserRef {
                nick: m.nick(),
                relayed: m.relayed(),
            })?;
        }
        seq.end()
    }
}

/// `UserInfo`, borrowed.
#[derive(Serialize)]
struct UserRef<'a> {
    nick: &'a str,
    relayed: bool,
}

/// Everything of a `Welcome` but its roster.
#[derive(Debug)]
pub(crate) struct WelcomeHead<'a> {
    pub version: u16,
    pub server: &'a str,
    pub nick: &'a str,
    pub requested_nick: &'a str,
    pub nick_change: Option<NickChange>,
    pub server_time: Timestamp,
    pub room: &'a str,
    pub rooms: &'a [RoomInfo],
    pub limits: &'a Limits,
}

struct WelcomeRef<'a, U> {
    head: &'a WelcomeHead<'a>,
    roster: U,
}

impl<U: Serialize> Serialize for WelcomeRef<'_, U> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let h = self.head;
        let mut st = s.serialize_struct("Welcome", 10)?;
        st.serialize_field("version", &h.version)?;
        st.serialize_field("server", h.server)?;
        st.serialize_field("nick", h.nick)?;
        st.serialize_field("requested_nick", h.requested_nick)?;
        st.serialize_field("nick_change", &h.nick_change)?;
        st.serialize_field("server_time", &h.server_time.timestamp_millis())?;
        st.serialize_field("room", h.room)?;
        st.serialize_field("rooms", h.rooms)?;
        st.serialize_field("roster", &self.roster)?;
        st.serialize_field("limits", h.limits)?;
        st.end()
    }
}

/// `ServerFrame::Welcome`, borrowed.
struct WelcomeFrame<'a, U>(WelcomeRef<'a, U>);

impl<U: Serialize> Serialize for WelcomeFrame<'_, U> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_variant("ServerFrame", WELCOME_VARIANT, "Welcome", &self.0)
    }
}

/// `ServerFrame::Roster`, borrowed.
struct RosterFrame<'a, U> {
    room: &'a str,
    users: U,
}

impl<U: Serialize> Serialize for RosterFrame<'_, U> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct_variant("ServerFrame", ROSTER_VARIANT, "Roster", 2)?;
        st.serialize_field("room", self.room)?;
        st.serialize_field("users", &self.users)?;
        st.end()
    }
}

/// The positions of the variants in `ServerFrame` (the tests check them).
const WELCOME_VARIANT: u32 = 0;
const ROSTER_VARIANT: u32 = 5;

/// Bytes a roster of these members takes, roughly (the buffer is sized with it).
fn estimate<'a, M: Listed + 'a>(members: impl Iterator<Item = &'a M>) -> usize {
    members.map(|m| m.nick().len() + 2).sum::<usize>() + 256
}

/// The `Welcome` frame for `head` with the members of `order` as its roster.
pub(crate) fn welcome<M: Listed>(
    head: &WelcomeHead<'_>,
    order: &Order,
    members: &HashMap<ConnId, M>,
    max: usize,
) -> Result<Bytes, FrameError> {
    let listed = order.listed(members);
    let capacity = estimate(listed.clone()) + 64 * (head.rooms.len() + 1);
    let roster = Users {
        members: listed,
        _member: std::marker::PhantomData,
    };
    encode_sized(&WelcomeFrame(WelcomeRef { head, roster }), capacity, max)
}

/// The `Roster` frame for room `room` with the members of `order`.
pub(crate) fn roster<M: Listed>(
    room: &str,
    order: &Order,
    members: &HashMap<ConnId, M>,
    max: usize,
) -> Result<Bytes, FrameError> {
    let listed = order.listed(members);
    let capacity = estimate(listed.clone()) + room.len();
    let users = Users {
        members: listed,
        _member: std::marker::PhantomData,
    };
    encode_sized(&RosterFrame { room, users }, capacity, max)
}

/// Encodes one frame into a buffer of `capacity` bytes (grown if that was too little).
fn encode_sized<T: Serialize>(frame: &T, capacity: usize, max: usize) -> Result<Bytes, FrameError> {
    let mut buf = BytesMut::with_capacity(capacity);
    encode_frame_into(frame, max, &mut buf)?;
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::frame::encode_frame;
    use chat_core::protocol::{MAX_SERVER_FRAME, ServerFrame, UserInfo, Welcome};

    struct M {
        key: String,
        nick: String,
        relayed: bool,
    }

    impl Listed for M {
        fn sort_key(&self) -> &str {
            &self.key
        }
        fn nick(&self) -> &str {
            &self.nick
        }
        fn relayed(&self) -> bool {
            self.relayed
        }
    }

    fn members(nicks: &[&str]) -> (HashMap<ConnId, M>, Order) {
        let mut map = HashMap::new();
        let mut order = Order::default();
        for (i, nick) in nicks.iter().enumerate() {
            let key = nick.to_lowercase();
            map.insert(
                i as ConnId,
                M {
                    key: key.clone(),
                    nick: (*nick).to_owned(),
                    relayed: nick.starts_with('*'),
                },
            );
            order.insert(i as ConnId, &key, &map);
        }
        (map, order)
    }

    fn sorted_users(map: &HashMap<ConnId, M>) -> Vec<UserInfo> {
        let mut all: Vec<&M> = map.values().collect();
        all.sort_by(|a, b| a.key.cmp(&b.key));
        all.into_iter()
            .map(|m| UserInfo {
                nick: m.nick.clone(),
                relayed: m.relayed,
            })
            .collect()
    }

    #[test]
    fn the_order_follows_the_folded_key_as_members_come_and_go() {
        let (mut map, mut order) = members(&["mallory", "Bob", "*zoe", "alice", "Carol"]);
        let nicks = |order: &Order, map: &HashMap<ConnId, M>| -> Vec<String> {
            order.listed(map).map(|m| m.nick.clone()).collect()
        };
        assert_eq!(
            nicks(&order, &map),
            ["*zoe", "alice", "Bob", "Carol", "mallory"]
        );
        order.remove(1);
        map.remove(&1);
        order.remove(42);
        assert_eq!(nicks(&order, &map), ["*zoe", "alice", "Carol", "mallory"]);
    }

    #[test]
    fn a_welcome_encodes_exactly_like_the_owned_frame() {
        let (map, order) = members(&["mallory", "Bob", "*zoe", "alice", "Ünïcødé"]);
        let rooms = vec![RoomInfo {
            name: "lobby".into(),
            topic: "hello".into(),
            members: 5,
        }];
        let limits = Limits {
            max_frame: 65536,
            max_message_len: 4096,
            max_targets: 16,
            rate_burst: 10,
            rate_interval_ms: 500,
        };
        let now = chrono::Utc::now();
        let head = WelcomeHead {
            version: 1,
            server: "chat-server/test",
            nick: "alice",
            requested_nick: "alice",
            nick_change: Some(NickChange::Taken),
            server_time: now,
            room: "lobby",
            rooms: &rooms,
            limits: &limits,
        };
        let owned = ServerFrame::Welcome(Welcome {
            version: 1,
            server: "chat-server/test".into(),
            nick: "alice".into(),
            requested_nick: "alice".into(),
            nick_change: Some(NickChange::Taken),
            server_time: now,
            room: "lobby".into(),
            rooms: rooms.clone(),
            roster: sorted_users(&map),
            limits: limits.clone(),
        });
        let expected = encode_frame(&owned, MAX_SERVER_FRAME).expect("encode");
        let got = welcome(&head, &order, &map, MAX_SERVER_FRAME).expect("encode");
        assert_eq!(got, expected);
    }

    #[test]
    fn a_roster_encodes_exactly_like_the_owned_frame() {
        let (map, order) = members(&["dave", "*eve", "Frank"]);
        let owned = ServerFrame::Roster {
            room: "lobby".into(),
            users: sorted_users(&map),
        };
        let expected = encode_frame(&owned, MAX_SERVER_FRAME).expect("encode");
        let got = roster("lobby", &order, &map, MAX_SERVER_FRAME).expect("encode");
        assert_eq!(got, expected);
        let empty = Order::default();
        let owned = ServerFrame::Roster {
            room: "x".into(),
            users: Vec::new(),
        };
        assert_eq!(
            roster("x", &empty, &map, MAX_SERVER_FRAME).expect("encode"),
            encode_frame(&owned, MAX_SERVER_FRAME).expect("encode")
        );
    }
}
