//! Exponential reconnect backoff with jitter: 1 s doubling to 60 s, each delay randomised to
//! 50–100 % so that a fleet of agents does not reconnect in lockstep after a relay restart.

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
}
