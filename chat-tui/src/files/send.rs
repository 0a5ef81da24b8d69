//! Sending a file: hashing it for the offer, then reading it in chunks that go out while the
//! flow-control window allows.

use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

use chat_core::files::Sha256;
use chat_core::protocol::{ClientFrame, FILE_WINDOW, TransferId};
use tokio::sync::mpsc;

use super::{FileCmd, FileEvent, Links, PROGRESS_EVERY, Prepared, Progress};

/// Reads and hashes the file at `path` (a regular file), for its offer.
pub(super) fn prepare(path: PathBuf) -> Result<Prepared, String> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(&path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a file"));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| format!("{shown} has no file name"))?;
    let mut file = std::fs::File::open(&path).map_err(|e| format!("cannot open {shown}: {e}"))?;
    let mut hash = Sha256::default();
    let mut buf = vec![0; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| format!("cannot read {shown}: {e}"))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        size += n as u64;
    }
    Ok(Prepared {
        path,
        name,
        size,
        sha256: hash.finish(),
    })
}

/// An accepted transfer being sent, on its own blocking thread.
#[derive(Debug)]
pub(super) struct Sending {
    id: TransferId,
    path: PathBuf,
    progress: Progress,
    chunk: usize,
    links: Links,
    acks: mpsc::UnboundedReceiver<u64>,
}

impl Sending {
    pub(super) fn new(
        id: TransferId,
        file: &Prepared,
        to: String,
        chunk: usize,
        links: Links,
        acks: mpsc::UnboundedReceiver<u64>,
    ) -> Self {
        Sending {
            id,
            path: file.path.clone(),
            progress: Progress {
                id,
                outgoing: true,
                peer: to,
                name: file.name.clone(),
                done: 0,
                size: file.size,
                rate: 0.0,
            },
            chunk,
            links,
            acks,
        }
    }

    pub(super) fn run(mut self) {
        let outcome = self.send();
        if let Err(reason) = outcome
            && !self.links.stopped()
        {
            // The other side learns it from the cancel.
            self.links.send(ClientFrame::FileCancel {
                id: self.id,
                reason: reason.clone(),
            });
            self.links.event(FileEvent::Failed {
                id: Some(self.id),
                outgoing: true,
                peer: self.progress.peer.clone(),
                name: self.progress.name.clone(),
                reason,
            });
        }
        let stop = self.links.stop.clone();
        let _ = self.links.agent.send(FileCmd::Finished(self.id, stop));
    }

    /// Sends the whole file, then waits for the recipient's word that it has it, verified.
    /// `Ok` also when the transfer was stopped (whoever stopped it says so).
    fn send(&mut self) -> Result<(), String> {
        let shown = self.path.display().to_string();
        let mut file =
            std::fs::File::open(&self.path).map_err(|e| format!("cannot open {shown}: {e}"))?;
        let size = self.progress.size;
        let (mut sent, mut acked) = (0u64, 0u64);
        let start = Instant::now();
        let mut reported = start;
        let mut buf = vec![0; self.chunk];
        self.links.event(FileEvent::Progress(self.progress.clone()));
        while sent < size {
            while sent - acked >= FILE_WINDOW {
                match self.acks.blocking_recv() {
                    Some(a) => acked = acked.max(a),
                    None => return Ok(()),
                }
            }
            while let Ok(a) = self.acks.try_recv() {
                acked = acked.max(a);
            }
            let want = (size - sent).min(self.chunk as u64) as usize;
            file.read_exact(&mut buf[..want])
                .map_err(|e| format!("cannot read {shown}: {e} (did it change?)"))?;
            let chunk = ClientFrame::FileChunk {
                id: self.id,
                data: buf[..want].to_vec(),
            };
            if !self.links.send(chunk) {
                return Ok(());
            }
            sent += want as u64;
            if reported.elapsed() >= PROGRESS_EVERY {
                reported = Instant::now();
                self.report(acked, start);
            }
        }
        // Everything is out; the recipient verifies it and says so (u64::MAX: done).
        loop {
            match self.acks.blocking_recv() {
                Some(u64::MAX) => break,
                Some(a) => {
                    acked = acked.max(a);
                    if reported.elapsed() >= PROGRESS_EVERY {
                        reported = Instant::now();
                        self.report(acked, start);
                    }
                }
                None => return Ok(()),
            }
        }
        self.progress.done = size;
        self.progress.rate = rate(size, start);
        self.links.event(FileEvent::Done {
            progress: self.progress.clone(),
            path: None,
        });
        Ok(())
    }

    fn report(&mut self, acked: u64, start: Instant) {
        self.progress.done = acked;
        self.progress.rate = rate(acked, start);
        self.links.event(FileEvent::Progress(self.progress.clone()));
    }
}

/// Bytes per second for `bytes` moved since `start`.
pub(super) fn rate(bytes: u64, start: Instant) -> f64 {
    let secs = start.elapsed().as_secs_f64();
    if secs > 0.0 { bytes as f64 / secs } else { 0.0 }
}
