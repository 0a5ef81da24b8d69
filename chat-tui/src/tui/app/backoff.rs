//! Reconnect delays: capped exponential backoff with jitter, in a small struct of its own (as
//! gurk-rs keeps it) so that tests can seed it and count attempts.

use std::time::Duration;

/// Capped exponential backoff with jitter: 1 s, 2 s, 4 s, ... up to 30 s, each delay drawn
/// between half and all of its step so that clients cut off together do not come back together.
#[derive(Debug, Clone)]
pub struct Backoff {
    attempt: u32,
    base: Duration,
    cap: Duration,
    rng: fastrand::Rng,
}

impl Backoff {
    /// A backoff from 1 s to 30 s.
    pub fn new(rng: fastrand::Rng) -> Self {
        Backoff {
            attempt: 0,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(30),
            rng,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let step = self
            .base
            .saturating_mul(1 << self.attempt.min(16))
            .min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let half = step / 2;
        half + half.mul_f64(self.rng.f64())
    }

    /// Starts again from the shortest delay (after a successful connection).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Failed attempts since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}
