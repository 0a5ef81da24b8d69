//! Accounts: the registered nicknames (which guests cannot take, nor anything that looks like
//! them), registering and changing passwords (answered once stored), and the private messages
//! kept for an account while it was offline, delivered a page at a time.

use std::collections::{HashMap, HashSet};

use chat_core::names;
use chat_core::protocol::{
    ChatMessage, DEFAULT_ROOM, ErrorCode, ErrorFrame, MessageId, ServerFrame,
};
use chrono::Utc;
use tokio::sync::oneshot;

use super::Hub;
use super::cmd::{Ack, Acked, Cmd};
use super::conn::ConnId;
use crate::config::GuestPolicy;
use crate::event::EventKind;
use crate::login::HashedPassword;
use crate::store::{LastLogin, Write};

/// Kept private messages per `Offline` frame, at most, and their text's size: a page is sent
/// when the previous one is acknowledged, so a backlog never fills a client's send queue.
const OFFLINE_PAGE: usize = 100;
const OFFLINE_PAGE_BYTES: usize = 128 * 1024;

/// The registered nicknames.
#[derive(Debug, Default)]
pub(super) struct Accounts {
    /// Case-folded key to nickname.
    by_key: HashMap<String, String>,
    /// Every uniqueness key of every registered nickname: guests cannot have them.
    reserved: HashSet<(u8, String)>,
}

impl Accounts {
    /// Registers `nick` (loaded at start, or created).
    pub fn add(&mut self, nick: String) {
        let keys = names::nick_keys(&nick);
        for (kind, key) in keys.tagged() {
            self.reserved.insert((kind, key.to_owned()));
        }
        self.by_key.insert(keys.folded, nick);
    }

    /// Forgets the account `key` registered as `nick` (its registration was not stored).
    pub fn forget(&mut self, key: &str, nick: &str) {
        self.by_key.remove(key);
        let keys = names::nick_keys(nick);
        for (kind, k) in keys.tagged() {
            self.reserved.remove(&(kind, k.to_owned()));
        }
    }

    /// The nickname of the account with this case-folded key.
    pub fn nick(&self, key: &str) -> Option<&String> {
        self.by_key.get(key)
    }

    /// Whether the uniqueness key `key` of kind `kind` belongs to an account.
    pub fn reserves(&self, kind: u8, key: &str) -> bool {
        self.reserved.contains(&(kind, key.to_owned()))
    }

    /// Nobody registered `nick` or a look-alike.
    pub fn unreserved(&self, nick: &str) -> bool {
        let keys = names::nick_keys(nick);
        keys.tagged()
            .iter()
            .all(|&(kind, key)| !self.reserves(kind, key))
    }
}

impl Hub {
    /// Why the connection's nickname could not be registered now, if it could not.
    fn registration_refused(&self, conn: ConnId) -> Option<String> {
        let member = self.clients.get(&conn)?;
        if member.relayed {
            Some("guests connected through a relay cannot register".to_owned())
        } else if member.logged_in() {
            Some(format!(
                "{} is registered already; /password changes its password",
                member.nick
            ))
        } else if !self.accounts.unreserved(&member.nick) {
            Some(format!(
                "{} looks too much like a registered nickname to be registered",
                member.nick
            ))
        } else if !self.durable.exists() {
            Some("this server keeps no accounts".to_owned())
        } else {
            None
        }
    }

    /// Answers whether the connection may register, before its password is hashed.
    pub(super) fn may_register(
        &self,
        conn: ConnId,
        answer: oneshot::Sender<Result<(), ErrorFrame>>,
    ) {
        let code = self.clients.get(&conn).map_or(ErrorCode::NotAllowed, |m| {
            m.caps.code(ErrorCode::NotAllowed)
        });
        let verdict = match self.registration_refused(conn) {
            None => Ok(()),
            Some(message) => Err(ErrorFrame {
                tag: None,
                code,
                message,
            }),
        };
        let _ = answer.send(verdict);
    }

