//! The relay's connection log: one JSON line per guest connection, written when it ends.

use std::fs::File;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Records that may wait for the disk; beyond that they are dropped (and reported).
const LOG_QUEUE: usize = 16 * 1024;

/// One connection, as logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogRecord {
    /// When the connection was accepted.
    #[serde(serialize_with = "rfc3339")]
    pub ts: DateTime<Utc>,
    /// The guest's address.
    pub client: SocketAddr,
    /// The nickname the guest asked for.
    pub requested: Option<String>,
    /// The nickname sent to the server (`*` added).
    pub nick: Option<String>,
    /// The nickname the server gave (a number is added when taken).
    pub server_nick: Option<String>,
    /// Bytes forwarded from the guest to the server (after its `Hello`).
    pub bytes_from_client: u64,
    /// Bytes forwarded from the server to the guest.
    pub bytes_to_client: u64,
    /// How long the connection lasted.
    pub duration_ms: u64,
    /// How it ended: `closed`, `refused: ...`, `refused by the server: ...`,
    /// `connection error: ...`, `closed before Hello`, `relay shutting down`.
    pub end: String,
}

impl LogRecord {
    pub(crate) fn new(client: SocketAddr, started: Instant, end: String) -> Self {
        let elapsed = started.elapsed();
        LogRecord {
            ts: Utc::now() - chrono::Duration::from_std(elapsed).unwrap_or_default(),
            client,
            requested: None,
            nick: None,
            server_nick: None,
            bytes_from_client: 0,
            bytes_to_client: 0,
            duration_ms: elapsed.as_millis() as u64,
            end,
        }
    }
}

fn rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// Hands records to the writer without waiting.
#[derive(Debug, Clone)]
pub(crate) struct LogSender(mpsc::Sender<Box<LogRecord>>);

impl LogSender {
    pub(crate) fn send(&self, record: LogRecord) {
        if self.0.try_send(Box::new(record)).is_err() {
            tracing::warn!("relay log: the disk is not keeping up; a record was dropped");
        }
    }
}

pub(crate) fn open(path: &Path) -> std::io::Result<File> {
    chat_service::jsonl::open(path)
}

pub(crate) fn spawn(
    file: File,
    path: &Path,
    reopen: chat_service::jsonl::Reopen,
) -> (LogSender, JoinHandle<()>) {
    let (tx, handle) =
        chat_service::jsonl::spawn(file, path.to_owned(), LOG_QUEUE, "relay log", reopen);
    (LogSender(tx), handle)
}
