//! What the UI sees: session, agents, containers and actions, camelCase, exported to TypeScript.
//! The protocol's wire types are converted here, in one place, so the UI's shapes can differ
//! from the wire's (a display name, seconds as a plain number) without touching the protocol.

use serde::{Deserialize, Serialize};
use specta::Type;
use zedops_client::{AgentSummary, Container, Operation, Port};

/// Who is signed in where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    /// The relay's canonical URL.
    pub relay: String,
    pub user: String,
    /// `admin`, `operator` or `viewer`.
    pub role: String,
    /// Why the sign-in will not survive a restart (the keyring could not store the token), if so.
    pub keyring_warning: Option<String>,
}

/// What the sign-in form is prefilled with: the last relay and user name (never a secret).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct LastLogin {
    pub relay: Option<String>,
    pub user: Option<String>,
}

/// One agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct AgentView {
    pub id: String,
    pub name: String,
    pub online: bool,
    /// RFC 3339 time of the last frame from the agent; `null` if it never connected.
    pub last_seen: Option<String>,
    pub docker_version: Option<String>,
    pub version: Option<String>,
    pub os: Option<String>,
    pub arch: Option<String>,
    pub hostname: Option<String>,
}

impl From<AgentSummary> for AgentView {
    fn from(a: AgentSummary) -> Self {
        let info = a.info.unwrap_or_default();
        let present = |s: String| (!s.is_empty()).then_some(s);
        Self {
            id: a.id,
            name: a.name,
            online: a.online,
            last_seen: a.last_seen,
            docker_version: info.docker_version,
            version: present(info.version),
            os: present(info.os),
            arch: present(info.arch),
            hostname: info.hostname,
        }
    }
}

/// A published or exposed port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct PortView {
    pub private_port: u16,
    pub public_port: Option<u16>,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    pub ip: Option<String>,
}

impl From<Port> for PortView {
    fn from(p: Port) -> Self {
        Self {
            private_port: p.private_port,
            public_port: p.public_port,
            protocol: p.kind,
            ip: p.ip,
        }
    }
}

/// One container, running or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ContainerView {
    /// Full 64-hex id.
    pub id: String,
    /// The first name without its leading slash, or the short id.
    pub name: String,
    pub image: String,
    /// Docker state: `created`, `running`, `paused`, `restarting`, `removing`, `exited`, `dead`.
    pub state: String,
    /// Docker's human status, e.g. `Up 2 hours (healthy)`.
    pub status: String,
    /// Creation time in Unix seconds (`u32` keeps it a plain JavaScript number; good until 2106).
    pub created: u32,
    pub ports: Vec<PortView>,
    pub health: Option<String>,
}

impl From<Container> for ContainerView {
    fn from(c: Container) -> Self {
        Self {
            name: c.display_name().to_string(),
            id: c.id,
            image: c.image,
            state: c.state,
            status: c.status,
            created: c.created.clamp(0, u32::MAX.into()) as u32,
            ports: c.ports.into_iter().map(PortView::from).collect(),
            health: c.health,
        }
    }
}

/// Converts a whole list.
pub fn containers(list: Vec<Container>) -> Vec<ContainerView> {
    list.into_iter().map(ContainerView::from).collect()
}

/// A container action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Start,
    Stop,
    Restart,
}

impl From<Action> for Operation {
    fn from(a: Action) -> Self {
        match a {
            Action::Start => Operation::Start,
            Action::Stop => Operation::Stop,
            Action::Restart => Operation::Restart,
        }
    }
}

impl Action {
    /// For people: "Stop", "Start", "Restart".
    pub fn label(self) -> &'static str {
        match self {
            Action::Start => "Start",
            Action::Stop => "Stop",
            Action::Restart => "Restart",
        }
    }
}

/// The answer to a container action: what was done, and the agent's containers afterwards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ActionOutcome {
    pub agent_id: String,
    pub container_id: String,
    pub action: Action,
    /// The agent's containers listed right after the action, only when container events were
    /// not being pushed (then the pushed event updates the row); `null` otherwise or if that
    /// list failed.
    pub containers: Option<Vec<ContainerView>>,
}

/// A new single-use registration token and the command that enrols a server with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationToken {
    pub token: String,
    /// RFC 3339 time after which the relay refuses the token.
    pub expires_at: String,
    /// The one line to run on the server: `curl -fsSL URL/install.sh | ZEDOPS_TOKEN=T sh`.
    pub install_command: String,
    /// The relay address in the command.
    pub public_url: String,
    /// True when that address is this computer's (127.0.0.1, localhost): other servers cannot use it.
    pub loopback: bool,
}

/// One audit log entry: who did what to which container, and how it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// The relay's id of the entry, in decimal (a string: JavaScript numbers lose digits past 2^53).
    pub id: String,
    /// RFC 3339 time.
    pub at: String,
    pub user: Option<String>,
    pub agent_id: Option<String>,
    /// The container as it was asked for (a name or an id).
    pub container: Option<String>,
    /// `start`, `stop`, `restart`, or an admin subject such as `token.create`.
    pub operation: String,
    /// `ok`, `failed` or `forbidden`.
    pub result: String,
    pub error_code: Option<String>,
}

impl From<zedops_protocol::AuditRecord> for AuditEntry {
    fn from(r: zedops_protocol::AuditRecord) -> Self {
        Self {
            id: r.id.to_string(),
            at: r.at,
            user: r.user,
            agent_id: r.agent_id.map(String::from),
            container: r.container,
            // The relay records a refused action by its subject (`container.stop`) and a forwarded
            // one by its operation (`stop`); people see one name for one thing.
            operation: match r.operation.strip_prefix("container.") {
                Some(op @ ("start" | "stop" | "restart")) => op.to_string(),
                _ => r.operation,
            },
            result: r.result,
            error_code: r.error_code,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn a_container_becomes_a_row_with_a_display_name() {
        let c = Container {
            id: "ab".repeat(32),
            names: vec!["/web".into()],
            image: "busybox".into(),
            state: "running".into(),
            status: "Up 2 seconds".into(),
            created: 1_700_000_000,
            ports: vec![Port {
                private_port: 80,
                public_port: Some(8080),
                kind: "tcp".into(),
                ip: Some("0.0.0.0".into()),
            }],
            health: None,
            labels: BTreeMap::new(),
        };
        let json = serde_json::to_value(ContainerView::from(c)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": "ab".repeat(32), "name": "web", "image": "busybox", "state": "running",
                "status": "Up 2 seconds", "created": 1_700_000_000,
                "ports": [{"privatePort": 80, "publicPort": 8080, "protocol": "tcp", "ip": "0.0.0.0"}],
                "health": null
            })
        );
    }

    #[test]
    fn actions_are_lowercase_and_map_to_operations() {
        assert_eq!(serde_json::to_value(Action::Restart).unwrap(), "restart");
        assert_eq!(
            serde_json::from_value::<Action>("stop".into()).unwrap(),
            Action::Stop
        );
        assert_eq!(Operation::from(Action::Start), Operation::Start);
    }
}
