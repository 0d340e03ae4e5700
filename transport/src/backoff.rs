//! Exponential reconnect backoff with jitter: 1 s doubling to 60 s, each delay randomised to
//! 50–100 % so that a fleet of agents does not reconnect in lockstep after a relay restart; or
//! the pace a draining relay asks for (`Retry-After`), which does not grow.

use std::time::Duration;

use rand::Rng;

/// First delay after a failure.
pub const INITIAL_DELAY: Duration = Duration::from_secs(1);
/// Longest delay between attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// Delays between reconnect attempts.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    failures: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            next: INITIAL_DELAY,
            failures: 0,
        }
    }
}

impl Backoff {
    /// The delay before the next attempt; doubles the one after it, up to [`MAX_DELAY`].
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.next;
        self.next = (self.next * 2).min(MAX_DELAY);
        self.failures += 1;
        let factor = rand::thread_rng().gen_range(0.5..=1.0);
        ceiling.mul_f64(factor)
    }

    /// The delay before the next attempt when the relay may have named one (`Retry-After`, see
    /// [`TransportError::retry_after`](crate::TransportError::retry_after)): that delay, at
    /// least [`INITIAL_DELAY`], plus up to half again as jitter, and the backoff does not grow
    /// (the relay paces this); without one, [`next_delay`](Self::next_delay).
    pub fn delay_after(&mut self, asked: Option<Duration>) -> Duration {
        let Some(asked) = asked else {
            return self.next_delay();
        };
        self.failures += 1;
        let factor = rand::thread_rng().gen_range(1.0..=1.5);
        asked.clamp(INITIAL_DELAY, MAX_DELAY).mul_f64(factor)
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Back to the first delay after a successful connection.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::default();
        let mut ceilings = vec![];
        for _ in 0..10 {
            let before = b.next;
            let d = b.next_delay();
            assert!(
                d <= before && d >= before / 2,
                "{d:?} not within jitter of {before:?}"
            );
            ceilings.push(before.as_secs());
        }
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
        assert_eq!(b.failures(), 10);
        b.reset();
        assert_eq!(b.failures(), 0);
        assert!(b.next_delay() <= INITIAL_DELAY);
    }

    #[test]
    fn a_delay_the_relay_asks_for_is_kept_and_does_not_grow_the_backoff() {
        let mut b = Backoff::default();
        b.next_delay();
        let grown = b.next;
        for _ in 0..20 {
            let d = b.delay_after(Some(Duration::from_secs(1)));
            assert!(
                d >= Duration::from_secs(1) && d <= Duration::from_millis(1500),
                "{d:?} is not the relay's 1 s with jitter"
            );
        }
        assert_eq!(b.next, grown, "the relay's pace must not grow the backoff");
        assert_eq!(b.failures(), 21);
        // Zero is taken as the first delay, an hour as the longest.
        assert!(b.delay_after(Some(Duration::ZERO)) >= INITIAL_DELAY);
        assert!(b.delay_after(Some(Duration::from_secs(3600))) <= MAX_DELAY.mul_f64(1.5));
        // Without a named delay, the exponential backoff goes on where it was.
        let d = b.delay_after(None);
        assert!(d <= grown && d >= grown / 2, "{d:?}");
    }
}
