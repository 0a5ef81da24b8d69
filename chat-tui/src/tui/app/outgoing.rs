//! What goes to the server: the typed line submitted (kept in the input history, parsed, and
//! carried out by [`commands`](super::commands)), requests that need a connection, and
//! messages, each tagged and kept in flight until the server's echo confirms it, or queued
//! ([`Pending`]) while disconnected or rate-limited.

use std::time::Duration;

use chat_core::names::validate_text;
use chat_core::protocol::{Body, ClientFrame, DEFAULT_ROOM, MessageAttr, Outgoing, Target};

use super::{App, ConnState, Effect, TabKind};
use crate::command::{parse, unsupported};

impl App {
    /// Enter on the input line: the line is kept in the input history, then carried out.
    pub(super) fn submit(&mut self) -> Vec<Effect> {
        let text = self.input_text();
        if text.trim().is_empty() {
            return Vec::new();
        }
        self.input.remember(&text);
        let Some(command) = parse(&text) else {
            return Vec::new();
        };
        let (effects, keep) = self.command(command);
        if !keep {
            self.set_input("");
        }
        effects
    }

    /// [`App::request`], and `then` once it goes out (what the client expects of the answer
    /// is kept only for a request that was sent).
    pub(super) fn request_then(
        &mut self,
        frame: ClientFrame,
        then: impl FnOnce(&mut Self),
    ) -> (Vec<Effect>, bool) {
        let sent = self.request(frame);
        if !sent.0.is_empty() {
            then(self);
        }
        sent
    }

    /// Sends a request that needs a connection (not queued while disconnected), if the
    /// server speaks a version of the protocol that has it.
    pub(super) fn request(&mut self, frame: ClientFrame) -> (Vec<Effect>, bool) {
        if self.conn == ConnState::Connected {
            if let Some(why) = unsupported(&frame, self.server_version) {
                return self.refuse(&why);
            }
            (vec![Effect::Send(frame)], false)
        } else {
            self.refuse("not connected")
        }
    }

    /// Sends text typed in a tab to that tab's room, or to its people. A private message to
    /// someone offline goes to the server too: a registered user gets it at their next login
    /// (the server says so); for anyone else it is not sent (see `incoming/errors.rs`).
    pub(super) fn send_to_tab(
        &mut self,
        tab: TabKind,
        body: Body,
        attrs: Vec<MessageAttr>,
    ) -> (Vec<Effect>, bool) {
        let target = match &tab {
            TabKind::Lobby => Target::Room(DEFAULT_ROOM.to_owned()),
            TabKind::Room { name } => Target::Room(name.clone()),
            TabKind::Private { .. } | TabKind::Group { .. } => Target::Users(tab.people().to_vec()),
        };
        self.send(tab, target, body, attrs)
    }

    /// Sends a message now, or queues it while disconnected. Returns the effects and whether
    /// the input must be kept (the message was refused locally).
    pub(super) fn send(
        &mut self,
        tab: TabKind,
        target: Target,
        body: Body,
        attrs: Vec<MessageAttr>,
    ) -> (Vec<Effect>, bool) {
        let text = match &body {
            Body::Text(t) | Body::Action(t) => t,
        };
        if let Err(e) = validate_text(text, self.max_message_len()) {
            return self.refuse(&format!("message not sent: {e}"));
        }
        let i = self.tab_for(&tab);
        if self.conn == ConnState::Connected && self.tabs[i].pending.is_empty() {
            return (vec![self.frame_for(tab, target, body, attrs)], false);
        }
        // Queued behind what is already waiting, shown as pending in its tab.
        self.tabs[i].pending.push(Pending {
            to: target,
            body,
            attrs,
        });
        (self.flush_pending(), false)
    }

    /// Sends what is pending, as far as the connection and the server's rate limit allow;
    /// schedules the rest. A private message is sent whether its recipient seems online or
    /// not: the server keeps it for an account, and refuses it for a guest who left. It never
    /// waits for the nickname to come back, which might be someone else's by then.
    pub(super) fn flush_pending(&mut self) -> Vec<Effect> {
        if self.conn != ConnState::Connected || self.flush_at.is_some_and(|at| at > self.now) {
            return Vec::new();
        }
        self.flush_at = None;
        let (burst, interval) = self.limits.as_ref().map_or((1, 1000), |l| {
            (l.rate_burst as usize, u64::from(l.rate_interval_ms))
        });
        // Leave room in the burst for pings and for what the user types meanwhile.
        let budget = burst.saturating_sub(2).max(1);
        let mut effects = Vec::new();
        let mut waiting = false;
        for i in 0..self.tabs.len() {
            let kind = self.tabs[i].kind.clone();
            while !self.tabs[i].pending.is_empty() {
                if effects.len() >= budget {
                    waiting = true;
                    break;
                }
                let p = self.tabs[i].pending.remove(0);
                self.tabs[i].refused = 0;
                effects.push(self.frame_for(kind.clone(), p.to, p.body, p.attrs));
            }
        }
        if waiting {
            let wait = Duration::from_millis(interval.saturating_mul(effects.len() as u64));
            self.flush_at = Some(self.now + wait);
        }
        effects
    }

    /// Puts a message the server did not take (refused for going too fast, or unconfirmed when
    /// the connection dropped) back at the front of its tab's queue, behind the ones put back
    /// before it: called in the order they were sent, it keeps that order.
    pub(super) fn requeue(&mut self, kind: &TabKind, p: Pending) {
        let i = self.tab_for(kind);
        let tab = &mut self.tabs[i];
        let at = tab.refused.min(tab.pending.len());
        tab.pending.insert(at, p);
        tab.refused = at + 1;
    }

    pub(super) fn frame_for(
        &mut self,
        tab: TabKind,
        to: Target,
        body: Body,
        attrs: Vec<MessageAttr>,
    ) -> Effect {
        let tag = self.next_tag;
        self.next_tag += 1;
        let pending = Pending {
            to: to.clone(),
            body: body.clone(),
            attrs: attrs.clone(),
        };
        self.in_flight.insert(tag, (tab, pending));
        Effect::Send(ClientFrame::Send(Outgoing {
            tag,
            to,
            body,
            attrs,
        }))
    }
}

/// A message waiting to be sent (typed while disconnected, or sent and not confirmed before
/// the connection was lost).
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// Recipients.
    pub to: Target,
    /// What to say.
    pub body: Body,
    /// Its attributes (the message it answers, when it expires).
    pub attrs: Vec<MessageAttr>,
}
