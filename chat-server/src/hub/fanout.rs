//! Fan-out: frames encoded once and queued for their recipients, in the order things happened.
//!
//! Consecutive broadcasts to the same room are encoded back to back into one buffer (a
//! [`Run`]) that is queued once per member when the hub's batch ends, or earlier whenever
//! something else must reach one of those members first. A message to 1,000 members costs
//! 1,000 queue pushes only when it is alone; a burst of 50 costs the same 1,000, not 50,000.
//! Queues that the hub writes to their sockets itself are written once the batch is handled
//! ([`Fanout::write_deferred`]), and clients whose queue overflowed are collected for the hub
//! to disconnect.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use chat_core::frame::{FrameError, encode_frame, encode_frame_into};
use chat_core::protocol::MAX_SERVER_FRAME;
use serde::Serialize;

use super::conn::ConnId;
use super::model::Rooms;
use crate::outbox::{Outbox, PushError};
use crate::stats::Stats;

/// A run is queued once it holds this many bytes, so that one piece stays small next to a
/// client's send queue and latency does not wait for a huge batch.
const RUN_BYTES: usize = 64 * 1024;

/// Room broadcasts waiting to be queued: their frames are in `Fanout::buf`, back to back.
#[derive(Debug)]
struct Run {
    /// The room's key.
    room: String,
    /// The member who does not get these frames (a message's sender, who gets an echo).
    except: Option<ConnId>,
    /// Members who joined the room after the run started: each gets only the frames added
    /// after it joined (a slice of the same buffer).
    late: Vec<Late>,
    /// How many of the frames are chat messages (counted as deliveries).
    messages: u64,
}

/// A member who joined a room while a run for it was being built.
#[derive(Debug)]
struct Late {
    conn: ConnId,
    /// The run's length in bytes when it joined.
    offset: usize,
    /// The run's message count when it joined.
    messages: u64,
}

/// The batched runs, the queues to write at the end of the batch, and the queues that
/// overflowed.
#[derive(Debug)]
pub(super) struct Fanout {
    stats: Arc<Stats>,
    /// Broadcasts encoded but not queued yet, and their frames.
    run: Option<Run>,
    buf: BytesMut,
    /// Queues the hub writes to their sockets itself once the current batch is handled
    /// ([`Outbox::push_deferred`]).
    deferred: Vec<Arc<Outbox>>,
    /// Clients whose queue overflowed; disconnected once the current batch is handled.
    overflowed: Vec<ConnId>,
}

impl Fanout {
    pub fn new(stats: Arc<Stats>) -> Self {
        Fanout {
            stats,
            run: None,
            buf: BytesMut::new(),
            deferred: Vec::new(),
            overflowed: Vec::new(),
        }
    }

    /// Encodes `frame` once for every member of room `key` except `except`, appending it to
    /// the pending run when that run has the same room and exception. `message` says whether
    /// it counts as a delivered chat message.
    pub fn broadcast(
        &mut self,
        rooms: &Rooms,
        key: &str,
        frame: &impl Serialize,
        except: Option<ConnId>,
        message: bool,
    ) {
        if !rooms.contains_key(key) {
            return;
        }
        let same = self
            .run
            .as_ref()
            .is_some_and(|r| r.room == key && r.except == except);
        if !same {
            self.flush(rooms);
            self.run = Some(Run {
                room: key.to_owned(),
                except,
                late: Vec::new(),
                messages: 0,
            });
        }
        if let Err(e) = encode_frame_into(frame, MAX_SERVER_FRAME, &mut self.buf) {
            tracing::error!("cannot encode a server frame: {e}");
            return;
        }
        if message && let Some(run) = self.run.as_mut() {
            run.messages += 1;
        }
        if self.buf.len() >= RUN_BYTES {
            self.flush(rooms);
        }
    }

    /// `conn` entered room `key`: if a run for that room is being built, it gets only what
    /// comes after this point.
    pub fn entered(&mut self, key: &str, conn: ConnId) {
        if let Some(run) = self.run.as_mut().filter(|run| run.room == key) {
            // Left and entered again within the run: only the latest entry counts.
            run.late.retain(|l| l.conn != conn);
            run.late.push(Late {
                conn,
                offset: self.buf.len(),
                messages: run.messages,
            });
        }
    }

