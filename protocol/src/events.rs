//! Live state: container events and full snapshots that agents push, and the subscription a
//! client makes to receive them through the relay. Nothing here is polled.

use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;
use crate::ids::{AgentId, ContainerId};
use crate::limits::{MAX_AGENT_REF_LEN, MAX_CONTAINER_REF_LEN, check_len};
use crate::payload::{Container, Validate};
use crate::wire_enum::wire_enum;

/// Most agents one subscription may name; a client watching more watches the fleet.
pub const MAX_SUBSCRIBED_AGENTS: usize = 1024;
/// Longest free-text reason or health status in an event.
const MAX_EVENT_TEXT: usize = 256;

wire_enum! {
    /// The container lifecycle changes an agent forwards from Docker's event stream. Other Docker
    /// actions (exec, attach, top, …) change nothing a table shows and are not forwarded.
    #[serde(rename_all = "snake_case")]
    pub enum ContainerAction {
        // The wire names are Docker's action names (`health_status` without its suffix).
        Create = "create",
        Start = "start",
        /// The main process ended; the event carries its exit code.
        Die = "die",
        /// The kernel's OOM killer hit the container.
        Oom = "oom",
        /// A signal was sent to the container.
        Kill = "kill",
        /// Docker's `stop` completed.
        Stop = "stop",
        Restart = "restart",
        /// A health check changed the health status (the event carries it).
        HealthStatus = "health_status",
        Pause = "pause",
        Unpause = "unpause",
        Rename = "rename",
        Destroy = "destroy",
    }
}

impl ContainerAction {
    /// The action of a Docker event, whose health events read `health_status: healthy`.
    pub fn from_docker(action: &str) -> Option<ContainerAction> {
        Self::parse(action.split(':').next().unwrap_or(action).trim())
    }
}

/// `container.event`: agent → relay → subscribed clients. One lifecycle change of one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerEvent {
    /// The agent the container runs on. Set by the relay from the agent's authenticated
    /// connection; whatever an agent puts here is overwritten.
    #[serde(default)]
    pub agent_id: AgentId,
    /// Full container id.
    pub container_id: ContainerId,
    /// The container's name (without Docker's leading `/`), as of this event.
    pub name: String,
    pub action: ContainerAction,
    /// When Docker recorded the event, Unix nanoseconds.
    pub time_nano: i64,
    /// The exit code, for `die`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// `healthy`, `unhealthy` or `starting`, for `health_status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// True when ZedOps itself asked for this (a stop or restart it was running), so that a
    /// `die` can be told apart from a crash.
    #[serde(default)]
    pub requested: bool,
    /// The container as listed right after the event, so a table can update its row without
    /// asking; `None` after `destroy` or when Docker no longer knows it.
    #[serde(default)]
    pub container: Option<Container>,
}

impl ContainerEvent {
    /// True when this is a container ending without anyone at ZedOps asking: a crash, an OOM
    /// kill, or a stop from outside ZedOps.
    pub fn is_unexpected_death(&self) -> bool {
        matches!(self.action, ContainerAction::Die | ContainerAction::Oom) && !self.requested
    }
}

impl Validate for ContainerEvent {
    fn validate(&self) -> Result<(), ProtocolError> {
        if self.agent_id.len() > MAX_AGENT_REF_LEN {
            return Err(ProtocolError::invalid("agentId", "too long"));
        }
        check_len("containerId", &self.container_id, MAX_CONTAINER_REF_LEN)?;
        if self.name.len() > MAX_CONTAINER_REF_LEN {
            return Err(ProtocolError::invalid("name", "too long"));
        }
        if self
            .health
            .as_ref()
            .is_some_and(|h| h.len() > MAX_EVENT_TEXT)
        {
            return Err(ProtocolError::invalid("health", "too long"));
        }
        Ok(())
    }
}

/// Largest `data` of one `container.event` or `container.sync` frame an agent may push; the
/// relay refuses bigger ones. A fleet whose snapshot is bigger goes in parts.
pub const MAX_PUSH_BYTES: usize = 256 * 1024;
/// Most parts one `container.sync` may come in (with [`MAX_PUSH_BYTES`], 16 MiB of fleet).
pub const MAX_SYNC_PARTS: u32 = 64;

