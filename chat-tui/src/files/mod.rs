//! File transfers for both clients: `/file NICK PATH` offers a file, `/accept`, `/decline`
//! and `/cancel` answer and stop. An agent task keeps the transfers; the work on files runs on
//! blocking threads (hashing, reading, writing), one per transfer:
//!
//! - sending: the file is hashed first (the offer carries its SHA-256), then, once accepted,
//!   read in chunks that are sent while the flow-control window allows
//!   ([`FILE_WINDOW`](chat_core::protocol::FILE_WINDOW) beyond what the recipient
//!   acknowledged);
//! - receiving: chunks are written to a hidden temporary file in the download folder and
//!   hashed as they come, each acknowledged; once all are there and the SHA-256 matches, the
//!   file gets its final name (made safe, never overwriting: `report (1).pdf`). A damaged,
//!   cancelled or interrupted transfer leaves nothing behind.
//!
//! The client routes the frames [`is_file_frame`] picks to the agent ([`FileCmd::Frame`]),
//! sends what comes out of its frame channel at a lower priority than chat, and shows its
//! [`FileEvent`]s.

mod recv;
mod send;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chat_core::protocol::{ClientFrame, FILE_CHUNK, FileInfo, ServerFrame, TransferId, sha256_hex};
use tokio::sync::mpsc;

/// Offers carry tags with this bit set, so that an error about one can be told from an error
/// about a message.
pub const FILE_TAG: u64 = 1 << 62;

/// Frames waiting to be sent for transfers (chunks among them): a few, so that a transfer
/// never gets far ahead of the connection.
const FRAMES_QUEUED: usize = 16;

/// How long the end of the client waits for the transfers' threads to clean up.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);

/// Ends every transfer of the agent behind `agent` and waits (briefly) until their threads
/// have removed what they were writing: for the end of the client.
pub async fn shut_down(agent: &mpsc::UnboundedSender<FileCmd>) {
    let (done, finished) = tokio::sync::oneshot::channel();
    if agent.send(FileCmd::Shutdown(done)).is_ok() {
        let _ = tokio::time::timeout(SHUTDOWN_WAIT * 2, finished).await;
    }
}

/// Waits for every one of `threads`.
async fn futures_join(threads: Vec<tokio::task::JoinHandle<()>>) {
    for t in threads {
        let _ = t.await;
    }
}

/// How often a transfer reports its progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// Whether `frame` is for the file agent: a `File*` frame, or an error about an offer.
pub fn is_file_frame(frame: &ServerFrame) -> bool {
    match frame {
        ServerFrame::FileOffered { .. }
        | ServerFrame::FileOffer(_)
        | ServerFrame::FileAnswer { .. }
        | ServerFrame::FileChunk { .. }
        | ServerFrame::FileAck { .. }
        | ServerFrame::FileCancelled { .. }
        | ServerFrame::FileDone { .. } => true,
        ServerFrame::Error(e) => e.tag.is_some_and(|t| t & FILE_TAG != 0),
        ServerFrame::RateLimited { tag, .. } => tag.is_some_and(|t| t & FILE_TAG != 0),
        _ => false,
    }
}

/// What the agent is asked to do.
#[derive(Debug)]
pub enum FileCmd {
    /// Offer the file at `path` to `to`.
    Send { to: String, path: PathBuf },
    /// Accept an offer (`None`: the latest one not answered).
    Accept(Option<TransferId>),
    /// Decline an offer (`None`: the latest one not answered).
    Decline(Option<TransferId>),
    /// Stop a transfer or withdraw an offer (`None`: the latest one).
    Cancel(Option<TransferId>),
    /// A frame [`is_file_frame`] picked.
    Frame(ServerFrame),
    /// Connected to a server taking frames of up to `max_frame` bytes.
    Connected { max_frame: u32 },
    /// The connection is gone: every transfer fails.
    Lost,
    /// A transfer's thread reports (internal).
    Report(FileEvent),
    /// Every transfer ends (the client is closing); `done` is told once their threads have
    /// removed what they were writing.
    Shutdown(tokio::sync::oneshot::Sender<()>),
    /// A file was hashed for an offer (internal).
    Hashed {
        tag: u64,
        result: Result<Prepared, String>,
    },
    /// A transfer's thread is done (internal).
    Finished(TransferId, Arc<AtomicBool>),
}

