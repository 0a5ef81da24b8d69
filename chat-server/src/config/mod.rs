//! Server configuration: the command line (with environment fallbacks) and the resolved
//! [`Config`] that [`crate::Server`] runs with.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chat_core::protocol::DEFAULT_MAX_FRAME;
use clap::Parser;

mod files;
mod limits;
mod tls;

pub use files::{FileArgs, FilesConfig};
pub use limits::LimitArgs;
pub use tls::TlsArgs;

use crate::limits::LimitsConfig;
use crate::ratelimit::RateConfig;
use crate::store::Retention;
use chat_service::console::LogFormat;
use chat_service::tls::CertSource;
pub use chat_service::tls::PlaintextFrom;

/// Default chat port.
pub const DEFAULT_PORT: u16 = 12345;
/// Smallest `--max-frame` accepted.
pub const MIN_FRAME: usize = 8 * 1024;
/// Room a message frame needs besides its text: the largest private-message header (16
/// recipients of 32 four-byte characters, tag, attributes) fits with margin.
pub const FRAME_OVERHEAD: usize = 4 * 1024;

/// Everything the server needs to run. `Config::default()` works out of the box (loopback,
/// port 12345, no log file); the binary fills it from [`Cli`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Addresses to accept chat connections on.
    pub listen: Vec<SocketAddr>,
    /// Message log (JSON Lines); `None` writes no log.
    pub log_file: Option<PathBuf>,
    /// How often counters are printed and logged; `None` never.
    pub stats_interval: Option<Duration>,
    /// Flood control.
    pub rate: RateConfig,
    /// Most simultaneous connections (handshaking ones included).
    pub max_clients: usize,
    /// Secret a relay must present to connect guests; `None` accepts no relay.
    pub relay_secret: Option<Secret>,
    /// Largest frame payload accepted from a client, in bytes.
    pub max_frame: usize,
    /// Largest message text, in bytes.
    pub max_message_len: usize,
    /// Most recipients of one private message.
    pub max_targets: usize,
    /// Bytes that may wait in one client's send queue before it is disconnected.
    pub send_queue_bytes: usize,
    /// Time allowed between connecting and `Hello`.
    pub hello_timeout: Duration,
    /// The browser monitor; `None` runs none (the library default; the binary runs one).
    pub monitor: Option<MonitorConfig>,
    /// Where accounts, rooms and messages are stored.
    pub db: DbLocation,
    /// Messages of a room replayed to whoever enters it.
    pub history_replay: usize,
    /// Whether connections without an account are admitted.
    pub guests: GuestPolicy,
    /// Most rooms (the lobby included); creating more is refused.
    pub max_rooms: usize,
    /// Limits per address and per account.
    pub limits: LimitsConfig,
    /// How long messages and rooms are kept.
    pub retention: Retention,
    /// TLS on the chat port; `None` serves plain TCP only (the library's default: the binary
    /// always serves TLS).
    pub tls: Option<TlsConfig>,
    /// File transfers.
    pub files: FilesConfig,
    /// Treats connections from loopback as if they came from elsewhere, for tests of what
    /// remote clients get (plain TCP refused, say). Not a flag.
    #[doc(hidden)]
    pub loopback_is_remote: bool,
}

/// TLS on the chat port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// The certificate: files, or one made at first start.
    pub source: CertSource,
    /// Where unencrypted connections are still served from.
    pub plaintext_from: PlaintextFrom,
}

/// What `chat-server` does instead of serving.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// Prints the SHA-256 fingerprint of the certificate the chat port presents (made first,
    /// if it is to be made and does not exist yet), and exits.
    Fingerprint,
    #[command(flatten)]
    #[allow(missing_docs)]
    Print(chat_service::manual::Print),
    /// Administration at the console, on the database, while the server runs or not: backups,
    /// accounts, rooms, bans and server operators (a running server applies the changes
    /// within seconds).
    Admin {
        #[command(subcommand)]
        #[allow(missing_docs)]
        command: AdminCommand,
    },
}

