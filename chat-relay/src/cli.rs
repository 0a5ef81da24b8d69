//! The command line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chat_service::{Secret, parse_listen_all};
use clap::Parser;

use crate::{Config, DEFAULT_PORT, RelayTls};
use chat_service::console::LogFormat;
use chat_service::tls::{CertSource, PlaintextFrom, certificate_names};

/// chat-relay: lets guests into a chat server. Guests connect here instead of to the server
/// and appear to everyone as *nick; everything else passes through unchanged.
///
/// The server must be started with the same secret (--relay-secret or CHAT_RELAY_SECRET on
/// both sides). Prefer the environment variable or --relay-secret-file: command lines are
/// visible to other users of the machine.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
pub struct Cli {
    /// What to do instead of relaying.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Configuration file (TOML, one `flag-name = value` per line) [default:
    /// ~/.config/chat-suite/chat-relay.toml, else /etc/chat-suite/chat-relay.toml, if one
    /// exists]. A flag wins over its environment variable, which wins over the file.
    #[arg(long, env = "CHAT_RELAY_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// How the console (standard error) is written: `text`, or `json` (one object per line,
    /// for log collectors).
    #[arg(long, env = "CHAT_RELAY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Address to accept guests on (repeatable): 127.0.0.1, 0.0.0.0, ::, or with a port of its
    /// own ([::1]:4000).
    #[arg(
        long,
        env = "CHAT_RELAY_LISTEN",
        value_delimiter = ',',
        default_value = "127.0.0.1"
    )]
    pub listen: Vec<String>,

    /// Port for every --listen address without one; 0 picks a free port.
    #[arg(long, short, env = "CHAT_RELAY_PORT", default_value_t = DEFAULT_PORT)]
    pub port: u16,

    /// The chat server, host:port.
    #[arg(
        long,
        short,
        env = "CHAT_RELAY_SERVER",
        default_value = "127.0.0.1:12345"
    )]
    pub server: String,

    /// The secret the server expects from relays.
    #[arg(long, env = "CHAT_RELAY_SECRET", hide_env_values = true)]
    pub relay_secret: Option<Secret>,

    /// Read the secret from this file (first line).
    #[arg(long, env = "CHAT_RELAY_SECRET_FILE", conflicts_with = "relay_secret")]
    pub relay_secret_file: Option<PathBuf>,

    /// Guests connected at once, at most; more are told the relay is full.
    #[arg(long, env = "CHAT_RELAY_MAX_CLIENTS", default_value_t = 1024)]
    pub max_clients: usize,

    /// Seconds a guest has to send its Hello (and the server to answer it).
    #[arg(long, env = "CHAT_RELAY_HANDSHAKE_TIMEOUT", default_value_t = 10)]
    pub handshake_timeout: u64,

    /// Seconds allowed for connecting to the server.
    #[arg(long, env = "CHAT_RELAY_CONNECT_TIMEOUT", default_value_t = 10)]
    pub connect_timeout: u64,

    /// Seconds a guest may go without reading anything before it is disconnected.
    #[arg(long, env = "CHAT_RELAY_STALL_TIMEOUT", default_value_t = 60)]
    pub stall_timeout: u64,

    /// Connection log: one JSON line per guest connection (time, address, nickname, bytes
    /// each way, duration, how it ended). Off unless given.
    #[arg(long, env = "CHAT_RELAY_LOG_FILE")]
    pub log_file: Option<PathBuf>,

    /// Seconds between statistics lines in the console; 0 turns them off.
    #[arg(long, env = "CHAT_RELAY_STATS_INTERVAL", default_value_t = 60)]
    pub stats_interval: u64,

    /// The certificate chain guests are presented (PEM) [default: a self-signed certificate
    /// made at first start and kept in the data folder, relay-tls/cert.pem].
    #[arg(
        long,
        env = "CHAT_RELAY_TLS_CERT",
        value_name = "PATH",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// The certificate's private key (PEM, readable by its owner only).
    #[arg(
        long,
        env = "CHAT_RELAY_TLS_KEY",
        value_name = "PATH",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// A host name (or address) the self-signed certificate is for, besides localhost, the
    /// loopback addresses, this machine's name and every --listen address (repeatable).
    #[arg(
        long,
        env = "CHAT_RELAY_TLS_NAME",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub tls_name: Vec<String>,

    /// Where unencrypted guests are served from: `loopback` (this machine only) or `any`
    /// (UNSAFE).
    #[arg(
        long,
        env = "CHAT_RELAY_PLAINTEXT_FROM",
        value_enum,
        value_name = "WHERE",
        default_value_t = PlaintextFrom::Loopback
    )]
    pub plaintext_from: PlaintextFrom,

    /// The chat server's certificate fingerprint (SHA256:...), to trust a self-signed server
    /// on another machine (`chat-server fingerprint` prints it). A server on this machine is
    /// reached without TLS, and a certificate that chains to the web's roots needs no
    /// fingerprint.
    #[arg(
        long,
        env = "CHAT_RELAY_SERVER_FINGERPRINT",
        value_name = "FINGERPRINT"
    )]
    pub server_fingerprint: Option<String>,
}

