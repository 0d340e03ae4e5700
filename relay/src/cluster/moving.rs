//! The agents on their way from a draining relay to another one: requests for them wait a
//! moment instead of failing `AGENT_OFFLINE` (see `lookup::online_agent`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an agent whose relay drained counts as on its way to another relay.
const MOVING_FOR: Duration = Duration::from_secs(10);
/// Agents remembered as moving at most. The other relays are trusted, but a buggy one announcing
/// agents without end must not grow this relay's memory without end either.
const MAX_MOVING: usize = 100_000;

/// How often a full map is swept for expired entries at most: a sweep reads every entry, so a
/// flood of notices at the bound must not run one per notice.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Agent id → when its relay said it left because it drains.
#[derive(Debug, Default)]
pub(super) struct Moving {
    since: Mutex<Since>,
}

#[derive(Debug, Default)]
struct Since {
    agents: HashMap<String, Instant>,
    swept: Option<Instant>,
}

impl Moving {
    /// Another relay said agent `id` left it because it drains.
    pub(super) fn left(&self, id: &str) {
        let mut since = self.since.lock().expect("moving lock");
        let Since { agents, swept } = &mut *since;
        if agents.len() >= MAX_MOVING && swept.is_none_or(|at| at.elapsed() >= SWEEP_EVERY) {
            // Full: what expired makes room; when nothing has, the newest are not remembered
            // (their requests fail at once, as before relays announced moves).
            agents.retain(|_, at| at.elapsed() < MOVING_FOR);
            *swept = Some(Instant::now());
        }
        if agents.len() < MAX_MOVING || agents.contains_key(id) {
            agents.insert(id.to_string(), Instant::now());
        }
    }

    /// Agent `id` is online again, on some relay.
    pub(super) fn arrived(&self, id: &str) {
        self.since.lock().expect("moving lock").agents.remove(id);
    }

    /// Whether agent `id` left a draining relay within [`MOVING_FOR`] and is not back yet.
    pub(super) fn is_moving(&self, id: &str) -> bool {
        self.since
            .lock()
            .expect("moving lock")
            .agents
            .get(id)
            .is_some_and(|at| at.elapsed() < MOVING_FOR)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.since.lock().expect("moving lock").agents.len()
    }

    /// Makes every remembered move, and the last sweep, `by` older (tests: expiry without
    /// waiting).
    #[cfg(test)]
    fn age(&self, by: Duration) {
        let mut since = self.since.lock().expect("moving lock");
        for at in since.agents.values_mut() {
            *at -= by;
        }
        if let Some(at) = &mut since.swept {
            *at -= by;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: usize) -> String {
        format!("{n:08x}-0000-4000-8000-000000000000")
    }

    #[test]
    fn an_agent_moves_until_it_arrives_or_its_time_is_up() {
        let moving = Moving::default();
        moving.left(&id(1));
        moving.left(&id(2));
        assert!(moving.is_moving(&id(1)) && moving.is_moving(&id(2)));
        assert!(!moving.is_moving(&id(3)), "never announced");
        moving.arrived(&id(1));
        assert!(!moving.is_moving(&id(1)), "online again");
        moving.age(MOVING_FOR);
        assert!(!moving.is_moving(&id(2)), "not back within MOVING_FOR");
    }

    #[test]
    fn a_flood_of_moves_stays_within_the_bound_and_expired_ones_make_room() {
        let moving = Moving::default();
        for n in 0..MAX_MOVING + 50_000 {
            moving.left(&id(n));
        }
        assert_eq!(moving.len(), MAX_MOVING);
        assert!(moving.is_moving(&id(0)), "the first ones are kept");
        assert!(
            !moving.is_moving(&id(MAX_MOVING)),
            "past the bound, new ones are not remembered"
        );
        // A repeated notice for a remembered agent still renews it at the bound.
        moving.age(MOVING_FOR / 2);
        moving.left(&id(7));
        moving.age(MOVING_FOR / 2);
        assert!(moving.is_moving(&id(7)) && !moving.is_moving(&id(8)));

        // Once the flood's entries expire, the next notices are remembered again.
        moving.age(MOVING_FOR);
        moving.left(&id(MAX_MOVING + 60_000));
        assert!(moving.is_moving(&id(MAX_MOVING + 60_000)));
        assert_eq!(moving.len(), 1, "the expired ones were dropped");
    }
}
