//! The agent's last known row of each container (from its snapshot, from Docker after an event,
//! or as an event left it), so that an event whose effect the event itself says is pushed with
//! its new row at once, instead of waiting for a list from an engine that may be busy: a kill, a
//! die (with its exit code), a stop, a health change, and the start of a container already seen
//! running without published ports. What only Docker knows is still asked for before the push:
//! a container not seen yet (`create`), the host ports of a start (Docker lists ports only while
//! a container runs, and picks a new host port for an unpinned one at every start), a rename, a
//! pause. After a push made from what is known, the row is listed again in the background so the
//! next event starts from Docker's own. A snapshot's row is never the start of a derivation:
//! Docker replays the events of the second before the snapshot, which may be older than the row,
//! so a container's first event after a snapshot asks Docker, as every event used to.

use std::collections::HashMap;

use zedops_protocol::{Container, ContainerAction};

use crate::docker::DockerEvent;

/// What a start of a container shows, learned the last time Docker listed it running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Running {
    /// It had ports in the list: a start's ports must be asked for.
    ports: bool,
    /// It has a health check: a start shows `health: starting`.
    health_check: bool,
}

impl Running {
    fn of(row: &Container) -> Option<Self> {
        (row.state == "running").then(|| Running {
            ports: !row.ports.is_empty(),
            health_check: row.health.is_some(),
        })
    }
}

struct Known {
    row: Container,
    /// Changed by every event, list and snapshot, so a background list that answers after a
    /// newer change is not applied over it.
    version: u64,
    /// The latest event applied, to settle a list Docker answered before recording it; `None`
    /// for a snapshot's row, which no event is derived from (see the module's note).
    last: Option<(ContainerAction, Option<i64>)>,
    running: Option<Running>,
}

/// The rows, one per container Docker has (bounded by them: a `destroy` removes one and every
/// snapshot replaces them all).
#[derive(Default)]
pub(crate) struct Rows {
    known: HashMap<String, Known>,
    version: u64,
}

impl Rows {
    fn next_version(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    /// Replaces every row with a snapshot's, keeping what was learned of how each runs.
    pub fn replace(&mut self, rows: &[Container]) {
        let version = self.next_version();
        let mut known = HashMap::with_capacity(rows.len());
        for row in rows {
            let learned = self.known.get(&row.id).and_then(|k| k.running);
            known.insert(
                row.id.clone(),
                Known {
                    row: row.clone(),
                    version,
                    last: None,
                    running: Running::of(row).or(learned),
                },
            );
        }
        self.known = known;
    }

    /// The row after `event` when the event and the known row say it (and it is kept as the
    /// known row, with the version a background list of it must match); `None` when only
    /// Docker can say (see the module's note).
    pub fn after(&mut self, event: &DockerEvent) -> Option<(Container, u64)> {
        let known = self
            .known
            .get(&event.container_id)
            .filter(|k| k.last.is_some())?;
        let row = derive(&known.row, known.running, event)?;
        let version = self.next_version();
        let known = self.known.get_mut(&event.container_id)?;
        known.row = row.clone();
        known.version = version;
        known.last = Some((event.action, event.exit_code));
        Some((row, version))
    }

    /// Records what Docker listed for `event`'s container right after it (`None`: gone), settled
    /// for the event, and returns that row.
    pub fn listed(&mut self, event: &DockerEvent, row: Option<Container>) -> Option<Container> {
        let row = row.map(|r| settled(r, event.action, event.exit_code));
        let version = self.next_version();
        match &row {
            Some(row) => {
                let learned = self.known.get(&event.container_id).and_then(|k| k.running);
                self.known.insert(
                    event.container_id.clone(),
                    Known {
                        row: row.clone(),
                        version,
                        last: Some((event.action, event.exit_code)),
                        running: Running::of(row).or(learned),
                    },
                );
            }
            None => self.forget(&event.container_id),
        }
        row
    }

    /// Applies a background list of `id` made for `version`, unless a newer event or snapshot
    /// came meanwhile. A container already gone is left to its `destroy` event.
    pub fn refreshed(&mut self, id: &str, version: u64, row: Option<Container>) {
        let (Some(known), Some(row)) = (self.known.get_mut(id), row) else {
            return;
        };
        if known.version != version {
            return;
        }
        let row = match known.last {
            Some((action, exit_code)) => settled(row, action, exit_code),
            None => row,
        };
        known.running = Running::of(&row).or(known.running);
        known.row = row;
    }

    /// Forgets a container's row: it is gone, or an event of it was not pushed (held for a
    /// snapshot), so the row no longer says where it is.
    pub fn forget(&mut self, id: &str) {
        self.known.remove(id);
    }

    #[cfg(test)]
    fn row(&self, id: &str) -> Option<&Container> {
        self.known.get(id).map(|k| &k.row)
    }
}

/// The row `row` becomes with `event`, when the two say it.
fn derive(row: &Container, running: Option<Running>, event: &DockerEvent) -> Option<Container> {
    let mut row = row.clone();
    match event.action {
        // Docker sends these while the container still runs (kill, oom) or after its `die`
        // (stop): the row is as it was.
        ContainerAction::Kill | ContainerAction::Oom | ContainerAction::Stop => Some(row),
        // `restart` follows the restart's `start`, which already set the row.
        ContainerAction::Restart => (row.state == "running").then_some(row),
        ContainerAction::Die => {
            row.state = "running".into();
            Some(settled(row, ContainerAction::Die, event.exit_code))
        }
        ContainerAction::Start => {
            let running = running.filter(|r| !r.ports)?;
            row.state = "running".into();
            row.health = running.health_check.then(|| "starting".to_string());
            row.status = with_health("Up Less than a second", row.health.as_deref());
            Some(row)
        }
        ContainerAction::HealthStatus => {
            let health = event.health.clone()?;
            if row.state != "running" {
                return None;
            }
            let up = match row.status.rsplit_once(" (") {
                Some((up, _)) if row.status.ends_with(')') => up.to_string(),
                _ => row.status.clone(),
            };
            row.status = with_health(&up, Some(&health));
            row.health = Some(health);
            Some(row)
        }
        ContainerAction::Create
        | ContainerAction::Pause
        | ContainerAction::Unpause
        | ContainerAction::Rename
        | ContainerAction::Destroy => None,
    }
}

/// Docker's status text for a running container with this health (`docker ps` wording).
fn with_health(up: &str, health: Option<&str>) -> String {
    match health {
        Some("starting") => format!("{up} (health: starting)"),
        Some(health) => format!("{up} ({health})"),
        None => up.to_string(),
    }
}

/// The row as it will be once Docker has finished with the event. Docker announces `die`
/// before it records the container as stopped, so a list at that moment still says running;
/// a stopped container lists no ports and no health.
pub(crate) fn settled(
    mut row: Container,
    action: ContainerAction,
    exit_code: Option<i64>,
) -> Container {
    if action == ContainerAction::Die && matches!(row.state.as_str(), "running" | "restarting") {
        row.state = "exited".into();
        row.status = format!(
            "Exited ({}) Less than a second ago",
            exit_code.unwrap_or_default()
        );
        row.health = None;
        row.ports.clear();
    }
    row
}

#[cfg(test)]
mod tests {
    use zedops_protocol::Port;

