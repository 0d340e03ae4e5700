//! The agent's own budget for live-state pushes, and the switch to coalescing when Docker reports
//! changes faster than that budget allows. Pure: every call is given the time.
//!
//! The relay counts every push (`container.event`, `container.sync`) against the agent's message
//! limit (`zedops-relay serve --max-agent-messages-per-sec`, 1,000/s with bursts of 2,000) and
//! answers what is over it with `RATE_LIMITED`, dropping it; after 200 refusals it disconnects the
//! agent. So the agent never relies on that limit: it spends at most half of it on pushes, and
//! when events come faster it stops pushing them one by one and sends a single `container.sync`
//! (the full list, which carries every change) once Docker is [`QUIET`] for a moment, and at least
//! every [`MAX_SYNC_INTERVAL`] while it is not; after [`CALM`] it pushes events one by one again.

use std::time::{Duration, Instant};

use zedops_transport::TokenBucket;

/// Pushes per second the agent allows itself by default: half of the relay's default per-agent
/// limit. The other half is headroom for what the relay also counts but the agent does not pace
/// (a heartbeat every 30 s, refusals of malformed requests, answers and stream chunks that arrive
/// after the relay stopped waiting for them), and for frames that reach the relay in a clump after
/// the network held them back. A unit test keeps this at or under half of the relay's constant.
pub const DEFAULT_PUSHES_PER_SEC: u32 = 500;
/// The burst is this many seconds of the rate, the same ratio as the relay's (2,000 for 1,000/s).
pub const BURST_SECS: u32 = 2;
/// How long Docker must stay quiet before the coalesced `container.sync` goes out: short, so a
/// table is right again a moment after a storm, long enough that a `docker restart` of hundreds
/// of containers (events in quick succession) ends in one sync rather than a sync per lull.
pub const QUIET: Duration = Duration::from_millis(200);
/// While a storm goes on (a crash-looping fleet), a sync at least this often, so clients never
/// fall further behind than this.
pub const MAX_SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// How long Docker must stay quiet before events are pushed one by one again. Longer than
/// [`QUIET`]: a storm comes in waves (Docker restarts containers in batches), and one episode
/// should be one switch to coalescing and one back, not a flapping log and a burst per wave.
pub const CALM: Duration = Duration::from_secs(2);

/// How many pushes per second the agent allows itself, with what burst; `per_sec` 0 turns the
/// budget off (for a relay whose limit is off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushBudget {
    pub per_sec: u32,
    pub burst: u32,
}

impl PushBudget {
    /// `per_sec` sustained, with [`BURST_SECS`] of it as burst.
    pub fn per_sec(per_sec: u32) -> Self {
        Self {
            per_sec,
            burst: per_sec.saturating_mul(BURST_SECS),
        }
    }
}

impl Default for PushBudget {
    fn default() -> Self {
        Self::per_sec(DEFAULT_PUSHES_PER_SEC)
    }
}

/// What to do with one Docker event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Push it as a `container.event`.
    Push,
    /// Leave it to the next `container.sync`.
    Hold,
}

/// Why a storm began, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    Budget,
    Queue,
}

/// Pacing state of one relay connection (its limit is per connection, so is this).
#[derive(Debug)]
pub struct Pacer {
    budget: PushBudget,
    /// The same bucket the relay counts this connection's frames with.
    bucket: Option<TokenBucket>,
    storm: Option<Storm>,
}

/// A run of events over the budget, coalesced into syncs.
#[derive(Debug)]
struct Storm {
    began: Instant,
    last_event: Instant,
    last_sync: Instant,
    /// Events held since the last sync: a sync is owed while this is not zero.
    owed: u64,
    held: u64,
    syncs: u64,
}

impl Pacer {
    pub fn new(budget: PushBudget, now: Instant) -> Self {
        Self {
            budget,
            bucket: (budget.per_sec > 0)
                .then(|| TokenBucket::new(budget.burst, budget.per_sec, now)),
            storm: None,
        }
    }

    /// Decides about one event. `queue_has_room` is false when the connection's outgoing queue is
    /// more than half full (the relay reads slowly): pushes then wait for a sync as well, so they
    /// never take the room answers to requests and stream chunks need.
    pub fn offer(&mut self, now: Instant, queue_has_room: bool) -> Offer {
        if let Some(storm) = &mut self.storm {
            storm.held += 1;
            storm.owed += 1;
            storm.last_event = now;
            return Offer::Hold;
        }
        let cause = if !queue_has_room {
            Cause::Queue
        } else if self.bucket.as_mut().is_some_and(|b| !b.take(now)) {
            Cause::Budget
        } else {
            return Offer::Push;
        };
        match cause {
            Cause::Budget => tracing::warn!(
                per_sec = self.budget.per_sec,
                burst = self.budget.burst,
                "container events arrive faster than the agent's push budget; coalescing them into container.sync until they calm down"
            ),
            Cause::Queue => tracing::warn!(
                "the relay reads this agent's frames slowly; coalescing container events into container.sync until they calm down"
            ),
        }
        self.storm = Some(Storm {
            began: now,
            last_event: now,
            last_sync: now,
            owed: 1,
            held: 1,
            syncs: 0,
        });
        Offer::Hold
    }

