//! Keeping rooms and the store within bounds: the address a connection counts under, who may
//! create a room (a few per guest, a few per address an hour), making way for a new room at `--max-rooms`, expiring rooms that are
//! empty, that no account is in, and that nobody used for a while (guests' rooms sooner), and
//! applying the message retention (`--retain-days` and the others).

use std::collections::HashMap;

use chrono::Utc;
use tokio::time::Instant;

use super::Hub;
use super::cmd::Cmd;
use super::conn::ConnId;
use crate::limits::{Bucket, IpKey};
use crate::stats::Stats;
use crate::store::{Pruned, Write};

/// Addresses whose room buckets are remembered before idle ones are dropped.
const PRUNE_AT: usize = 4096;

/// Room creations per address (not exempt), an hour's worth each.
#[derive(Debug, Default)]
pub(super) struct RoomBuckets {
    by_address: HashMap<IpKey, Bucket>,
}

impl Hub {
    /// The address `conn` counts under for what one address may have (rooms created, expiring
    /// messages); `None` for an exempt address (`--exempt`, loopback by default).
    pub(super) fn counted_address(&self, conn: ConnId) -> Option<IpKey> {
        let addr = self.clients.get(&conn)?.addr.ip().to_canonical();
        let exempt = self
            .config
            .limits
            .exempt
            .iter()
            .any(|net| net.contains(&addr));
        (!exempt).then(|| IpKey::of(addr))
    }

    /// Whether `conn` may create a room now, or why not.
    pub(super) fn may_create_room(&mut self, conn: ConnId) -> Result<(), String> {
        let Some(member) = self.clients.get(&conn) else {
            return Err("gone".into());
        };
        let limits = &self.config.limits;
        if !member.logged_in() && member.rooms_created >= limits.rooms_per_guest {
            return Err(format!(
                "a guest may create {} rooms; join an existing one (/rooms lists them), or \
                 /register to create more",
                limits.rooms_per_guest
            ));
        }
        let Some(addr) = self.counted_address(conn) else {
            return Ok(());
        };
        let now = Instant::now();
        let buckets = &mut self.room_buckets.by_address;
        if buckets.len() >= PRUNE_AT {
            buckets.clear();
        }
        let per_hour = self.config.limits.rooms_per_hour;
        let bucket = buckets
            .entry(addr)
            .or_insert_with(|| Bucket::per_hour(per_hour, now));
        bucket.take(now).map_err(|wait| {
            format!(
                "your address created {per_hour} rooms in the last hour; try again in {} min",
                wait.as_secs().div_ceil(60)
            )
        })
    }

    /// At `--max-rooms`, deletes the unused room (empty, with no account in it) that was used
    /// least recently, guests' rooms first; false if every room is in use.
    pub(super) fn make_way(&mut self) -> bool {
        let oldest = self
            .rooms
            .iter()
            .filter(|(key, room)| {
                key.as_str() != chat_core::protocol::DEFAULT_ROOM && room.unused()
            })
            .min_by_key(|(_, room)| (!room.by_guest, room.last_used))
            .map(|(key, _)| key.clone());
        match oldest {
            Some(key) => {
                self.delete_room(&key);
                true
            }
            None => false,
        }
    }

    fn delete_room(&mut self, key: &str) {
        if self.rooms.remove(key).is_some() {
            Stats::add(&self.stats.rooms_expired, 1);
            self.durable.write(Write::DeleteRoom {
                key: key.to_owned(),
            });
        }
    }

    /// Expires the rooms past their time, and has the store apply the retention; its answer
    /// comes back as [`Cmd::Pruned`].
    pub(super) fn upkeep(&mut self) {
        let now = Utc::now();
        let retention = &self.config.retention;
        let expired: Vec<String> = self
            .rooms
            .iter()
            .filter(|(key, room)| {
                let expiry = if room.by_guest {
                    retention.guest_room_expiry
                } else {
                    retention.room_expiry
                };
                key.as_str() != chat_core::protocol::DEFAULT_ROOM
                    && room.unused()
                    && expiry
                        .is_some_and(|e| (now - room.last_used).to_std().unwrap_or_default() >= e)
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in expired {
            self.delete_room(&key);
        }
        let retention = self.config.retention.clone();
        self.durable.read(move |store| {
            Cmd::Pruned(
                store
                    .prune(&retention, Utc::now())
                    .map_err(|e| e.to_string()),
            )
        });
    }

    /// The store applied the retention: the rooms' recent messages it deleted go too.
    pub(super) fn pruned(&mut self, result: Result<Pruned, String>) {
        match result {
            Ok(pruned) => {
                Stats::add(&self.stats.messages_pruned, pruned.messages);
                if let Some(up_to) = pruned.up_to {
                    for room in self.rooms.values_mut() {
                        let before = room.recent.len();
                        room.recent.retain(|m| m.id > up_to);
                        room.older &= room.recent.len() == before;
                        room.trim_notes();
                    }
                }
                if pruned.messages > 0 {
                    tracing::info!("retention: {} messages deleted", pruned.messages);
                }
            }
            Err(e) => tracing::warn!("retention: could not delete old messages: {e}"),
        }
    }
}