/// `chat-server admin ...`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum AdminCommand {
    /// Copies the database (the one --db names, or the data folder's) to a new file, while the
    /// server runs or not: a consistent snapshot, checked, readable by its owner only.
    Backup {
        /// The copy, a file that does not exist yet.
        path: PathBuf,
    },
    /// Lists the accounts.
    Accounts,
    /// Shows an account: when it was registered, its rooms, whether it is an operator or
    /// banned, how many private messages wait for it.
    Account {
        /// The account's nickname.
        nick: String,
    },
    /// Deletes an account (its messages stay in the history); someone online logged in to it
    /// is disconnected.
    DeleteAccount {
        /// The account's nickname.
        nick: String,
    },
    /// Gives an account a new password: a random one, printed, or one read from standard input.
    ResetPassword {
        /// The account's nickname.
        nick: String,
        /// Read the new password from the first line of standard input instead.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Lists the stored rooms.
    Rooms,
    /// Deletes a room and its messages; its members are put out of it.
    DeleteRoom {
        /// The room (with or without #).
        room: String,
    },
    /// Lists the bans in force.
    Bans,
    /// Lifts a ban: an address (203.0.113.7, 2001:db8::/64), `account:NAME`, or an account's
    /// nickname.
    Unban {
        /// What is banned, as `bans` lists it or shorter.
        target: String,
    },
    /// Makes an account a server operator.
    Op {
        /// The account's nickname.
        nick: String,
    },
    /// Takes an account's server operator role back.
    Deop {
        /// The account's nickname.
        nick: String,
    },
}

/// Where the store keeps its database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbLocation {
    /// In memory: nothing survives a restart (the library default, for tests).
    Memory,
    /// A SQLite file (created if missing).
    File(PathBuf),
}

impl DbLocation {
    /// `:memory:` is the in-memory database; anything else a file.
    pub fn parse(s: &str) -> DbLocation {
        if s == ":memory:" {
            DbLocation::Memory
        } else {
            DbLocation::File(PathBuf::from(s))
        }
    }
}

impl std::fmt::Display for DbLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbLocation::Memory => f.write_str(":memory: (nothing is kept after the server stops)"),
            DbLocation::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Whether guests (connections without an account) are admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum GuestPolicy {
    /// Anyone may connect; a password logs in to an account.
    #[default]
    Allow,
    /// Only accounts: a connection must give a password. A password for a nickname nobody has
    /// registered creates the account.
    Deny,
}

/// Default limit on the number of rooms.
pub const DEFAULT_MAX_ROOMS: usize = 1000;

/// Default number of messages replayed when a room is entered.
pub const DEFAULT_HISTORY_REPLAY: usize = 50;
/// Most messages replayed or returned in one history page.
pub const MAX_HISTORY_PAGE: usize = 500;

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec![SocketAddr::new(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                DEFAULT_PORT,
            )],
            log_file: None,
            stats_interval: Some(Duration::from_secs(60)),
            rate: RateConfig::default(),
            max_clients: 1024,
            relay_secret: None,
            max_frame: DEFAULT_MAX_FRAME,
            max_message_len: 4096,
            max_targets: 16,
            send_queue_bytes: 1024 * 1024,
            hello_timeout: Duration::from_secs(10),
            monitor: None,
            db: DbLocation::Memory,
            history_replay: DEFAULT_HISTORY_REPLAY,
            guests: GuestPolicy::Allow,
            max_rooms: DEFAULT_MAX_ROOMS,
            limits: LimitsConfig::default(),
            retention: Retention::default(),
            tls: None,
            files: FilesConfig::default(),
            loopback_is_remote: false,
        }
    }
}