    /// When [`poll`](Self::poll) has something to do next, if ever.
    pub fn next_due(&self) -> Option<Instant> {
        let storm = self.storm.as_ref()?;
        if storm.owed == 0 {
            return Some(storm.last_event + CALM);
        }
        let due = (storm.last_event + QUIET).min(storm.last_sync + MAX_SYNC_INTERVAL);
        Some(due.max(self.sync_ready_at(due)))
    }

    /// True when a coalesced sync should go now (then send it and call
    /// [`synced`](Self::synced)). Ends a storm that calmed down with nothing owed.
    pub fn poll(&mut self, now: Instant) -> bool {
        let Some(storm) = &self.storm else {
            return false;
        };
        if storm.owed == 0 {
            if now >= storm.last_event + CALM {
                self.calm(now);
            }
            return false;
        }
        let quiet = now >= storm.last_event + QUIET;
        (quiet || now >= storm.last_sync + MAX_SYNC_INTERVAL) && self.sync_ready_at(now) <= now
    }

    /// Earliest time a sync may go at or after `now` (the budget pays for syncs too).
    pub fn sync_ready_at(&self, now: Instant) -> Instant {
        self.bucket.as_ref().map_or(now, |b| b.ready_at().max(now))
    }

    /// A `container.sync` went out (a coalesced one, or a snapshot after a gap): it covers every
    /// event held so far. The storm ends at the next [`poll`](Self::poll) after [`CALM`].
    pub fn synced(&mut self, now: Instant) {
        if let Some(bucket) = &mut self.bucket {
            // Normally a token is ready (callers wait for `sync_ready_at`); if not, the bucket
            // stays empty a little longer rather than the sync being withheld.
            bucket.spend(now);
        }
        if let Some(storm) = &mut self.storm {
            storm.owed = 0;
            storm.last_sync = now;
            storm.syncs += 1;
        }
    }

    /// True while events are being coalesced.
    pub fn coalescing(&self) -> bool {
        self.storm.is_some()
    }

    fn calm(&mut self, now: Instant) {
        if let Some(storm) = self.storm.take() {
            tracing::info!(
                coalesced = storm.held,
                syncs = storm.syncs,
                lasted_ms = now.duration_since(storm.began).as_millis() as u64,
                "container events calmed down; pushing them one by one again"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A budget with a burst other than [`BURST_SECS`] of the rate.
    fn budget(per_sec: u32, burst: u32) -> PushBudget {
        PushBudget { per_sec, burst }
    }

    #[test]
    fn the_default_budget_is_at_most_half_the_relays_limit() {
        use zedops_relay::rate_limit::{AGENT_MESSAGE_BURST, AGENT_MESSAGES_PER_SEC};
        let budget = PushBudget::default();
        assert!(budget.per_sec * 2 <= AGENT_MESSAGES_PER_SEC);
        assert!(budget.burst * 2 <= AGENT_MESSAGE_BURST);
        assert_eq!(
            zedops_relay::Limits::default().agent_messages_per_sec,
            AGENT_MESSAGES_PER_SEC
        );
    }

    #[test]
    fn events_within_the_budget_are_pushed_one_by_one() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(PushBudget::per_sec(10), t0);
        // 10 a second for a minute: exactly the sustained rate, never a storm.
        for i in 0..600 {
            let at = t0 + ms(100 * i);
            assert_eq!(pacer.offer(at, true), Offer::Push, "event {i}");
            assert!(!pacer.poll(at));
        }
        assert_eq!(pacer.next_due(), None);
    }

    #[test]
    fn a_storm_is_coalesced_into_one_sync_once_it_calms_down() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(PushBudget::per_sec(10), t0);
        // The burst (20) goes out as events; the rest of 100 events in 50 ms is held.
        let offers: Vec<Offer> = (0..100)
            .map(|i| pacer.offer(t0 + ms(i / 2), true))
            .collect();
        assert!(offers[..20].iter().all(|o| *o == Offer::Push));
        assert!(offers[20..].iter().all(|o| *o == Offer::Hold));
        assert!(pacer.coalescing());
        let last = t0 + ms(49);
        // Nothing goes while events are still coming, or until Docker was quiet for QUIET.
        assert!(!pacer.poll(last + QUIET - ms(1)));
        let due = pacer.next_due().expect("a sync is owed");
        assert_eq!(due, last + QUIET);
        assert!(pacer.poll(due));
        pacer.synced(due);
        // Coalescing still, until Docker has been quiet for CALM: one episode, one switch back.
        assert!(pacer.coalescing());
        assert_eq!(pacer.next_due(), Some(last + CALM));
        assert!(!pacer.poll(last + CALM));
        assert!(!pacer.coalescing(), "calm again");
        assert_eq!(pacer.next_due(), None);
        // The bucket refilled while nothing was pushed: the next event is pushed at once.
        assert_eq!(pacer.offer(last + CALM + ms(1), true), Offer::Push);
    }

    #[test]
    fn a_storm_in_waves_is_one_episode_with_a_sync_per_lull() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(PushBudget::per_sec(10), t0);
        let mut syncs = 0;
        // Three waves of 50 events in 50 ms, 500 ms apart.
        for wave in 0..3u64 {
            let start = t0 + ms(500 * wave);
            for i in 0..50 {
                pacer.offer(start + ms(i), true);
            }
            let due = pacer.next_due().unwrap();
            assert_eq!(due, start + ms(49) + QUIET);
            assert!(pacer.poll(due));
            pacer.synced(due);
            syncs += 1;
            assert!(pacer.coalescing(), "wave {wave}");
        }
        assert_eq!(syncs, 3);
        assert!(!pacer.poll(t0 + ms(1049) + CALM));
        assert!(!pacer.coalescing());
    }