impl From<crate::command::FileCommand> for FileCmd {
    fn from(command: crate::command::FileCommand) -> Self {
        use crate::command::FileCommand;
        match command {
            FileCommand::Send { to, path } => FileCmd::Send { to, path },
            FileCommand::Accept(id) => FileCmd::Accept(id),
            FileCommand::Decline(id) => FileCmd::Decline(id),
            FileCommand::Cancel(id) => FileCmd::Cancel(id),
        }
    }
}

/// The network side of the agent: where file frames from the server go, and the frames it
/// has for the server (sent at a lower priority than chat).
#[derive(Debug)]
pub struct FileLink {
    /// Commands to the agent.
    pub agent: mpsc::UnboundedSender<FileCmd>,
    /// Frames the agent has for the server.
    pub frames: mpsc::Receiver<ClientFrame>,
}

/// A file ready to be offered.
#[derive(Debug)]
pub struct Prepared {
    path: PathBuf,
    name: String,
    size: u64,
    sha256: [u8; 32],
}

/// A transfer's progress.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// The transfer.
    pub id: TransferId,
    /// Sending (or receiving).
    pub outgoing: bool,
    /// The other side.
    pub peer: String,
    /// The file's name.
    pub name: String,
    /// Bytes moved.
    pub done: u64,
    /// Bytes in all.
    pub size: u64,
    /// Average speed so far, bytes per second.
    pub rate: f64,
}

impl Progress {
    /// Percent done.
    pub fn percent(&self) -> u8 {
        self.done
            .saturating_mul(100)
            .checked_div(self.size)
            .map_or(100, |p| p.min(100) as u8)
    }

    /// Time left at the average speed so far, if it can be told.
    pub fn left(&self) -> Option<Duration> {
        (self.rate > 0.0).then(|| {
            Duration::from_secs_f64((self.size.saturating_sub(self.done)) as f64 / self.rate)
        })
    }
}

/// What the agent reports.
#[derive(Debug, Clone, PartialEq)]
pub enum FileEvent {
    /// Our offer was passed on and waits for an answer.
    Offered {
        id: TransferId,
        to: String,
        name: String,
        size: u64,
    },
    /// Someone offers us a file.
    Incoming(FileInfo),
    /// A transfer moved (also when it starts).
    Progress(Progress),
    /// A transfer completed: sent and verified by the recipient, or received, verified and
    /// saved at `path`.
    Done {
        progress: Progress,
        path: Option<PathBuf>,
    },
    /// A transfer (or an offer) ended without the file: declined, cancelled, refused, damaged,
    /// or lost with the connection.
    Failed {
        id: Option<TransferId>,
        outgoing: bool,
        peer: String,
        name: String,
        reason: String,
    },
    /// Something to tell the user (a command that could not be carried out).
    Notice(String),
}

/// Starts the agent: it saves received files in `download_dir` (created when needed). It
/// returns the handle to command it, the frames to send (at a lower priority than chat), and
/// the events to show.
pub fn spawn(
    download_dir: PathBuf,
) -> (
    mpsc::UnboundedSender<FileCmd>,
    mpsc::Receiver<ClientFrame>,
    mpsc::UnboundedReceiver<FileEvent>,
) {
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (frame_tx, frame_rx) = mpsc::channel(FRAMES_QUEUED);
    let (event_tx, event_rx) = mpsc::unbounded_channel();
    let agent = Agent {
        download_dir,
        chunk: FILE_CHUNK,
        me: cmd_tx.clone(),
        frames: frame_tx,
        events: event_tx,
        next_tag: 0,
        preparing: HashMap::new(),
        offered: HashMap::new(),
        outgoing: HashMap::new(),
        offers: BTreeMap::new(),
        incoming: HashMap::new(),
        threads: Vec::new(),
    };
    tokio::spawn(agent.run(cmd_rx));
    (cmd_tx, frame_rx, event_rx)
}