/// chat-server: the chat suite's server.
///
/// Every option can also be set through the environment variable named in brackets, or in the
/// configuration file under its long name (`max-clients = 2000`). A flag wins over its
/// environment variable, which wins over the file, which wins over the default.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Cli {
    /// What to do instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Configuration file (TOML, one `flag-name = value` per line) [default:
    /// ~/.config/chat-suite/chat-server.toml, else /etc/chat-suite/chat-server.toml, if one
    /// exists].
    #[arg(long, env = "CHAT_SERVER_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// How the console (standard error) is written: `text`, or `json` (one object per line,
    /// for log collectors).
    #[arg(long, env = "CHAT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Address to listen on for chat; repeat for several (IPv4 or IPv6, optionally with
    /// `:port`, e.g. `--listen 0.0.0.0 --listen ::`).
    #[arg(
        long,
        env = "CHAT_LISTEN",
        value_delimiter = ',',
        default_value = "127.0.0.1"
    )]
    pub listen: Vec<String>,

    /// Chat port, used for every --listen address without its own port. 0 picks a free port.
    #[arg(long, short, env = "CHAT_PORT", default_value_t = DEFAULT_PORT)]
    pub port: u16,

    /// Port of the browser monitor (the page, /stats, /metrics, and the feed at /ws).
    /// 0 picks a free port.
    #[arg(long, env = "CHAT_HTTP_PORT", default_value_t = 8000)]
    pub http_port: u16,

    /// Port of the monitor's WebSocket-only feed. 0 picks a free port.
    #[arg(long, env = "CHAT_WS_PORT", default_value_t = 8765)]
    pub ws_port: u16,

    /// Address the monitor listens on. It shows private messages: it stays on 127.0.0.1
    /// unless this opens it wider (0.0.0.0, ::), whatever --listen says.
    #[arg(long, env = "CHAT_MONITOR_LISTEN", default_value = "127.0.0.1")]
    pub monitor_listen: std::net::IpAddr,

    /// The monitor's access token [default: a random one, made the first time and kept in
    /// the data folder as monitor-token; printed at start as a URL].
    #[arg(long, env = "CHAT_MONITOR_TOKEN", hide_env_values = true)]
    pub monitor_token: Option<Secret>,

    /// A token that reads the monitor's /metrics and nothing else, for Prometheus (which then
    /// never holds the token that shows private messages) [default: none; /metrics needs the
    /// monitor's token].
    #[arg(long, env = "CHAT_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<Secret>,

    /// Records a new monitor viewer receives before the live feed.
    #[arg(long, env = "CHAT_MONITOR_BACKLOG", default_value_t = 200)]
    pub monitor_backlog: usize,

    /// Run no monitor (no HTTP or WebSocket listener).
    #[arg(long, env = "CHAT_NO_MONITOR")]
    pub no_monitor: bool,

    /// Message log file (JSON Lines) [default: messages.jsonl in the data folder, e.g.
    /// ~/.local/share/chat-suite/messages.jsonl].
    #[arg(long, env = "CHAT_LOG_FILE", conflicts_with = "no_log_file")]
    pub log_file: Option<PathBuf>,

    /// Write no message log.
    #[arg(long, env = "CHAT_NO_LOG_FILE")]
    pub no_log_file: bool,

    /// Seconds between statistics lines in the console and the log; 0 turns them off.
    #[arg(long, env = "CHAT_STATS_INTERVAL", default_value_t = 60)]
    pub stats_interval: u64,

    /// Messages a client may send back to back before the rate limit applies.
    #[arg(long, env = "CHAT_RATE_BURST", default_value_t = 10)]
    pub rate_burst: u32,

    /// Sustained messages per second allowed per client after the burst.
    #[arg(long, env = "CHAT_RATE_PER_SEC", default_value_t = 2.0)]
    pub rate_per_sec: f64,

    /// Seconds a client stays muted after exceeding the rate limit.
    #[arg(long, env = "CHAT_RATE_MUTE", default_value_t = 5)]
    pub rate_mute: u64,

    /// Messages refused while muted before a client is disconnected for flooding.
    #[arg(long, env = "CHAT_FLOOD_KICK_AFTER", default_value_t = 20)]
    pub flood_kick_after: u32,

    /// Most simultaneous connections.
    #[arg(long, env = "CHAT_MAX_CLIENTS", default_value_t = 1024)]
    pub max_clients: usize,

    /// Secret that relays must present to connect `*` guests. Prefer the environment variable
    /// or --relay-secret-file: command lines are visible to other users. No secret, no relays.
    #[arg(long, env = "CHAT_RELAY_SECRET", hide_env_values = true)]
    pub relay_secret: Option<Secret>,

    /// Read the relay secret from this file (first line).
    #[arg(long, env = "CHAT_RELAY_SECRET_FILE", conflicts_with = "relay_secret")]
    pub relay_secret_file: Option<PathBuf>,

    /// Largest frame accepted from a client, in bytes.
    #[arg(long, env = "CHAT_MAX_FRAME", default_value_t = DEFAULT_MAX_FRAME)]
    pub max_frame: usize,

    /// Largest message text, in bytes.
    #[arg(long, env = "CHAT_MAX_MESSAGE_LEN", default_value_t = 4096)]
    pub max_message_len: usize,

    /// Bytes that may wait in one client's send queue; a client that falls further behind is
    /// disconnected ("send queue exceeded").
    #[arg(long, env = "CHAT_SEND_QUEUE_BYTES", default_value_t = 1024 * 1024)]
    pub send_queue_bytes: usize,

    /// Seconds a new connection has to send its Hello.
    #[arg(long, env = "CHAT_HELLO_TIMEOUT", default_value_t = 10)]
    pub hello_timeout: u64,

    /// Database of accounts, rooms and message history (SQLite, created if missing)
    /// [default: chat.db in the data folder, e.g. ~/.local/share/chat-suite/chat.db].
    /// `:memory:` keeps everything in memory only.
    #[arg(long, env = "CHAT_DB", value_name = "PATH")]
    pub db: Option<String>,

    /// Messages of a room replayed to whoever enters it (at most 500).
    #[arg(long, env = "CHAT_HISTORY", value_name = "N", default_value_t = DEFAULT_HISTORY_REPLAY)]
    pub history: usize,

    /// Whether people without an account may connect.
    #[arg(long, env = "CHAT_GUESTS", value_enum, default_value_t = GuestPolicy::Allow)]
    pub guests: GuestPolicy,

    /// Most rooms, the lobby included (every Welcome lists them); when full, the empty room
    /// unused longest that no account has joined makes way for a new one.
    #[arg(long, env = "CHAT_MAX_ROOMS", value_name = "N", default_value_t = DEFAULT_MAX_ROOMS)]
    pub max_rooms: usize,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub limits: LimitArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub tls: TlsArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub files: FileArgs,
}

