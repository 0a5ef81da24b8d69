//! File transfers in the line mode: commands to the file agent, its events shown (progress at
//! most once a second per transfer), offers from `--accept-files-from` accepted by themselves,
//! and whether transfers are still under way (the end of the input waits for them).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chat_core::names::fold;
use chat_core::protocol::{ClientFrame, ServerFrame};
use tokio::sync::mpsc;

use crate::command::FileCommand;
use crate::files::{self, FileCmd, FileEvent};
use crate::line_event::LineEvent;

/// How often a transfer's progress is shown.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// The line mode's side of the file agent.
#[derive(Debug)]
pub(super) struct LineFiles {
    agent: mpsc::UnboundedSender<FileCmd>,
    /// Frames the agent has for the server.
    pub(super) frames: mpsc::Receiver<ClientFrame>,
    /// What the agent reports.
    pub(super) events: mpsc::UnboundedReceiver<FileEvent>,
    /// Whose offers are accepted without asking (folded nicknames).
    accept_from: HashSet<String>,
    /// Files being hashed for an offer.
    preparing: usize,
    /// Transfers under way (offered by us, or accepted).
    active: HashSet<u64>,
    shown: HashMap<u64, Instant>,
}

impl LineFiles {
    /// Starts the agent, saving into `download_dir`, accepting offers from `accept_from`.
    pub(super) fn start(download_dir: PathBuf, accept_from: &[String], max_frame: u32) -> Self {
        let (agent, frames, events) = files::spawn(download_dir);
        let _ = agent.send(FileCmd::Connected { max_frame });
        LineFiles {
            agent,
            frames,
            events,
            accept_from: accept_from.iter().map(|n| fold(n)).collect(),
            preparing: 0,
            active: HashSet::new(),
            shown: HashMap::new(),
        }
    }

    /// Hands a file frame to the agent; other frames come back.
    pub(super) fn route(&self, frame: ServerFrame) -> Option<ServerFrame> {
        if files::is_file_frame(&frame) {
            let _ = self.agent.send(FileCmd::Frame(frame));
            None
        } else {
            Some(frame)
        }
    }

    /// Carries out a typed file command; what to show, if anything (a refusal).
    pub(super) fn command(&mut self, command: FileCommand, version: u16) -> Option<LineEvent> {
        if version < 5 {
            return Some(LineEvent::error(format!(
                "the server speaks protocol {version}: it cannot pass files on (5 or later can)"
            )));
        }
        if matches!(command, FileCommand::Send { .. }) {
            self.preparing += 1;
        }
        let _ = self.agent.send(command.into());
        None
    }

    /// What to show for an agent's event, keeping count of the transfers under way.
    pub(super) fn event(&mut self, event: FileEvent, me: &str) -> Option<LineEvent> {
        match &event {
            FileEvent::Offered { id, .. } => {
                self.preparing = self.preparing.saturating_sub(1);
                self.active.insert(*id);
            }
            FileEvent::Incoming(info) if self.accept_from.contains(&fold(&info.from)) => {
                let _ = self.agent.send(FileCmd::Accept(Some(info.id)));
            }
            FileEvent::Progress(p) => {
                self.active.insert(p.id);
                let now = Instant::now();
                let due = self
                    .shown
                    .get(&p.id)
                    .is_none_or(|at| now.duration_since(*at) >= PROGRESS_EVERY);
                if !due {
                    return None;
                }
                self.shown.insert(p.id, now);
            }
            FileEvent::Done { progress, .. } => self.ended(Some(progress.id)),
            FileEvent::Failed { id, .. } => {
                if id.is_none() {
                    self.preparing = self.preparing.saturating_sub(1);
                }
                self.ended(*id);
            }
            FileEvent::Incoming(_) | FileEvent::Notice(_) => {}
        }
        LineEvent::from_file(event, me)
    }

    fn ended(&mut self, id: Option<u64>) {
        if let Some(id) = id {
            self.active.remove(&id);
            self.shown.remove(&id);
        }
    }

    /// Ends every transfer, leaving no temporary file: for the end of the session.
    pub(super) async fn shut_down(&self) {
        files::shut_down(&self.agent).await;
    }

    /// Whether a transfer is being prepared or under way.
    pub(super) fn busy(&self) -> bool {
        self.preparing > 0 || !self.active.is_empty()
    }
}
