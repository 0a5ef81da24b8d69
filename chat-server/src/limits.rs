//! Limits per address and per account, so that no one address (an IPv6 host by its /64) can
//! take the server away from everyone else, and reconnecting does not reset anything.
//!
//! An [`AddressBook`] counts, per address: its open connections and handshakes in progress
//! (each capped), how fast it opens new ones, how fast it registers accounts, and one flood
//! bucket shared by all its connections (the connection's own bucket still applies too). The
//! book lives as long as the server: an address that reconnects finds its buckets as it left
//! them, and an account that logs in again gets its own flood bucket back. Addresses in
//! `exempt` (the loopback range by default: local scripts, benchmarks, a relay on the same
//! machine) are not counted.
//!
//! The per-connection work is one uncontended lock per frame of a counted address; an exempt
//! address costs nothing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ipnet::IpNet;
use tokio::time::Instant;

use crate::ratelimit::{RateConfig, RateLimiter, Verdict};

/// Entries remembered before idle ones are pruned.
const PRUNE_AT: usize = 4096;
/// An idle address is forgotten this long after its last connection ended, once pruning is
/// due: long enough for every bucket to be full again.
const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// The limits, as configured (`--max-per-address` and the others; docs/operations.md).
#[derive(Debug, Clone, PartialEq)]
pub struct LimitsConfig {
    /// Open connections from one address, handshaking or chatting.
    pub per_address: usize,
    /// Connections from one address that have not finished their handshake.
    pub handshakes_per_address: usize,
    /// New connections one address may open per minute (and at once).
    pub connects_per_minute: u32,
    /// An address's connections together may send this many times one connection's rate.
    pub address_rate_factor: u32,
    /// Accounts one address may register per hour.
    pub registrations_per_hour: u32,
    /// Rooms one address may create per hour.
    pub rooms_per_hour: u32,
    /// Rooms one guest connection may create.
    pub rooms_per_guest: u32,
    /// Messages with an expiry followed at once.
    pub expiring: usize,
    /// Messages with an expiry one address may have waiting.
    pub expiring_per_address: usize,
    /// Places among `--max-clients` that guests cannot take, kept for accounts; `None` keeps a
    /// tenth of them.
    pub account_slots: Option<usize>,
    /// Addresses not counted.
    pub exempt: Vec<IpNet>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            per_address: 10,
            handshakes_per_address: 3,
            connects_per_minute: 20,
            address_rate_factor: 3,
            registrations_per_hour: 3,
            rooms_per_hour: 10,
            rooms_per_guest: 3,
            expiring: 100_000,
            expiring_per_address: 1_000,
            account_slots: None,
            exempt: default_exempt(),
        }
    }
}

impl LimitsConfig {
    /// How many of `max_clients` places guests may take: all but the places kept for
    /// accounts, and at least one.
    pub fn guest_places(&self, max_clients: usize) -> usize {
        let kept = self.account_slots.unwrap_or(max_clients / 10);
        max_clients.saturating_sub(kept).max(1)
    }
}

/// The loopback range: `127.0.0.0/8` and `::1`.
pub fn default_exempt() -> Vec<IpNet> {
    ["127.0.0.0/8", "::1/128"]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// An address as it is counted: IPv4 as itself (also when seen as `::ffff:a.b.c.d`), IPv6 by
/// its /64, which one host usually has whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpKey {
    /// An IPv4 address.
    V4(u32),
    /// The upper 64 bits of an IPv6 address.
    V6(u64),
}

impl IpKey {
    /// The key of `addr`.
    pub fn of(addr: IpAddr) -> IpKey {
        match addr.to_canonical() {
            IpAddr::V4(v4) => IpKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => IpKey::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

/// A token bucket: `burst` at once, then `per_sec`.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    last: Instant,
    burst: f64,
    per_sec: f64,
}

impl Bucket {
    /// A full bucket.
    pub fn new(burst: u32, per_sec: f64, now: Instant) -> Self {
        Bucket {
            tokens: f64::from(burst),
            last: now,
            burst: f64::from(burst),
            per_sec,
        }
    }

    /// `burst` per hour, refilled evenly.
    pub fn per_hour(burst: u32, now: Instant) -> Self {
        Bucket::new(burst, f64::from(burst) / 3600.0, now)
    }

    /// Takes `n` tokens at `now`, going into debt if there are not enough: how long to wait
    /// before going on, so that the rate holds on average (pacing rather than refusing).
    pub fn pace(&mut self, n: f64, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst) - n;
        if self.tokens >= 0.0 || self.per_sec <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((-self.tokens / self.per_sec).min(86_400.0))
    }

    /// Takes a token at `now`; `Err(wait)` until one is there.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        if self.per_sec <= 0.0 {
            return Err(Duration::MAX);
        }
        Err(Duration::from_secs_f64(
            ((1.0 - self.tokens) / self.per_sec).min(86_400.0),
        ))
    }
}

