//! What went wrong: the server's errors (a message refused is shown with its text, or kept
//! pending for someone who just left), its rate limit (what it refused is sent again once
//! allowed), and its goodbye.

use std::time::Duration;

use chat_core::protocol::{DisconnectReason, ErrorCode, ErrorFrame, Target};

use crate::sanitize::sanitize_line;
use crate::tui::app::{App, ConnState, Effect, TabKind};

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
            // A private message to someone who just left waits for their return.
            Some((kind @ TabKind::Private { .. }, p))
                if matches!(&e.code, ErrorCode::NoSuchUser(_))
                    && matches!(&p.to, Target::Users(to) if to.len() == 1) =>
            {
                let i = self.open_tab(&kind.title());
                self.requeue(&kind, p);
                self.notice(
                    i,
                    &format!("not sent: {reason}; it stays pending until they are back"),
                    true,
                );
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
        self.replaced = reason == DisconnectReason::LoggedInElsewhere;
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
