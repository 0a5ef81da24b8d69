//! Account passwords and failed-login throttling.
//!
//! Passwords are hashed with Argon2id (the `argon2` crate's defaults, which follow OWASP's
//! recommendation: 19 MiB of memory, 2 passes, 1 lane) with a random 16-byte salt per hash,
//! and stored as PHC strings, which carry the parameters: raising them later keeps old hashes
//! verifiable. Hashing takes tens of milliseconds of CPU on purpose, so it runs on Tokio's
//! blocking pool, never on a connection's task or the hub.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// Longest password accepted, in bytes.
pub const MAX_PASSWORD: usize = 256;

/// Checks a new password against the rules; the error says which one it breaks.
pub fn check_password(password: &str) -> Result<(), String> {
    if password.is_empty() {
        return Err("the password is empty".into());
    }
    if password.len() > MAX_PASSWORD {
        return Err(format!("the password is longer than {MAX_PASSWORD} bytes"));
    }
    if password.chars().any(char::is_control) {
        return Err("the password contains control characters".into());
    }
    Ok(())
}

/// A password's Argon2id hash (a PHC string), as stored. Its `Debug` output does not show it:
/// a hash that reaches a log can be attacked offline.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct HashedPassword(String);

impl HashedPassword {
    /// A hash as read back from the store.
    pub fn from_stored(phc: String) -> Self {
        HashedPassword(phc)
    }

    /// The PHC string, to store.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for HashedPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashedPassword(..)")
    }
}

