//! The message log: a JSON Lines file of [`crate::event::Event`] records (see
//! [`chat_service::jsonl`] for how it is written).

use std::fs::File;
use std::path::PathBuf;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::event::SharedEvent;

pub use chat_service::jsonl::{Reopen, open};

/// Records that may wait for the disk.
pub const LOG_QUEUE: usize = 64 * 1024;

/// Sends records to the log writer.
pub type LogSender = mpsc::Sender<SharedEvent>;

/// Starts the writer on an opened file; `reopen` asks it to open the path again. The returned
/// handle resolves once every sender has been dropped and everything was written and flushed.
pub fn spawn(file: File, path: PathBuf, reopen: Reopen) -> (LogSender, JoinHandle<()>) {
    chat_service::jsonl::spawn(file, path, LOG_QUEUE, "message log", reopen)
}
