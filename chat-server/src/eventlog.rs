//! The message log: a JSON Lines file, appended by a dedicated blocking thread.
//!
//! The hub hands records over through an unbounded channel (a send never waits), so a slow
//! disk can delay the log but never the chat. The writer takes every record waiting, writes
//! them through one buffer and flushes once per batch: under load a flush covers many records,
//! when idle each record reaches the file at once (well within the one-second promise). When
//! every sender is gone the writer drains the channel, flushes, and ends.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::event::SharedEvent;

/// Sends records to the log writer.
pub type LogSender = mpsc::UnboundedSender<SharedEvent>;

/// Opens (creating parent folders) the log file for appending.
pub fn open(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

/// Starts the writer on an opened file. The returned handle resolves once every sender has
/// been dropped and everything was written and flushed.
pub fn spawn(file: File, path: PathBuf) -> (LogSender, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<SharedEvent>();
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