/// Why a connection is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

/// What the book knows of one address.
#[derive(Debug)]
struct Entry {
    connections: usize,
    handshakes: usize,
    connects: Bucket,
    registrations: Bucket,
    /// The flood bucket all its connections share.
    frames: Arc<Mutex<RateLimiter>>,
    /// When its last connection ended (or began).
    last: Instant,
}

/// An account's flood bucket while it is not logged in.
#[derive(Debug)]
struct Parked {
    limiter: RateLimiter,
    at: Instant,
}

#[derive(Debug, Default)]
struct Book {
    addresses: HashMap<IpKey, Entry>,
    accounts: HashMap<String, Parked>,
}

/// Per-address and per-account accounting, shared by every session. See the module
/// documentation.
#[derive(Debug)]
pub struct AddressBook {
    config: LimitsConfig,
    /// One connection's flood control, scaled for an address.
    address_rate: RateConfig,
    book: Mutex<Book>,
}

impl AddressBook {
    /// A book enforcing `config`, with `rate` as one connection's flood control.
    pub fn new(config: LimitsConfig, rate: RateConfig) -> Self {
        let factor = config.address_rate_factor.max(1);
        let address_rate = RateConfig {
            burst: rate.burst.saturating_mul(factor),
            per_sec: rate.per_sec * f64::from(factor),
            ..rate
        };
        AddressBook {
            config,
            address_rate,
            book: Mutex::new(Book::default()),
        }
    }

    /// The limits enforced.
    pub fn config(&self) -> &LimitsConfig {
        &self.config
    }

    /// Whether `addr` is not counted.
    pub fn is_exempt(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        self.config.exempt.iter().any(|net| net.contains(&addr))
    }

    fn lock(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new connection from `addr` at `now`: counted (as handshaking), or refused over one of
    /// the address's limits.
    pub fn arrive(self: &Arc<Self>, addr: IpAddr, now: Instant) -> Result<Presence, Refused> {
        if self.is_exempt(addr) {
            return Ok(Presence::uncounted(self.clone()));
        }
        let key = IpKey::of(addr);
        let frames = self.count(key, now)?;
        Ok(Presence {
            book: self.clone(),
            key: Some(key),
            handshaking: true,
            frames: Some(frames),
        })
    }

    /// Counts a handshaking connection of `key`; returns the address's flood bucket.
    fn count(&self, key: IpKey, now: Instant) -> Result<Arc<Mutex<RateLimiter>>, Refused> {
        let config = &self.config;
        let mut book = self.lock();
        if book.addresses.len() >= PRUNE_AT {
            book.addresses.retain(|_, e| {
                e.connections > 0 || now.saturating_duration_since(e.last) < FORGET_AFTER
            });
        }
        let rate = self.address_rate;
        let entry = book.addresses.entry(key).or_insert_with(|| Entry {
            connections: 0,
            handshakes: 0,
            connects: Bucket::new(
                config.connects_per_minute,
                f64::from(config.connects_per_minute) / 60.0,
                now,
            ),
            registrations: Bucket::per_hour(config.registrations_per_hour, now),
            frames: Arc::new(Mutex::new(RateLimiter::new(rate, now))),
            last: now,
        });
        entry.last = now;
        if entry.connections >= config.per_address {
            return Err(Refused(format!(
                "too many connections from your address ({} open, the most allowed); close \
                 one and try again",
                entry.connections
            )));
        }
        if entry.handshakes >= config.handshakes_per_address {
            return Err(Refused(format!(
                "too many connections from your address are logging in at once ({}); try \
                 again in a few seconds",
                entry.handshakes
            )));
        }
        if let Err(wait) = entry.connects.take(now) {
            return Err(Refused(format!(
                "your address opens connections too fast (at most {} a minute); try again in \
                 {} s",
                config.connects_per_minute,
                wait.as_secs().max(1)
            )));
        }
        entry.connections += 1;
        entry.handshakes += 1;
        Ok(entry.frames.clone())
    }

    fn release(&self, key: IpKey, handshaking: bool) {
        let mut book = self.lock();
        if let Some(entry) = book.addresses.get_mut(&key) {
            entry.connections = entry.connections.saturating_sub(1);
            if handshaking {
                entry.handshakes = entry.handshakes.saturating_sub(1);
            }
            entry.last = Instant::now();
        }
    }

    fn handshake_done(&self, key: IpKey) {
        let mut book = self.lock();
        if let Some(entry) = book.addresses.get_mut(&key) {
            entry.handshakes = entry.handshakes.saturating_sub(1);
        }
    }

    /// The flood bucket `account` had when it last left, if the server remembers it.
    pub fn take_account(&self, account: &str) -> Option<RateLimiter> {
        self.lock().accounts.remove(account).map(|p| p.limiter)
    }

    /// Keeps `account`'s flood bucket for its next login.
    pub fn park_account(&self, account: String, limiter: RateLimiter, now: Instant) {
        let mut book = self.lock();
        if book.accounts.len() >= PRUNE_AT {
            book.accounts
                .retain(|_, p| now.saturating_duration_since(p.at) < FORGET_AFTER);
        }
        book.accounts.insert(account, Parked { limiter, at: now });
    }
}

/// One connection's place in the [`AddressBook`], given back when it is dropped.
#[derive(Debug)]
pub struct Presence {
    book: Arc<AddressBook>,
    /// `None` for an exempt address.
    key: Option<IpKey>,
    handshaking: bool,
    frames: Option<Arc<Mutex<RateLimiter>>>,
}

impl Presence {
    /// A connection that is not counted.
    pub fn uncounted(book: Arc<AddressBook>) -> Self {
        Presence {
            book,
            key: None,
            handshaking: false,
            frames: None,
        }
    }