/// A transfer being sent.
#[derive(Debug)]
struct Outgoing {
    file: Prepared,
    to: String,
    /// Acknowledgements for its thread, once accepted.
    acks: Option<mpsc::UnboundedSender<u64>>,
    stop: Arc<AtomicBool>,
}

/// A transfer being received.
#[derive(Debug)]
struct Incoming {
    info: FileInfo,
    chunks: mpsc::UnboundedSender<Vec<u8>>,
    stop: Arc<AtomicBool>,
}

/// What a transfer's thread needs to talk to the rest.
#[derive(Debug, Clone)]
struct Links {
    frames: mpsc::Sender<ClientFrame>,
    stop: Arc<AtomicBool>,
    agent: mpsc::UnboundedSender<FileCmd>,
}

impl Links {
    /// Sends a frame from a transfer's thread; false once the transfer is to stop.
    fn send(&self, frame: ClientFrame) -> bool {
        !self.stopped() && self.frames.blocking_send(frame).is_ok()
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Reports through the agent, which passes on only what concerns a transfer it still
    /// has (a thread may report after the transfer was cancelled).
    fn event(&self, event: FileEvent) {
        if !self.stopped() {
            let _ = self.agent.send(FileCmd::Report(event));
        }
    }
}

#[derive(Debug)]
struct Agent {
    download_dir: PathBuf,
    /// Bytes per chunk.
    chunk: usize,
    me: mpsc::UnboundedSender<FileCmd>,
    frames: mpsc::Sender<ClientFrame>,
    events: mpsc::UnboundedSender<FileEvent>,
    next_tag: u64,
    /// Files being hashed, by the tag their offer will have.
    preparing: HashMap<u64, (String, String)>,
    /// Offers sent, not yet given an id.
    offered: HashMap<u64, (Prepared, String)>,
    outgoing: HashMap<TransferId, Outgoing>,
    /// Offers to us not answered yet, oldest first.
    offers: BTreeMap<TransferId, FileInfo>,
    incoming: HashMap<TransferId, Incoming>,
    /// The transfers' threads, waited for at shutdown (so that no temporary file is left).
    threads: Vec<tokio::task::JoinHandle<()>>,
}

impl Agent {
    async fn run(mut self, mut cmds: mpsc::UnboundedReceiver<FileCmd>) {
        while let Some(cmd) = cmds.recv().await {
            self.handle(cmd).await;
        }
        self.lost("the client is closing");
    }

    fn event(&self, event: FileEvent) {
        let _ = self.events.send(event);
    }

    fn notice(&self, text: impl Into<String>) {
        self.event(FileEvent::Notice(text.into()));
    }

    async fn frame(&self, frame: ClientFrame) {
        let _ = self.frames.send(frame).await;
    }

    fn links(&self, stop: &Arc<AtomicBool>) -> Links {
        Links {
            frames: self.frames.clone(),
            stop: stop.clone(),
            agent: self.me.clone(),
        }
    }

