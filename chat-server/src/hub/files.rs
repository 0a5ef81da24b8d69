//! File transfers: an offer to one user online, accepted or declined, then the content in
//! chunks passed from the sender's connection to the recipient's, never stored.
//!
//! Flow control keeps what the server holds bounded: a sender may be at most
//! [`FILE_WINDOW`] bytes ahead of what the recipient acknowledged, and chunks wait in the
//! recipient's queue behind every chat frame ([`Outbox::push_bulk`]), so a transfer to a slow
//! reader neither delays anyone's messages nor fills the queue that disconnects slow readers.
//! Transfers at once are bounded on the server and per sender's address; an offer nobody
//! answers, or a transfer that stops moving, is cancelled after `files.idle`.
//!
//! `--file-rate` is kept by holding the recipient's acknowledgements back: the sender, whose
//! window does not open, waits, while its connection is read as usual, so its own messages
//! never queue behind its file.
//!
//! [`Outbox::push_bulk`]: crate::outbox::Outbox::push_bulk

use std::collections::{BTreeSet, HashMap};

use chat_core::frame::encode_frame;
use chat_core::protocol::{
    ClientFrame, ErrorCode, FILE_WINDOW, FileInfo, MAX_SERVER_FRAME, ServerFrame, TransferId,
    sha256_hex,
};
use chrono::Utc;
use tokio::time::Instant;

use super::Hub;
use super::conn::ConnId;
use super::fanout::logged;
use crate::event::EventKind;
use crate::limits::{Bucket, IpKey};

/// Most file bytes waiting in one recipient's queue, all its transfers together: a few
/// windows. A recipient keeping to the protocol has at most a window per transfer there
/// (it acknowledges what it read).
const MAX_QUEUED: u64 = 4 * FILE_WINDOW;

/// Who cancels a transfer when the server does (a limit, a stall, a disconnection).
const SERVER: &str = "server";

/// The transfers under way.
#[derive(Debug, Default)]
pub(super) struct Transfers {
    by_id: HashMap<TransferId, Transfer>,
    next_id: TransferId,
    /// Transfers whose sender is at each address.
    per_address: HashMap<IpKey, usize>,
    /// Each sending connection's file rate (`--file-rate`).
    rates: HashMap<ConnId, Bucket>,
    /// Acknowledgements held back by the file rate: when each is due.
    held: BTreeSet<(Instant, TransferId)>,
}

impl Transfers {
    /// Whether transfer `id` is under way.
    #[cfg(test)]
    pub(super) fn has(&self, id: TransferId) -> bool {
        self.by_id.contains_key(&id)
    }

    /// No transfer is under way.
    pub(super) fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    fn insert(&mut self, transfer: Transfer) -> TransferId {
        self.next_id += 1;
        *self.per_address.entry(transfer.address).or_default() += 1;
        self.by_id.insert(self.next_id, transfer);
        self.next_id
    }

    /// When the next acknowledgement held back is due.
    pub(super) fn next_release(&self) -> Option<Instant> {
        self.held.first().map(|(at, _)| *at)
    }

    fn remove(&mut self, id: TransferId) -> Option<Transfer> {
        let t = self.by_id.remove(&id)?;
        if let Some(at) = t.held_until {
            self.held.remove(&(at, id));
        }
        // The sender's rate bucket stays while it is connected (a new transfer must not
        // start with a fresh burst); `forget` drops it.
        if let Some(n) = self.per_address.get_mut(&t.address) {
            *n -= 1;
            if *n == 0 {
                self.per_address.remove(&t.address);
            }
        }
        Some(t)
    }
}

/// One transfer.
#[derive(Debug)]
struct Transfer {
    from: ConnId,
    to: ConnId,
    /// Their nicknames when it was offered, for the records.
    from_nick: String,
    to_nick: String,
    name: String,
    size: u64,
    sha256: [u8; 32],
    /// The sender's address, whose count it is in.
    address: IpKey,
    accepted: bool,
    /// Bytes passed on to the recipient.
    forwarded: u64,
    /// Bytes the recipient said it has, as the sender was told.
    acked: u64,
    /// Bytes the recipient said it has, not yet told to the sender (the file rate), and when
    /// they will be.
    received: u64,
    held_until: Option<Instant>,
    /// Offered, accepted, or last moved.
    touched: Instant,
}