/// `container.sync`: agent → relay → subscribed clients. Every container of the agent, sent
/// after any gap in the event stream (the agent reconnected to the relay or to Docker), because
/// Docker keeps only its last 256 events and a gap may have lost some. Replaces what a client
/// knew of that agent's containers. A snapshot over [`MAX_PUSH_BYTES`] comes in `parts`
/// frames, numbered by `part` from 0, one after the other; a client applies it once the last
/// has come (the client library hands out only whole snapshots).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerSync {
    /// Set by the relay, as for [`ContainerEvent::agent_id`].
    #[serde(default)]
    pub agent_id: AgentId,
    pub containers: Vec<Container>,
    /// Why the snapshot was taken (`connected`, `docker reconnected`).
    pub reason: String,
    /// Which part of the snapshot this is, from 0 (absent: 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub part: u32,
    /// How many parts the snapshot has (absent: 1, the whole snapshot in one frame).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub parts: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

impl ContainerSync {
    /// A whole snapshot in one frame.
    pub fn whole(containers: Vec<Container>, reason: String) -> Self {
        Self {
            agent_id: AgentId::default(),
            containers,
            reason,
            part: 0,
            parts: 1,
        }
    }

    /// This snapshot as frames whose `data` each stays under [`MAX_PUSH_BYTES`] (a single
    /// container bigger than that stays alone in its part, which the relay will refuse).
    pub fn into_parts(self) -> Vec<ContainerSync> {
        // Room for the envelope of each part besides its containers.
        let budget = MAX_PUSH_BYTES - 1024 - self.reason.len();
        let mut groups: Vec<Vec<Container>> = vec![vec![]];
        let mut bytes = 0;
        for container in self.containers {
            let size = serde_json::to_string(&container).map_or(0, |t| t.len()) + 1;
            if bytes + size > budget && !groups.last().expect("one group").is_empty() {
                groups.push(vec![]);
                bytes = 0;
            }
            bytes += size;
            groups.last_mut().expect("one group").push(container);
        }
        let parts = groups.len() as u32;
        groups
            .into_iter()
            .enumerate()
            .map(|(part, containers)| ContainerSync {
                agent_id: self.agent_id.clone(),
                containers,
                reason: self.reason.clone(),
                part: part as u32,
                parts,
            })
            .collect()
    }

    /// Puts parts back together, as they arrive in order; a part out of order (a part lost to
    /// a slow connection, or a new snapshot begun) drops what was gathered.
    pub fn reassemble(
        gathered: &mut Option<ContainerSync>,
        part: ContainerSync,
    ) -> Option<ContainerSync> {
        if part.parts <= 1 {
            *gathered = None;
            return Some(part);
        }
        let next = match gathered.take() {
            None if part.part == 0 => part,
            Some(mut so_far)
                if so_far.agent_id == part.agent_id
                    && so_far.parts == part.parts
                    && so_far.part + 1 == part.part =>
            {
                so_far.containers.extend(part.containers);
                so_far.part = part.part;
                so_far
            }
            // Out of order: start again if this is a first part, else wait for the next one.
            _ if part.part == 0 => part,
            _ => return None,
        };
        if next.part + 1 == next.parts {
            return Some(ContainerSync {
                part: 0,
                parts: 1,
                ..next
            });
        }
        *gathered = Some(next);
        None
    }
}

impl Validate for ContainerSync {
    fn validate(&self) -> Result<(), ProtocolError> {
        if self.agent_id.len() > MAX_AGENT_REF_LEN {
            return Err(ProtocolError::invalid("agentId", "too long"));
        }
        if self.reason.len() > MAX_EVENT_TEXT {
            return Err(ProtocolError::invalid("reason", "too long"));
        }
        if self.parts == 0 || self.parts > MAX_SYNC_PARTS || self.part >= self.parts {
            return Err(ProtocolError::invalid(
                "parts",
                "parts must be 1 to 64 and part below it",
            ));
        }
        Ok(())
    }
}

/// `event.subscribe` request: receive `container.event` and `container.sync` of these agents
/// (ids or names), or of the whole fleet when `agents` is absent. Replaces an earlier
/// subscription of the same connection; an empty list ends it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventSubscribe {
    #[serde(default)]
    pub agents: Option<Vec<String>>,
}

