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

/// Runs a blocking password function on Tokio's blocking pool.
pub async fn off_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

/// The first wrong password from an address waits this long before its answer; each further
/// one doubles it, up to [`MAX_DELAY`].
pub const FIRST_DELAY: Duration = Duration::from_millis(500);
/// Longest wait before a wrong password's answer.
pub const MAX_DELAY: Duration = Duration::from_secs(16);
/// Failures are forgotten this long after the last one.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Addresses remembered before old entries are pruned.
const PRUNE_AT: usize = 4096;

/// Recent failed logins per address, to slow down password guessing.
#[derive(Debug, Default)]
pub struct Failures {
    by_addr: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Failures {
    /// Records a failure from `addr` and returns how long to wait before answering it.
    pub fn failed(&self, addr: IpAddr) -> Duration {
        let now = Instant::now();
        let Ok(mut map) = self.by_addr.lock() else {
            return MAX_DELAY;
        };
        if map.len() >= PRUNE_AT {
            map.retain(|_, (_, last)| now.duration_since(*last) < FORGET_AFTER);
        }
        let entry = map.entry(addr).or_insert((0, now));
        if now.duration_since(entry.1) >= FORGET_AFTER {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        delay_after(entry.0)
    }

    /// A successful login from `addr` clears its failures.
    pub fn succeeded(&self, addr: IpAddr) {
        if let Ok(mut map) = self.by_addr.lock() {
            map.remove(&addr);
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
    fn the_delay_grows_with_failures_from_one_address_and_resets() {
        let failures = Failures::default();
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        assert_eq!(failures.failed(a), FIRST_DELAY);
        assert_eq!(failures.failed(a), FIRST_DELAY * 2);
        assert_eq!(failures.failed(a), FIRST_DELAY * 4);
        assert_eq!(
            failures.failed(b),
            FIRST_DELAY,
            "another address is not slowed"
        );
        failures.succeeded(a);
        assert_eq!(failures.failed(a), FIRST_DELAY);
        assert_eq!(delay_after(40), MAX_DELAY);
    }

    #[test]
    fn password_rules() {
        assert!(check_password("").is_err());
        assert!(check_password("tab\there").is_err());
        assert!(check_password(&"x".repeat(MAX_PASSWORD + 1)).is_err());
        assert!(check_password("ünïcødé pass phrase").is_ok());
    }
}