impl Transfer {
    fn event(&self, id: TransferId, action: &'static str, reason: Option<String>) -> EventKind {
        EventKind::File {
            action,
            id,
            from: self.from_nick.clone(),
            to: self.to_nick.clone(),
            name: self.name.clone(),
            size: self.size,
            sha256: sha256_hex(&self.sha256),
            reason,
        }
    }
}

impl Hub {
    /// A file frame from `conn` (the session checked its fields).
    pub(super) fn file(&mut self, conn: ConnId, frame: ClientFrame) {
        match frame {
            ClientFrame::FileOffer {
                tag,
                to,
                name,
                size,
                sha256,
            } => self.file_offer(conn, tag, &to, name, size, sha256),
            ClientFrame::FileAnswer { id, accept } => self.file_answer(conn, id, accept),
            ClientFrame::FileChunk { id, data } => self.file_chunk(conn, id, data),
            ClientFrame::FileAck { id, received } => self.file_ack(conn, id, received),
            ClientFrame::FileCancel { id, reason }
                if self.mine(conn, id, |t| t.from == conn || t.to == conn) =>
            {
                self.cancel_transfer(id, Some(conn), &reason);
            }
            ClientFrame::FileDone { id } => self.file_done(conn, id),
            _ => {}
        }
    }

    /// Whether transfer `id` exists and `conn` may act on it as `allowed` says; if not,
    /// `conn` is told.
    fn mine(&mut self, conn: ConnId, id: TransferId, allowed: impl Fn(&Transfer) -> bool) -> bool {
        match self.transfers.by_id.get(&id) {
            Some(t) if allowed(t) => true,
            Some(_) => {
                let message = format!("file transfer {id} is not yours to answer or cancel");
                self.error(conn, None, ErrorCode::NotAllowed, message);
                false
            }
            None => {
                let message = format!("there is no file transfer {id} (it may have ended)");
                self.error(conn, None, ErrorCode::NotAllowed, message);
                false
            }
        }
    }

    fn file_offer(
        &mut self,
        conn: ConnId,
        tag: u64,
        to: &str,
        name: String,
        size: u64,
        sha256: [u8; 32],
    ) {
        match self.may_offer(conn, to, size) {
            Ok((to, from_nick, to_nick, address)) => {
                let transfer = Transfer {
                    from: conn,
                    to,
                    from_nick: from_nick.clone(),
                    to_nick: to_nick.clone(),
                    name: name.clone(),
                    size,
                    sha256,
                    address,
                    accepted: false,
                    forwarded: 0,
                    acked: 0,
                    received: 0,
                    held_until: None,
                    touched: Instant::now(),
                };
                let id = self.transfers.insert(transfer);
                let event = self.transfers.by_id[&id].event(id, "offer", None);
                self.sinks.record(event, Utc::now());
                let offered = ServerFrame::FileOffered {
                    tag,
                    id,
                    to: to_nick,
                };
                self.push_to(conn, &offered);
                let offer = FileInfo {
                    id,
                    from: from_nick,
                    name,
                    size,
                    sha256,
                };
                self.push_to(to, &ServerFrame::FileOffer(offer));
            }
            Err((code, message)) => self.error(conn, Some(tag), code, message),
        }
    }

