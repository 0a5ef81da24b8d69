//! The flags that bound file transfers: the largest file, transfers at once (on the server,
//! and per sender's address), and the bytes per second one sender may push through.

use std::time::Duration;

use clap::Args;

/// File transfer limits, flattened into [`super::Cli`].
#[derive(Debug, Args)]
pub struct FileArgs {
    /// Largest file that may be offered, in megabytes (10^6 bytes); 0 refuses every file.
    #[arg(
        long,
        env = "CHAT_MAX_FILE_SIZE",
        value_name = "MB",
        default_value_t = 100
    )]
    pub max_file_size: u64,

    /// Bytes per second one sender may push through the server, in megabytes; a faster sender
    /// is slowed down (not refused). 0: no limit.
    #[arg(
        long,
        env = "CHAT_FILE_RATE",
        value_name = "MB",
        default_value_t = 50.0
    )]
    pub file_rate: f64,

    /// File transfers (offered or under way) on the whole server at once; more are refused.
    #[arg(
        long,
        env = "CHAT_MAX_TRANSFERS",
        value_name = "N",
        default_value_t = 64
    )]
    pub max_transfers: usize,

    /// File transfers that senders from one address (an IPv6 host counts by its /64) may
    /// have at once; more are refused.
    #[arg(
        long,
        env = "CHAT_MAX_TRANSFERS_PER_ADDRESS",
        value_name = "N",
        default_value_t = 4
    )]
    pub max_transfers_per_address: usize,
}

impl FileArgs {
    /// The limits these flags set.
    pub fn config(&self) -> anyhow::Result<FilesConfig> {
        if !self.file_rate.is_finite() || self.file_rate < 0.0 {
            anyhow::bail!("--file-rate must be a number of megabytes per second, or 0");
        }
        Ok(FilesConfig {
            max_size: self.max_file_size.saturating_mul(1_000_000),
            rate: (self.file_rate > 0.0).then_some((self.file_rate * 1e6) as u64),
            max_transfers: self.max_transfers,
            per_address: self.max_transfers_per_address,
            ..FilesConfig::default()
        })
    }
}

/// Limits on file transfers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesConfig {
    /// Largest file, in bytes.
    pub max_size: u64,
    /// Bytes per second one connection may send as file chunks; `None`: no limit.
    pub rate: Option<u64>,
    /// Transfers at once on the server.
    pub max_transfers: usize,
    /// Transfers at once from senders at one address.
    pub per_address: usize,
    /// An offer nobody answered, or an accepted transfer that stopped moving, is cancelled
    /// after this long.
    pub idle: Duration,
}

impl Default for FilesConfig {
    fn default() -> Self {
        FilesConfig {
            max_size: 100_000_000,
            rate: Some(50_000_000),
            max_transfers: 64,
            per_address: 4,
            idle: Duration::from_secs(300),
        }
    }
}