    async fn handle(&mut self, cmd: FileCmd) {
        match cmd {
            FileCmd::Send { to, path } => self.prepare(to, path),
            FileCmd::Hashed { tag, result } => self.hashed(tag, result).await,
            FileCmd::Accept(id) => self.answer(id, true).await,
            FileCmd::Decline(id) => self.answer(id, false).await,
            FileCmd::Cancel(id) => self.cancel(id).await,
            FileCmd::Frame(frame) => self.on_frame(frame).await,
            FileCmd::Connected { max_frame } => {
                // Room for the frame's other fields.
                let room = (max_frame as usize).saturating_sub(64).max(1024);
                self.chunk = FILE_CHUNK.min(room);
            }
            FileCmd::Lost => self.lost("the connection was lost"),
            // Only the transfer that thread worked for: after a reconnection, a new transfer
            // may have the same id.
            FileCmd::Finished(id, stop) => {
                if self
                    .outgoing
                    .get(&id)
                    .is_some_and(|t| Arc::ptr_eq(&t.stop, &stop))
                {
                    self.outgoing.remove(&id);
                }
                if self
                    .incoming
                    .get(&id)
                    .is_some_and(|t| Arc::ptr_eq(&t.stop, &stop))
                {
                    self.incoming.remove(&id);
                }
            }
            FileCmd::Report(event) => {
                let id = match &event {
                    FileEvent::Progress(p) | FileEvent::Done { progress: p, .. } => Some(p.id),
                    FileEvent::Failed { id, .. } => *id,
                    _ => None,
                };
                if id.is_none_or(|id| {
                    self.outgoing.contains_key(&id) || self.incoming.contains_key(&id)
                }) {
                    self.event(event);
                }
            }
            FileCmd::Shutdown(done) => {
                self.lost("the client is closing");
                let threads = std::mem::take(&mut self.threads);
                let all = futures_join(threads);
                let _ = tokio::time::timeout(SHUTDOWN_WAIT, all).await;
                let _ = done.send(());
            }
        }
    }

    /// Runs a transfer's work on a blocking thread, kept to be waited for at shutdown.
    fn spawn(&mut self, work: impl FnOnce() + Send + 'static) {
        self.threads.retain(|t| !t.is_finished());
        self.threads.push(tokio::task::spawn_blocking(work));
    }

    /// Hashes the file at `path` on a blocking thread, for an offer to `to`.
    fn prepare(&mut self, to: String, path: PathBuf) {
        self.next_tag += 1;
        let tag = FILE_TAG | self.next_tag;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        self.preparing.insert(tag, (to, name));
        let me = self.me.clone();
        tokio::task::spawn_blocking(move || {
            let result = send::prepare(path);
            let _ = me.send(FileCmd::Hashed { tag, result });
        });
    }

    async fn hashed(&mut self, tag: u64, result: Result<Prepared, String>) {
        let Some((to, name)) = self.preparing.remove(&tag) else {
            return;
        };
        match result {
            Ok(file) => {
                let offer = ClientFrame::FileOffer {
                    tag,
                    to: to.clone(),
                    name: file.name.clone(),
                    size: file.size,
                    sha256: file.sha256,
                };
                self.offered.insert(tag, (file, to));
                self.frame(offer).await;
            }
            Err(reason) => self.event(FileEvent::Failed {
                id: None,
                outgoing: true,
                peer: to,
                name,
                reason,
            }),
        }
    }

