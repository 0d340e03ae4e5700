//! Alarming changes that arrive in a snapshot (`container.sync`) rather than as events: the agent
//! folds events into one snapshot during a storm (see docs/PROTOCOL.md, "Pacing"), and sends one
//! after a gap (its connection to the relay or to Docker dropped). A container that ran before
//! and has now exited with a failing code crashed; one now unhealthy that was not is unhealthy.
//! Each becomes the event that would have said so, for the same alert rules.

use std::collections::HashMap;

use zedops_client::{ContainerAction, ContainerEvent};

use crate::types::ContainerView;

/// Exit codes of a stop rather than a crash: 0, and 143 (ended by SIGTERM, what `docker stop`
/// sends first). 137 (SIGKILL) counts as a crash: it is also what an outside `docker kill` or
/// the OOM killer leaves.
const CLEAN_EXITS: [i64; 2] = [0, 143];

/// The events `before` → `after` hides, for the agent `agent_id`. No `before` (the first list of
/// an agent) hides nothing: there is nothing to compare with.
pub fn hidden_events(
    agent_id: &str,
    before: Option<&[ContainerView]>,
    after: &[ContainerView],
) -> Vec<ContainerEvent> {
    let Some(before) = before else {
        return Vec::new();
    };
    let was: HashMap<&str, &ContainerView> = before.iter().map(|c| (c.id.as_str(), c)).collect();
    let mut hidden = Vec::new();
    for now in after {
        let Some(old) = was.get(now.id.as_str()) else {
            continue;
        };
        let event = |action, exit_code, health: Option<String>| ContainerEvent {
            agent_id: agent_id.into(),
            container_id: now.id.clone().into(),
            name: now.name.clone(),
            action,
            time_nano: 0,
            exit_code,
            health,
            // A snapshot cannot say who stopped it; only a failing exit code is reported.
            requested: false,
            container: None,
        };
        let was_up = matches!(old.state.as_str(), "running" | "restarting");
        if was_up && matches!(now.state.as_str(), "exited" | "dead") {
            match exit_code(&now.status) {
                Some(code) if !CLEAN_EXITS.contains(&code) => {
                    hidden.push(event(ContainerAction::Die, Some(code), None))
                }
                _ => {}
            }
        } else if now.health.as_deref() == Some("unhealthy")
            && old.health.as_deref() != Some("unhealthy")
        {
            hidden.push(event(
                ContainerAction::HealthStatus,
                None,
                Some("unhealthy".into()),
            ));
        }
    }
    hidden
}

/// The code in Docker's status `Exited (137) 2 seconds ago`.
fn exit_code(status: &str) -> Option<i64> {
    let rest = status.strip_prefix("Exited (")?;
    rest[..rest.find(')')?].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, state: &str, status: &str, health: Option<&str>) -> ContainerView {
        ContainerView {
            id: id.into(),
            name: format!("pz-{id}"),
            image: "busybox".into(),
            state: state.into(),
            status: status.into(),
            created: 0,
            ports: vec![],
            health: health.map(Into::into),
        }
    }

    #[test]
    fn a_failing_exit_after_running_is_a_crash() {
        let before = [
            row("a", "running", "Up 1 hour", None),
            row("b", "running", "Up 1 hour", None),
            row("c", "running", "Up 1 hour", None),
            row("d", "exited", "Exited (1) 1 hour ago", None),
        ];
        let after = [
            row("a", "exited", "Exited (137) 1 second ago", None),
            row("b", "exited", "Exited (0) 1 second ago", None),
            row("c", "exited", "Exited (143) 1 second ago", None),
            row("d", "exited", "Exited (1) 1 hour ago", None),
            row("e", "exited", "Exited (2) 1 second ago", None),
        ];
        let events = hidden_events("agent-1", Some(&before), &after);
        assert_eq!(events.len(), 1, "{events:?}");
        let crash = &events[0];
        assert_eq!(
            (crash.container_id.as_str(), crash.name.as_str()),
            ("a", "pz-a")
        );
        assert_eq!(crash.action, ContainerAction::Die);
        assert_eq!(crash.exit_code, Some(137));
        assert_eq!(crash.agent_id, "agent-1");
        assert!(crash.is_unexpected_death());
    }

    #[test]
    fn turning_unhealthy_is_reported_once() {
        let before = [
            row("a", "running", "Up 1 hour (healthy)", Some("healthy")),
            row("b", "running", "Up 1 hour (unhealthy)", Some("unhealthy")),
        ];
        let after = [
            row("a", "running", "Up 1 hour (unhealthy)", Some("unhealthy")),
            row("b", "running", "Up 1 hour (unhealthy)", Some("unhealthy")),
        ];
        let events = hidden_events("g", Some(&before), &after);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].container_id, "a");
        assert_eq!(events[0].action, ContainerAction::HealthStatus);
        assert_eq!(events[0].health.as_deref(), Some("unhealthy"));
    }

    #[test]
    fn nothing_to_compare_with_hides_nothing() {
        let after = [row("a", "exited", "Exited (137) 1 second ago", None)];
        assert!(hidden_events("g", None, &after).is_empty());
        assert_eq!(exit_code("Exited (255) 3 weeks ago"), Some(255));
        assert_eq!(exit_code("Up 2 hours"), None);
    }
}