    /// Queues the pending run for its room's members, as one piece each.
    pub fn flush(&mut self, rooms: &Rooms) {
        let Some(run) = self.run.take() else {
            return;
        };
        if self.buf.is_empty() {
            return;
        }
        let bytes = self.buf.split().freeze();
        let Some(room) = rooms.get(&run.room) else {
            return;
        };
        let mut late = run.late;
        late.sort_unstable_by_key(|l| l.conn);
        let mut delivered = 0;
        for (&id, outbox) in &room.members {
            if Some(id) == run.except {
                continue;
            }
            // Whoever joined during the run gets what came after its join.
            let (piece, messages) = match late.binary_search_by_key(&id, |l| l.conn) {
                Err(_) => (bytes.clone(), run.messages),
                Ok(i) if late[i].offset < bytes.len() => (
                    bytes.slice(late[i].offset..),
                    run.messages - late[i].messages,
                ),
                Ok(_) => continue,
            };
            delivered += messages * self.push(outbox, piece, id);
        }
        Stats::add(&self.stats.deliveries, delivered);
    }

    /// Before something is queued for `conn` alone, queues the pending run if `conn` is one of
    /// its recipients, so that everything reaches it in the order it happened.
    pub fn before_direct(&mut self, rooms: &Rooms, conn: ConnId) {
        let Some(run) = &self.run else {
            return;
        };
        let joined_after_all = run
            .late
            .iter()
            .any(|l| l.conn == conn && l.offset == self.buf.len());
        if run.except == Some(conn) || joined_after_all {
            return;
        }
        if rooms.get(&run.room).is_some_and(|r| r.has(conn)) {
            self.flush(rooms);
        }
    }

    /// Queues encoded bytes for `conn` alone, after whatever it is due from the pending run.
    /// Returns 1 if queued.
    pub fn queue(
        &mut self,
        rooms: &Rooms,
        conn: ConnId,
        outbox: &Arc<Outbox>,
        bytes: Bytes,
    ) -> u64 {
        self.before_direct(rooms, conn);
        self.push(outbox, bytes, conn)
    }

    /// Queues `bytes`; on overflow remembers the client for disconnection, and a queue the
    /// hub is to write itself for [`Fanout::write_deferred`]. Returns 1 if queued.
    fn push(&mut self, outbox: &Arc<Outbox>, bytes: Bytes, conn: ConnId) -> u64 {
        match outbox.push_deferred(bytes) {
            Ok(write) => {
                if write {
                    self.deferred.push(outbox.clone());
                }
                1
            }
            Err(PushError::Full) => {
                if !self.overflowed.contains(&conn) {
                    self.overflowed.push(conn);
                }
                0
            }
            Err(PushError::Closed) => 0,
        }
    }

    /// The next client whose queue overflowed, to disconnect.
    pub fn next_overflowed(&mut self) -> Option<ConnId> {
        self.overflowed.pop()
    }

    /// Whether `conn`'s queue overflowed in this batch.
    pub fn overflowed(&self, conn: ConnId) -> bool {
        self.overflowed.contains(&conn)
    }

    /// Writes what this batch queued to the sockets the hub writes itself.
    pub fn write_deferred(&mut self) {
        for outbox in self.deferred.drain(..) {
            outbox.write_deferred(&self.stats);
        }
    }
}

/// Encodes a server frame; a frame too large to send is a server bug, logged and skipped.
pub(super) fn encode(frame: &impl Serialize) -> Option<Bytes> {
    logged(encode_frame(frame, MAX_SERVER_FRAME))
}

/// The encoded frame, or `None` with the failure logged.
pub(super) fn logged(frame: Result<Bytes, FrameError>) -> Option<Bytes> {
    match frame {
        Ok(b) => Some(b),
        Err(e) => {
            tracing::error!("cannot encode a server frame: {e}");
            None
        }
    }
}