    /// Makes the connection's nickname an account (answered once it is stored).
    pub(super) fn register(&mut self, conn: ConnId, hash: HashedPassword) {
        if let Some(message) = self.registration_refused(conn) {
            self.error(conn, None, ErrorCode::NotAllowed, message);
            return;
        }
        let Some(member) = self.clients.get(&conn) else {
            return;
        };
        let nick = member.nick.clone();
        let key = member.keys.folded.clone();
        let rooms: Vec<String> = self
            .rooms
            .iter()
            .filter(|(k, r)| k.as_str() != DEFAULT_ROOM && r.has(conn))
            .map(|(k, _)| k.clone())
            .collect();
        if !self.create_account(conn, &key, nick, hash) {
            return;
        }
        if self.clients.contains_key(&conn) {
            self.set_account(conn, Some(key.clone()));
            self.guests = self.guests.saturating_sub(1);
        }
        for room in rooms {
            self.durable.write(Write::Membership {
                account: key.clone(),
                room,
                joined: true,
            });
        }
    }

    /// Changes the logged-in account's password (answered once it is stored).
    pub(super) fn set_password(&mut self, conn: ConnId, hash: HashedPassword) {
        let Some(member) = self.clients.get(&conn) else {
            return;
        };
        let Some(key) = member.account_key() else {
            let message = "you are not logged in to an account: /register first".to_owned();
            self.error(conn, None, ErrorCode::NotAllowed, message);
            return;
        };
        let ack = Ack {
            conn,
            what: Acked::PasswordChanged,
        };
        self.store_acked(conn, Write::Password { key, hash }, ack);
    }

    /// Stores a new account for `conn` (confirmed with `Registered` once committed) and keeps
    /// its nickname for it from now on; false (the client told) if the store cannot take it.
    pub(super) fn create_account(
        &mut self,
        conn: ConnId,
        key: &str,
        nick: String,
        hash: HashedPassword,
    ) -> bool {
        let write = Write::Account {
            key: key.to_owned(),
            nick: nick.clone(),
            hash,
        };
        let ack = Ack {
            conn,
            what: Acked::Registered {
                key: key.to_owned(),
                nick: nick.clone(),
            },
        };
        let stored = self.store_acked(conn, write, ack);
        if stored {
            self.accounts.add(nick);
            // Its mentions are listed from its creation on.
            let now = self.record_login(conn, key, None);
            if let Some(m) = self.clients.get_mut(&conn) {
                m.previous_login = Some(now);
            }
        }
        stored
    }

    /// Stores that `conn` logged in to account `key` now (its next login lists the mentions
    /// from here), keeping the login before, `previous`, for its mentions now.
    pub(super) fn record_login(
        &mut self,
        conn: ConnId,
        key: &str,
        previous: Option<LastLogin>,
    ) -> LastLogin {
        let now = LastLogin {
            at: Utc::now(),
            first_id: self.next_msg_id,
        };
        self.durable.write(Write::LoggedIn {
            key: key.to_owned(),
            at: now.at,
            first_id: now.first_id,
        });
        if let Some(m) = self.clients.get_mut(&conn) {
            m.previous_login = previous;
        }
        now
    }

    /// Queues a write whose client waits for the answer; false (the client told) if the
    /// store cannot take it.
    pub(super) fn store_acked(&mut self, conn: ConnId, write: Write, ack: Ack) -> bool {
        if !self.durable.exists() {
            return false;
        }
        let queued = self.durable.write_acked(write, ack);
        if !queued {
            self.busy(conn, "store your password");
        }
        queued
    }

    /// A registration is stored: the account exists.
    pub(super) fn registered(&mut self, conn: ConnId, nick: String) {
        let change = "registered";
        self.sinks.record(
            EventKind::Account {
                nick: nick.clone(),
                change,
            },
            Utc::now(),
        );
        // A version 1 client (an account created at its login) knows no such frame.
        if self.clients.get(&conn).is_some_and(|m| m.caps.accounts()) {
            self.push_to(conn, &ServerFrame::Registered { nick });
        }
    }

