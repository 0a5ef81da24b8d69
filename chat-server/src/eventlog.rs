//! The message log: a JSON Lines file, appended by a dedicated blocking thread.
//!
//! The hub hands records over through a bounded channel without waiting (`try_send`), so a
//! slow disk can delay the log but never the chat. If the disk stalls long enough for
//! [`LOG_QUEUE`] records to pile up, further records are dropped, counted in the statistics
//! (`log_dropped`) and reported in the console, rather than growing memory without bound. The writer takes every record waiting, writes
//! them through one buffer and flushes once per batch: under load a flush covers many records,
//! when idle each record reaches the file at once (well within the one-second promise). When
//! every sender is gone the writer drains the channel, flushes, and ends.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::event::SharedEvent;

/// Records that may wait for the disk.
pub const LOG_QUEUE: usize = 64 * 1024;

/// Sends records to the log writer.
pub type LogSender = mpsc::Sender<SharedEvent>;

/// Opens (creating parent folders) the log file for appending. A new file is readable by its
/// owner only: it holds private messages.
pub fn open(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Starts the writer on an opened file. The returned handle resolves once every sender has
/// been dropped and everything was written and flushed.
pub fn spawn(file: File, path: PathBuf) -> (LogSender, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<SharedEvent>(LOG_QUEUE);
    let handle = tokio::task::spawn_blocking(move || {
        let mut out = BufWriter::with_capacity(64 * 1024, file);
        let mut failed = false;
        while let Some(first) = rx.blocking_recv() {
            let mut write = |ev: &SharedEvent| -> io::Result<()> {
                serde_json::to_writer(&mut out, &**ev)?;
                out.write_all(b"\n")
            };
            let mut res = write(&first);
            while let Ok(ev) = rx.try_recv() {
                res = res.and_then(|()| write(&ev));
            }
            res = res.and_then(|()| out.flush());
            match res {
                Err(e) if !failed => {
                    tracing::error!("cannot write the message log {}: {e}", path.display());
                    failed = true;
                }
                Ok(()) if failed => {
                    tracing::info!("writing the message log {} again", path.display());
                    failed = false;
                }
                _ => {}
            }
        }
        if let Err(e) = out.flush() {
            tracing::error!("cannot flush the message log {}: {e}", path.display());
        }
    });
    (tx, handle)
}
