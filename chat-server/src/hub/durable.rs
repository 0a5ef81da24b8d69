//! The hub's link to the store thread: writes it queues (some of them acknowledged to the
//! client once committed), reads whose answers come back as hub commands, and the barrier
//! that shutdown waits on. The hub never waits on the store: a full queue is an answer
//! ("busy"), not a wait.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::cmd::{Ack, Cmd};
use crate::stats::Stats;
use crate::store::{QueueError, Store, StoreHandle, Write, WritePermit};

/// The store, if the hub has one, and the way back to the hub for the store's answers.
#[derive(Debug)]
pub(super) struct Durable {
    stats: Arc<Stats>,
    /// Where messages, rooms and accounts are stored; `None` keeps nothing (unit tests).
    store: Option<StoreHandle<Ack>>,
    /// The hub's own queue, for answers from the store thread.
    me: Option<mpsc::WeakSender<Cmd>>,
}

/// Room for one write reserved in the store's queue; it borrows nothing, so the hub goes on
/// changing its state (delivering the message) before it writes.
pub(super) type Permit = WritePermit<Ack>;

impl Durable {
    /// No store: nothing is kept.
    pub fn none(stats: Arc<Stats>) -> Self {
        Durable {
            stats,
            store: None,
            me: None,
        }
    }

    /// From now on, writes go to `store`, and its answers to `me`.
    pub fn attach(&mut self, store: StoreHandle<Ack>, me: mpsc::WeakSender<Cmd>) {
        self.store = Some(store);
        self.me = Some(me);
    }

    /// Whether there is a store (accounts, offline messages and history exist).
    pub fn exists(&self) -> bool {
        self.store.is_some()
    }

    /// Reserves room for a message's write: `Ok(None)` without a store. A full queue is
    /// counted as `store_busy`.
    pub fn reserve(&self) -> Result<Option<Permit>, QueueError> {
        let Some(store) = &self.store else {
            return Ok(None);
        };
        store.try_reserve().map(Some).inspect_err(|_| self.busy())
    }

    /// Whether `n` more writes fit now (always, without a store).
    pub fn has_room(&self, n: usize) -> bool {
        self.store.as_ref().is_none_or(|s| s.has_room(n))
    }

    /// Queues a write that nobody waits for (rooms, memberships, accounts created at login);
    /// a full queue loses it, counted and logged.
    pub fn write(&self, write: Write) {
        if let Some(store) = &self.store
            && let Err(e) = store.try_write(write, None)
        {
            self.busy();
            tracing::warn!("a change could not be queued for storage ({e:?}); it is not kept");
        }
    }

    /// Queues a write whose client waits for `ack`; false without a store or when the queue
    /// is full (counted).
    pub fn write_acked(&self, write: Write, ack: Ack) -> bool {
        let Some(store) = &self.store else {
            return false;
        };
        let queued = store.try_write(write, Some(ack)).is_ok();
        if !queued {
            self.busy();
        }
        queued
    }

    /// Runs `read` on the store thread after the writes queued so far, and hands the command
    /// it returns to the hub. False without a store or when the queue is full (counted).
    pub fn read(&self, read: impl FnOnce(&mut dyn Store) -> Cmd + Send + 'static) -> bool {
        let (Some(store), Some(me)) = (&self.store, &self.me) else {
            return false;
        };
        let me = me.clone();
        let queued = store
            .try_read(move |store| {
                let cmd = read(store);
                if let Some(hub) = me.upgrade() {
                    let _ = hub.blocking_send(cmd);
                }
            })
            .is_ok();
        if !queued {
            self.busy();
        }
        queued
    }

    /// Asks the store thread to answer [`Cmd::Barrier`] once everything queued before is
    /// committed (and acknowledged); false without a store.
    pub fn barrier(&self) -> bool {
        self.read(|_| Cmd::Barrier)
    }

    fn busy(&self) {
        Stats::add(&self.stats.store_busy, 1);
    }
}