    async fn answer(&mut self, id: Option<TransferId>, accept: bool) {
        let id = match id.or_else(|| self.offers.keys().next_back().copied()) {
            Some(id) => id,
            None => return self.notice("no file offer is waiting for an answer"),
        };
        let Some(info) = self.offers.remove(&id) else {
            return self.notice(format!("no file offer {id} is waiting for an answer"));
        };
        self.frame(ClientFrame::FileAnswer { id, accept }).await;
        if !accept {
            self.event(FileEvent::Failed {
                id: Some(id),
                outgoing: false,
                peer: info.from,
                name: info.name,
                reason: "declined".into(),
            });
            return;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (chunks, rx) = mpsc::unbounded_channel();
        let links = self.links(&stop);
        let dir = self.download_dir.clone();
        let job = recv::Receiving::new(info.clone(), dir, links, rx);
        self.spawn(move || job.run());
        self.incoming.insert(id, Incoming { info, chunks, stop });
    }

    async fn cancel(&mut self, id: Option<TransferId>) {
        let latest = || {
            self.incoming
                .keys()
                .chain(self.outgoing.keys())
                .chain(self.offers.keys())
                .max()
                .copied()
        };
        let Some(id) = id.or_else(latest) else {
            return self.notice("no file transfer to cancel");
        };
        let Some((outgoing, peer, name)) = self.end(id) else {
            return self.notice(format!("there is no file transfer {id}"));
        };
        let reason = String::new();
        self.frame(ClientFrame::FileCancel { id, reason }).await;
        self.event(FileEvent::Failed {
            id: Some(id),
            outgoing,
            peer,
            name,
            reason: "cancelled by you".into(),
        });
    }

    async fn on_frame(&mut self, frame: ServerFrame) {
        match frame {
            ServerFrame::FileOffered { tag, id, to } => {
                if let Some((file, _)) = self.offered.remove(&tag) {
                    self.event(FileEvent::Offered {
                        id,
                        to: to.clone(),
                        name: file.name.clone(),
                        size: file.size,
                    });
                    let stop = Arc::new(AtomicBool::new(false));
                    let t = Outgoing {
                        file,
                        to,
                        acks: None,
                        stop,
                    };
                    self.outgoing.insert(id, t);
                }
            }
            ServerFrame::Error(e) => self.refused(e.tag, e.message),
            ServerFrame::RateLimited {
                tag,
                retry_after_ms,
            } => {
                let secs = f64::from(retry_after_ms) / 1000.0;
                let why = format!("you are sending too fast: offer it again in {secs:.1} s");
                self.refused(tag, why);
            }
            ServerFrame::FileOffer(info) => {
                self.offers.insert(info.id, info.clone());
                self.event(FileEvent::Incoming(info));
            }
            ServerFrame::FileAnswer { id, accept } => self.answered(id, accept),
            ServerFrame::FileChunk { id, data } => {
                if let Some(t) = self.incoming.get(&id) {
                    let _ = t.chunks.send(data);
                }
            }
            ServerFrame::FileAck { id, received } => {
                if let Some(acks) = self.outgoing.get(&id).and_then(|t| t.acks.as_ref()) {
                    let _ = acks.send(received);
                }
            }
            ServerFrame::FileDone { id } => {
                if let Some(t) = self.outgoing.get(&id) {
                    // The thread reports it once it has sent everything (it has, for the
                    // recipient to have verified it): it sees the end of its acks.
                    let _ = t.acks.as_ref().map(|a| a.send(u64::MAX));
                }
            }
            ServerFrame::FileCancelled { id, by, reason } => self.cancelled(id, &by, reason),
            _ => {}
        }
    }

    /// The server refused the offer tagged `tag`.
    fn refused(&mut self, tag: Option<u64>, reason: String) {
        if let Some((file, to)) = tag.and_then(|t| self.offered.remove(&t)) {
            self.event(FileEvent::Failed {
                id: None,
                outgoing: true,
                peer: to,
                name: file.name,
                reason,
            });
        }
    }

    fn answered(&mut self, id: TransferId, accept: bool) {
        if !accept {
            if let Some(t) = self.outgoing.remove(&id) {
                self.event(FileEvent::Failed {
                    id: Some(id),
                    outgoing: true,
                    reason: format!("{} declined", t.to),
                    peer: t.to,
                    name: t.file.name,
                });
            }
            return;
        }
        let Some(t) = self.outgoing.get_mut(&id) else {
            return;
        };
        let (acks, rx) = mpsc::unbounded_channel();
        t.acks = Some(acks);
        let links = Links {
            frames: self.frames.clone(),
            stop: t.stop.clone(),
            agent: self.me.clone(),
        };
        let job = send::Sending::new(id, &t.file, t.to.clone(), self.chunk, links, rx);
        self.spawn(move || job.run());
    }

    fn cancelled(&mut self, id: TransferId, by: &str, reason: String) {
        let reason = match (by, reason.is_empty()) {
            ("server", false) => reason,
            (by, true) => format!("cancelled by {by}"),
            (by, false) => format!("cancelled by {by}: {reason}"),
        };
        let Some((outgoing, peer, name)) = self.end(id) else {
            return;
        };
        self.event(FileEvent::Failed {
            id: Some(id),
            outgoing,
            peer,
            name,
            reason,
        });
    }

    /// Forgets transfer (or offer) `id`, stopping its thread: whether it was ours to send,
    /// the other side, the file's name.
    fn end(&mut self, id: TransferId) -> Option<(bool, String, String)> {
        if let Some(t) = self.outgoing.remove(&id) {
            t.stop.store(true, Ordering::Relaxed);
            Some((true, t.to, t.file.name))
        } else if let Some(t) = self.incoming.remove(&id) {
            t.stop.store(true, Ordering::Relaxed);
            Some((false, t.info.from, t.info.name))
        } else {
            let info = self.offers.remove(&id)?;
            Some((false, info.from, info.name))
        }
    }

    /// Every transfer fails: the connection is gone (or the client is closing).
    fn lost(&mut self, why: &str) {
        for (id, t) in self.outgoing.drain() {
            t.stop.store(true, Ordering::Relaxed);
            let _ = self.events.send(FileEvent::Failed {
                id: Some(id),
                outgoing: true,
                peer: t.to,
                name: t.file.name,
                reason: why.to_owned(),
            });
        }
        for (id, t) in self.incoming.drain() {
            t.stop.store(true, Ordering::Relaxed);
            let _ = self.events.send(FileEvent::Failed {
                id: Some(id),
                outgoing: false,
                peer: t.info.from,
                name: t.info.name,
                reason: why.to_owned(),
            });
        }
        self.offers.clear();
        self.offered.clear();
        self.preparing.clear();
    }
}

/// A size as people read it: `2.4 MB`, `512 B`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A duration as people read it: `42 s`, `3 min 5 s`, `2 h 10 min`.
pub fn short_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min {} s", secs / 60, secs % 60),
        _ => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
    }
}