    /// The recipient of `conn`'s offer to `to` of `size` bytes, with both nicknames and the
    /// sender's address; or why not.
    fn may_offer(
        &mut self,
        conn: ConnId,
        to: &str,
        size: u64,
    ) -> Result<(ConnId, String, String, IpKey), (ErrorCode, String)> {
        let limits = &self.config.files;
        if size > limits.max_size {
            return Err((
                ErrorCode::NotAllowed,
                format!(
                    "the file is too large: {size} bytes; this server takes files up to {} bytes",
                    limits.max_size
                ),
            ));
        }
        if let Some(refusal) = self.muted(conn, None) {
            return Err((ErrorCode::NotAllowed, refusal));
        }
        let Some(sender) = self.clients.get(&conn) else {
            return Err((ErrorCode::NotAllowed, "gone".to_owned()));
        };
        let address = IpKey::of(sender.addr.ip());
        let Some(recipient) = self.nick_online(to) else {
            return Err((
                ErrorCode::NoSuchUser(vec![to.to_owned()]),
                format!("{to} is not online: a file goes only to someone online"),
            ));
        };
        if recipient == conn {
            return Err((
                ErrorCode::NotAllowed,
                "you cannot send a file to yourself".to_owned(),
            ));
        }
        let Some(them) = self.clients.get(&recipient) else {
            return Err((ErrorCode::NoSuchUser(vec![to.to_owned()]), to.to_owned()));
        };
        if them.caps.version() < 5 {
            return Err((
                ErrorCode::Unsupported,
                format!(
                    "{}'s client (protocol {}) cannot receive files",
                    them.nick,
                    them.caps.version()
                ),
            ));
        }
        let limits = &self.config.files;
        if self.transfers.by_id.len() >= limits.max_transfers {
            return Err((
                ErrorCode::Busy,
                format!(
                    "the server has {} file transfers under way, its most; try again later",
                    limits.max_transfers
                ),
            ));
        }
        let from_here = self.transfers.per_address.get(&address).copied();
        if from_here.unwrap_or(0) >= limits.per_address {
            return Err((
                ErrorCode::NotAllowed,
                format!(
                    "your address has {} file transfers under way, its most: let one finish or \
                     /cancel it",
                    limits.per_address
                ),
            ));
        }
        Ok((recipient, sender.nick.clone(), them.nick.clone(), address))
    }

    fn file_answer(&mut self, conn: ConnId, id: TransferId, accept: bool) {
        if !self.mine(conn, id, |t| t.to == conn && !t.accepted) {
            return;
        }
        let Some(t) = self.transfers.by_id.get_mut(&id) else {
            return;
        };
        let from = t.from;
        if accept {
            t.accepted = true;
            t.touched = Instant::now();
            let event = t.event(id, "accepted", None);
            self.sinks.record(event, Utc::now());
        } else if let Some(t) = self.transfers.remove(id) {
            self.sinks.record(t.event(id, "declined", None), Utc::now());
        }
        self.push_to(from, &ServerFrame::FileAnswer { id, accept });
    }

    fn file_chunk(&mut self, conn: ConnId, id: TransferId, data: Vec<u8>) {
        // Chunks of a transfer that just ended (or of none) are dropped without a word: the
        // sender learns the end from the cancellation.
        let Some(t) = self.transfers.by_id.get_mut(&id) else {
            return;
        };
        if t.from != conn {
            return;
        }
        let len = data.len() as u64;
        let to = t.to;
        // What waits for the recipient, whatever the acknowledgements say (a recipient that
        // acknowledges what it never read).
        let queued = self
            .clients
            .get(&to)
            .map_or(0, |m| m.outbox.bulk_bytes() as u64);
        let violation = if !t.accepted {
            Some("data came before the offer was accepted")
        } else if len == 0 {
            Some("an empty chunk came")
        } else if queued + len > MAX_QUEUED {
            Some("the recipient is not reading what it acknowledged")
        } else if t.forwarded + len > t.size {
            Some("more data came than the offered size")
        } else if t.forwarded + len - t.acked > FILE_WINDOW {
            Some("the sender went beyond the flow-control window")
        } else {
            None
        };
        if let Some(why) = violation {
            self.cancel_transfer(id, None, why);
            return;
        }
        t.forwarded += len;
        t.touched = Instant::now();
        let frame = encode_frame(&ServerFrame::FileChunk { id, data }, MAX_SERVER_FRAME);
        if let (Some(bytes), Some(m)) = (logged(frame), self.clients.get(&to)) {
            // Closed: the recipient is leaving, which cancels the transfer.
            let _ = m.outbox.push_bulk(bytes);
        }
    }

