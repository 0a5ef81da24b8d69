//! JSON Lines log files (the server's message log, the relay's connection log), appended by a
//! dedicated blocking thread.
//!
//! Records are handed over through a bounded channel without waiting (`try_send` on the
//! returned sender), so a slow disk can delay a log but never the service; when the queue is
//! full the caller drops (and counts) the record rather than growing memory without bound. The
//! writer takes every record waiting, writes them through one buffer and flushes once per
//! batch: under load a flush covers many records, when idle each record reaches the file at
//! once. When every sender is gone the writer drains the channel, flushes, and ends.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::ops::Deref;
use std::path::{Path, PathBuf};

use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Opens (creating parent folders) a log file for appending. A new file is readable by its
/// owner only (logs hold private messages and addresses).
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

/// Starts the writer on an opened file; up to `queue` records may wait for the disk. `what`
/// names the log in error messages. The returned handle resolves once every sender has been
/// dropped and everything was written and flushed.
pub fn spawn<T, U>(
    file: File,
    path: PathBuf,
    queue: usize,
    what: &'static str,
) -> (mpsc::Sender<T>, JoinHandle<()>)
where
    T: Deref<Target = U> + Send + 'static,
    U: Serialize + ?Sized,
{
    let (tx, mut rx) = mpsc::channel::<T>(queue);
    let handle = tokio::task::spawn_blocking(move || {
        let mut out = BufWriter::with_capacity(64 * 1024, file);
        let mut failed = false;
        while let Some(first) = rx.blocking_recv() {
            let mut write = |ev: &T| -> io::Result<()> {
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
                    tracing::error!("cannot write the {what} {}: {e}", path.display());
                    failed = true;
                }
                Ok(()) if failed => {
                    tracing::info!("writing the {what} {} again", path.display());
                    failed = false;
                }
                _ => {}
            }
        }
        if let Err(e) = out.flush() {
            tracing::error!("cannot flush the {what} {}: {e}", path.display());
        }
    });
    (tx, handle)
}
