//! Live state: container events and full snapshots that agents push, and the subscription a
//! client makes to receive them through the relay. Nothing here is polled.

use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;
use crate::limits::{MAX_AGENT_REF_LEN, MAX_CONTAINER_REF_LEN};
use crate::payload::{Container, Validate};

/// Most agents one subscription may name; a client watching more watches the fleet.
pub const MAX_SUBSCRIBED_AGENTS: usize = 1024;
/// Longest free-text reason or health status in an event.
const MAX_EVENT_TEXT: usize = 256;

/// The container lifecycle changes an agent forwards from Docker's event stream. Other Docker
/// actions (exec, attach, top, …) change nothing a table shows and are not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerAction {
    Create,
    Start,
    /// The main process ended; the event carries its exit code.
    Die,
    /// The kernel's OOM killer hit the container.
    Oom,
    /// A signal was sent to the container.
    Kill,
    /// Docker's `stop` completed.
    Stop,
    Restart,
    /// A health check changed the health status (the event carries it).
    HealthStatus,
    Pause,
    Unpause,
    Rename,
    Destroy,
}

impl ContainerAction {
    pub const ALL: [ContainerAction; 12] = {
        use ContainerAction::*;
        [
            Create,
            Start,
            Die,
            Oom,
            Kill,
            Stop,
            Restart,
            HealthStatus,
            Pause,
            Unpause,
            Rename,
            Destroy,
        ]
    };

    /// The wire name, which is also Docker's action name (`health_status` without its suffix).
    pub fn as_str(self) -> &'static str {
        use ContainerAction::*;
        match self {
            Create => "create",
            Start => "start",
            Die => "die",
            Oom => "oom",
            Kill => "kill",
            Stop => "stop",
            Restart => "restart",
            HealthStatus => "health_status",
            Pause => "pause",
            Unpause => "unpause",
            Rename => "rename",
            Destroy => "destroy",
        }
    }

    /// The action of a Docker event, whose health events read `health_status: healthy`.
    pub fn from_docker(action: &str) -> Option<ContainerAction> {
        let base = action.split(':').next().unwrap_or(action).trim();
        Self::ALL.into_iter().find(|a| a.as_str() == base)
    }
}

impl std::fmt::Display for ContainerAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `container.event`: agent → relay → subscribed clients. One lifecycle change of one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerEvent {
    /// The agent the container runs on. Set by the relay from the agent's authenticated
    /// connection; whatever an agent puts here is overwritten.
    #[serde(default)]
    pub agent_id: String,
    /// Full container id.
    pub container_id: String,
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
        if self.container_id.is_empty() || self.container_id.len() > MAX_CONTAINER_REF_LEN {
            return Err(ProtocolError::invalid(
                "containerId",
                "must be 1 to 256 bytes",
            ));
        }
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

/// `container.sync`: agent → relay → subscribed clients. Every container of the agent, sent
/// after any gap in the event stream (the agent reconnected to the relay or to Docker), because
/// Docker keeps only its last 256 events and a gap may have lost some. Replaces what a client
/// knew of that agent's containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerSync {
    /// Set by the relay, as for [`ContainerEvent::agent_id`].
    #[serde(default)]
    pub agent_id: String,
    pub containers: Vec<Container>,
    /// Why the snapshot was taken (`connected`, `docker reconnected`).
    pub reason: String,
}

impl Validate for ContainerSync {
    fn validate(&self) -> Result<(), ProtocolError> {
        if self.agent_id.len() > MAX_AGENT_REF_LEN {
            return Err(ProtocolError::invalid("agentId", "too long"));
        }
        if self.reason.len() > MAX_EVENT_TEXT {
            return Err(ProtocolError::invalid("reason", "too long"));
        }
        Ok(())
    }
}

/// `event.subscribe` request: receive `container.event` and `container.sync` of these agents
/// (ids or names), or of the whole fleet when `agents` is absent. Replaces an earlier
/// subscription of the same connection; an empty list ends it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventSubscribed {
    pub agents: Option<Vec<String>>,
}

impl Validate for EventSubscribed {}

/// `event.resync` push, relay → client: this connection fell behind and events were dropped for
/// it; list the watched agents' containers again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
        for action in ContainerAction::ALL {
            let json = serde_json::to_value(action).unwrap();
            assert_eq!(json, action.as_str());
            assert_eq!(ContainerAction::from_docker(action.as_str()), Some(action));
        }
    }

    #[test]
    fn an_unrequested_die_is_unexpected() {
        let mut event = ContainerEvent {
            agent_id: String::new(),
            container_id: "c".repeat(64),
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