    use super::*;

    fn row(id: &str, state: &str, status: &str, health: Option<&str>, ports: bool) -> Container {
        Container {
            id: id.into(),
            names: vec![format!("/{id}")],
            image: "busybox".into(),
            state: state.into(),
            status: status.into(),
            created: 1,
            ports: if ports {
                vec![Port {
                    ip: Some("0.0.0.0".into()),
                    private_port: 80,
                    public_port: Some(32768),
                    kind: "tcp".into(),
                }]
            } else {
                vec![]
            },
            health: health.map(str::to_string),
            labels: Default::default(),
        }
    }

    fn event(id: &str, action: ContainerAction, exit_code: Option<i64>) -> DockerEvent {
        DockerEvent {
            container_id: id.into(),
            name: id.into(),
            action,
            time_nano: 1,
            exit_code,
            health: None,
        }
    }

    /// Rows with `rows`, each already listed after an event of its own.
    fn after_events(rows: &[Container]) -> Rows {
        let mut known = Rows::default();
        known.replace(rows);
        for row in rows {
            let oom = event(&row.id, ContainerAction::Oom, None);
            assert!(
                known.after(&oom).is_none(),
                "a snapshot's row is not derived from"
            );
            known.listed(&oom, Some(row.clone()));
        }
        known
    }

    #[test]
    fn a_seen_container_is_pushed_from_its_events() {
        let mut rows = after_events(&[row("a", "running", "Up 2 minutes", None, false)]);
        let (killed, _) = rows
            .after(&event("a", ContainerAction::Kill, None))
            .unwrap();
        assert_eq!(
            killed.state, "running",
            "Docker lists it running until its die"
        );
        let (died, _) = rows
            .after(&event("a", ContainerAction::Die, Some(137)))
            .unwrap();
        assert_eq!(
            (died.state.as_str(), died.status.as_str()),
            ("exited", "Exited (137) Less than a second ago")
        );
        let (stopped, _) = rows
            .after(&event("a", ContainerAction::Stop, None))
            .unwrap();
        assert_eq!(stopped, died);
        // Seen running without ports or health check: its start is known too.
        let (started, _) = rows
            .after(&event("a", ContainerAction::Start, None))
            .unwrap();
        assert_eq!(
            (
                started.state.as_str(),
                started.status.as_str(),
                started.health.as_deref()
            ),
            ("running", "Up Less than a second", None)
        );
        assert_eq!(started.names, vec!["/a".to_string()]);
        let (restarted, _) = rows
            .after(&event("a", ContainerAction::Restart, None))
            .unwrap();
        assert_eq!(restarted, started);
    }

