//! Receiving a file: chunks written to a hidden temporary file in the download folder and
//! hashed as they come, each acknowledged; the file gets its final name only once complete
//! and verified. Whatever else happens, the temporary file is removed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chat_core::files::{Sha256, place};
use chat_core::protocol::{ClientFrame, FileInfo};
use tokio::sync::mpsc;

use super::send::rate;
use super::{FileCmd, FileEvent, Links, PROGRESS_EVERY, Progress};

/// A temporary file, removed when dropped unless it was given its final name.
#[derive(Debug)]
struct Part {
    path: PathBuf,
    placed: bool,
}

impl Drop for Part {
    fn drop(&mut self) {
        if !self.placed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// An accepted transfer being received, on its own blocking thread.
#[derive(Debug)]
pub(super) struct Receiving {
    info: FileInfo,
    dir: PathBuf,
    links: Links,
    chunks: mpsc::UnboundedReceiver<Vec<u8>>,
}

impl Receiving {
    pub(super) fn new(
        info: FileInfo,
        dir: PathBuf,
        links: Links,
        chunks: mpsc::UnboundedReceiver<Vec<u8>>,
    ) -> Self {
        Receiving {
            info,
            dir,
            links,
            chunks,
        }
    }

    pub(super) fn run(mut self) {
        let id = self.info.id;
        if let Err(reason) = self.receive()
            && !self.links.stopped()
        {
            self.links.send(ClientFrame::FileCancel {
                id,
                reason: reason.clone(),
            });
            self.links.event(FileEvent::Failed {
                id: Some(id),
                outgoing: false,
                peer: self.info.from.clone(),
                name: self.info.name.clone(),
                reason,
            });
        }
        let stop = self.links.stop.clone();
        let _ = self.links.agent.send(FileCmd::Finished(id, stop));
    }

    fn receive(&mut self) -> Result<(), String> {
        let info = &self.info;
        let dir = &self.dir;
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let (mut part, mut file) = open_part(dir, info.id)?;
        let mut progress = Progress {
            id: info.id,
            outgoing: false,
            peer: info.from.clone(),
            name: info.name.clone(),
            done: 0,
            size: info.size,
            rate: 0.0,
        };
        self.links.event(FileEvent::Progress(progress.clone()));
        let mut hash = Sha256::default();
        let start = Instant::now();
        let mut reported = start;
        while progress.done < info.size {
            let Some(data) = self.chunks.blocking_recv() else {
                return Ok(());
            };
            if self.links.stopped() {
                return Ok(());
            }
            if progress.done + data.len() as u64 > info.size {
                return Err("more data came than the offered size".into());
            }
            file.write_all(&data)
                .map_err(|e| format!("cannot write {}: {e}", part.path.display()))?;
            hash.update(&data);
            progress.done += data.len() as u64;
            let ack = ClientFrame::FileAck {
                id: info.id,
                received: progress.done,
            };
            if !self.links.send(ack) {
                return Ok(());
            }
            if reported.elapsed() >= PROGRESS_EVERY {
                reported = Instant::now();
                progress.rate = rate(progress.done, start);
                self.links.event(FileEvent::Progress(progress.clone()));
            }
        }
        file.flush()
            .and_then(|()| file.get_ref().sync_all())
            .map_err(|e| format!("cannot write {}: {e}", part.path.display()))?;
        drop(file);
        if hash.finish() != info.sha256 {
            return Err("the file arrived damaged (its SHA-256 does not match the offer's)".into());
        }
        if self.links.stopped() {
            return Ok(());
        }
        let path = place(&part.path, dir, &info.name)
            .map_err(|e| format!("cannot save the file in {}: {e}", dir.display()))?;
        part.placed = true;
        if !self.links.send(ClientFrame::FileDone { id: info.id }) {
            // Cancelled (or the connection lost) while it was being saved: the file is not
            // kept, as the user is told.
            let _ = std::fs::remove_file(&path);
            return Ok(());
        }
        progress.rate = rate(progress.done, start);
        self.links.event(FileEvent::Done {
            progress,
            path: Some(path),
        });
        Ok(())
    }
}

/// Creates the hidden temporary file for transfer `id` in `dir`.
fn open_part(dir: &Path, id: u64) -> Result<(Part, std::io::BufWriter<std::fs::File>), String> {
    for _ in 0..16 {
        let path = dir.join(format!(".chat-{id}-{:08x}.part", fastrand::u32(..)));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => {
                let part = Part {
                    path,
                    placed: false,
                };
                return Ok((part, std::io::BufWriter::with_capacity(256 * 1024, f)));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("cannot create a file in {}: {e}", dir.display())),
        }
    }
    Err(format!("cannot create a file in {}", dir.display()))
}