    #[test]
    fn a_long_storm_syncs_at_a_bounded_interval_and_stays_within_the_budget() {
        let t0 = Instant::now();
        let budget = PushBudget::per_sec(10);
        let mut pacer = Pacer::new(budget, t0);
        let (mut pushes, mut syncs) = (0u32, 0u32);
        // 1,000 events a second (100× the budget) for 10 s, in 1 ms steps.
        let end = t0 + Duration::from_secs(10);
        let mut now = t0;
        while now < end {
            if pacer.offer(now, true) == Offer::Push {
                pushes += 1;
            }
            if pacer.poll(now) {
                pacer.synced(now);
                syncs += 1;
            }
            now += ms(1);
        }
        // One sync a MAX_SYNC_INTERVAL while it lasts…
        assert_eq!(pushes, budget.burst);
        assert!((9..=10).contains(&syncs), "{syncs} syncs in 10 s");
        // …and at most one more after it (here the interval one), then calm after CALM.
        let last_event = now - ms(1);
        let mut after = 0;
        while let Some(due) = pacer.next_due() {
            assert!(due <= last_event + CALM);
            if pacer.poll(due) {
                pacer.synced(due);
                after += 1;
            }
        }
        assert_eq!(after, 1);
        assert!(!pacer.coalescing());
        // Frames in all stayed within burst + rate × time.
        assert!(pushes + syncs + after <= budget.burst + budget.per_sec * 11);
    }

    #[test]
    fn a_storm_that_ends_right_after_a_sync_owes_nothing_more() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(PushBudget::per_sec(1), t0);
        assert_eq!(pacer.offer(t0, true), Offer::Push);
        assert_eq!(pacer.offer(t0, true), Offer::Push);
        assert_eq!(pacer.offer(t0, true), Offer::Hold);
        // Events keep coming until the interval sync…
        let mut now = t0;
        while !pacer.poll(now) {
            now += ms(10);
            pacer.offer(now, true);
        }
        assert_eq!(now, t0 + MAX_SYNC_INTERVAL);
        pacer.synced(now);
        assert!(pacer.coalescing(), "the last event was just now");
        // …and then stop: the storm ends without another sync.
        let due = pacer.next_due().unwrap();
        assert_eq!(due, now + CALM);
        assert!(!pacer.poll(due));
        assert!(!pacer.coalescing());
        assert_eq!(pacer.next_due(), None);
    }

    #[test]
    fn a_sync_waits_for_a_token() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(budget(1, 1), t0);
        assert_eq!(pacer.offer(t0, true), Offer::Push);
        assert_eq!(pacer.offer(t0, true), Offer::Hold);
        // Quiet after 200 ms, but the next token is there only at 1 s.
        assert!(!pacer.poll(t0 + QUIET));
        assert_eq!(pacer.next_due(), Some(t0 + Duration::from_secs(1)));
        assert!(pacer.poll(t0 + Duration::from_secs(1)));
    }

    #[test]
    fn a_full_queue_makes_events_wait_for_a_sync_too() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(PushBudget::default(), t0);
        assert_eq!(pacer.offer(t0, false), Offer::Hold);
        assert!(pacer.coalescing());
        assert!(pacer.poll(t0 + QUIET));
    }

    #[test]
    fn a_snapshot_counts_against_the_budget_and_covers_held_events() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(budget(1, 2), t0);
        pacer.synced(t0); // the snapshot on connecting
        assert_eq!(pacer.offer(t0, true), Offer::Push);
        assert_eq!(pacer.offer(t0, true), Offer::Hold);
        // A snapshot after a Docker gap covers what was held: nothing is owed any more.
        let later = t0 + Duration::from_secs(2);
        assert_eq!(pacer.sync_ready_at(later), later);
        pacer.synced(later);
        assert!(!pacer.poll(later));
        assert!(!pacer.coalescing(), "Docker was quiet for longer than CALM");
    }

    #[test]
    fn zero_turns_the_budget_off() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(PushBudget::per_sec(0), t0);
        assert!((0..100_000).all(|_| pacer.offer(t0, true) == Offer::Push));
        assert_eq!(pacer.sync_ready_at(t0), t0);
    }
}
