//! Offline grace: an agent that drops off is reported offline only once it has stayed away for
//! a grace period, so a relay restart or a short network blip raises nothing; and its return is
//! reported only when its going away was. Pure timing with the time passed in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long an agent may be away before "X is offline" is raised.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);
/// Environment variable overriding [`DEFAULT_GRACE`], in whole seconds (tests use a few).
pub const GRACE_ENV: &str = "ZEDOPS_OFFLINE_GRACE_SECS";

/// The grace period from `ZEDOPS_OFFLINE_GRACE_SECS`, or the default when unset or unusable.
pub fn from_env() -> Duration {
    parse(std::env::var(GRACE_ENV).ok().as_deref())
}

fn parse(value: Option<&str>) -> Duration {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => DEFAULT_GRACE,
        Some(v) => v.parse().map(Duration::from_secs).unwrap_or_else(|_| {
            tracing::warn!(
                value = v,
                "{GRACE_ENV} is not a whole number of seconds; using {}s",
                DEFAULT_GRACE.as_secs()
            );
            DEFAULT_GRACE
        }),
    }
}

#[derive(Debug)]
enum Away {
    /// Offline since then, not reported yet.
    Pending { since: Instant, name: String },
    /// "Offline" was raised; its return will be too.
    Reported,
}

#[derive(Debug)]
pub struct OfflineGrace {
    grace: Duration,
    /// Agent id → how it is away.
    away: HashMap<String, Away>,
}

impl OfflineGrace {
    pub fn new(grace: Duration) -> Self {
        Self {
            grace,
            away: HashMap::new(),
        }
    }

    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// The agent went offline at `now`; a repeated push does not restart its clock.
    pub fn offline(&mut self, agent_id: &str, name: &str, now: Instant) {
        self.away
            .entry(agent_id.to_string())
            .or_insert_with(|| Away::Pending {
                since: now,
                name: name.to_string(),
            });
    }

    /// The agent is back (or was found online). True when its going offline was reported, so
    /// its return deserves a notification too; a blip within the grace period returns false.
    pub fn online(&mut self, agent_id: &str) -> bool {
        matches!(self.away.remove(agent_id), Some(Away::Reported))
    }

    /// The agents away for the whole grace period by `now` and not reported yet, as (id, name);
    /// they count as reported from here on.
    pub fn due(&mut self, now: Instant) -> Vec<(String, String)> {
        let mut due = Vec::new();
        for (id, away) in &mut self.away {
            if let Away::Pending { since, name } = away {
                if now.saturating_duration_since(*since) >= self.grace {
                    due.push((id.clone(), std::mem::take(name)));
                    *away = Away::Reported;
                }
            }
        }
        due.sort();
        due
    }

    /// When the next pending agent falls due, if any is pending.
    pub fn next_due(&self) -> Option<Instant> {
        self.away
            .values()
            .filter_map(|away| match away {
                Away::Pending { since, .. } => Some(*since + self.grace),
                Away::Reported => None,
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(30);

    #[test]
    fn a_blip_shorter_than_the_grace_raises_nothing() {
        let mut grace = OfflineGrace::new(GRACE);
        let t0 = Instant::now();
        grace.offline("a", "eu-1", t0);
        assert_eq!(grace.next_due(), Some(t0 + GRACE));
        assert!(grace.due(t0 + Duration::from_secs(29)).is_empty());
        assert!(!grace.online("a"), "its offline was never shown");
        assert_eq!(grace.next_due(), None);
        assert!(grace.due(t0 + GRACE * 2).is_empty());
    }

    #[test]
    fn a_long_absence_is_reported_once_and_so_is_the_return() {
        let mut grace = OfflineGrace::new(GRACE);
        let t0 = Instant::now();
        grace.offline("a", "eu-1", t0);
        // A repeated offline push does not push the deadline back.
        grace.offline("a", "eu-1", t0 + Duration::from_secs(20));
        assert_eq!(
            grace.due(t0 + GRACE),
            vec![("a".to_string(), "eu-1".to_string())]
        );
        assert!(grace.due(t0 + GRACE * 3).is_empty(), "reported once");
        assert_eq!(grace.next_due(), None, "nothing pending any more");
        assert!(grace.online("a"), "the return of a reported agent is news");
        assert!(!grace.online("a"), "and only once");
    }

    #[test]
    fn each_agent_has_its_own_clock() {
        let mut grace = OfflineGrace::new(GRACE);
        let t0 = Instant::now();
        grace.offline("b", "us-2", t0 + Duration::from_secs(10));
        grace.offline("a", "eu-1", t0);
        assert_eq!(grace.next_due(), Some(t0 + GRACE));
        assert_eq!(grace.due(t0 + GRACE).len(), 1);
        assert_eq!(grace.next_due(), Some(t0 + GRACE + Duration::from_secs(10)));
        assert_eq!(
            grace.due(t0 + GRACE + Duration::from_secs(10)),
            vec![("b".to_string(), "us-2".to_string())]
        );
    }

    #[test]
    fn no_grace_reports_at_once() {
        let mut grace = OfflineGrace::new(Duration::ZERO);
        let t0 = Instant::now();
        grace.offline("a", "eu-1", t0);
        assert_eq!(grace.due(t0).len(), 1);
    }

    #[test]
    fn the_grace_comes_from_the_environment_or_the_default() {
        assert_eq!(parse(None), DEFAULT_GRACE);
        assert_eq!(parse(Some("")), DEFAULT_GRACE);
        assert_eq!(parse(Some(" 5 ")), Duration::from_secs(5));
        assert_eq!(parse(Some("0")), Duration::ZERO);
        assert_eq!(parse(Some("soon")), DEFAULT_GRACE);
    }
}
