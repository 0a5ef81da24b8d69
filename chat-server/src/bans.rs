//! Bans: by address (an IPv4 address, or an IPv6 address's /64, the block one subscriber
//! usually gets) and by account. The hub decides them and stores them; sessions check the
//! list when a `Hello` arrives, before a password is hashed or a place taken.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::RwLock;

use chat_core::protocol::{BanInfo, Timestamp};
use chrono::Utc;

/// Most bans kept (an operator who needs more bans a range of addresses at the firewall).
pub const MAX_BANS: usize = 10_000;

/// One ban.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    /// What is banned, in canonical form ([`address_target`], [`account_target`]).
    pub target: String,
    /// The operator who banned it.
    pub by: String,
    /// Why; may be empty.
    pub reason: String,
    /// Since when.
    pub at: Timestamp,
    /// Until when; `None`: until lifted.
    pub until: Option<Timestamp>,
}

impl Ban {
    /// Whether it still holds at `now`.
    pub fn active(&self, now: Timestamp) -> bool {
        self.until.is_none_or(|until| until > now)
    }

    /// As `/bans` lists it.
    pub fn info(&self) -> BanInfo {
        BanInfo {
            target: self.target.clone(),
            by: self.by.clone(),
            reason: self.reason.clone(),
            at: self.at,
            until: self.until,
        }
    }

    /// What the banned are told at login: the reason and the time left.
    pub fn refusal(&self, now: Timestamp) -> String {
        let mut line = format!("you are banned from this server ({})", self.target);
        if !self.reason.is_empty() {
            line.push_str(&format!(": {}", self.reason));
        }
        match self.until {
            Some(until) => line.push_str(&format!(
                "; the ban ends in {} ({})",
                time_left(until - now),
                until.format("%Y-%m-%d %H:%M UTC")
            )),
            None => line.push_str("; the ban has no end"),
        }
        line
    }
}

/// A duration for people: "1 h 5 min", "42 s".
pub fn time_left(left: chrono::TimeDelta) -> String {
    let secs = left.num_seconds().max(1);
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, _) => format!("{m} min {s} s"),
        (0, _, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

/// The ban target covering `ip`: the address itself for IPv4 (and IPv4-mapped IPv6), its /64
/// for IPv6.
pub fn address_target(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("address {v4}"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("address {v4}"),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                format!("address {}/64", std::net::Ipv6Addr::from(prefix))
            }
        },
    }
}

/// The ban target of the account with key `key`.
pub fn account_target(key: &str) -> String {
    format!("account {key}")
}

/// What an operator typed as a ban target, if it names an address or an account by itself:
/// `203.0.113.7`, `2001:db8::1`, `2001:db8::/64`, `address ...`, `account:bob`,
/// `account bob`. `None` for anything else (a nickname).
pub fn parse_target(given: &str) -> Option<String> {
    let given = given.trim();
    let address = given.strip_prefix("address ").unwrap_or(given).trim();
    let without_prefix = address.strip_suffix("/64").unwrap_or(address);
    if let Ok(ip) = without_prefix.parse::<IpAddr>() {
        return Some(address_target(ip));
    }
    let account = given
        .strip_prefix("account:")
        .or_else(|| given.strip_prefix("account "))?
        .trim();
    (!account.is_empty()).then(|| account_target(&chat_core::names::fold(account)))
}

/// The ban target an operator means when lifting one: as [`parse_target`] reads it, or else
/// the account of that name (`/unban bob`).
pub fn lift_target(given: &str) -> String {
    parse_target(given)
        .unwrap_or_else(|| account_target(&chat_core::names::nick_keys(given).folded))
}

/// The bans in force, shared by the hub (which changes them) and the sessions (which check
/// them). Changes are rare; checks take a read lock for a hash lookup or two.
#[derive(Debug, Default)]
pub struct Bans {
    by_target: RwLock<HashMap<String, Ban>>,
}

