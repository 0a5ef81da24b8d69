//! What went wrong: the server's errors (a message refused is shown with its text; a private
//! message nobody can receive goes back to the input line), its rate limit (what it refused is
//! sent again once allowed), and its goodbye.

use std::time::Duration;

use chat_core::protocol::{Body, DisconnectReason, ErrorCode, ErrorFrame};

use crate::sanitize::sanitize_line;
use crate::tui::app::{App, ConnState, Effect, Pending, TabKind};

impl App {
    /// An error from the server, about one of our messages (by its tag) or not.
    pub(super) fn error(&mut self, e: ErrorFrame) -> Vec<Effect> {
        // A refused /register or /password leaves the password in use as it was (the
        // server's refusals of those name the password or the registration).
        let about_password = e.code == ErrorCode::InvalidPassword
            || (matches!(e.code, ErrorCode::NotAllowed | ErrorCode::Busy)
                && (e.message.contains("password") || e.message.contains("regist")));
        if e.tag.is_none() && about_password {
            self.new_password = None;
        }
        let lost = e.tag.and_then(|t| self.in_flight.remove(&t));
        let reason = match &e.code {
            ErrorCode::NoSuchUser(who) => format!("{} not online", sanitize_line(&who.join(", "))),
            _ => sanitize_line(&e.message),
        };
        match lost {
            // A private message to someone not online who has no account: not kept, and never
            // kept here for whoever takes the nickname next.
            Some((kind, p)) if matches!(&e.code, ErrorCode::NoSuchUser(_)) => {
                self.not_delivered(&kind, p, &reason);
            }
            // Anything else is shown with its text, so nothing typed disappears.
            Some((kind, p)) => {
                let i = self.tab_for(&kind);
                let (text, _) = p.body.into_parts();
                self.notice(i, &format!("not sent ({reason}): {text}"), true);
            }
            None => self.notice_active(&format!("the server says: {reason}"), true),
        }
        Vec::new()
    }

    /// A private message the server could not deliver (`who` not online, and no account to
    /// keep it for them): said in the tab on screen, where the user is typing, and the message
    /// put back in the input line, ready to send again, unless something else is being typed
    /// there (then the notice quotes it). A tab opened for it alone goes again.
    fn not_delivered(&mut self, kind: &TabKind, p: Pending, who: &str) {
        if let Some(i) = self.tabs.iter().position(|t| t.kind.is(kind))
            && i != self.active
            && self.tabs[i].entries.is_empty()
            && self.tabs[i].pending.is_empty()
        {
            self.remove_tab(i);
        }
        let retyped = self
            .retyped(kind, &p.body)
            .filter(|_| self.input.is_empty());
        let text = match retyped {
            Some(line) => {
                self.set_input(&line);
                format!(
                    "not sent: {who}, and only registered nicknames get messages kept; it is \
                     back in the input line"
                )
            }
            None => {
                let (text, _) = p.body.into_parts();
                format!("not sent ({who}, and only registered nicknames get messages kept): {text}")
            }
        };
        self.notice_active(&text, true);
    }

    /// The line that sends `body` to `kind`'s people again from the tab on screen: as typed
    /// in their own tab, else as `/msg` (which cannot carry an action).
    fn retyped(&self, kind: &TabKind, body: &Body) -> Option<String> {
        let here = self.tabs[self.active].kind.is(kind);
        let escaped = |t: &str| {
            if t.starts_with('/') {
                format!("/{t}")
            } else {
                t.to_owned()
            }
        };
        match body {
            Body::Text(t) if here => Some(escaped(t)),
            Body::Action(t) if here => Some(format!("/me {t}")),
            Body::Text(t) => Some(format!("/msg {} {t}", kind.people().join(","))),
            Body::Action(_) => None,
        }
    }

    /// The server refused a frame for going too fast: a message refused goes back to the
    /// front of its queue, and what is pending waits until the server allows it.
    pub(super) fn rate_limited(&mut self, tag: Option<u64>, retry_after_ms: u32) -> Vec<Effect> {
        let wait = Duration::from_millis(u64::from(retry_after_ms));
        let lost = tag.and_then(|t| self.in_flight.remove(&t));
        let already_waiting = self.flush_at.is_some_and(|at| at > self.now);
        self.flush_at = Some(self.flush_at.unwrap_or(self.now).max(self.now + wait));
        let secs = wait.as_secs_f64();
        match lost {
            Some((kind, p)) => {
                // Sent again by itself once the server allows it.
                self.requeue(&kind, p);
                if !already_waiting {
                    self.notice_active(
                        &format!(
                            "slow down: the server limits how fast messages go; what is \
                             pending is sent again in {secs:.1} s"
                        ),
                        true,
                    );
                }
            }
            None => {
                self.notice_active(&format!("slow down: try again in {secs:.1} s"), true);
            }
        }
        Vec::new()
    }

    /// The server says goodbye (the connection ends next).
    pub(super) fn bye(&mut self, reason: DisconnectReason, message: &str) -> Vec<Effect> {
        self.stopped_by = matches!(
            reason,
            DisconnectReason::LoggedInElsewhere
                | DisconnectReason::Kicked
                | DisconnectReason::Banned
        )
        .then_some(reason);
        if self.conn != ConnState::Quitting && !self.reclaiming {
            let message = sanitize_line(message);
            self.notice(
                0,
                &format!(
                    "the server disconnected us ({}): {message}",
                    reason.describe()
                ),
                true,
            );
        }
        Vec::new()
    }
}