impl Cli {
    /// Resolves the command line into a [`Config`]. The message log and the database go into
    /// `data_dir` unless flags say otherwise; without a data folder the database is kept in
    /// memory.
    pub fn into_config(self, data_dir: Option<&Path>) -> anyhow::Result<Config> {
        let default_log = data_dir.map(|d| d.join("messages.jsonl"));
        let listen = parse_listen_all(&self.listen, self.port).map_err(anyhow::Error::msg)?;
        let relay_secret =
            Secret::resolve(self.relay_secret.clone(), self.relay_secret_file.as_deref())
                .map_err(anyhow::Error::msg)?;
        for (flag, token) in [
            ("monitor", &self.monitor_token),
            ("metrics", &self.metrics_token),
        ] {
            if let Some(t) = token {
                let t = t.expose();
                let url_safe = t
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'));
                if t.len() < 16 || !url_safe {
                    anyhow::bail!(
                        "the {flag} token must be at least 16 characters of A-Z, a-z, 0-9, '-', \
                         '_', '.' or '~' (it goes into a URL)"
                    );
                }
            }
        }
        if let (Some(m), Some(t)) = (&self.monitor_token, &self.metrics_token)
            && m.expose() == t.expose()
        {
            anyhow::bail!("--metrics-token must differ from --monitor-token");
        }
        if let Some(secret) = &relay_secret {
            secret.check_relay_secret().map_err(anyhow::Error::msg)?;
        }
        if self.max_frame < MIN_FRAME || self.max_frame > u32::MAX as usize {
            anyhow::bail!("--max-frame must be between {MIN_FRAME} and {}", u32::MAX);
        }
        let text_room = self.max_frame - FRAME_OVERHEAD;
        if self.max_message_len == 0 || self.max_message_len > text_room {
            anyhow::bail!(
                "--max-message-len must be between 1 and --max-frame minus {FRAME_OVERHEAD} \
                 ({text_room})"
            );
        }
        if self.history > MAX_HISTORY_PAGE {
            anyhow::bail!("--history must be at most {MAX_HISTORY_PAGE}");
        }
        let db = match (&self.db, data_dir) {
            (Some(s), _) => DbLocation::parse(s),
            (None, Some(dir)) => DbLocation::File(dir.join("chat.db")),
            (None, None) => DbLocation::Memory,
        };
        let log_file = if self.no_log_file {
            None
        } else {
            self.log_file.or(default_log)
        };
        let tls = Some(self.tls.config(data_dir, &listen));
        Ok(Config {
            listen,
            log_file,
            stats_interval: (self.stats_interval > 0)
                .then(|| Duration::from_secs(self.stats_interval)),
            rate: RateConfig {
                burst: self.rate_burst,
                per_sec: self.rate_per_sec,
                mute: Duration::from_secs(self.rate_mute),
                kick_after: self.flood_kick_after.max(1),
            },
            max_clients: self.max_clients.max(1),
            relay_secret,
            max_frame: self.max_frame,
            max_message_len: self.max_message_len,
            max_targets: Config::default().max_targets,
            send_queue_bytes: self.send_queue_bytes.max(self.max_frame + 1024),
            hello_timeout: Duration::from_secs(self.hello_timeout.max(1)),
            monitor: (!self.no_monitor).then(|| MonitorConfig {
                listen: self.monitor_listen,
                http_port: self.http_port,
                ws_port: Some(self.ws_port),
                token: self.monitor_token.clone(),
                metrics_token: self.metrics_token.clone(),
                backlog: self.monitor_backlog,
                ..MonitorConfig::default()
            }),
            db,
            history_replay: self.history,
            guests: self.guests,
            max_rooms: self.max_rooms.max(1),
            limits: self.limits.limits(self.max_clients.max(1))?,
            retention: self.limits.retention(),
            tls,
            files: self.files.config()?,
            loopback_is_remote: false,
        })
    }
}