    #[test]
    fn what_only_docker_knows_is_asked_for() {
        let mut rows = after_events(&[
            row("ports", "running", "Up 1 second", None, true),
            row("new", "created", "Created", None, false),
        ]);
        // Not seen yet, or a host port Docker picks at each start, or never seen running.
        assert!(
            rows.after(&event("other", ContainerAction::Die, Some(0)))
                .is_none()
        );
        assert!(
            rows.after(&event("ports", ContainerAction::Die, Some(0)))
                .is_some()
        );
        assert!(
            rows.after(&event("ports", ContainerAction::Start, None))
                .is_none()
        );
        assert!(
            rows.after(&event("new", ContainerAction::Start, None))
                .is_none()
        );
        for action in [
            ContainerAction::Create,
            ContainerAction::Pause,
            ContainerAction::Unpause,
            ContainerAction::Rename,
        ] {
            assert!(
                rows.after(&event("new", action, None)).is_none(),
                "{action}"
            );
        }
        // Once Docker listed it running without ports, its next start is known.
        let listed = rows.listed(
            &event("new", ContainerAction::Start, None),
            Some(row("new", "running", "Up Less than a second", None, false)),
        );
        assert_eq!(listed.unwrap().state, "running");
        rows.after(&event("new", ContainerAction::Die, Some(0)))
            .unwrap();
        assert!(
            rows.after(&event("new", ContainerAction::Start, None))
                .is_some()
        );
        // A held event leaves the row unknown until the next snapshot.
        rows.forget("new");
        assert!(
            rows.after(&event("new", ContainerAction::Kill, None))
                .is_none()
        );
    }

    #[test]
    fn health_is_carried_by_its_events() {
        let mut rows = after_events(&[row(
            "h",
            "running",
            "Up 5 seconds (healthy)",
            Some("healthy"),
            false,
        )]);
        let mut unhealthy = event("h", ContainerAction::HealthStatus, None);
        unhealthy.health = Some("unhealthy".into());
        let (row, _) = rows.after(&unhealthy).unwrap();
        assert_eq!(
            (row.status.as_str(), row.health.as_deref()),
            ("Up 5 seconds (unhealthy)", Some("unhealthy"))
        );
        let (died, _) = rows
            .after(&event("h", ContainerAction::Die, Some(1)))
            .unwrap();
        assert_eq!(died.health, None);
        // A start of a container with a health check says it is starting, as `docker ps` does.
        let (started, _) = rows
            .after(&event("h", ContainerAction::Start, None))
            .unwrap();
        assert_eq!(
            (started.status.as_str(), started.health.as_deref()),
            ("Up Less than a second (health: starting)", Some("starting"))
        );
    }

    #[test]
    fn a_background_list_applies_only_if_nothing_newer_came() {
        let mut rows = after_events(&[row("a", "running", "Up 2 minutes", None, false)]);
        let (_, died_at) = rows
            .after(&event("a", ContainerAction::Die, Some(0)))
            .unwrap();
        // Docker answered before recording the die: settled, not taken as running.
        rows.refreshed(
            "a",
            died_at,
            Some(row("a", "running", "Up 2 minutes", None, false)),
        );
        assert_eq!(rows.row("a").unwrap().state, "exited");
        // A list made before the start is not applied over it.
        let (_, _started_at) = rows
            .after(&event("a", ContainerAction::Start, None))
            .unwrap();
        rows.refreshed(
            "a",
            died_at,
            Some(row("a", "exited", "Exited (0) 1 second ago", None, false)),
        );
        assert_eq!(rows.row("a").unwrap().state, "running");
        // A snapshot replaces the rows and outdates every list in flight.
        rows.replace(&[]);
        assert!(rows.row("a").is_none());
        rows.replace(&[row("a", "running", "Up 2 minutes", None, false)]);
        assert!(
            rows.after(&event("a", ContainerAction::Kill, None))
                .is_none()
        );
    }

    #[test]
    fn a_row_listed_at_die_is_shown_stopped() {
        let died = settled(
            row(
                "a",
                "running",
                "Up 3 seconds (healthy)",
                Some("healthy"),
                true,
            ),
            ContainerAction::Die,
            Some(137),
        );
        assert_eq!(died.state, "exited");
        assert_eq!(died.status, "Exited (137) Less than a second ago");
        assert_eq!(died.health, None);
        assert!(died.ports.is_empty(), "a stopped container lists no ports");
        // Other events keep what Docker listed.
        let running = row("a", "running", "Up 3 seconds", None, true);
        assert_eq!(
            settled(running.clone(), ContainerAction::Kill, None),
            running
        );
        // "exited" stays as listed.
        let exited = row("a", "exited", "Exited (0) 2 seconds ago", None, false);
        assert_eq!(
            settled(exited.clone(), ContainerAction::Die, Some(0)),
            exited
        );
    }
}