    /// A new password is stored.
    pub(super) fn password_changed(&mut self, conn: ConnId) {
        if let Some(nick) = self.clients.get(&conn).map(|m| m.nick.clone()) {
            let change = "password changed";
            self.sinks
                .record(EventKind::Account { nick, change }, Utc::now());
        }
        self.push_to(conn, &ServerFrame::PasswordChanged);
    }

    /// A registration was not stored: undone, and the client told (or, where only accounts
    /// may stay, disconnected). Returns the message for the client, if it stays.
    pub(super) fn unregistered(
        &mut self,
        conn: ConnId,
        key: &str,
        nick: &str,
        error: &str,
    ) -> Option<String> {
        self.accounts.forget(key, nick);
        if self.by_account.get(key) == Some(&conn) {
            self.set_account(conn, None);
            self.guests += 1;
        }
        if self.config.guests == GuestPolicy::Deny {
            // Only accounts may stay, and this one does not exist.
            self.remove(
                conn,
                chat_core::protocol::DisconnectReason::ConnectionClosed,
                format!("your account could not be stored ({error}); try again later"),
                true,
            );
            return None;
        }
        Some(format!("the registration could not be stored ({error})"))
    }

    /// Asks the store for the private messages `account` got while offline; they come back
    /// as [`Cmd::Offline`]. The store reads after the writes queued before, so every message
    /// queued for the account before this login is among them.
    pub(super) fn deliver_offline(&mut self, conn: ConnId, account: String) {
        if !self.durable.exists() {
            return;
        }
        let queued = self.durable.read(move |store| {
            let messages = store
                .offline(&account, OFFLINE_PAGE)
                .map_err(|e| e.to_string());
            Cmd::Offline { conn, messages }
        });
        if !queued {
            let message = "the server is too busy to fetch your offline messages now; they \
                           stay queued for your next login"
                .to_owned();
            self.error(conn, None, ErrorCode::Busy, message);
        }
    }

    /// The client has its kept messages up to `up_to`: they are no longer kept, and the next
    /// page (if any) follows.
    pub(super) fn ack_offline(&mut self, conn: ConnId, up_to: MessageId) {
        if let Some(account) = self.clients.get(&conn).and_then(|m| m.account_key()) {
            self.durable.write(Write::OfflineReceived {
                account: account.clone(),
                up_to,
            });
            // The next page, if any (read after that write).
            self.deliver_offline(conn, account);
        }
    }

    /// A page of kept private messages, read from the store, for `conn`.
    pub(super) fn offline_loaded(
        &mut self,
        conn: ConnId,
        messages: Result<Vec<ChatMessage>, String>,
    ) {
        let Some((caps, account)) = self.clients.get(&conn).map(|m| (m.caps, m.account_key()))
        else {
            return;
        };
        // One page at a time, of bounded size, so that a long backlog never fills the client's
        // send queue: the next page is read when this one is acknowledged.
        let page = messages.map(|mut messages| {
            let mut bytes = 0;
            let keep = messages
                .iter()
                .take_while(|m| {
                    bytes += m.body.text().len() + 64;
                    bytes <= OFFLINE_PAGE_BYTES
                })
                .count()
                .max(1);
            messages.truncate(keep);
            messages
        });
        match page {
            Ok(messages) if messages.is_empty() => {}
            // Kept until the client says it has them (`AckOffline`).
            Ok(messages) if caps.accounts() => {
                self.push_to(conn, &ServerFrame::Offline(messages));
            }
            Ok(messages) => {
                // A version 1 client cannot say so: they count as received once queued, and
                // the next page follows.
                let up_to = messages.last().map_or(0, |m| m.id);
                for m in messages {
                    self.push_to(conn, &ServerFrame::Message(m));
                }
                if let Some(account) = account
                    && !self.fanout.overflowed(conn)
                {
                    self.durable.write(Write::OfflineReceived {
                        account: account.clone(),
                        up_to,
                    });
                    self.deliver_offline(conn, account);
                }
            }
            Err(e) => {
                let message = format!("could not read your offline messages: {e}");
                self.error(conn, None, ErrorCode::Busy, message);
            }
        }
    }
}