    /// The handshake is over (admitted): the connection no longer counts as handshaking.
    pub fn admitted(&mut self) {
        if let (Some(key), true) = (self.key, self.handshaking) {
            self.book.handshake_done(key);
        }
        self.handshaking = false;
    }

    /// A relay vouched for this connection: it is counted against the guest's address
    /// `guest`, no longer against the relay's.
    pub fn rekey(&mut self, guest: IpAddr, now: Instant) -> Result<(), Refused> {
        let (handshaking, key) = (self.handshaking, self.key.take());
        if let Some(key) = key {
            self.book.release(key, handshaking);
        }
        self.frames = None;
        self.handshaking = false;
        if self.book.is_exempt(guest) {
            return Ok(());
        }
        let key = IpKey::of(guest);
        self.frames = Some(self.book.count(key, now)?);
        self.key = Some(key);
        self.handshaking = true;
        Ok(())
    }

    /// The address's shared flood bucket's decision about one frame at `now` (always
    /// [`Verdict::Allow`] for an exempt address).
    pub fn check_frame(&self, now: Instant) -> Verdict {
        match &self.frames {
            Some(frames) => frames.lock().unwrap_or_else(|p| p.into_inner()).check(now),
            None => Verdict::Allow,
        }
    }

    /// Takes one of the address's registrations at `now`; `Err(wait)` over the hourly limit.
    pub fn register(&self, now: Instant) -> Result<(), Duration> {
        let Some(key) = self.key else {
            return Ok(());
        };
        let mut book = self.book.lock();
        match book.addresses.get_mut(&key) {
            Some(entry) => entry.registrations.take(now),
            None => Ok(()),
        }
    }

    /// The book this connection is counted in.
    pub fn book(&self) -> &AddressBook {
        &self.book
    }
}

impl Drop for Presence {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.book.release(key, self.handshaking);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(config: LimitsConfig) -> Arc<AddressBook> {
        Arc::new(AddressBook::new(config, RateConfig::default()))
    }

    fn counted() -> LimitsConfig {
        LimitsConfig {
            exempt: Vec::new(),
            ..LimitsConfig::default()
        }
    }