/// Hashes a password with Argon2id and a fresh salt (blocking: call from the blocking pool).
pub fn hash_password(password: &str) -> Result<HashedPassword, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| HashedPassword(h.to_string()))
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` matches the stored hash (blocking: call from the blocking pool).
pub fn verify_password(password: &str, hash: &HashedPassword) -> bool {
    PasswordHash::new(hash.as_str()).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Password hashes computed at once, at most (each takes tens of milliseconds of CPU and 19 MiB
/// of memory); further requests wait for a turn, up to [`HASH_WAIT`].
static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(HASH_SLOTS);
/// See [`HASHING`]: twice this machine's usual core count.
const HASH_SLOTS: usize = 4;
/// Longest wait for a turn to hash; past it the request is answered "try again later".
pub const HASH_WAIT: Duration = Duration::from_secs(5);

/// New passwords (registrations, changes) being hashed at once, at most: they take one of the
/// [`HASH_SLOTS`] and leave the others to logins, so that a flood of registrations never
/// keeps anyone from logging in.
static NEW_PASSWORDS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// What a password is hashed for: logins go first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Checking a login's password, or creating an account at login.
    Login,
    /// A new password for a connected client (`/register`, `/password`).
    NewPassword,
}

/// Runs a blocking password function on Tokio's blocking pool, a few at a time, logins ahead
/// of new passwords, counting it in `stats`; `None` when no turn came within [`HASH_WAIT`]
/// (the server is flooded) or the task failed.
pub async fn off_thread<T: Send + 'static>(
    stats: &crate::stats::Stats,
    priority: Priority,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let turns = async {
        let lane = match priority {
            Priority::Login => None,
            Priority::NewPassword => Some(NEW_PASSWORDS.acquire().await.ok()?),
        };
        let turn = HASHING.acquire().await.ok()?;
        Some((lane, turn))
    };
    let _turns = tokio::time::timeout(HASH_WAIT, turns).await.ok()??;
    crate::stats::Stats::add(&stats.password_hashes, 1);
    tokio::task::spawn_blocking(f).await.ok()
}

/// A hash no password matches, verified in place of an account that does not exist, so that
/// an unknown nickname costs the same time as a wrong password.
pub fn decoy() -> &'static HashedPassword {
    static DECOY: std::sync::LazyLock<HashedPassword> = std::sync::LazyLock::new(|| {
        hash_password("no account has this password: it only takes the time a real one does")
            .unwrap_or_default()
    });
    &DECOY
}

/// The first wrong password waits this long before its answer; each further one doubles it,
/// up to [`MAX_DELAY`].
pub const FIRST_DELAY: Duration = Duration::from_millis(500);
/// Longest wait before a wrong password's answer.
pub const MAX_DELAY: Duration = Duration::from_secs(16);
/// Failures are forgotten this long after the last one.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Entries remembered before old ones are pruned.
const PRUNE_AT: usize = 4096;

/// Who failed: an address (IPv6 by its /64, which one host usually has whole; an IPv4 address
/// seen as IPv6, `::ffff:a.b.c.d`, as itself) or an account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Addr(IpAddr),
    Account(String),
}

fn addr_key(addr: IpAddr) -> Key {
    match addr.to_canonical() {
        v4 @ IpAddr::V4(_) => Key::Addr(v4),
        IpAddr::V6(v6) => {
            let net = u128::from(v6) & !((1u128 << 64) - 1);
            Key::Addr(IpAddr::V6(net.into()))
        }
    }
}

/// A run of failures: how many, and until when the next attempt is refused unheard.
#[derive(Debug, Clone, Copy)]
struct Run {
    count: u32,
    last: Instant,
    /// `None` when the address may try now.
    blocked_until: Option<Instant>,
}

/// How long one attempt may hold its address's turn while its password is checked.
const ATTEMPT_HOLD: Duration = Duration::from_secs(10);

/// Recent wrong passwords, to slow down password guessing.
///
/// An address and an account (a nickname, registered or not) each have one attempt at a
/// time: [`Failures::begin`] takes both turns (refusing while another attempt from the
/// address, or at the account, is being checked, or while the delay after its last wrong
/// password runs), and [`Failures::failed`], [`Failures::succeeded`] or [`Failures::finished`]
/// gives them back. After a wrong password the answer waits [`delay_after`] the address's
/// failures in a row, or the account's if those are more, and neither may try again before
/// that delay has passed. So one account is guessed at no faster than the delays allow, from
/// one address or from a thousand, and an address guesses no faster either. The owner is
/// never locked out for longer than the longest delay ([`MAX_DELAY`]), and a right password
/// ends the account's run. Runs fade [`FORGET_AFTER`] after their last failure.
#[derive(Debug, Default)]
pub struct Failures {
    runs: Mutex<HashMap<Key, Run>>,
}

impl Failures {
    /// Takes `addr`'s and `account`'s turns to have a password checked; `Err(wait)` while
    /// either must wait.
    pub fn begin(&self, addr: IpAddr, account: &str) -> Result<(), Duration> {
        self.begin_at(addr, account, Instant::now())
    }

    fn begin_at(&self, addr: IpAddr, account: &str, now: Instant) -> Result<(), Duration> {
        let Ok(mut runs) = self.runs.lock() else {
            return Err(MAX_DELAY);
        };
        if runs.len() >= PRUNE_AT {
            runs.retain(|_, r| {
                now.duration_since(r.last) < FORGET_AFTER
                    || r.blocked_until.is_some_and(|t| t > now)
            });
        }
        let keys = [addr_key(addr), Key::Account(account.to_owned())];
        for key in &keys {
            if let Some(until) = runs
                .get(key)
                .and_then(|r| r.blocked_until)
                .filter(|&t| t > now)
            {
                return Err(until - now);
            }
        }
        for key in keys {
            let run = runs.entry(key).or_insert(Run {
                count: 0,
                last: now,
                blocked_until: None,
            });
            run.blocked_until = Some(now + ATTEMPT_HOLD);
        }
        Ok(())
    }

    /// The attempt from `addr` at `account` ended without a wrong password being given (not
    /// checked, or the server could not): both turns are given back.
    pub fn finished(&self, addr: IpAddr, account: &str) {
        if let Ok(mut runs) = self.runs.lock() {
            for key in [addr_key(addr), Key::Account(account.to_owned())] {
                if let Some(run) = runs.get_mut(&key) {
                    run.blocked_until = None;
                }
            }
        }
    }

    /// A right password for `account` from `addr`: the account's run is over, and the
    /// address's turn is given back.
    pub fn succeeded(&self, addr: IpAddr, account: &str) {
        self.finished(addr, account);
        if let Ok(mut runs) = self.runs.lock() {
            runs.remove(&Key::Account(account.to_owned()));
        }
    }

    /// Records a wrong password from `addr` for `account`; returns how long to wait before
    /// answering it (the address and the account may try again only after that).
    pub fn failed(&self, addr: IpAddr, account: &str) -> Duration {
        self.failed_at(addr, account, Instant::now()).0
    }

    /// [`Failures::failed`], also returning how many times in a row `account` failed.
    pub fn failed_run(&self, addr: IpAddr, account: &str) -> (Duration, u32) {
        self.failed_at(addr, account, Instant::now())
    }

    fn failed_at(&self, addr: IpAddr, account: &str, now: Instant) -> (Duration, u32) {
        let Ok(mut runs) = self.runs.lock() else {
            return (MAX_DELAY, u32::MAX);
        };
        let keys = [addr_key(addr), Key::Account(account.to_owned())];
        let mut delay = Duration::ZERO;
        let mut count = 0;
        for key in &keys {
            let run = runs.entry(key.clone()).or_insert(Run {
                count: 0,
                last: now,
                blocked_until: None,
            });
            if now.duration_since(run.last) >= FORGET_AFTER {
                run.count = 0;
            }
            run.count = run.count.saturating_add(1);
            run.last = now;
            count = run.count;
            delay = delay.max(delay_after(run.count));
        }
        for key in &keys {
            if let Some(run) = runs.get_mut(key) {
                run.blocked_until = Some(now + delay);
            }
        }
        (delay, count)
    }
}

/// The wait after the `n`th failure in a row (n ≥ 1).
pub fn delay_after(n: u32) -> Duration {
    let doublings = n.saturating_sub(1).min(16);
    FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let hash = hash_password("correct horse").expect("hash");
        assert!(
            hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}",
            hash.as_str()
        );
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct horse ", &hash));
        let garbage = HashedPassword::from_stored("not a hash".into());
        assert!(!verify_password("correct horse", &garbage));
        // A fresh salt every time.
        assert_ne!(hash, hash_password("correct horse").expect("hash"));
    }

    #[test]
    fn a_hash_does_not_show_in_debug_output() {
        let hash = hash_password("correct horse").expect("hash");
        let account = crate::store::Account {
            nick: "Zoe".into(),
            hash: hash.clone(),
            rooms: Vec::new(),
            last_login: None,
        };
        let write = crate::store::Write::Password {
            key: "zoe".into(),
            hash: hash.clone(),
        };
        for shown in [
            format!("{hash:?}"),
            format!("{account:?}"),
            format!("{write:?}"),
        ] {
            assert!(!shown.contains("argon2"), "{shown}");
            assert!(shown.contains("HashedPassword(..)"), "{shown}");
        }
    }

    #[test]
    fn an_address_and_an_account_wait_out_their_delay_one_attempt_at_a_time() {
        let failures = Failures::default();
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let c: IpAddr = "10.0.0.3".parse().expect("ip");
        let t0 = Instant::now();
        assert_eq!(failures.begin_at(a, "zoe", t0), Ok(()));
        // A second attempt from the address, or at the account, while the first is being
        // checked: refused.
        assert!(failures.begin_at(a, "kim", t0).is_err());
        assert!(failures.begin_at(b, "zoe", t0).is_err());
        assert_eq!(failures.failed_at(a, "zoe", t0).0, FIRST_DELAY);
        // During the delay neither the address nor the account may try, from anywhere.
        assert!(failures.begin_at(a, "kim", t0 + FIRST_DELAY / 2).is_err());
        assert!(failures.begin_at(b, "zoe", t0 + FIRST_DELAY / 2).is_err());
        // Other addresses and accounts are not slowed.
        assert_eq!(failures.begin_at(b, "kim", t0), Ok(()));
        failures.finished(b, "kim");
        // After it, another address's guess at zoe waits longer: the account's run counts.
        let t1 = t0 + FIRST_DELAY;
        assert_eq!(failures.begin_at(c, "zoe", t1), Ok(()));
        assert_eq!(failures.failed_at(c, "zoe", t1).0, FIRST_DELAY * 2);
        assert!(failures.begin_at(b, "zoe", t1 + FIRST_DELAY).is_err());
        assert_eq!(failures.begin_at(b, "zoe", t1 + FIRST_DELAY * 2), Ok(()));
        assert_eq!(delay_after(40), MAX_DELAY);
    }

    #[test]
    fn a_right_password_gives_the_turn_back_and_ends_the_accounts_run() {
        let failures = Failures::default();
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let t0 = Instant::now();
        failures.begin_at(a, "zoe", t0).expect("turn");
        failures.failed_at(a, "zoe", t0);
        failures
            .begin_at(a, "zoe", t0 + FIRST_DELAY)
            .expect("turn after the delay");
        failures.succeeded(a, "zoe");
        // The turns are back at once (the right answer ended the wait) ...
        failures
            .begin_at(a, "zoe", t0 + FIRST_DELAY)
            .expect("turn after a success");
        // ... the address's run goes on, the account's starts again.
        assert_eq!(
            failures.failed_at(a, "zoe", t0 + FIRST_DELAY).0,
            FIRST_DELAY * 2
        );
    }

    #[test]
    fn addresses_are_keyed_by_host() {
        // An IPv6 host is its /64.
        let one: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let other: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        assert_eq!(addr_key(one), addr_key(other));
        // IPv4 clients of a server listening on `::` are themselves, not all one `::`.
        let mapped_a: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        let mapped_b: IpAddr = "::ffff:10.0.0.2".parse().expect("ip");
        assert_ne!(addr_key(mapped_a), addr_key(mapped_b));
        assert_eq!(
            addr_key(mapped_a),
            addr_key("10.0.0.1".parse().expect("ip"))
        );
    }

    #[test]
    fn password_rules() {
        assert!(check_password("").is_err());
        assert!(check_password("tab\there").is_err());
        assert!(check_password(&"x".repeat(MAX_PASSWORD + 1)).is_err());
        assert!(check_password("ünïcødé pass phrase").is_ok());
    }
}