/// A transfer's hash as shown to people: its first 16 hexadecimal digits.
pub fn short_hash(hash: &[u8; 32]) -> String {
    sha256_hex(hash)[..16].to_owned()
}

/// Where received files go by default: the user's download folder, else
/// `~/Downloads`, else the current folder.
pub fn default_download_dir() -> PathBuf {
    directories::UserDirs::new()
        .and_then(|d| {
            d.download_dir()
                .map(PathBuf::from)
                .or_else(|| Some(d.home_dir().join("Downloads")))
        })
        .unwrap_or_else(|| PathBuf::from("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_of_offers_go_to_the_agent_and_those_of_messages_do_not() {
        let limited = |tag| ServerFrame::RateLimited {
            tag: Some(tag),
            retry_after_ms: 500,
        };
        assert!(is_file_frame(&limited(FILE_TAG | 3)));
        assert!(!is_file_frame(&limited(3)));
        let error = |tag| {
            ServerFrame::Error(chat_core::protocol::ErrorFrame {
                tag: Some(tag),
                code: chat_core::protocol::ErrorCode::Busy,
                message: String::new(),
            })
        };
        assert!(is_file_frame(&error(FILE_TAG | 1)));
        assert!(!is_file_frame(&error(1)));
    }

    #[test]
    fn sizes_and_progress_read_well() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(2_400_000), "2.4 MB");
        let p = Progress {
            id: 1,
            outgoing: true,
            peer: "bob".into(),
            name: "a".into(),
            done: 25,
            size: 100,
            rate: 25.0,
        };
        assert_eq!(p.percent(), 25);
        assert_eq!(p.left(), Some(Duration::from_secs(3)));
    }
}