    fn file_ack(&mut self, conn: ConnId, id: TransferId, received: u64) {
        let rate = self.config.files.rate;
        let now = Instant::now();
        let transfers = &mut self.transfers;
        let Some(t) = transfers.by_id.get_mut(&id) else {
            return;
        };
        if t.to != conn || received < t.received || received > t.forwarded {
            return;
        }
        let new = received - t.received;
        t.received = received;
        t.touched = now;
        if t.held_until.is_some() {
            // Told with the one held already; the bytes count against the rate all the same.
            if let Some(b) = transfers.rates.get_mut(&t.from) {
                b.pace(new as f64, now);
            }
            return;
        }
        let wait = rate.map_or(std::time::Duration::ZERO, |rate| {
            let burst = u32::try_from(rate).unwrap_or(u32::MAX);
            transfers
                .rates
                .entry(t.from)
                .or_insert_with(|| Bucket::new(burst, rate as f64, now))
                .pace(new as f64, now)
        });
        if wait.is_zero() {
            t.acked = received;
            let from = t.from;
            self.push_to(from, &ServerFrame::FileAck { id, received });
        } else {
            t.held_until = Some(now + wait);
            transfers.held.insert((now + wait, id));
        }
    }

    /// Tells the senders the acknowledgements the file rate held back until now.
    pub(super) fn release_acks(&mut self) {
        let now = Instant::now();
        while let Some(&(at, id)) = self.transfers.held.first() {
            if at > now {
                break;
            }
            self.transfers.held.remove(&(at, id));
            let Some(t) = self.transfers.by_id.get_mut(&id) else {
                continue;
            };
            t.held_until = None;
            t.acked = t.received;
            let (from, received) = (t.from, t.received);
            self.push_to(from, &ServerFrame::FileAck { id, received });
        }
    }

    fn file_done(&mut self, conn: ConnId, id: TransferId) {
        if !self.mine(conn, id, |t| t.to == conn && t.accepted) {
            return;
        }
        let complete = self
            .transfers
            .by_id
            .get(&id)
            .is_some_and(|t| t.forwarded == t.size);
        if !complete {
            self.cancel_transfer(
                id,
                None,
                "the recipient claimed a file it did not get whole",
            );
            return;
        }
        if let Some(t) = self.transfers.remove(id) {
            self.push_to(t.from, &ServerFrame::FileDone { id });
            self.sinks.record(t.event(id, "done", None), Utc::now());
        }
    }

    /// Ends transfer `id`, cancelled by `by` (`None`: the server), telling both sides (but
    /// the one who cancelled) and the records.
    fn cancel_transfer(&mut self, id: TransferId, by: Option<ConnId>, reason: &str) {
        let Some(t) = self.transfers.remove(id) else {
            return;
        };
        let by_nick = by
            .and_then(|c| self.clients.get(&c))
            .map_or(SERVER, |m| m.nick.as_str())
            .to_owned();
        let frame = ServerFrame::FileCancelled {
            id,
            by: by_nick.clone(),
            reason: reason.to_owned(),
        };
        for side in [t.from, t.to] {
            if Some(side) != by {
                self.push_to(side, &frame);
            }
        }
        let by = by_nick;
        let why = if reason.is_empty() {
            format!("by {by}")
        } else {
            format!("by {by}: {reason}")
        };
        self.sinks
            .record(t.event(id, "cancelled", Some(why)), Utc::now());
    }

    /// `conn` is leaving: its transfers end, and the other sides are told.
    pub(super) fn transfers_gone(&mut self, conn: ConnId, nick: &str) {
        self.transfers.rates.remove(&conn);
        if self.transfers.is_empty() {
            return;
        }
        let ids: Vec<TransferId> = self
            .transfers
            .by_id
            .iter()
            .filter(|(_, t)| t.from == conn || t.to == conn)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.cancel_transfer(id, None, &format!("{nick} disconnected"));
        }
    }

    /// Cancels the offers nobody answered and the transfers that stopped moving.
    pub(super) fn transfers_idle(&mut self) {
        let idle = self.config.files.idle;
        let now = Instant::now();
        let stale: Vec<(TransferId, bool)> = self
            .transfers
            .by_id
            .iter()
            .filter(|(_, t)| now.saturating_duration_since(t.touched) >= idle)
            .map(|(id, t)| (*id, t.accepted))
            .collect();
        for (id, accepted) in stale {
            let why = if accepted {
                "the transfer stopped moving"
            } else {
                "the offer was not answered in time"
            };
            self.cancel_transfer(id, None, why);
        }
    }
}
