//! The flags that bound what one address, one account or time can take: connections,
//! handshakes, message rates, registrations, rooms, and how long messages and rooms are
//! kept. docs/operations.md ("Limits and abuse") says what each defends against.

use std::time::Duration;

use clap::Args;

use crate::limits::LimitsConfig;
use crate::store::Retention;

/// Limits and retention, flattened into [`super::Cli`].
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Open connections from one address (an IPv6 host counts by its /64); more are refused.
    #[arg(
        long,
        env = "CHAT_MAX_PER_ADDRESS",
        value_name = "N",
        default_value_t = 10
    )]
    pub max_per_address: usize,

    /// Connections from one address that may be logging in (before their Welcome) at once.
    #[arg(
        long,
        env = "CHAT_MAX_HANDSHAKES_PER_ADDRESS",
        value_name = "N",
        default_value_t = 3
    )]
    pub max_handshakes_per_address: usize,

    /// New connections one address may open per minute (reconnecting included).
    #[arg(
        long,
        env = "CHAT_CONNECTS_PER_MINUTE",
        value_name = "N",
        default_value_t = 20
    )]
    pub connects_per_minute: u32,

    /// All connections from one address together may send this many times what one client
    /// may (--rate-burst, --rate-per-sec); the limit survives reconnecting.
    #[arg(
        long,
        env = "CHAT_ADDRESS_RATE_FACTOR",
        value_name = "N",
        default_value_t = 3
    )]
    pub address_rate_factor: u32,

    /// Accounts one address may register per hour.
    #[arg(
        long,
        env = "CHAT_REGISTRATIONS_PER_HOUR",
        value_name = "N",
        default_value_t = 3
    )]
    pub registrations_per_hour: u32,

    /// Rooms one address may create per hour.
    #[arg(
        long,
        env = "CHAT_ROOMS_PER_HOUR",
        value_name = "N",
        default_value_t = 10
    )]
    pub rooms_per_hour: u32,

    /// Messages with an expiry (/temp) the server follows at once; one more is refused until
    /// some have expired.
    #[arg(
        long,
        env = "CHAT_MAX_EXPIRING",
        value_name = "N",
        default_value_t = 100_000
    )]
    pub max_expiring: usize,

    /// Messages with an expiry that one address may have waiting at once (counted until they
    /// expire).
    #[arg(
        long,
        env = "CHAT_MAX_EXPIRING_PER_ADDRESS",
        value_name = "N",
        default_value_t = 1_000
    )]
    pub max_expiring_per_address: usize,

    /// Rooms one guest (one connection without an account) may create.
    #[arg(
        long,
        env = "CHAT_ROOMS_PER_GUEST",
        value_name = "N",
        default_value_t = 3
    )]
    pub rooms_per_guest: u32,

    /// Places among --max-clients that guests cannot take, kept for accounts [default: a
    /// tenth of --max-clients].
    #[arg(long, env = "CHAT_ACCOUNT_SLOTS", value_name = "N")]
    pub account_slots: Option<usize>,

    /// Addresses or networks not subject to the limits per address (repeatable or
    /// comma-separated, e.g. a relay on another machine: 192.0.2.7 or 2001:db8::/64);
    /// `none` counts every address.
    #[arg(
        long,
        env = "CHAT_EXEMPT",
        value_delimiter = ',',
        value_name = "NET",
        default_value = "127.0.0.0/8,::1"
    )]
    pub exempt: Vec<String>,

    /// Days a message is kept; older ones are deleted, private ones kept for offline
    /// accounts included. 0 keeps messages forever.
    #[arg(
        long,
        env = "CHAT_RETAIN_DAYS",
        value_name = "DAYS",
        default_value_t = 365
    )]
    pub retain_days: u32,

    /// Messages kept per room, and per registered user for private messages; older ones are
    /// deleted. 0: no limit.
    #[arg(
        long,
        env = "CHAT_RETAIN_MESSAGES_PER_ROOM",
        value_name = "N",
        default_value_t = 20_000
    )]
    pub retain_messages_per_room: u32,

    /// Megabytes of message text kept in all; the oldest messages go first. 0: no limit.
    #[arg(
        long,
        env = "CHAT_RETAIN_MB",
        value_name = "MB",
        default_value_t = 1024
    )]
    pub retain_mb: u64,

    /// Days an empty room that no account has joined is kept after its last message or
    /// visit (rooms guests created: --guest-room-expiry-hours). 0: never expire.
    #[arg(
        long,
        env = "CHAT_ROOM_EXPIRY_DAYS",
        value_name = "DAYS",
        default_value_t = 30
    )]
    pub room_expiry_days: u32,

    /// Hours an empty room a guest created, that no account has joined, is kept after its
    /// last message or visit. 0: as --room-expiry-days.
    #[arg(
        long,
        env = "CHAT_GUEST_ROOM_EXPIRY_HOURS",
        value_name = "HOURS",
        default_value_t = 24
    )]
    pub guest_room_expiry_hours: u32,
}

impl LimitArgs {
    /// The limits per address and account, for a server of `max_clients` connections.
    pub fn limits(&self, max_clients: usize) -> anyhow::Result<LimitsConfig> {
        let mut exempt = Vec::new();
        for net in &self.exempt {
            let net = net.trim();
            if net.is_empty() || net.eq_ignore_ascii_case("none") {
                continue;
            }
            let parsed = net
                .parse::<ipnet::IpNet>()
                .or_else(|_| net.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
            match parsed {
                Ok(net) => exempt.push(net),
                Err(_) => anyhow::bail!(
                    "--exempt {net:?}: expected an address or a network such as 192.0.2.7, \
                     10.0.0.0/8 or 2001:db8::/64"
                ),
            }
        }
        Ok(LimitsConfig {
            per_address: self.max_per_address.max(1),
            handshakes_per_address: self.max_handshakes_per_address.max(1),
            connects_per_minute: self.connects_per_minute.max(1),
            address_rate_factor: self.address_rate_factor.max(1),
            registrations_per_hour: self.registrations_per_hour,
            rooms_per_hour: self.rooms_per_hour,
            rooms_per_guest: self.rooms_per_guest,
            expiring: self.max_expiring,
            expiring_per_address: self.max_expiring_per_address,
            account_slots: self
                .account_slots
                .map(|n| n.min(max_clients.saturating_sub(1))),
            exempt,
        })
    }

    /// How long messages and rooms are kept.
    pub fn retention(&self) -> Retention {
        let days = |d: u32| (d > 0).then(|| Duration::from_secs(u64::from(d) * 86_400));
        let room_expiry = days(self.room_expiry_days);
        Retention {
            max_age: days(self.retain_days),
            per_room: (self.retain_messages_per_room > 0).then_some(self.retain_messages_per_room),
            max_bytes: (self.retain_mb > 0).then(|| self.retain_mb.saturating_mul(1 << 20)),
            room_expiry,
            guest_room_expiry: match self.guest_room_expiry_hours {
                0 => room_expiry,
                h => Some(Duration::from_secs(u64::from(h) * 3600)),
            },
            ..Retention::default()
        }
    }
}
