//! Per-connection flood control: a token bucket, a mute after the bucket runs dry, and a
//! disconnect for clients that keep sending while muted.
//!
//! Each connection owns its limiter (no sharing, no locks), so a check is a few arithmetic
//! operations. A relay opens one upstream connection per guest, so each relayed guest has its
//! own bucket and one guest flooding never limits another.

use std::time::Duration;

use tokio::time::Instant;

/// Longest mute applied, whatever the configuration says.
pub const MAX_MUTE: Duration = Duration::from_secs(24 * 60 * 60);

/// Rate-limit settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateConfig {
    /// Messages that may be sent back to back.
    pub burst: u32,
    /// Sustained messages per second after the burst.
    pub per_sec: f64,
    /// How long a client stays muted after running out of tokens.
    pub mute: Duration,
    /// Messages refused during one mute before the client is disconnected for flooding.
    pub kick_after: u32,
}

impl Default for RateConfig {
    fn default() -> Self {
        RateConfig {
            burst: 10,
            per_sec: 2.0,
            mute: Duration::from_secs(5),
            kick_after: 20,
        }
    }
}

impl RateConfig {
    /// Milliseconds between tokens, as announced to clients.
    pub fn interval_ms(&self) -> u32 {
        if self.per_sec <= 0.0 {
            u32::MAX
        } else {
            (1000.0 / self.per_sec).ceil().min(f64::from(u32::MAX)) as u32
        }
    }
}

/// The limiter's decision for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead.
    Allow,
    /// Refused; try again after this long. `first` is true for the refusal that started the
    /// mute (the one worth logging).
    Refuse {
        /// Time until the mute ends.
        retry_after: Duration,
        /// Whether this refusal started the mute.
        first: bool,
    },
    /// The client kept flooding while muted: disconnect it.
    Kick,
}

/// Keep-alive pings a client may send back to back without touching its message limit.
const PING_BURST: f64 = 4.0;
/// Keep-alive pings allowed per second after that burst (clients ping every few seconds).
const PINGS_PER_SEC: f64 = 2.0;

/// One connection's flood control state.
#[derive(Debug)]
pub struct RateLimiter {
    config: RateConfig,
    tokens: f64,
    last: Instant,
    muted_until: Option<Instant>,
    strikes: u32,
    /// The keep-alive pings' own bucket (see [`RateLimiter::ping`]).
    pings: f64,
    last_ping: Instant,
}

impl RateLimiter {
    /// A limiter with a full bucket. Mutes are capped at a day.
    pub fn new(mut config: RateConfig, now: Instant) -> Self {
        config.mute = config.mute.min(MAX_MUTE);
        RateLimiter {
            config,
            tokens: f64::from(config.burst),
            last: now,
            muted_until: None,
            strikes: 0,
            pings: PING_BURST,
            last_ping: now,
        }
    }

    /// Whether a keep-alive ping arriving at `now` is within the pings' own allowance (a few
    /// per second). Such a ping is answered whatever the message limit says, and takes nothing
    /// from it: a client muted for sending too fast still hears that its connection is alive,
    /// rather than concluding it is dead. A ping beyond the allowance is checked like any
    /// other frame ([`RateLimiter::check`]), so a flood of pings is muted, then disconnected.
    pub fn ping(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last_ping).as_secs_f64();
        self.last_ping = now;
        self.pings = (self.pings + elapsed * PINGS_PER_SEC).min(PING_BURST);
        if self.pings >= 1.0 {
            self.pings -= 1.0;
            true
        } else {
            false
        }
    }

    /// Decides about one message arriving at `now`.
    pub fn check(&mut self, now: Instant) -> Verdict {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens =
            (self.tokens + elapsed * self.config.per_sec).min(f64::from(self.config.burst));
        if let Some(until) = self.muted_until {
            if now < until {
                self.strikes += 1;
                if self.strikes >= self.config.kick_after {
                    return Verdict::Kick;
                }
                return Verdict::Refuse {
                    retry_after: until - now,
                    first: false,
                };
            }
            self.muted_until = None;
            self.strikes = 0;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Allow;
        }
        self.muted_until = Some(now + self.config.mute);
        Verdict::Refuse {
            retry_after: self.config.mute,
            first: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RateConfig {
        RateConfig {
            burst: 3,
            per_sec: 1.0,
            mute: Duration::from_secs(5),
            kick_after: 4,
        }
    }

    #[test]
    fn burst_then_mute_then_kick() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(config(), t0);
        for _ in 0..3 {
            assert_eq!(rl.check(t0), Verdict::Allow);
        }
        assert_eq!(
            rl.check(t0),
            Verdict::Refuse {
                retry_after: Duration::from_secs(5),
                first: true
            }
        );
        let t1 = t0 + Duration::from_secs(1);
        for _ in 0..3 {
            assert_eq!(
                rl.check(t1),
                Verdict::Refuse {
                    retry_after: Duration::from_secs(4),
                    first: false
                }
            );
        }
        assert_eq!(rl.check(t1), Verdict::Kick);
    }

    #[test]
    fn a_patient_client_is_served_again_after_the_mute() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(config(), t0);
        for _ in 0..3 {
            rl.check(t0);
        }
        assert!(matches!(rl.check(t0), Verdict::Refuse { .. }));
        let later = t0 + Duration::from_secs(6);
        for _ in 0..3 {
            assert_eq!(rl.check(later), Verdict::Allow);
        }
    }

    #[test]
    fn pings_have_their_own_allowance_and_a_flood_of_them_is_limited() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(config(), t0);
        for _ in 0..3 {
            rl.check(t0);
        }
        assert!(matches!(rl.check(t0), Verdict::Refuse { .. }), "muted");
        // Muted for messages, a keep-alive is still within its own allowance.
        assert!(rl.ping(t0));
        // A steady ping every half second never runs out.
        for i in 1..100 {
            assert!(rl.ping(t0 + Duration::from_millis(500 * i)));
        }
        let t1 = t0 + Duration::from_secs(50);
        let allowed = (0..20).filter(|_| rl.ping(t1)).count();
        assert!(
            allowed < 8,
            "{allowed} pings at once: the allowance is a few"
        );
    }

    #[test]
    fn steady_rate_is_never_limited() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(config(), t0);
        for i in 0..100 {
            assert_eq!(rl.check(t0 + Duration::from_secs(i)), Verdict::Allow);
        }
    }
}
