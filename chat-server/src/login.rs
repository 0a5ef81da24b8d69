//! Account passwords and failed-login throttling.
//!
//! Passwords are hashed with Argon2id (the `argon2` crate's defaults, which follow OWASP's
//! recommendation: 19 MiB of memory, 2 passes, 1 lane) with a random 16-byte salt per hash,
//! and stored as PHC strings, which carry the parameters: raising them later keeps old hashes
//! verifiable. Hashing takes tens of milliseconds of CPU on purpose, so it runs on Tokio's
//! blocking pool, never on a connection's task or the hub.

use std::collections::HashMap;
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

/// Hashes a password with Argon2id and a fresh salt (blocking: call from the blocking pool).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` matches the stored hash (blocking: call from the blocking pool).
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
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

/// Runs a blocking password function on Tokio's blocking pool, a few at a time; `None` when
/// no turn came within [`HASH_WAIT`] (the server is flooded with logins) or the task failed.
pub async fn off_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let _turn = tokio::time::timeout(HASH_WAIT, HASHING.acquire())
        .await
        .ok()?
        .ok()?;
    tokio::task::spawn_blocking(f).await.ok()
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

/// Who failed: an address (IPv6 by its /64, which one host usually has whole) or an account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Addr(IpAddr),
    Account(String),
}

fn addr_key(addr: IpAddr) -> Key {
    match addr {
        IpAddr::V4(_) => Key::Addr(addr),
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
    blocked_until: Instant,
}

/// Recent wrong passwords, per address and per account, to slow down password guessing.
///
/// After a wrong password, the address and the account each wait: the answer comes after the
/// delay ([`delay_after`]), and until it has passed every further attempt from that address,
/// or for that account, is refused at once without its password being checked. So guesses
/// cannot go faster than the delays, whether they come one after another, in parallel, or
/// from several addresses at one account. A right password clears the account's run (the
/// address's fades after [`FORGET_AFTER`]: logging in to one's own account does not let an
/// address guess again sooner).
#[derive(Debug, Default)]
pub struct Failures {
    runs: Mutex<HashMap<Key, Run>>,
}

impl Failures {
    /// How long until `addr` may try a password for `account` again; `None` if it may now.
    pub fn wait(&self, addr: IpAddr, account: &str) -> Option<Duration> {
        let now = Instant::now();
        let runs = self.runs.lock().ok()?;
        [addr_key(addr), Key::Account(account.to_owned())]
            .iter()
            .filter_map(|k| runs.get(k))
            .map(|r| r.blocked_until.saturating_duration_since(now))
            .filter(|d| !d.is_zero())
            .max()
    }

    /// Records a wrong password from `addr` for `account`; returns how long to wait before
    /// answering it.
    pub fn failed(&self, addr: IpAddr, account: &str) -> Duration {
        let now = Instant::now();
        let Ok(mut runs) = self.runs.lock() else {
            return MAX_DELAY;
        };
        if runs.len() >= PRUNE_AT {
            runs.retain(|_, r| now.duration_since(r.last) < FORGET_AFTER);
        }
        let mut delay = Duration::ZERO;
        for key in [addr_key(addr), Key::Account(account.to_owned())] {
            let run = runs.entry(key).or_insert(Run {
                count: 0,
                last: now,
                blocked_until: now,
            });
            if now.duration_since(run.last) >= FORGET_AFTER {
                run.count = 0;
            }
            run.count = run.count.saturating_add(1);
            run.last = now;
            delay = delay.max(delay_after(run.count));
        }
        for key in [addr_key(addr), Key::Account(account.to_owned())] {
            if let Some(run) = runs.get_mut(&key) {
                run.blocked_until = now + delay;
            }
        }
        delay
    }

    /// A right password for `account`: its run is over.
    pub fn succeeded(&self, account: &str) {
        if let Ok(mut runs) = self.runs.lock() {
            runs.remove(&Key::Account(account.to_owned()));
        }
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
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct horse ", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
        // A fresh salt every time.
        assert_ne!(hash, hash_password("correct horse").expect("hash"));
    }

    #[test]
    fn the_delay_grows_per_address_and_per_account_and_blocks_meanwhile() {
        let failures = Failures::default();
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        assert_eq!(failures.wait(a, "zoe"), None);
        assert_eq!(failures.failed(a, "zoe"), FIRST_DELAY);
        // Meanwhile the address is refused unheard, for any account, and so is the account
        // from any address.
        assert!(failures.wait(a, "kim").is_some());
        assert!(failures.wait(b, "zoe").is_some());
        assert_eq!(failures.wait(b, "kim"), None);
        assert_eq!(failures.failed(a, "zoe"), FIRST_DELAY * 2);
        // Guessing zoe's password from elsewhere continues zoe's run.
        assert_eq!(failures.failed(b, "zoe"), FIRST_DELAY * 4);
        // Logging in to one's own account does not reset the address.
        failures.succeeded("kim");
        assert_eq!(failures.failed(a, "kim"), FIRST_DELAY * 4);
        // zoe logging in ends zoe's run, not the addresses'.
        failures.succeeded("zoe");
        assert_eq!(failures.failed(b, "zoe"), FIRST_DELAY * 2);
        assert_eq!(delay_after(40), MAX_DELAY);
    }

    #[test]
    fn an_ipv6_host_is_one_address_across_its_64() {
        let failures = Failures::default();
        let one: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let other: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        failures.failed(one, "zoe");
        failures.succeeded("zoe");
        assert!(failures.wait(other, "kim").is_some());
    }

    #[test]
    fn password_rules() {
        assert!(check_password("").is_err());
        assert!(check_password("tab\there").is_err());
        assert!(check_password(&"x".repeat(MAX_PASSWORD + 1)).is_err());
        assert!(check_password("ünïcødé pass phrase").is_ok());
    }
}
