//! Payload types of every subject (the `data` of the envelope), camelCase on the wire.
//!
//! Incoming payloads are decoded with unknown fields refused and then [`Validate`]d against the
//! limits, so a handler only ever sees well-formed, bounded input.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, ProtocolError};
use crate::ids::{AgentId, AgentRef, ContainerRef};
use crate::limits::*;

/// Checks a decoded payload against the protocol's limits.
pub trait Validate {
    fn validate(&self) -> Result<(), ProtocolError> {
        Ok(())
    }
}

/// A boxed payload (a big variant of a message enum) validates as what it holds.
impl<T: Validate> Validate for Box<T> {
    fn validate(&self) -> Result<(), ProtocolError> {
        (**self).validate()
    }
}

/// An error answer has no limits of its own to check. Implemented here rather than beside
/// `ErrorReply`, so that the `error` module needs nothing of this one (no import loop).
impl Validate for crate::error::ErrorReply {}

/// True when `name` is a usable agent or user name: 1–64 of `A-Z a-z 0-9 . _ -`, not starting
/// with a dot or dash. Keeps names safe to print in a terminal and to use in file names.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// True when `reference` has the shape of an agent id (a UUID: 32 hex digits, with or without
/// its dashes). Agent names may not have it, so an id is never mistaken for a name: the relay
/// resolves ids first and tries names only for what cannot be an id.
pub fn looks_like_agent_id(reference: &str) -> bool {
    let hex: Vec<u8> = reference.bytes().filter(|b| *b != b'-').collect();
    hex.len() == 32
        && hex.iter().all(u8::is_ascii_hexdigit)
        && (reference.len() == 32 || reference.len() == 36)
}

// ---------------------------------------------------------------------------------------------
// Handshakes
// ---------------------------------------------------------------------------------------------

/// What an agent reports about itself at every hello.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentInfo {
    /// The agent's own version.
    pub version: String,
    /// Docker engine version, when Docker answered.
    #[serde(default)]
    pub docker_version: Option<String>,
    /// Docker engine id, stable for one engine; tells two agents on one engine apart.
    #[serde(default)]
    pub engine_id: Option<String>,
    /// Operating system (`linux`, …) and a human description when known.
    pub os: String,
    /// CPU architecture (`x86_64`, `aarch64`, …).
    pub arch: String,
    /// The server's host name.
    #[serde(default)]
    pub hostname: Option<String>,
}

impl Validate for AgentInfo {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_len("version", &self.version, MAX_INFO_LEN)?;
        check_len("os", &self.os, MAX_INFO_LEN)?;
        check_len("arch", &self.arch, MAX_INFO_LEN)?;
        check_optional("dockerVersion", &self.docker_version, MAX_INFO_LEN)?;
        check_optional("engineId", &self.engine_id, MAX_INFO_LEN)?;
        check_optional("hostname", &self.hostname, MAX_INFO_LEN)
    }
}

/// `agent.register`: first frame of a new agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentRegister {
    pub protocol_version: u32,
    /// The single-use registration token an admin created.
    pub registration_token: String,
    /// The name the agent asks for (unique at the relay).
    pub name: String,
    pub info: AgentInfo,
}

impl Validate for AgentRegister {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_len("registrationToken", &self.registration_token, MAX_TOKEN_LEN)?;
        if !is_valid_name(&self.name) {
            return Err(ProtocolError::invalid(
                "name",
                "must be 1 to 64 of A-Z a-z 0-9 . _ -",
            ));
        }
        if looks_like_agent_id(&self.name) {
            return Err(ProtocolError::invalid(
                "name",
                "may not look like an agent id (a UUID); choose a name such as web-1",
            ));
        }
        self.info.validate()
    }
}

/// `agent.auth`: first frame of an enrolled agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentAuth {
    pub protocol_version: u32,
    pub agent_id: AgentId,
    /// The permanent agent token received at enrolment.
    pub token: String,
    pub info: AgentInfo,
}

impl Validate for AgentAuth {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_len("agentId", &self.agent_id, MAX_AGENT_REF_LEN)?;
        check_len("token", &self.token, MAX_TOKEN_LEN)?;
        self.info.validate()
    }
}

/// `agent.welcome`: the relay accepted an agent's hello.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentWelcome {
    pub protocol_version: u32,
    pub agent_id: AgentId,
    pub name: String,
    /// The permanent token; only present in the answer to `agent.register`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl Validate for AgentWelcome {}

/// `agent.heartbeat`: no fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {}

impl Validate for Heartbeat {}

/// `client.hello`: first frame of an app or CLI connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientHello {
    pub protocol_version: u32,
    /// Device token from `POST /api/login`.
    pub token: String,
}

impl Validate for ClientHello {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_len("token", &self.token, MAX_TOKEN_LEN)
    }
}

/// Roles a relay user can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including users and tokens.
    Admin,
    /// Container actions.
    Operator,
    /// Read only.
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Operator => "operator",
            Self::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Self::Admin),
            "operator" => Some(Self::Operator),
            "viewer" => Some(Self::Viewer),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `client.welcome`: the relay accepted a client's hello.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientWelcome {
    pub protocol_version: u32,
    pub user: String,
    pub role: Role,
}