    #[test]
    fn an_address_has_a_few_connections_and_handshakes_and_gets_them_back() {
        let book = book(LimitsConfig {
            per_address: 3,
            handshakes_per_address: 2,
            ..counted()
        });
        let a: IpAddr = "203.0.113.7".parse().expect("ip");
        let now = Instant::now();
        let mut first = book.arrive(a, now).expect("first");
        let _second = book.arrive(a, now).expect("second");
        // Two handshakes at once: a third waits for one of them to finish.
        let refused = book.arrive(a, now).expect_err("third handshake");
        assert!(refused.0.contains("logging in at once"), "{refused:?}");
        first.admitted();
        let third = book.arrive(a, now).expect("third, once one is in");
        // Three open: a fourth waits for one to close.
        let refused = book.arrive(a, now).expect_err("fourth");
        assert!(refused.0.contains("too many connections"), "{refused:?}");
        drop(third);
        book.arrive(a, now).expect("a place again");
        // Another address, and the exempt loopback, are not affected.
        book.arrive("203.0.113.8".parse().expect("ip"), now)
            .expect("other");
    }

    #[test]
    fn an_ipv6_host_is_its_64_and_loopback_is_exempt() {
        let book = book(LimitsConfig {
            per_address: 1,
            ..LimitsConfig::default()
        });
        let now = Instant::now();
        let _one = book
            .arrive("2001:db8:1:2::1".parse().expect("ip"), now)
            .expect("one");
        assert!(
            book.arrive("2001:db8:1:2:ffff::9".parse().expect("ip"), now)
                .is_err()
        );
        assert!(
            book.arrive("2001:db8:1:3::1".parse().expect("ip"), now)
                .is_ok()
        );
        for _ in 0..50 {
            let local = book.arrive("127.0.0.1".parse().expect("ip"), now);
            std::mem::forget(local.expect("loopback is not counted"));
        }
        assert_eq!(
            IpKey::of("::ffff:10.0.0.1".parse().expect("ip")),
            IpKey::of("10.0.0.1".parse().expect("ip"))
        );
    }

    #[test]
    fn connecting_too_fast_is_refused_and_the_bucket_refills() {
        let book = book(LimitsConfig {
            connects_per_minute: 2,
            ..counted()
        });
        let a: IpAddr = "198.51.100.1".parse().expect("ip");
        let t0 = Instant::now();
        drop(book.arrive(a, t0).expect("1"));
        drop(book.arrive(a, t0).expect("2"));
        let refused = book.arrive(a, t0).expect_err("3");
        assert!(refused.0.contains("too fast"), "{refused:?}");
        drop(
            book.arrive(a, t0 + Duration::from_secs(30))
                .expect("after 30 s"),
        );
    }

    #[test]
    fn an_addresss_connections_share_one_flood_bucket_that_outlives_them() {
        let book = book(LimitsConfig {
            address_rate_factor: 1,
            ..counted()
        });
        let a: IpAddr = "198.51.100.2".parse().expect("ip");
        let now = Instant::now();
        let burst = RateConfig::default().burst;
        for _ in 0..burst {
            let p = book.arrive(a, now).expect("arrive");
            assert_eq!(p.check_frame(now), Verdict::Allow);
        }
        // A new connection from the same address finds the bucket empty.
        let p = book.arrive(a, now).expect("arrive");
        assert!(matches!(p.check_frame(now), Verdict::Refuse { .. }));
    }

    #[test]
    fn a_relayed_guest_is_counted_against_its_own_address() {
        let book = book(LimitsConfig {
            per_address: 1,
            ..counted()
        });
        let relay: IpAddr = "192.0.2.1".parse().expect("ip");
        let guest: IpAddr = "192.0.2.50".parse().expect("ip");
        let now = Instant::now();
        let mut first = book.arrive(relay, now).expect("relay's connection");
        first.rekey(guest, now).expect("guest");
        // The relay's address is free again; the guest's is taken.
        let mut second = book.arrive(relay, now).expect("relay's second connection");
        assert!(second.rekey(guest, now).is_err());
    }

    #[test]
    fn registrations_per_hour() {
        let book = book(LimitsConfig {
            registrations_per_hour: 2,
            ..counted()
        });
        let now = Instant::now();
        let p = book
            .arrive("192.0.2.9".parse().expect("ip"), now)
            .expect("arrive");
        assert!(p.register(now).is_ok());
        assert!(p.register(now).is_ok());
        let wait = p.register(now).expect_err("third");
        assert!(wait > Duration::from_secs(60), "{wait:?}");
        assert!(p.register(now + Duration::from_secs(1800)).is_ok());
    }
}
