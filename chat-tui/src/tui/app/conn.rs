//! The connection as the app sees it: its state ([`ConnState`]), what the network task reports
//! (connected, failed, lost), when to try again, and leaving (`/quit`, `/reconnect`).

use std::time::{Duration, Instant};

use chat_core::names::fold;
use chat_core::protocol::{ClientFrame, DisconnectReason, NickChange, Welcome};

use super::{App, Effect, NetEvent, Pending, Screen, TabKind};
use crate::command::{older_server, unsupported};

impl App {
    /// News from the network task.
    pub(super) fn net(&mut self, event: NetEvent) -> Vec<Effect> {
        match event {
            NetEvent::Connecting => {
                if self.conn != ConnState::Quitting {
                    self.conn = ConnState::Connecting;
                }
                Vec::new()
            }
            NetEvent::Connected(welcome) => self.connected(*welcome),
            NetEvent::Frame(frame) => self.frame(frame),
            NetEvent::Lag(lag) => {
                self.lag = Some(lag);
                Vec::new()
            }
            NetEvent::Failed { message, retry } => self.failed(message, retry),
            NetEvent::Lost { message } => self.lost(message),
            NetEvent::Untrusted {
                server,
                fingerprint,
                verdict,
            } => self.untrusted(server, fingerprint, verdict),
            NetEvent::Notice(text) => {
                self.notice(0, &text, true);
                Vec::new()
            }
        }
    }

    /// The handshake succeeded: the main screen, with what was queued sent and the open rooms
    /// joined again.
    fn connected(&mut self, w: Welcome) -> Vec<Effect> {
        let first = !self.ever_connected;
        self.ever_connected = true;
        self.screen = Screen::Main;
        self.conn = ConnState::Connected;
        self.backoff.reset();
        self.lag = None;
        self.nick = w.nick.clone();
        self.server_version = w.version;
        self.limits = Some(w.limits.clone());
        self.set_roster(w.roster);
        self.ops.clear();
        self.away.clear();
        self.entered.clear();
        self.history_asked.clear();
        self.private_fetched.clear();
        // A password that got us in is an account's (a guest with one is refused).
        self.account = self.password.is_some();
        self.quiet_rosters.clear();
        self.offline_shown = 0;
        let verb = if first {
            "connected to"
        } else {
            "reconnected to"
        };
        let text = format!("{verb} {} as {} ({})", self.server, w.nick, w.server);
        self.notice(0, &text, false);
        if let Some(text) = older_server(w.version) {
            self.notice(0, &text, true);
        }
        match w.nick_change {
            Some(NickChange::Registered) => {
                let text = format!(
                    "{} is a registered nickname: to use it, log in with its password (the \
                     Password field, or --password); the server named you {}",
                    w.requested_nick, w.nick
                );
                self.notice(0, &text, true);
            }
            Some(NickChange::Taken) => {
                let text = format!(
                    "the nickname {} was taken; the server named you {}",
                    w.requested_nick, w.nick
                );
                self.notice(0, &text, true);
            }
            None => {}
        }
        if !first {
            // Each private and group tab says who of its people is there now.
            for i in 1..self.tabs.len() {
                let people = self.tabs[i].kind.people().to_vec();
                let away: Vec<&str> = people
                    .iter()
                    .filter(|n| !self.is_online(n))
                    .map(String::as_str)
                    .collect();
                let text = match (&people[..], &away[..]) {
                    ([], _) => continue,
                    ([nick], []) => format!("{nick} is online"),
                    ([nick], _) => format!("{nick} is not online"),
                    (_, []) => "everyone here is online".to_owned(),
                    (_, away) => format!("not online: {}", away.join(", ")),
                };
                self.notice(i, &text, false);
            }
        }
        // The rooms whose tabs are open are joined again (an account's are restored by the
        // server, and joining a room one is in is harmless).
        let mut effects: Vec<Effect> = self
            .tabs
            .iter()
            .filter_map(|t| match &t.kind {
                TabKind::Room { name } => Some(ClientFrame::Join { room: name.clone() })
                    .filter(|join| unsupported(join, w.version).is_none())
                    .map(Effect::Send),
                _ => None,
            })
            .collect();
        // What was typed while offline goes out now, in order.
        self.flush_at = None;
        effects.extend(self.flush_pending());
        effects
    }

    /// A connection attempt failed: shown on the connect screen, else retried if that may help.
    fn failed(&mut self, message: String, retry: bool) -> Vec<Effect> {
        if self.conn == ConnState::Quitting {
            return vec![Effect::Exit];
        }
        let message = crate::sanitize::sanitize_line(&message);
        if let Screen::Connect(form) = &mut self.screen {
            form.connecting = false;
            form.error = Some(message.clone());
            self.conn = ConnState::Stopped { reason: message };
            return Vec::new();
        }
        if retry {
            self.wait_and_retry(message)
        } else {
            self.notice(
                0,
                &format!("cannot reconnect: {message} (/reconnect tries again)"),
                true,
            );
            self.conn = ConnState::Stopped { reason: message };
            Vec::new()
        }
    }