impl Validate for ClientWelcome {}

/// `POST /api/login` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// A label for the device session (host name of the machine logging in).
    #[serde(default)]
    pub device: Option<String>,
}

impl Validate for LoginRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_len("username", &self.username, MAX_NAME_LEN)?;
        check_len("password", &self.password, MAX_PASSWORD_LEN)?;
        check_optional("device", &self.device, MAX_INFO_LEN)
    }
}

/// `POST /api/login` answer on success.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginResponse {
    /// The device token; present it in `client.hello`.
    pub token: String,
    pub user: String,
    pub role: Role,
}

impl Validate for LoginResponse {}

// ---------------------------------------------------------------------------------------------
// Agents
// ---------------------------------------------------------------------------------------------

/// `agent.list` request: no fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AgentListRequest {}

impl Validate for AgentListRequest {}

/// One agent as the relay knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentSummary {
    pub id: String,
    pub name: String,
    pub online: bool,
    /// RFC 3339 time of the last frame from the agent; `None` if it never connected.
    pub last_seen: Option<String>,
    /// What the agent reported at its last hello.
    pub info: Option<AgentInfo>,
}

impl Validate for AgentSummary {}

/// `agent.list` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentListResponse {
    pub agents: Vec<AgentSummary>,
    pub count: usize,
}

impl Validate for AgentListResponse {}

/// `agent.status` push: one agent came online or went offline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentStatus {
    pub agent_id: AgentId,
    pub name: String,
    pub online: bool,
    pub last_seen: Option<String>,
}

impl Validate for AgentStatus {}

// ---------------------------------------------------------------------------------------------
// Containers
// ---------------------------------------------------------------------------------------------

/// `container.list` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerListRequest {
    /// Agent id (or unique name, resolved by the relay).
    pub agent_id: AgentRef,
}

impl Validate for ContainerListRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_len("agentId", &self.agent_id, MAX_AGENT_REF_LEN)
    }
}

/// `container.start|stop|restart` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerActionRequest {
    /// Agent id (or unique name, resolved by the relay).
    pub agent_id: AgentRef,
    /// Container id, id prefix or name.
    pub container_id: ContainerRef,
}

impl Validate for ContainerActionRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_target(&self.agent_id, &self.container_id)
    }
}

/// The checks of every request that names an agent and a container in it.
pub(crate) fn check_target(agent_id: &str, container_id: &str) -> Result<(), ProtocolError> {
    check_len("agentId", agent_id, MAX_AGENT_REF_LEN)?;
    check_container_ref(container_id)
}

/// A container id or name as Docker spells them, within [`MAX_CONTAINER_REF_LEN`].
fn check_container_ref(container_id: &str) -> Result<(), ProtocolError> {
    check_len("containerId", container_id, MAX_CONTAINER_REF_LEN)?;
    // Docker resolves names and ids in URL paths; anything outside its name alphabet is refused
    // here so that no path tricks ("../") ever reach the engine.
    let bare = container_id.strip_prefix('/').unwrap_or(container_id);
    let ok = bare
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric())
        && bare
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        return Err(ProtocolError::invalid(
            "containerId",
            "must be a container id or name",
        ));
    }
    Ok(())
}

/// The agent and container a request's payload names (`agentId`, `containerId`), read
/// leniently from any subject's payload and each kept only when it passes the checks a valid
/// request's would (an agent as a name or id, a container as Docker's name alphabet): what the
/// relay records of a request it refuses without decoding it.
pub fn named_target(frame: &crate::envelope::Frame) -> (Option<String>, Option<String>) {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Named {
        #[serde(default)]
        agent_id: Option<String>,
        #[serde(default)]
        container_id: Option<String>,
    }
    let raw = frame
        .data
        .as_deref()
        .map_or("{}", serde_json::value::RawValue::get);
    let Ok(named) = serde_json::from_str::<Named>(raw) else {
        return (None, None);
    };
    let agent = named
        .agent_id
        .filter(|a| a.len() <= MAX_AGENT_REF_LEN && is_valid_name(a));
    let container = named
        .container_id
        .filter(|c| check_container_ref(c).is_ok());
    (agent, container)
}

/// A published or exposed port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Port {
    pub private_port: u16,
    #[serde(default)]
    pub public_port: Option<u16>,
    /// `tcp`, `udp` or `sctp`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Host address the port is published on, when published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

/// One container, running or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Container {
    /// Full 64-hex id.
    pub id: String,
    /// Docker names, each with its leading `/` (`["/web"]`).
    pub names: Vec<String>,
    pub image: String,
    /// Docker state: `created`, `running`, `paused`, `restarting`, `removing`, `exited`, `dead`.
    pub state: String,
    /// Human status, e.g. `Up 2 hours (healthy)`.
    pub status: String,
    /// Creation time, Unix seconds.
    pub created: i64,
    pub ports: Vec<Port>,
    /// `healthy`, `unhealthy` or `starting` when the container has a health check.
    #[serde(default)]
    pub health: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl Container {
    /// The first name without its leading slash, or the short id.
    pub fn display_name(&self) -> &str {
        self.names
            .first()
            .map(|n| n.trim_start_matches('/'))
            .unwrap_or_else(|| &self.id[..self.id.len().min(12)])
    }
}