impl Bans {
    /// The ban that refuses a login from `ip` to `account` (a key; `None` for a guest) at
    /// `now`, if one does.
    pub fn check(&self, ip: IpAddr, account: Option<&str>, now: Timestamp) -> Option<Ban> {
        let bans = self.by_target.read().unwrap_or_else(|e| e.into_inner());
        if bans.is_empty() {
            return None;
        }
        let by_address = bans.get(&address_target(ip));
        let by_account = account.and_then(|key| bans.get(&account_target(key)));
        by_address
            .into_iter()
            .chain(by_account)
            .find(|ban| ban.active(now))
            .cloned()
    }

    /// Adds or replaces a ban; false when [`MAX_BANS`] are in force already.
    pub fn insert(&self, ban: Ban) -> bool {
        let mut bans = self.by_target.write().unwrap_or_else(|e| e.into_inner());
        let now = Utc::now();
        if bans.len() >= MAX_BANS {
            bans.retain(|_, b| b.active(now));
        }
        if bans.len() >= MAX_BANS && !bans.contains_key(&ban.target) {
            return false;
        }
        bans.insert(ban.target.clone(), ban);
        true
    }

    /// Lifts the ban on `target`, if there is one.
    pub fn remove(&self, target: &str) -> Option<Ban> {
        self.by_target
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(target)
    }

    /// The bans in force at `now`, the newest first.
    pub fn list(&self, now: Timestamp) -> Vec<Ban> {
        let bans = self.by_target.read().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<Ban> = bans.values().filter(|b| b.active(now)).cloned().collect();
        list.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| a.target.cmp(&b.target)));
        list
    }

    /// Replaces every ban (with the stored list, changed by `chat-server admin`).
    pub fn replace(&self, list: Vec<Ban>) {
        let map = list.into_iter().map(|b| (b.target.clone(), b)).collect();
        *self.by_target.write().unwrap_or_else(|e| e.into_inner()) = map;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(target: &str, until: Option<Timestamp>) -> Ban {
        Ban {
            target: target.to_owned(),
            by: "op".into(),
            reason: "spam".into(),
            at: Utc::now(),
            until,
        }
    }

    #[test]
    fn targets_are_canonical_and_ipv6_bans_cover_the_64() {
        assert_eq!(
            parse_target("203.0.113.7").expect("valid"),
            "address 203.0.113.7"
        );
        assert_eq!(
            parse_target("2001:db8:1:2:aaaa::9").expect("valid"),
            "address 2001:db8:1:2::/64"
        );
        assert_eq!(
            parse_target("address 2001:db8:1:2::/64").expect("valid"),
            "address 2001:db8:1:2::/64"
        );
        assert_eq!(
            parse_target("::ffff:10.0.0.1").expect("valid"),
            "address 10.0.0.1"
        );
        assert_eq!(parse_target("account:Bob").expect("valid"), "account bob");
        assert_eq!(parse_target("bob"), None);
        let bans = Bans::default();
        assert!(bans.insert(ban(&parse_target("2001:db8:1:2::1").expect("valid"), None)));
        let now = Utc::now();
        let neighbour: IpAddr = "2001:db8:1:2:ffff::1".parse().expect("valid");
        let elsewhere: IpAddr = "2001:db8:1:3::1".parse().expect("valid");
        assert!(bans.check(neighbour, None, now).is_some());
        assert!(bans.check(elsewhere, None, now).is_none());
    }

    #[test]
    fn an_expired_ban_no_longer_refuses_and_accounts_are_checked_too() {
        let bans = Bans::default();
        let now = Utc::now();
        bans.insert(ban(
            "address 10.0.0.1",
            Some(now - chrono::TimeDelta::seconds(1)),
        ));
        bans.insert(ban(
            "account bob",
            Some(now + chrono::TimeDelta::minutes(90)),
        ));
        let ip: IpAddr = "10.0.0.1".parse().expect("valid");
        assert!(bans.check(ip, None, now).is_none());
        let found = bans.check(ip, Some("bob"), now).expect("account ban");
        let told = found.refusal(now);
        assert!(
            told.contains("spam") && told.contains("1 h 30 min"),
            "{told}"
        );
        assert_eq!(bans.list(now).len(), 1);
    }
}
