//! Docker's event stream, narrowed to container lifecycle changes and turned into protocol
//! terms, and the bookkeeping that tells a stop ZedOps asked for from a crash.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::models::{EventMessage, EventMessageTypeEnum};
use bollard::query_parameters::{EventsOptionsBuilder, ListContainersOptionsBuilder};
use futures_util::{Stream, StreamExt};
use zedops_protocol::{Container, ContainerAction, ErrorCode};

use super::{DockerClient, DockerError, bare};

/// How long after a ZedOps stop or restart returns its `die`/`kill`/`stop` events still count as
/// asked for: Docker may deliver them on the event stream a little after the API call returns.
const REQUESTED_GRACE: Duration = Duration::from_secs(5);

/// One container lifecycle change, as Docker reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerEvent {
    pub container_id: String,
    pub name: String,
    pub action: ContainerAction,
    pub time_nano: i64,
    pub exit_code: Option<i64>,
    pub health: Option<String>,
}

/// Stops and restarts ZedOps is running or ran a moment ago, by the reference it was given.
#[derive(Default)]
pub(super) struct Requested {
    /// Reference → when the call finished (`None` while it runs).
    entries: std::sync::Mutex<Vec<(String, Option<Instant>)>>,
}

/// Marks a stop or restart as ZedOps' own for as long as it lives, and a grace after.
pub(crate) struct RequestedGuard<'a> {
    requested: &'a Requested,
    reference: String,
}

impl Requested {
    pub(super) fn begin(&self, reference: &str) -> RequestedGuard<'_> {
        self.entries
            .lock()
            .expect("requested lock")
            .push((bare(reference).to_string(), None));
        RequestedGuard {
            requested: self,
            reference: bare(reference).to_string(),
        }
    }

    /// True when a stop or restart ZedOps runs (or just ran) names this container.
    fn matches(&self, id: &str, name: &str) -> bool {
        let mut entries = self.entries.lock().expect("requested lock");
        entries.retain(|(_, done)| done.is_none_or(|at| at.elapsed() < REQUESTED_GRACE));
        entries.iter().any(|(reference, _)| {
            reference == name || (reference.len() >= 12 && id.starts_with(reference.as_str()))
        })
    }
}

impl Drop for RequestedGuard<'_> {
    fn drop(&mut self) {
        let mut entries = self.requested.entries.lock().expect("requested lock");
        if let Some(entry) = entries
            .iter_mut()
            .find(|(r, done)| *r == self.reference && done.is_none())
        {
            entry.1 = Some(Instant::now());
        }
    }
}

impl DockerClient {
    /// Container events from `since` on (Docker replays what it still has from then), as a
    /// stream that ends when the engine connection does.
    pub async fn events(
        &self,
        since: SystemTime,
    ) -> Result<impl Stream<Item = Result<DockerEvent, DockerError>> + use<>, DockerError> {
        let docker = self.engine().await?;
        let since = since
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let filters: HashMap<&str, Vec<&str>> = HashMap::from([("type", vec!["container"])]);
        let options = EventsOptionsBuilder::new()
            .since(&format!("{since:.3}"))
            .filters(&filters)
            .build();
        let host = self.host.clone();
        Ok(docker.events(Some(options)).filter_map(move |item| {
            let mapped = match item {
                Ok(message) => event(message).map(Ok),
                Err(err) => Some(Err(DockerError::new(
                    ErrorCode::DockerNotAvailable,
                    format!(
                        "Docker's event stream at {host} broke: {}",
                        super::chain(&err)
                    ),
                ))),
            };
            std::future::ready(mapped)
        }))
    }

    /// One container as `container.list` shows it, by full id; `None` once it is gone.
    pub async fn container(&self, id: &str) -> Result<Option<Container>, DockerError> {
        let filters: HashMap<&str, Vec<&str>> = HashMap::from([("id", vec![id])]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let found = self
            .call(ErrorCode::DockerListFailed, None, |d| async move {
                d.list_containers(Some(options)).await
            })
            .await?;
        match found.into_iter().find(|c| c.id.as_deref() == Some(id)) {
            Some(summary) => Ok(Some(self.row(summary).await)),
            None => Ok(None),
        }
    }

    /// True when ZedOps itself is stopping or restarting this container, or just did.
    pub fn was_requested(&self, id: &str, name: &str) -> bool {
        self.requested.matches(id, name)
    }
}

/// A Docker event in protocol terms, or `None` for events no table shows (exec, attach, …).
fn event(message: EventMessage) -> Option<DockerEvent> {
    if message.typ != Some(EventMessageTypeEnum::CONTAINER) {
        return None;
    }
    let raw_action = message.action?;
    let action = ContainerAction::from_docker(&raw_action)?;
    let actor = message.actor?;
    let container_id = actor.id?;
    let attributes = actor.attributes.unwrap_or_default();
    let health = (action == ContainerAction::HealthStatus)
        .then(|| {
            raw_action
                .split_once(':')
                .map(|(_, h)| h.trim().to_string())
        })
        .flatten();
    Some(DockerEvent {
        name: attributes.get("name").cloned().unwrap_or_default(),
        exit_code: attributes.get("exitCode").and_then(|c| c.parse().ok()),
        health,
        time_nano: message
            .time_nano
            .or(message.time.map(|s| s * 1_000_000_000))
            .unwrap_or_default(),
        action,
        container_id,
    })
}

#[cfg(test)]
mod tests {
    use bollard::models::EventActor;

    use super::*;

    fn message(action: &str, attributes: &[(&str, &str)]) -> EventMessage {
        EventMessage {
            typ: Some(EventMessageTypeEnum::CONTAINER),
            action: Some(action.into()),
            actor: Some(EventActor {
                id: Some("a".repeat(64)),
                attributes: Some(
                    attributes
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
            }),
            scope: None,
            time: Some(1_700_000_000),
            time_nano: Some(1_700_000_000_123_456_789),
        }
    }

    #[test]
    fn docker_events_become_protocol_events() {
        let die = event(message("die", &[("name", "web"), ("exitCode", "137")])).unwrap();
        assert_eq!(
            (die.action, die.name.as_str(), die.exit_code),
            (ContainerAction::Die, "web", Some(137))
        );
        assert_eq!(die.time_nano, 1_700_000_000_123_456_789);
        let health = event(message("health_status: unhealthy", &[("name", "db")])).unwrap();
        assert_eq!(health.health.as_deref(), Some("unhealthy"));
        assert_eq!(event(message("exec_start: sh", &[])), None);
        let mut image = message("pull", &[]);
        image.typ = Some(EventMessageTypeEnum::IMAGE);
        assert_eq!(event(image), None);
    }

    #[test]
    fn requested_stops_are_recognised_by_name_or_id() {
        let requested = Requested::default();
        let id = "b".repeat(64);
        assert!(!requested.matches(&id, "web"));
        let guard = requested.begin("/web");
        assert!(requested.matches(&id, "web"));
        assert!(!requested.matches(&id, "db"));
        drop(guard);
        // Still within the grace after the call returned.
        assert!(requested.matches(&id, "web"));
        let _by_id = requested.begin(&id[..12]);
        assert!(requested.matches(&id, "other-name"));
    }
}
