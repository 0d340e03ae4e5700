//! Which container events deserve a native notification, and flap suppression: a container that
//! crashes in a loop notifies once per quiet period, not on every restart.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use zedops_client::{ContainerAction, ContainerEvent};
use zedops_protocol::{AgentId, ContainerId};

use crate::alerting::AlertKind;

/// After a notification about a container, further ones about it wait this long.
pub const QUIET_PERIOD: Duration = Duration::from_secs(60);

/// A notification to show: what happened, title and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub kind: AlertKind,
    pub title: String,
    pub body: String,
}

#[derive(Debug, Default)]
pub struct Alerts {
    /// (agent id, container id) → when it last notified.
    last: HashMap<(AgentId, ContainerId), Instant>,
}

impl Alerts {
    /// The alert for `event` on the agent called `agent`, unless it is not alarming or the same
    /// container notified within the quiet period.
    pub fn check(&mut self, agent: &str, event: &ContainerEvent, now: Instant) -> Option<Alert> {
        let alert = describe(agent, event)?;
        let key = (event.agent_id.clone(), event.container_id.clone());
        if self
            .last
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < QUIET_PERIOD)
        {
            tracing::debug!(container = %event.name, "alert suppressed: notified recently");
            return None;
        }
        self.last
            .retain(|_, at| now.duration_since(*at) < QUIET_PERIOD);
        self.last.insert(key, now);
        Some(alert)
    }
}

/// Crashes, OOM kills and failing health checks; not what someone asked ZedOps to do.
fn describe(agent: &str, event: &ContainerEvent) -> Option<Alert> {
    let name = &event.name;
    match event.action {
        ContainerAction::Oom => Some(Alert {
            kind: AlertKind::Oom,
            title: format!("{name} ran out of memory on {agent}"),
            body: format!(
                "The kernel killed a process in container {name} on {agent} for lack of memory; raise its memory limit or find the leak."
            ),
        }),
        ContainerAction::Die if event.is_unexpected_death() => Some(Alert {
            kind: AlertKind::Crashed,
            title: format!("{name} stopped on {agent}"),
            body: match event.exit_code {
                Some(code) => format!(
                    "Container {name} on {agent} exited with code {code} without a stop from ZedOps; check its logs."
                ),
                None => format!(
                    "Container {name} on {agent} stopped without a stop from ZedOps; check its logs."
                ),
            },
        }),
        ContainerAction::HealthStatus if event.health.as_deref() == Some("unhealthy") => {
            Some(Alert {
                kind: AlertKind::Unhealthy,
                title: format!("{name} is unhealthy on {agent}"),
                body: format!(
                    "The health check of container {name} on {agent} is failing; it may need a restart."
                ),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: ContainerAction, requested: bool) -> ContainerEvent {
        ContainerEvent {
            agent_id: "agent-id".into(),
            container_id: "c1".into(),
            name: "pz-server".into(),
            action,
            time_nano: 0,
            exit_code: Some(137),
            health: None,
            requested,
            container: None,
        }
    }

    #[test]
    fn crashes_notify_once_per_quiet_period() {
        let mut alerts = Alerts::default();
        let t0 = Instant::now();
        let crash = event(ContainerAction::Die, false);
        let alert = alerts
            .check("game-1", &crash, t0)
            .expect("a crash notifies");
        assert_eq!(alert.title, "pz-server stopped on game-1");
        assert_eq!(alert.kind, AlertKind::Crashed);
        assert!(
            alert.body.contains("exited with code 137"),
            "{}",
            alert.body
        );
        // Crash-looping: suppressed until the quiet period is over.
        assert_eq!(
            alerts.check("game-1", &crash, t0 + Duration::from_secs(5)),
            None
        );
        assert!(alerts.check("game-1", &crash, t0 + QUIET_PERIOD).is_some());
    }

    #[test]
    fn only_alarming_events_notify() {
        let mut alerts = Alerts::default();
        let now = Instant::now();
        assert_eq!(
            alerts.check("g", &event(ContainerAction::Die, true), now),
            None
        );
        assert_eq!(
            alerts.check("g", &event(ContainerAction::Start, false), now),
            None
        );
        let mut unhealthy = event(ContainerAction::HealthStatus, false);
        unhealthy.health = Some("healthy".into());
        assert_eq!(alerts.check("g", &unhealthy, now), None);
        unhealthy.health = Some("unhealthy".into());
        assert!(alerts.check("g", &unhealthy, now).is_some());
        let oom = event(ContainerAction::Oom, false);
        let mut other = Alerts::default();
        assert!(
            other
                .check("g", &oom, now)
                .unwrap()
                .title
                .contains("out of memory")
        );
    }
}