impl Validate for EventSubscribe {
    fn validate(&self) -> Result<(), ProtocolError> {
        let Some(agents) = &self.agents else {
            return Ok(());
        };
        if agents.len() > MAX_SUBSCRIBED_AGENTS {
            return Err(ProtocolError::invalid(
                "agents",
                "at most 1024 agents; leave it out to watch the whole fleet",
            ));
        }
        if agents
            .iter()
            .any(|a| a.is_empty() || a.len() > MAX_AGENT_REF_LEN)
        {
            return Err(ProtocolError::invalid(
                "agents",
                "each agent must be an id or name of 1 to 64 bytes",
            ));
        }
        Ok(())
    }
}

/// The answer to `event.subscribe`: the agent ids now watched (`None`: the whole fleet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventSubscribed {
    pub agents: Option<Vec<String>>,
}

impl Validate for EventSubscribed {}

/// `event.resync` push, relay → client: this connection fell behind and events were dropped for
/// it; list the watched agents' containers again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventResync {
    /// How many pushes were dropped.
    pub missed: u64,
}

impl Validate for EventResync {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_actions_map_to_wire_actions() {
        assert_eq!(
            ContainerAction::from_docker("health_status: unhealthy"),
            Some(ContainerAction::HealthStatus)
        );
        assert_eq!(
            ContainerAction::from_docker("die"),
            Some(ContainerAction::Die)
        );
        assert_eq!(ContainerAction::from_docker("exec_start: sh -c x"), None);
        for &action in ContainerAction::ALL {
            let json = serde_json::to_value(action).unwrap();
            assert_eq!(json, action.as_str());
            assert_eq!(ContainerAction::from_docker(action.as_str()), Some(action));
        }
    }

    #[test]
    fn an_unrequested_die_is_unexpected() {
        let mut event = ContainerEvent {
            agent_id: AgentId::default(),
            container_id: "c".repeat(64).into(),
            name: "web".into(),
            action: ContainerAction::Die,
            time_nano: 1,
            exit_code: Some(137),
            health: None,
            requested: false,
            container: None,
        };
        assert!(event.is_unexpected_death());
        event.requested = true;
        assert!(!event.is_unexpected_death());
        event.action = ContainerAction::Start;
        event.requested = false;
        assert!(!event.is_unexpected_death());
    }

    #[test]
    fn a_big_snapshot_goes_in_parts_and_comes_back_whole() {
        let row = |i: usize| Container {
            id: format!("{i:064}"),
            names: vec![format!("/c{i}")],
            image: "x".repeat(500),
            state: "running".into(),
            status: "Up".into(),
            health: None,
            created: 0,
            ports: vec![],
            labels: Default::default(),
        };
        let whole = ContainerSync::whole((0..2000).map(row).collect(), "connected".into());
        let parts = whole.clone().into_parts();
        assert!(parts.len() > 1);
        let mut gathered = None;
        let mut done = None;
        for part in parts {
            let text = serde_json::to_string(&part).unwrap();
            assert!(text.len() <= MAX_PUSH_BYTES, "{}", text.len());
            let decoded: ContainerSync = serde_json::from_str(&text).unwrap();
            assert!(decoded.validate().is_ok());
            assert!(done.is_none());
            done = ContainerSync::reassemble(&mut gathered, decoded);
        }
        assert_eq!(done, Some(whole.clone()));
        // One frame stays as it was on the wire: no part fields.
        let small = ContainerSync::whole(vec![row(1)], "connected".into());
        assert_eq!(small.clone().into_parts(), std::slice::from_ref(&small));
        assert!(!serde_json::to_string(&small).unwrap().contains("part"));
        // A lost part drops the snapshot.
        let mut parts = whole.into_parts();
        parts.remove(1);
        let mut gathered = None;
        assert!(
            parts
                .into_iter()
                .all(|p| ContainerSync::reassemble(&mut gathered, p).is_none())
        );
    }

    #[test]
    fn subscriptions_are_bounded() {
        let ok = EventSubscribe {
            agents: Some(vec!["web-1".into()]),
        };
        assert!(ok.validate().is_ok());
        let too_many = EventSubscribe {
            agents: Some(vec!["a".into(); MAX_SUBSCRIBED_AGENTS + 1]),
        };
        assert!(too_many.validate().is_err());
        let empty_name = EventSubscribe {
            agents: Some(vec![String::new()]),
        };
        assert!(empty_name.validate().is_err());
    }
}
