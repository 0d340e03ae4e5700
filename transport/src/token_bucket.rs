//! A token bucket: the relay limits what each connection may send with one, and the agent paces
//! its own pushes with one of the same make, so the two count a frame the same way. Pure: every
//! call is given the time.

use std::time::{Duration, Instant};

/// Holds up to `capacity` tokens and gains `per_sec` of them each second; a frame costs one.
#[derive(Debug)]
pub struct TokenBucket {
    capacity: f64,
    per_sec: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket of `capacity` tokens (at least one), refilling at `per_sec`.
    pub fn new(capacity: u32, per_sec: u32, now: Instant) -> Self {
        let capacity = f64::from(capacity.max(1));
        Self {
            capacity,
            per_sec: f64::from(per_sec),
            tokens: capacity,
            last: now,
        }
    }

    /// Adds what has come in since the last call; a `now` earlier than that adds nothing, and
    /// the time already counted is not counted again.
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.capacity);
        self.last = self.last.max(now);
    }

    /// Takes a token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Pays for a frame that goes anyway: without a token the bucket goes into debt, so what
    /// follows waits until that frame has been refilled too.
    pub fn spend(&mut self, now: Instant) {
        self.refill(now);
        self.tokens -= 1.0;
    }

    /// When the next token is there (now, if one is). Only for a bucket that refills: with a
    /// `per_sec` of 0 an empty bucket is never ready, and this panics.
    pub fn ready_at(&self) -> Instant {
        if self.tokens >= 1.0 {
            self.last
        } else {
            self.last + Duration::from_secs_f64((1.0 - self.tokens) / self.per_sec)
        }
    }
}