/// What `chat-relay` does instead of relaying.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    #[command(flatten)]
    #[allow(missing_docs)]
    Print(chat_service::manual::Print),
}

impl Cli {
    /// Resolves the command line into a [`Config`]; a self-signed certificate is kept in
    /// `data_dir` (the temporary folder without one).
    pub fn into_config(self, data_dir: Option<&Path>) -> Result<Config, String> {
        let listen = parse_listen_all(&self.listen, self.port)?;
        let secret = match Secret::resolve(self.relay_secret, self.relay_secret_file.as_deref())? {
            Some(secret) => secret,
            None => {
                return Err(
                    "a relay secret is needed: set CHAT_RELAY_SECRET (the same as the \
                            server's), or use --relay-secret-file or --relay-secret"
                        .to_owned(),
                );
            }
        };
        secret.check_relay_secret()?;
        // host:port, or [IPv6]:port.
        let has_port = self.server.rsplit_once(':').is_some_and(|(host, port)| {
            let bracketed = host.starts_with('[') && host.ends_with(']');
            !host.is_empty() && (bracketed || !host.contains(':')) && port.parse::<u16>().is_ok()
        });
        if !has_port {
            return Err(format!(
                "--server {:?}: expected host:port, such as 127.0.0.1:12345",
                self.server
            ));
        }
        let mut config = Config::new(self.server, secret);
        config.listen = listen;
        config.max_clients = self.max_clients.max(1);
        config.handshake_timeout = Duration::from_secs(self.handshake_timeout.max(1));
        config.connect_timeout = Duration::from_secs(self.connect_timeout.max(1));
        config.stall_timeout = Duration::from_secs(self.stall_timeout.max(1));
        config.log_file = self.log_file;
        config.stats_interval =
            (self.stats_interval > 0).then(|| Duration::from_secs(self.stats_interval));
        let source = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => CertSource::Files { cert, key },
            _ => CertSource::Generated {
                dir: data_dir
                    .map(Path::to_owned)
                    .unwrap_or_else(|| std::env::temp_dir().join("chat-suite"))
                    .join("relay-tls"),
                names: certificate_names(&config.listen, &self.tls_name),
            },
        };
        config.tls = Some(RelayTls {
            source,
            plaintext_from: self.plaintext_from,
        });
        config.server_fingerprint = self.server_fingerprint;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S3CRET: &str = "s3cret-s3cret-s3cret-s3cret-s3cret";
    const HUNTER2: &str = "hunter2-hunter2-hunter2-hunter2-hunter2";

    fn parse(args: &[&str]) -> Result<Config, String> {
        let mut all = vec!["chat-relay"];
        all.extend(args);
        Cli::try_parse_from(all)
            .map_err(|e| e.to_string())?
            .into_config(None)
    }

    #[test]
    fn defaults_and_flags() {
        let c = parse(&["--relay-secret", S3CRET]).expect("config");
        assert_eq!(c.listen, ["127.0.0.1:9999".parse().expect("addr")]);
        assert_eq!(c.server, "127.0.0.1:12345");
        assert_eq!(c.log_file, None);
        let c = parse(&[
            "--relay-secret",
            S3CRET,
            "--listen",
            "0.0.0.0",
            "--listen",
            "[::1]:4000",
            "--port",
            "7000",
            "--server",
            "chat.example:12345",
        ])
        .expect("config");
        assert_eq!(
            c.listen,
            [
                "0.0.0.0:7000".parse().expect("addr"),
                "[::1]:4000".parse().expect("addr")
            ]
        );
        assert_eq!(c.server, "chat.example:12345");
    }

    #[test]
    fn the_secret_is_required_and_never_printed() {
        let e = parse(&[]).expect_err("no secret");
        assert!(e.contains("CHAT_RELAY_SECRET"), "{e}");
        let c = parse(&["--relay-secret", HUNTER2]).expect("config");
        assert!(!format!("{c:?}").contains(HUNTER2));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        std::fs::write(&path, format!("{S3CRET}\nignored\n")).expect("write");
        let c = parse(&["--relay-secret-file", path.to_str().expect("utf-8")]).expect("config");
        assert_eq!(c.secret.expose(), S3CRET);
        // A short secret could be guessed: refused, with how to make a good one.
        let e = parse(&["--relay-secret", "s3cret"]).expect_err("short");
        assert!(
            e.contains("at least 32 bytes") && e.contains("urandom"),
            "{e}"
        );
        for bad in ["nohost", "::1", "host:", ":12345", "host:port"] {
            let e = parse(&["--relay-secret", S3CRET, "--server", bad]).expect_err(bad);
            assert!(e.contains("host:port"), "{e}");
        }
        for good in ["[::1]:12345", "chat.example:12345", "127.0.0.1:1"] {
            parse(&["--relay-secret", S3CRET, "--server", good]).expect(good);
        }
    }
}