pub use chat_service::{Secret, parse_listen, parse_listen_all};

use crate::monitor::MonitorConfig;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_tokens_must_be_long_and_url_safe() {
        for bad in [
            "",
            "short",
            "has spaces in it here",
            "percent%2Fencoded-token",
        ] {
            let cli = Cli::try_parse_from(["chat-server", "--monitor-token", bad]).expect("parse");
            assert!(cli.into_config(None).is_err(), "{bad:?} accepted");
        }
        let cli = Cli::try_parse_from(["chat-server", "--monitor-token", "0123456789abcdef-_.~"])
            .expect("parse");
        let monitor = cli
            .into_config(None)
            .expect("config")
            .monitor
            .expect("monitor");
        assert_eq!(
            monitor.token.as_ref().map(Secret::expose),
            Some("0123456789abcdef-_.~")
        );
        let cli = Cli::try_parse_from(["chat-server", "--no-monitor"]).expect("parse");
        assert!(cli.into_config(None).expect("config").monitor.is_none());
    }

    #[test]
    fn defaults_from_an_empty_command_line() {
        let cli = Cli::try_parse_from(["chat-server"]).expect("parse");
        let cfg = cli.into_config(Some(Path::new("data"))).expect("config");
        assert_eq!(cfg.listen, Config::default().listen);
        assert_eq!(cfg.log_file, Some(PathBuf::from("data/messages.jsonl")));
        assert_eq!(cfg.db, DbLocation::File(PathBuf::from("data/chat.db")));
        assert_eq!(cfg.history_replay, 50);
        assert_eq!(cfg.guests, GuestPolicy::Allow);
        assert_eq!(cfg.rate, RateConfig::default());
        assert_eq!(cfg.stats_interval, Some(Duration::from_secs(60)));
        assert_eq!(cfg.relay_secret, None);
    }

    #[test]
    fn the_relay_secret_never_shows_in_debug_output() {
        let secret = "hunter2-hunter2-hunter2-hunter2-hunter2";
        let cli = Cli::try_parse_from(["chat-server", "--relay-secret", secret]).expect("parse");
        assert!(!format!("{cli:?}").contains("hunter2"));
        let cfg = cli.into_config(None).expect("config");
        assert!(!format!("{cfg:?}").contains("hunter2"));
        assert_eq!(cfg.relay_secret.as_ref().map(Secret::expose), Some(secret));
        // A short one could be guessed: refused, with how to make a good one.
        let cli = Cli::try_parse_from(["chat-server", "--relay-secret", "hunter2"]).expect("parse");
        let e = cli.into_config(None).expect_err("too short").to_string();
        assert!(e.contains("at least 32 bytes"), "{e}");
    }

    #[test]
    fn a_tiny_frame_limit_is_an_error_not_a_panic() {
        for small in ["0", "100", "1024"] {
            let cli = Cli::try_parse_from(["chat-server", "--max-frame", small]).expect("parse");
            let err = cli.into_config(None).expect_err("too small");
            assert!(err.to_string().contains("--max-frame"), "{err}");
        }
    }

    #[test]
    fn a_message_limit_that_cannot_fit_in_a_frame_is_an_error() {
        let cli =
            Cli::try_parse_from(["chat-server", "--max-message-len", "65536"]).expect("parse");
        let err = cli.into_config(None).expect_err("too big");
        assert!(err.to_string().contains("--max-message-len"), "{err}");
    }

    #[test]
    fn several_listen_addresses_and_no_log() {
        let cli = Cli::try_parse_from([
            "chat-server",
            "--listen",
            "127.0.0.1",
            "--listen",
            "::1",
            "--port",
            "0",
            "--no-log-file",
        ])
        .expect("parse");
        let cfg = cli.into_config(Some(Path::new("x"))).expect("config");
        assert_eq!(cfg.listen.len(), 2);
        assert_eq!(cfg.log_file, None);
    }
}
