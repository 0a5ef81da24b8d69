//! Delivering every message typed or piped into the line mode, in order. One message at a time
//! waits for the server's answer (its echo, which confirms it; a refusal; or a rate limit), and
//! the next line is read only once it has one: a bot's fifteen lines are neither sent faster
//! than the server takes them nor reordered. A message refused for going too fast is sent
//! again once the server's delay has passed. What could not be delivered is remembered, to be
//! named when the client ends (and to make its exit status say so).

use std::time::Duration;

use chat_core::protocol::ServerFrame;
use tokio::time::Instant;

use super::Outbound;

/// The messages on their way, and those that could not be delivered.
#[derive(Default)]
pub(super) struct Delivery {
    /// Lines read so far.
    read: usize,
    /// The message waiting for the server's answer.
    awaiting: Option<Awaiting>,
    /// When the message waiting may be sent again (it was rate-limited).
    retry_at: Option<Instant>,
    /// Lines not delivered: their number, their text and why.
    failed: Vec<Undelivered>,
}

/// A message sent, waiting for the server's answer.
struct Awaiting {
    tag: u64,
    line: usize,
    text: String,
    message: Outbound,
}

/// A line that could not be delivered.
struct Undelivered {
    line: usize,
    text: String,
    why: String,
}

/// What the server's answer to the message waiting comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Answer {
    /// Not about the message waiting.
    Other,
    /// Delivered (or kept for an account that is away).
    Delivered,
    /// Refused for going too fast: sent again after this long.
    Retry(Duration),
    /// Refused for good.
    Refused,
}

/// Lines named at most when the client ends.
const NAMED: usize = 20;

impl Delivery {
    /// Whether the next line may be read: nothing is waiting for an answer.
    pub(super) fn idle(&self) -> bool {
        self.awaiting.is_none()
    }

    /// A line was read; returns its number.
    pub(super) fn read(&mut self) -> usize {
        self.read += 1;
        self.read
    }

    /// Line `line` (`text`) was sent as `message`, tagged `tag`.
    pub(super) fn sent(&mut self, tag: u64, line: usize, text: String, message: Outbound) {
        self.retry_at = None;
        self.awaiting = Some(Awaiting {
            tag,
            line,
            text,
            message,
        });
    }

    /// Line `line` (`text`) could not be sent, for the reason `why`.
    pub(super) fn refused(&mut self, line: usize, text: String, why: String) {
        self.failed.push(Undelivered { line, text, why });
    }

    /// When the rate-limited message waiting may be sent again, if one is.
    pub(super) fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// The rate-limited message waiting, to send again now (and its line and text, for
    /// [`Delivery::sent`]).
    pub(super) fn take_retry(&mut self) -> Option<(usize, String, Outbound)> {
        self.retry_at = None;
        let a = self.awaiting.take()?;
        Some((a.line, a.text, a.message))
    }

    /// Looks at a frame from the server at `now` for the answer to the message waiting.
    pub(super) fn answer(&mut self, frame: &ServerFrame, now: Instant) -> Answer {
        let Some(tag) = self.awaiting.as_ref().map(|a| a.tag) else {
            return Answer::Other;
        };
        match frame {
            ServerFrame::Message(m) if m.tag == Some(tag) => {
                self.awaiting = None;
                Answer::Delivered
            }
            ServerFrame::RateLimited {
                tag: Some(t),
                retry_after_ms,
            } if *t == tag => {
                let wait = Duration::from_millis(u64::from(*retry_after_ms));
                self.retry_at = Some(now + wait);
                Answer::Retry(wait)
            }
            ServerFrame::Error(e) if e.tag == Some(tag) => {
                if let Some(a) = self.awaiting.take() {
                    let why = crate::sanitize::sanitize_line(&e.message);
                    self.refused(a.line, a.text, why);
                }
                Answer::Refused
            }
            _ => Answer::Other,
        }
    }

    /// What is left undelivered when the session ends: the lines refused, and the message
    /// still waiting (the session ended before the server confirmed it). `None` when every
    /// line was delivered.
    pub(super) fn report(mut self) -> Option<String> {
        if let Some(a) = self.awaiting.take() {
            let why = "the session ended before the server confirmed it".to_owned();
            self.refused(a.line, a.text, why);
        }
        if self.failed.is_empty() {
            return None;
        }
        let mut report = format!("{} line(s) not delivered:", self.failed.len());
        for u in self.failed.iter().take(NAMED) {
            report.push_str(&format!(
                "\n  line {}: {} ({})",
                u.line,
                shortened(&u.text),
                u.why
            ));
        }
        if self.failed.len() > NAMED {
            report.push_str(&format!("\n  and {} more", self.failed.len() - NAMED));
        }
        Some(report)
    }
}

/// `text` on one line, cut after 60 characters.
fn shortened(text: &str) -> String {
    let one_line = text.replace('\n', " ⏎ ");
    match one_line.char_indices().nth(60) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}
