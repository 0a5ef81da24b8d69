//! File transfers on the main screen: `/file`, `/accept`, `/decline` and `/cancel` go to the
//! file agent (as [`Effect::File`]); what it reports is told in the private tab of the other
//! side (opened if needed, with the bell for an offer), and a transfer under way shows a
//! progress bar there (see `ui.rs`).

use crate::command::FileCommand;
use crate::files::{FileEvent, Progress, human_size, short_hash};
use crate::sanitize::sanitize_line;
use crate::tui::app::{App, Effect};

impl App {
    /// A typed file command: to the agent, unless the server cannot pass files on.
    pub(super) fn file_command(&mut self, command: FileCommand) -> (Vec<Effect>, bool) {
        if self.server_version < 5 {
            let why = format!(
                "the server speaks protocol {}: it cannot pass files on (5 or later can)",
                self.server_version
            );
            return self.refuse(&why);
        }
        if let FileCommand::Send { to, .. } = &command {
            let i = self.open_tab(to);
            self.select_tab(i);
        }
        (vec![Effect::File(command)], false)
    }

    /// Something the file agent reports.
    pub(super) fn file_event(&mut self, event: FileEvent) -> Vec<Effect> {
        match event {
            FileEvent::Offered { id, to, name, size } => {
                let text = format!(
                    "you offer {} ({}) to {}: waiting for an answer (/cancel {id})",
                    sanitize_line(&name),
                    human_size(size),
                    sanitize_line(&to)
                );
                self.tell(&to, &text, false);
                Vec::new()
            }
            FileEvent::Incoming(info) => {
                let text = format!(
                    "{} offers {}, {} (SHA-256 {}…): /accept or /decline (transfer {})",
                    sanitize_line(&info.from),
                    sanitize_line(&info.name),
                    human_size(info.size),
                    short_hash(&info.sha256),
                    info.id
                );
                self.tell(&info.from, &text, true);
                vec![Effect::Bell]
            }
            FileEvent::Progress(p) => {
                // The first news of a transfer: it starts (for the sender, it was accepted).
                if !self.transfers.contains_key(&p.id) {
                    let name = sanitize_line(&p.name);
                    let peer = sanitize_line(&p.peer);
                    let text = if p.outgoing {
                        format!("{peer} accepted {name}: sending (/cancel {})", p.id)
                    } else {
                        format!("receiving {name} from {peer} (/cancel {})", p.id)
                    };
                    self.tell(&p.peer, &text, false);
                }
                self.transfers.insert(p.id, p);
                Vec::new()
            }
            FileEvent::Done { progress, path } => {
                self.transfers.remove(&progress.id);
                let name = sanitize_line(&progress.name);
                let peer = sanitize_line(&progress.peer);
                let size = human_size(progress.size);
                let text = match path {
                    Some(path) => format!(
                        "received {name} ({size}) from {peer}, SHA-256 verified: saved as {}",
                        sanitize_line(&path.display().to_string())
                    ),
                    None => format!("sent {name} ({size}) to {peer}: received and verified"),
                };
                self.tell(&progress.peer, &text, false);
                Vec::new()
            }
            FileEvent::Failed {
                id,
                outgoing,
                peer,
                name,
                reason,
            } => {
                if let Some(id) = id {
                    self.transfers.remove(&id);
                }
                let dir = if outgoing { "to" } else { "from" };
                let text = format!(
                    "{} {dir} {}: not transferred: {}",
                    sanitize_line(&name),
                    sanitize_line(&peer),
                    sanitize_line(&reason)
                );
                self.tell(&peer, &text, true);
                Vec::new()
            }
            FileEvent::Notice(text) => {
                self.notice_active(&sanitize_line(&text), true);
                Vec::new()
            }
        }
    }

    /// Tells `text` in the private tab with `nick` (opened without focus if needed), which
    /// counts as unread when it is not on screen.
    fn tell(&mut self, nick: &str, text: &str, error: bool) {
        let i = self.open_tab(nick);
        self.notice(i, text, error);
        if i != self.active {
            self.tabs[i].unread += 1;
        }
    }

    /// The transfers with the person of the tab on screen, to show as progress bars.
    pub fn tab_transfers(&self) -> Vec<&Progress> {
        let tab = &self.tabs[self.active].kind;
        self.transfers
            .values()
            .filter(|p| tab.with(&p.peer) && tab.people().len() == 1)
            .collect()
    }
}
