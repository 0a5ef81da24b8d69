//! JSON Lines log files (the server's message log, the relay's connection log), appended by a
//! dedicated blocking thread.
//!
//! Records are handed over through a bounded channel without waiting (`try_send` on the
//! returned sender), so a slow disk can delay a log but never the service; when the queue is
//! full the caller drops (and counts) the record rather than growing memory without bound. The
//! writer takes every record waiting, writes them through one buffer and flushes once per
//! batch: under load a flush covers many records, when idle each record reaches the file at
//! once. When every sender is gone the writer drains the channel, flushes, and ends.
//!
//! After a [`Reopen::request`] (the services make one at SIGHUP) the writer flushes, closes
//! the file and opens its path again before the next record, so that logrotate can rename the
//! file and have the next records go to a new one, without `copytruncate` (which loses the
//! lines written between the copy and the truncation).

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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

/// Asks a log's writer to open its file again (after logrotate renamed it).
#[derive(Debug, Clone, Default)]
pub struct Reopen(Arc<AtomicBool>);

impl Reopen {
    /// The file is closed and opened again before the next record is written.
    pub fn request(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn take(&self) -> bool {
        self.0.swap(false, Ordering::AcqRel)
    }
}

/// Starts the writer on an opened file; up to `queue` records may wait for the disk. `what`
/// names the log in error messages; `reopen` asks it to open the path again. The returned
/// handle resolves once every sender has been dropped and everything was written and flushed.
pub fn spawn<T, U>(
    file: File,
    path: PathBuf,
    queue: usize,
    what: &'static str,
    reopen: Reopen,
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
            if reopen.take() {
                if let Err(e) = out.flush() {
                    tracing::error!("cannot flush the {what} {}: {e}", path.display());
                }
                match open(&path) {
                    Ok(file) => {
                        out = BufWriter::with_capacity(64 * 1024, file);
                        tracing::info!("{what} {} reopened", path.display());
                    }
                    Err(e) => tracing::error!(
                        "cannot reopen the {what} {}, writing on to the file open: {e}",
                        path.display()
                    ),
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn after_a_reopen_records_go_to_a_new_file_at_the_same_path() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("log.jsonl");
        let reopen = Reopen::default();
        let (tx, task) = spawn::<Box<u32>, u32>(
            open(&path).expect("open"),
            path.clone(),
            16,
            "log",
            reopen.clone(),
        );
        tx.send(Box::new(1)).await.expect("send");
        // Wait until the first record is on disk, then rotate as logrotate does.
        while std::fs::read_to_string(&path)
            .unwrap_or_default()
            .is_empty()
        {
            tokio::task::yield_now().await;
        }
        let rotated = dir.path().join("log.jsonl.1");
        std::fs::rename(&path, &rotated).expect("rename");
        reopen.request();
        tx.send(Box::new(2)).await.expect("send");
        drop(tx);
        task.await.expect("writer");
        assert_eq!(std::fs::read_to_string(&rotated).expect("rotated"), "1\n");
        assert_eq!(std::fs::read_to_string(&path).expect("new"), "2\n");
    }
}