/// `container.list.response`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerListResponse {
    pub containers: Vec<Container>,
    pub count: usize,
}

impl Validate for ContainerListResponse {}

/// The operations a container action request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Start,
    Stop,
    Restart,
}

impl Operation {
    /// The operation a request subject asks for.
    pub fn from_subject(subject: &str) -> Option<Self> {
        match subject {
            crate::subject::CONTAINER_START => Some(Self::Start),
            crate::subject::CONTAINER_STOP => Some(Self::Stop),
            crate::subject::CONTAINER_RESTART => Some(Self::Restart),
            _ => None,
        }
    }

    pub fn subject(self) -> &'static str {
        match self {
            Self::Start => crate::subject::CONTAINER_START,
            Self::Stop => crate::subject::CONTAINER_STOP,
            Self::Restart => crate::subject::CONTAINER_RESTART,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Restart => "restart",
        }
    }

    /// The code an agent answers with when Docker fails this operation.
    pub fn failure_code(self) -> ErrorCode {
        match self {
            Self::Start => ErrorCode::DockerStartFailed,
            Self::Stop => ErrorCode::DockerStopFailed,
            Self::Restart => ErrorCode::DockerRestartFailed,
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `container.operation.success`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OperationSuccess {
    /// Always `true`.
    pub success: bool,
    pub container_id: ContainerRef,
    pub operation: Operation,
}

impl Validate for OperationSuccess {}

/// `container.operation.error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OperationError {
    /// Always `false`.
    pub success: bool,
    pub container_id: ContainerRef,
    pub operation: Operation,
    pub error: String,
    pub error_code: ErrorCode,
}

impl Validate for OperationError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_request_names_only_valid_targets() {
        let named = |data: &str| {
            let frame = crate::envelope::Frame::decode(&format!(
                r#"{{"subject":"file.list","reply":"_INBOX.1","data":{data}}}"#
            ))
            .unwrap();
            named_target(&frame)
        };
        assert_eq!(
            named(r#"{"agentId":"web-1","containerId":"db","path":"/etc"}"#),
            (Some("web-1".into()), Some("db".into()))
        );
        // Hostile or malformed values are left out, never recorded as given.
        assert_eq!(
            named(r#"{"agentId":"\u001b[2Jx","containerId":"../etc"}"#),
            (None, None)
        );
        assert_eq!(named(r#"{"agentId":7}"#), (None, None));
        assert_eq!(named("[]"), (None, None));
    }

    #[test]
    fn container_uses_seed_field_names() {
        let c = Container {
            id: "ab".repeat(32),
            names: vec!["/web".into()],
            image: "busybox".into(),
            state: "running".into(),
            status: "Up 2 seconds".into(),
            created: 1,
            ports: vec![Port {
                private_port: 80,
                public_port: Some(8080),
                kind: "tcp".into(),
                ip: None,
            }],
            health: None,
            labels: BTreeMap::new(),
        };
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["ports"][0]["privatePort"], 80);
        assert_eq!(json["ports"][0]["publicPort"], 8080);
        assert_eq!(json["ports"][0]["type"], "tcp");
        assert_eq!(c.display_name(), "web");
    }

    #[test]
    fn names_are_restricted() {
        assert!(is_valid_name("web-1.example_a"));
        for bad in ["", "-x", ".x", "a b", "x;rm", "é", &"a".repeat(65)] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn agent_names_may_not_look_like_ids() {
        let id = "3f2b8c1e-4d5a-4e6f-9a7b-0c1d2e3f4a5b";
        assert!(looks_like_agent_id(id));
        assert!(looks_like_agent_id(&id.replace('-', "")));
        assert!(!looks_like_agent_id("web-1"));
        assert!(!looks_like_agent_id("3f2b8c1e-4d5a"));
        let register = |name: &str| AgentRegister {
            protocol_version: 1,
            registration_token: "t".into(),
            name: name.into(),
            info: AgentInfo {
                version: "1".into(),
                os: "linux".into(),
                arch: "x86_64".into(),
                ..AgentInfo::default()
            },
        };
        assert!(register("web-1").validate().is_ok());
        let err = register(id).validate().unwrap_err().to_string();
        assert!(err.contains("may not look like an agent id"), "{err}");
    }

    #[test]
    fn container_refs_refuse_path_tricks() {
        let req = |c: &str| ContainerActionRequest {
            agent_id: "a".into(),
            container_id: c.into(),
        };
        assert!(req("web-1").validate().is_ok());
        assert!(req("/web-1").validate().is_ok());
        assert!(req("../../etc").validate().is_err());
        assert!(req("a/b").validate().is_err());
        assert!(req("/").validate().is_err());
        assert!(req("..").validate().is_err());
    }
}
