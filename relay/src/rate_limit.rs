//! Messages per second per connection: a token bucket for what a peer may send, and a second,
//! smaller one for how often it may be refused before the relay gives up on it and closes the
//! connection. Both endpoints use it; limits come from [`Limits`].

use std::time::Instant;

use zedops_transport::TokenBucket;

/// The relay's per-connection and per-agent limits (defaults below; `zedops-relay serve` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Sustained messages per second one client connection may send; 0 turns the limit off.
    pub messages_per_sec: u32,
    /// Messages a client connection may send at once above the sustained rate.
    pub message_burst: u32,
    /// Sustained messages per second one agent connection may send besides answers to the
    /// relay's requests (heartbeats, Docker events); 0 turns the limit off.
    pub agent_messages_per_sec: u32,
    /// Messages an agent connection may send at once above its sustained rate.
    pub agent_message_burst: u32,
    /// Requests one agent may have in flight, from all clients together.
    pub agent_in_flight: usize,
    /// Streams (logs, stats) one agent may serve at once, from all clients together.
    pub agent_streams: usize,
    /// Streams one user may have open at once, over all their connections.
    pub user_streams: usize,
    /// Who may exec, console sessions per user, their idle timeout.
    pub console: crate::console_limits::ConsoleLimits,
}

/// Sustained messages per second per client connection.
pub const MESSAGES_PER_SEC: u32 = 100;
/// Burst per client connection: a client may fill its whole in-flight window at once.
pub const MESSAGE_BURST: u32 = 256;
/// Sustained messages per second per agent connection. Higher than a client's: an agent pushes
/// one frame per Docker event, and restarting a few hundred containers makes a storm of them.
pub const AGENT_MESSAGES_PER_SEC: u32 = 1000;
/// Burst per agent connection.
pub const AGENT_MESSAGE_BURST: u32 = 2000;
/// Requests in flight per agent; more are answered `RATE_LIMITED` to the client that asked.
pub const AGENT_IN_FLIGHT: usize = 256;
/// Refusals a connection may collect at once before it is closed…
pub const REFUSAL_BURST: u32 = 200;
/// …refilling at this rate: a peer that slows down when told is never closed.
pub const REFUSALS_PER_SEC: u32 = 10;

impl Default for Limits {
    fn default() -> Self {
        Self {
            messages_per_sec: MESSAGES_PER_SEC,
            message_burst: MESSAGE_BURST,
            agent_messages_per_sec: AGENT_MESSAGES_PER_SEC,
            agent_message_burst: AGENT_MESSAGE_BURST,
            agent_in_flight: AGENT_IN_FLIGHT,
            agent_streams: zedops_protocol::MAX_STREAMS_PER_AGENT,
            user_streams: zedops_protocol::MAX_STREAMS_PER_USER,
            console: crate::console_limits::ConsoleLimits::default(),
        }
    }
}

/// What to do with one incoming message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit: handle it.
    Allow,
    /// Over the limit: answer `RATE_LIMITED`, keep the connection.
    Refuse,
    /// Over the limit for too long: tell the peer and close the connection.
    Close,
}

/// One connection's message limiter.
#[derive(Debug)]
pub struct MessageLimiter {
    messages: Option<TokenBucket>,
    refusals: TokenBucket,
    /// The previous verdict was a refusal (so a run of refusals is logged once).
    pub limited: bool,
}

impl MessageLimiter {
    /// The limiter of a client connection.
    pub fn client(limits: &Limits) -> Self {
        Self::new(limits.messages_per_sec, limits.message_burst)
    }

    /// The limiter of an agent connection.
    pub fn agent(limits: &Limits) -> Self {
        Self::new(limits.agent_messages_per_sec, limits.agent_message_burst)
    }

    /// `per_sec` sustained (0: no limit) with bursts of `burst`.
    pub fn new(per_sec: u32, burst: u32) -> Self {
        Self::new_at(per_sec, burst, Instant::now())
    }

    fn new_at(per_sec: u32, burst: u32, now: Instant) -> Self {
        Self {
            messages: (per_sec > 0).then(|| TokenBucket::new(burst.max(per_sec), per_sec, now)),
            refusals: TokenBucket::new(REFUSAL_BURST, REFUSALS_PER_SEC, now),
            limited: false,
        }
    }

    /// Counts one message from the peer.
    pub fn check(&mut self) -> Verdict {
        self.check_at(Instant::now())
    }

    fn check_at(&mut self, now: Instant) -> Verdict {
        let Some(messages) = &mut self.messages else {
            return Verdict::Allow;
        };
        if messages.take(now) {
            self.limited = false;
            return Verdict::Allow;
        }
        self.limited = true;
        if self.refusals.take(now) {
            Verdict::Refuse
        } else {
            Verdict::Close
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn allows_the_burst_then_the_sustained_rate() {
        let start = Instant::now();
        let mut limiter = MessageLimiter::new_at(100, 256, start);
        for _ in 0..256 {
            assert_eq!(limiter.check_at(start), Verdict::Allow);
        }
        assert_eq!(limiter.check_at(start), Verdict::Refuse);
        // 100 ms later, 10 more messages are allowed, not 11.
        let later = start + Duration::from_millis(100);
        for _ in 0..10 {
            assert_eq!(limiter.check_at(later), Verdict::Allow);
        }
        assert_eq!(limiter.check_at(later), Verdict::Refuse);
    }

    #[test]
    fn a_peer_that_keeps_flooding_is_closed_and_one_that_slows_down_is_not() {
        let start = Instant::now();
        let mut flood = MessageLimiter::new_at(100, 100, start);
        let verdicts: Vec<_> = (0..100 + REFUSAL_BURST + 1)
            .map(|_| flood.check_at(start))
            .collect();
        assert_eq!(verdicts.last(), Some(&Verdict::Close));
        assert_eq!(
            verdicts.iter().filter(|v| **v == Verdict::Refuse).count(),
            REFUSAL_BURST as usize
        );

        // 10 % over the rate for 20 s: the extra messages are refused, but no faster than
        // refusals refill, so the connection stays open.
        let mut polite = MessageLimiter::new_at(100, 100, start);
        let mut closed = false;
        for i in 0..(110 * 20) {
            let at = start + Duration::from_secs_f64(f64::from(i) / 110.0);
            closed |= polite.check_at(at) == Verdict::Close;
        }
        assert!(!closed);
    }

    #[test]
    fn zero_turns_the_limit_off() {
        let mut limiter = MessageLimiter::new(0, 0);
        let now = Instant::now();
        assert!((0..100_000).all(|_| limiter.check_at(now) == Verdict::Allow));
    }
}