    /// An established connection ended: unconfirmed messages are queued again, and the app
    /// reconnects unless another login to the account replaced this one.
    fn lost(&mut self, message: String) -> Vec<Effect> {
        if self.conn == ConnState::Quitting {
            return vec![Effect::Exit];
        }
        let message = crate::sanitize::sanitize_line(&message);
        if !std::mem::take(&mut self.reclaiming) {
            self.notice(0, &format!("disconnected: {message}"), true);
        }
        self.lag = None;
        // Messages the server never confirmed are sent again after reconnecting, in the order
        // they were sent: behind those it refused for going too fast (sent before them, since
        // the server answers in order) and ahead of what was typed meanwhile.
        let mut unconfirmed: Vec<(u64, (TabKind, Pending))> = self.in_flight.drain().collect();
        unconfirmed.sort_by_key(|(tag, _)| *tag);
        for (_, (kind, p)) in unconfirmed {
            self.requeue(&kind, p);
        }
        // Replaced by another login to the same account (reconnecting would replace that one
        // in turn, back and forth), kicked or banned by an operator: only the user decides.
        if let Some(reason) = self.stopped_by.take() {
            let text = match reason {
                DisconnectReason::LoggedInElsewhere => {
                    "logged in from another connection: /reconnect takes the account back"
                }
                DisconnectReason::Banned => "banned by an operator: not reconnecting",
                _ => "kicked by an operator: /reconnect to come back",
            };
            self.notice(0, text, true);
            self.conn = ConnState::Stopped {
                reason: reason.describe().to_owned(),
            };
            return Vec::new();
        }
        self.wait_and_retry(message)
    }

    /// Waits the next backoff delay, then connects again.
    fn wait_and_retry(&mut self, reason: String) -> Vec<Effect> {
        let delay = self.backoff.next_delay();
        self.conn = ConnState::Waiting {
            until: self.now + delay,
            reason,
        };
        vec![self.connect_effect(delay)]
    }

    /// `/reconnect`: try now, or reconnect to take back the nickname asked for.
    pub(super) fn reconnect_now(&mut self) -> Vec<Effect> {
        match self.conn {
            ConnState::Waiting { .. } | ConnState::Stopped { .. } => {
                self.backoff.reset();
                self.conn = ConnState::Connecting;
                vec![self.connect_effect(Duration::ZERO)]
            }
            // Connected under another name than the one asked for: reconnect to get it back.
            ConnState::Connected if fold(&self.nick) != fold(&self.requested_nick) => {
                // Leave, then come back asking for it, as after any lost connection.
                self.reclaiming = true;
                let text = format!("reconnecting to take the nickname {}", self.requested_nick);
                self.notice(0, &text, false);
                vec![Effect::Send(ClientFrame::Quit {
                    reason: "reconnecting".to_owned(),
                })]
            }
            ConnState::Connected => {
                self.notice_active("already connected", false);
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// Connecting after `delay` as the user asked: requested nickname, password given.
    pub(super) fn connect_effect(&self, delay: Duration) -> Effect {
        Effect::Connect {
            server: self.server.clone(),
            nick: self.requested_nick.clone(),
            password: self.password.clone(),
            delay,
        }
    }

    /// Leaves (Ctrl-C, `/quit`, a hangup), after a warning if messages are still unsent.
    pub(super) fn quit(&mut self, reason: String) -> Vec<Effect> {
        let unsent: usize = self.tabs.iter().map(|t| t.pending.len()).sum();
        if unsent > 0 && !self.quit_armed {
            self.quit_armed = true;
            self.notice_active(
                &format!("{unsent} message(s) not sent yet; Ctrl-C or /quit again to quit anyway"),
                true,
            );
            return Vec::new();
        }
        if self.conn == ConnState::Connected {
            self.conn = ConnState::Quitting;
            vec![Effect::Quit { reason }]
        } else {
            vec![Effect::Exit]
        }
    }
}

/// The state of the connection, as the status line shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnState {
    /// Not connected and not trying (before the first attempt).
    Idle,
    /// An attempt is under way.
    Connecting,
    /// Chatting.
    Connected,
    /// Waiting before the next attempt.
    Waiting {
        /// When the next attempt starts.
        until: Instant,
        /// Why we are not connected.
        reason: String,
    },
    /// Not trying any more (the server refused us); `/reconnect` tries again.
    Stopped { reason: String },
    /// Saying goodbye.
    Quitting,
}
