//! Deploying and removing: the container specification a template resolves to, the requests
//! that create and remove containers and pull and remove images, and their answers.
//!
//! A [`ContainerSpec`] is data, never a command line: every field reaches Docker as a structured
//! field of its API. Decoding refuses unknown fields, and [`Validate`] checks names, image
//! references, labels and environment names against the grammars Docker accepts. The few
//! dangerous settings the spec can name (`privileged`, `capAdd`, `devices`, host namespaces) exist
//! only so that the agent's local policy can refuse them *by name* with `POLICY_DENIED`; what the
//! spec cannot name (security options, sysctls, raw host config) cannot be asked for at all.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;
use crate::ids::{AgentId, AgentRef, ContainerId, ContainerRef};
use crate::limits::{MAX_AGENT_REF_LEN, MAX_NAME_LEN, check_len};
use crate::payload::{Validate, check_target};
use crate::stream::StreamEnd;

/// Longest image reference (Docker's own limit for a whole reference is 255).
pub const MAX_IMAGE_REF_LEN: usize = 255;
/// Longest container name.
pub const MAX_CONTAINER_NAME_LEN: usize = 128;
/// Most environment variables, labels, ports, volumes, command words in one spec.
pub const MAX_SPEC_ENTRIES: usize = 128;
/// Longest environment value, label value or command word.
pub const MAX_SPEC_VALUE_LEN: usize = 4096;
/// Longest label key or environment name.
pub const MAX_SPEC_KEY_LEN: usize = 128;
/// Most layers one pull progress frame reports; more are summed into the totals only.
pub const MAX_PULL_LAYERS: usize = 64;
/// Pulls one agent runs at once; more are refused with `RATE_LIMITED`.
pub const MAX_PULLS_PER_AGENT: usize = 2;
/// Progress frames of one pull per second at most; Docker's own stream is far faster.
pub const PULL_PROGRESS_PER_SEC: u32 = 4;
/// Longest a pull may take before the agent gives up on it.
pub const PULL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// Label prefix ZedOps owns; a spec may set only [`LABEL_PROTECTED`] under it.
pub const LABEL_PREFIX: &str = "zedops.";
/// The template a container was created from.
pub const LABEL_TEMPLATE: &str = "zedops.template";
/// That template's version.
pub const LABEL_TEMPLATE_VERSION: &str = "zedops.template.version";
/// The user who created it.
pub const LABEL_CREATED_BY: &str = "zedops.created-by";
/// `true`: the agent refuses to remove the container (`PROTECTED`).
pub const LABEL_PROTECTED: &str = "zedops.protected";

/// The `zedops.*` labels a spec (a template) may set: removal protection, and how updates treat
/// the container (issue 15: `never`/`pinned`, the pre-update hook and its wait).
pub const SPEC_ZEDOPS_LABELS: [&str; 4] = [
    LABEL_PROTECTED,
    crate::LABEL_UPDATE,
    crate::LABEL_UPDATE_HOOK,
    crate::LABEL_UPDATE_HOOK_WAIT,
];

/// Why an update label's value would not work, checked when the template is stored rather
/// than at the first update: `zedops.update` is `never` or `pinned`, the hook a non-empty
/// command, its wait whole seconds up to [`crate::MAX_HOOK_WAIT_SECS`].
fn update_label_problem(key: &str, value: &str) -> Option<&'static str> {
    match key {
        crate::LABEL_UPDATE if !matches!(value, "never" | "pinned") => {
            Some("zedops.update must be never or pinned")
        }
        crate::LABEL_UPDATE_HOOK if value.trim().is_empty() => {
            Some("zedops.update.hook must be a command")
        }
        crate::LABEL_UPDATE_HOOK_WAIT
            if value
                .parse::<u32>()
                .map_or(true, |secs| secs > crate::MAX_HOOK_WAIT_SECS) =>
        {
            Some("zedops.update.hook-wait must be whole seconds from 0 to 600")
        }
        _ => None,
    }
}

/// What one container should be: the resolved form of a template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerSpec {
    /// `repository[:tag][@sha256:digest]`, with an optional registry host (`127.0.0.1:5000/x:1`).
    pub image: String,
    /// Replaces the image's `CMD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Replaces the image's `ENTRYPOINT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Environment, by variable name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeSpec>,
    #[serde(default, skip_serializing_if = "Resources::is_empty")]
    pub resources: Resources,
    #[serde(default)]
    pub restart: RestartPolicy,
    /// Restarts Docker tries with `restart = "on-failure"` (unlimited when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_max_retries: Option<u32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckSpec>,
    /// Signal that stops the container (`SIGTERM` when absent), e.g. `SIGINT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Seconds between the stop signal and SIGKILL (Docker's 10 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace_secs: Option<u32>,
    /// Keep stdin open (game servers with a console on stdin).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub open_stdin: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tty: bool,
    /// Working directory inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// `bridge` (Docker's default when absent), `none`, or a user-defined network's name.
    /// `host` and `container:…` are refused by the agent's policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    // The settings below are refused by every agent (POLICY_DENIED); they are named here only so
    // that the refusal can name them.
    /// Refused by the agent when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    /// Refused by the agent when not empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    /// Host devices; refused by the agent when not empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// Refused by the agent when present (`host` would share the server's processes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_mode: Option<String>,
    /// Refused by the agent when present (`host` would share the server's IPC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipc_mode: Option<String>,
}

/// A port of the container, published on the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortSpec {
    /// The port inside the container.
    pub container: u16,
    /// The server's port; absent: any free port Docker picks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<u16>,
    #[serde(default)]
    pub protocol: PortProtocol,
    /// Server address to publish on (all addresses when absent), e.g. `127.0.0.1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<std::net::IpAddr>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum PortProtocol {
    #[default]
    Tcp,
    Udp,
}

impl PortProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

/// A volume mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeSpec {
    /// `volume`: a named Docker volume (created when missing); `bind`: a server directory, only
    /// inside the agent's `--allow-bind` directories.
    #[serde(default, rename = "type")]
    pub kind: VolumeKind,
    /// The volume's name, or the server path of a bind.
    pub source: String,
    /// Absolute path inside the container.
    pub target: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum VolumeKind {
    #[default]
    Volume,
    Bind,
}

/// Resource limits; absent fields are unlimited.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    /// CPUs, fractional (`1.5`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Memory limit, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Memory plus swap, bytes (at least `memoryBytes`); absent: Docker's default of twice
    /// the memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_swap_bytes: Option<u64>,
    /// Most processes and threads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<u32>,
}

impl Resources {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Docker's restart policies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    #[default]
    No,
    Always,
    UnlessStopped,
    OnFailure,
}

impl RestartPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::No => "no",
            Self::Always => "always",
            Self::UnlessStopped => "unless-stopped",
            Self::OnFailure => "on-failure",
        }
    }
}

/// A health check run inside the container, as Docker's `HEALTHCHECK CMD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheckSpec {
    /// The command and its arguments, run without a shell.
    pub cmd: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_secs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period_secs: Option<u32>,
}

// ---------------------------------------------------------------------------------------------
// Grammars
// ---------------------------------------------------------------------------------------------

/// Docker's container name grammar: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, here at most 128 bytes.
pub fn is_valid_container_name(name: &str) -> bool {
    name.len() <= MAX_CONTAINER_NAME_LEN
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Docker's volume name grammar: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn is_valid_volume_name(name: &str) -> bool {
    name.len() >= 2 && is_valid_container_name(name)
}

/// An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_valid_env_name(name: &str) -> bool {
    name.len() <= MAX_SPEC_KEY_LEN
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A label key: `[A-Za-z0-9]` then `[A-Za-z0-9._/-]`, at most 128 bytes.
pub fn is_valid_label_key(key: &str) -> bool {
    key.len() <= MAX_SPEC_KEY_LEN
        && key
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
}

/// Text that may be a value (environment, label, command word): bounded, no NUL or other
/// control characters but tab and newline.
pub fn is_valid_value(value: &str) -> bool {
    value.len() <= MAX_SPEC_VALUE_LEN
        && !value
            .chars()
            .any(|c| c.is_control() && c != '\t' && c != '\n')
}

/// Docker's image reference grammar (distribution's `reference` package):
/// `[domain[:port]/]path-component(/path-component)*[:tag][@sha256:64-hex]`, path components
/// lower case `[a-z0-9]+` joined by `.`, `_`, `__` or dashes, the tag `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn is_valid_image_ref(reference: &str) -> bool {
    if reference.is_empty() || reference.len() > MAX_IMAGE_REF_LEN {
        return false;
    }
    let (rest, digest) = match reference.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (reference, None),
    };
    if let Some(digest) = digest {
        let ok = digest.strip_prefix("sha256:").is_some_and(|hex| {
            hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if !ok {
            return false;
        }
    }
    // A tag follows the last colon that comes after the last slash (a colon before it is a port).
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(tag) = tag {
        let ok = tag.len() <= 128
            && tag
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !ok {
            return false;
        }
    }
    let mut components: Vec<&str> = name.split('/').collect();
    if components.len() > 1 {
        let first = components[0];
        if first.contains(['.', ':']) || first == "localhost" {
            if !is_valid_domain(first) {
                return false;
            }
            components.remove(0);
        }
    }
    !components.is_empty() && components.iter().all(|c| is_valid_path_component(c))
}

fn is_valid_domain(domain: &str) -> bool {
    let (host, port) = match domain.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.parse::<u16>().is_ok());
    host_ok && port_ok
}

fn is_valid_path_component(component: &str) -> bool {
    // `[a-z0-9]+` runs separated by `.`, `_`, `__` or one or more `-`.
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let dashes = sep.bytes().all(|b| b == b'-');
        if !(sep == "." || sep == "_" || sep == "__" || dashes) {
            return false;
        }
    }
    true
}

fn invalid(field: &'static str, reason: &'static str) -> ProtocolError {
    ProtocolError::invalid(field, reason)
}

fn check_words(field: &'static str, words: &[String]) -> Result<(), ProtocolError> {
    if words.len() > MAX_SPEC_ENTRIES {
        return Err(invalid(field, "at most 128 words"));
    }
    if !words.iter().all(|w| is_valid_value(w)) {
        return Err(invalid(
            field,
            "words of at most 4096 bytes without control characters",
        ));
    }
    Ok(())
}

fn check_absolute(field: &'static str, path: &str) -> Result<(), ProtocolError> {
    let ok = path.starts_with('/')
        && path.len() <= MAX_SPEC_VALUE_LEN
        && is_valid_value(path)
        && !path.contains('\n')
        && !path.split('/').any(|part| part == "..");
    if !ok {
        return Err(invalid(field, "must be an absolute path without `..`"));
    }
    Ok(())
}

impl Validate for ContainerSpec {
    fn validate(&self) -> Result<(), ProtocolError> {
        if !is_valid_image_ref(&self.image) {
            return Err(invalid(
                "image",
                "must be an image reference such as nginx:1.27, ghcr.io/owner/name:tag or name@sha256:<64 hex>",
            ));
        }
        if let Some(cmd) = &self.cmd {
            check_words("cmd", cmd)?;
        }
        if let Some(entrypoint) = &self.entrypoint {
            check_words("entrypoint", entrypoint)?;
        }
        if self.env.len() > MAX_SPEC_ENTRIES {
            return Err(invalid("env", "at most 128 variables"));
        }
        if !self.env.keys().all(|k| is_valid_env_name(k)) {
            return Err(invalid("env", "names must be [A-Za-z_][A-Za-z0-9_]*"));
        }
        if !self.env.values().all(|v| is_valid_value(v)) {
            return Err(invalid(
                "env",
                "values of at most 4096 bytes without control characters",
            ));
        }
        if self.ports.len() > MAX_SPEC_ENTRIES {
            return Err(invalid("ports", "at most 128 ports"));
        }
        if self.ports.iter().any(|p| p.container == 0) {
            return Err(invalid("ports.container", "must be 1 to 65535"));
        }
        let mut published = std::collections::HashSet::new();
        for port in &self.ports {
            if !published.insert((port.container, port.protocol)) {
                return Err(invalid(
                    "ports",
                    "the same container port and protocol twice",
                ));
            }
        }
        if self.volumes.len() > MAX_SPEC_ENTRIES {
            return Err(invalid("volumes", "at most 128 volumes"));
        }
        for volume in &self.volumes {
            check_absolute("volumes.target", &volume.target)?;
            match volume.kind {
                VolumeKind::Volume if !is_valid_volume_name(&volume.source) => {
                    return Err(invalid(
                        "volumes.source",
                        "a volume name must be [a-zA-Z0-9][a-zA-Z0-9_.-]+",
                    ));
                }
                VolumeKind::Volume => {}
                VolumeKind::Bind => check_absolute("volumes.source", &volume.source)?,
            }
        }
        if let Some(cpus) = self.resources.cpus
            && !(cpus.is_finite() && cpus > 0.0 && cpus <= 1024.0)
        {
            return Err(invalid("resources.cpus", "must be more than 0"));
        }
        if self
            .resources
            .memory_bytes
            .is_some_and(|m| m < 6 * 1024 * 1024)
        {
            return Err(invalid(
                "resources.memoryBytes",
                "Docker needs at least 6 MiB",
            ));
        }
        if let Some(swap) = self.resources.memory_swap_bytes {
            match self.resources.memory_bytes {
                None => {
                    return Err(invalid(
                        "resources.memorySwapBytes",
                        "needs resources.memoryBytes",
                    ));
                }
                Some(memory) if swap < memory => {
                    return Err(invalid(
                        "resources.memorySwapBytes",
                        "must be at least resources.memoryBytes",
                    ));
                }
                Some(_) => {}
            }
        }
        if self.resources.pids == Some(0) {
            return Err(invalid("resources.pids", "must be more than 0"));
        }
        if self.restart_max_retries.is_some() && self.restart != RestartPolicy::OnFailure {
            return Err(invalid(
                "restartMaxRetries",
                "only with restart = \"on-failure\"",
            ));
        }
        if self.labels.len() > MAX_SPEC_ENTRIES {
            return Err(invalid("labels", "at most 128 labels"));
        }
        for (key, value) in &self.labels {
            if !is_valid_label_key(key) {
                return Err(invalid(
                    "labels",
                    "keys must be [A-Za-z0-9] then [A-Za-z0-9._/-], at most 128 bytes",
                ));
            }
            if key.starts_with(LABEL_PREFIX) && !SPEC_ZEDOPS_LABELS.contains(&key.as_str()) {
                return Err(invalid(
                    "labels",
                    "zedops.* labels are set by ZedOps (only zedops.protected, zedops.update, zedops.update.hook and zedops.update.hook-wait may be asked for)",
                ));
            }
            if let Some(problem) = update_label_problem(key, value) {
                return Err(invalid("labels", problem));
            }
            if !is_valid_value(value) {
                return Err(invalid(
                    "labels",
                    "values of at most 4096 bytes without control characters",
                ));
            }
        }
        if let Some(check) = &self.health_check {
            if check.cmd.is_empty() {
                return Err(invalid("healthCheck.cmd", "must name a command"));
            }
            check_words("healthCheck.cmd", &check.cmd)?;
        }
        if let Some(signal) = &self.stop_signal {
            let ok = (1..=16).contains(&signal.len())
                && signal
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+');
            if !ok {
                return Err(invalid("stopSignal", "must be a signal such as SIGINT"));
            }
        }
        if self.stop_grace_secs.is_some_and(|s| s > 3600) {
            return Err(invalid("stopGraceSecs", "at most 3600"));
        }
        if let Some(dir) = &self.working_dir {
            check_absolute("workingDir", dir)?;
        }
        if let Some(network) = &self.network
            && !(network == "host"
                || network.starts_with("container:")
                || is_valid_container_name(network))
        {
            return Err(invalid("network", "must be a network name"));
        }
        check_words("capAdd", &self.cap_add)?;
        check_words("devices", &self.devices)?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Requests and answers
// ---------------------------------------------------------------------------------------------

/// The template a container came from, stamped on it as labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateStamp {
    pub name: String,
    pub version: u32,
}

/// `container.create`, client → relay: deploy a template onto an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeployRequest {
    pub agent_id: AgentRef,
    /// Template name.
    pub template: String,
    /// The new container's name.
    pub name: String,
    /// Values of the template's variables, by name.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// Start the container once created.
    #[serde(default)]
    pub start: bool,
}

impl Validate for DeployRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_agent(&self.agent_id)?;
        if !crate::payload::is_valid_name(&self.template) {
            return Err(invalid("template", "must be 1 to 64 of A-Z a-z 0-9 . _ -"));
        }
        if !is_valid_container_name(&self.name) {
            return Err(invalid(
                "name",
                "must be [a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 128 bytes",
            ));
        }
        if self.variables.len() > MAX_SPEC_ENTRIES
            || !self.variables.keys().all(|k| is_valid_env_name(k))
            || !self.variables.values().all(|v| is_valid_value(v))
        {
            return Err(invalid(
                "variables",
                "at most 128, named [A-Za-z_][A-Za-z0-9_]*, values of at most 4096 bytes",
            ));
        }
        Ok(())
    }
}

/// `container.create`, relay → agent: create a container from a resolved spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerCreate {
    pub agent_id: AgentId,
    pub name: String,
    pub spec: ContainerSpec,
    #[serde(default)]
    pub start: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateStamp>,
    /// The user on whose behalf the relay asks (the `zedops.created-by` label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

impl Validate for ContainerCreate {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_agent(&self.agent_id)?;
        if !is_valid_container_name(&self.name) {
            return Err(invalid(
                "name",
                "must be [a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 128 bytes",
            ));
        }
        if let Some(template) = &self.template
            && !crate::payload::is_valid_name(&template.name)
        {
            return Err(invalid(
                "template.name",
                "must be 1 to 64 of A-Z a-z 0-9 . _ -",
            ));
        }
        if let Some(user) = &self.created_by
            && !crate::payload::is_valid_name(user)
        {
            return Err(invalid("createdBy", "must be a user name"));
        }
        self.spec.validate()
    }
}

/// A container made by `container.create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerCreated {
    /// Full 64-hex id.
    pub id: String,
    pub name: String,
    pub started: bool,
    /// Docker's warnings about the configuration (e.g. swap limits the kernel lacks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// One layer's progress in a pull.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LayerProgress {
    /// Short layer id as Docker reports it.
    pub id: String,
    /// Docker's status word: `Waiting`, `Downloading`, `Extracting`, `Pull complete`, `Already exists`, ….
    pub status: String,
    /// Bytes done of the current phase.
    pub current: u64,
    /// Bytes of the current phase, when Docker knows them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// A snapshot of a pull in progress (at most [`PULL_PROGRESS_PER_SEC`] a second).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PullProgress {
    pub image: String,
    /// Layers in the order Docker first named them, at most [`MAX_PULL_LAYERS`].
    pub layers: Vec<LayerProgress>,
    /// Sums over every layer (also those beyond the first [`MAX_PULL_LAYERS`]).
    pub current: u64,
    pub total: u64,
    /// Layers done (`Pull complete` or `Already exists`) out of all named so far.
    pub layers_done: u32,
    pub layers_total: u32,
}

/// An image pulled by `image.pull` or by `container.create` for a missing image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImagePulled {
    pub image: String,
    /// The image id (`sha256:…`).
    pub id: String,
    /// False when the image was already present and nothing was pulled.
    pub pulled: bool,
}

/// One frame of a `container.create` or `image.pull` answer: progress frames, then (on success)
/// a frame with `pulled` and, for a create, `created`; the last frame has `end`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeployFrame {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<PullProgress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulled: Option<ImagePulled>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<ContainerCreated>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<StreamEnd>,
}

impl Validate for DeployFrame {}

impl DeployFrame {
    /// A frame with a pull's progress only.
    pub fn progress(progress: PullProgress) -> Self {
        Self {
            progress: Some(progress),
            ..Self::default()
        }
    }

    /// A frame saying the image was pulled.
    pub fn pulled(pulled: ImagePulled) -> Self {
        Self {
            pulled: Some(pulled),
            ..Self::default()
        }
    }

    /// A frame saying the container was created.
    pub fn created(created: ContainerCreated) -> Self {
        Self {
            created: Some(created),
            ..Self::default()
        }
    }
}

/// `container.remove`: remove a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerRemoveRequest {
    pub agent_id: AgentRef,
    /// Container id, id prefix or name.
    pub container_id: ContainerRef,
    /// Remove it even when running (killed first).
    #[serde(default)]
    pub force: bool,
    /// Also remove its anonymous volumes (named volumes are kept, as with `docker rm -v`).
    #[serde(default)]
    pub volumes: bool,
}

impl Validate for ContainerRemoveRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_target(&self.agent_id, &self.container_id)
    }
}

/// `container.remove` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerRemoved {
    pub container_id: ContainerId,
    /// Always `true`.
    pub removed: bool,
}

impl Validate for ContainerRemoved {}

/// `image.list` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageListRequest {
    pub agent_id: AgentRef,
}

impl Validate for ImageListRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_agent(&self.agent_id)
    }
}

/// One image on an agent's engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageSummary {
    /// `sha256:…`
    pub id: String,
    /// `repository:tag` names; empty for a dangling image.
    pub repo_tags: Vec<String>,
    /// Bytes on disk.
    pub size: i64,
    /// Creation time, Unix seconds.
    pub created: i64,
    /// Names of the containers (running or not) made from it.
    pub used_by: Vec<String>,
}

/// `image.list` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageListResponse {
    pub images: Vec<ImageSummary>,
    pub count: usize,
}

impl Validate for ImageListResponse {}

/// `image.pull` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImagePullRequest {
    pub agent_id: AgentRef,
    /// Image reference; without a tag or digest, `latest`.
    pub image: String,
}

impl Validate for ImagePullRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_agent(&self.agent_id)?;
        if !is_valid_image_ref(&self.image) {
            return Err(invalid("image", "must be an image reference"));
        }
        Ok(())
    }
}

/// `image.remove` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageRemoveRequest {
    pub agent_id: AgentRef,
    /// Image reference or id (`sha256:…` or a prefix of its hex).
    pub image: String,
    /// Remove even when containers use it or it has several tags.
    #[serde(default)]
    pub force: bool,
}

impl Validate for ImageRemoveRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_agent(&self.agent_id)?;
        if !is_valid_image_ref(&self.image) && !is_image_id(&self.image) {
            return Err(invalid("image", "must be an image reference or id"));
        }
        Ok(())
    }
}

/// `image.remove` answer: what Docker untagged and deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageRemoved {
    pub image: String,
    pub untagged: Vec<String>,
    pub deleted: Vec<String>,
}

impl Validate for ImageRemoved {}

/// An image id: `sha256:` and 64 hex, or a hex prefix of at least 12.
pub fn is_image_id(id: &str) -> bool {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    (12..=64).contains(&hex.len())
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn check_agent(agent_id: &str) -> Result<(), ProtocolError> {
    check_len("agentId", agent_id, MAX_AGENT_REF_LEN)
}

const _: () = assert!(MAX_NAME_LEN <= MAX_CONTAINER_NAME_LEN);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_follow_dockers_grammar() {
        for good in [
            "busybox",
            "nginx:1.27",
            "library/nginx:1.27-alpine",
            "ghcr.io/owner/name:tag",
            "127.0.0.1:5000/zedops/busybox:1",
            "localhost/x",
            "localhost:5000/a/b__c/d-e--f:v1.0_x",
            &format!("nginx@sha256:{}", "a".repeat(64)),
            &format!("reg.example:443/nginx:1@sha256:{}", "0".repeat(64)),
        ] {
            assert!(is_valid_image_ref(good), "{good}");
        }
        for bad in [
            "",
            "Nginx",
            "nginx:",
            "nginx:-x",
            "a//b",
            "../x",
            "x/../y",
            "nginx@sha256:abc",
            "nginx;rm -rf /",
            "nginx:1 2",
            "-nginx",
            "reg:port/x",
            "x/",
            &"a".repeat(256),
        ] {
            assert!(!is_valid_image_ref(bad), "{bad}");
        }
    }

    #[test]
    fn names_and_labels_are_data() {
        assert!(is_valid_container_name("pz-1.a_b"));
        for bad in ["", "-x", "/x", "a/b", "a b", "é"] {
            assert!(!is_valid_container_name(bad), "{bad:?}");
        }
        assert!(is_valid_env_name("SERVER_NAME"));
        assert!(!is_valid_env_name("1X") && !is_valid_env_name("A=B") && !is_valid_env_name(""));
        assert!(is_valid_label_key("com.example/role"));
        assert!(!is_valid_label_key("a b") && !is_valid_label_key(".x"));
        assert!(!is_valid_value("a\0b") && !is_valid_value("\x1b[2J"));
        assert!(is_valid_value("line1\nline2"));
    }

    fn spec() -> ContainerSpec {
        ContainerSpec {
            image: "busybox:1".into(),
            ..ContainerSpec::default()
        }
    }

    #[test]
    fn specs_refuse_unknown_fields_and_name_the_bad_one() {
        let err = serde_json::from_str::<ContainerSpec>(
            r#"{"image":"busybox","hostConfig":{"Privileged":true}}"#,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("unknown field `hostConfig`"),
            "{err}"
        );
        let bad = |f: fn(&mut ContainerSpec)| {
            let mut s = spec();
            f(&mut s);
            s.validate().unwrap_err().to_string()
        };
        assert!(bad(|s| s.image = "x y".into()).starts_with("invalid image"));
        assert!(
            bad(|s| {
                s.env.insert("A=B".into(), "x".into());
            })
            .starts_with("invalid env")
        );
        assert!(
            bad(|s| {
                s.labels.insert("zedops.created-by".into(), "x".into());
            })
            .starts_with("invalid labels")
        );
        assert!(
            bad(|s| s.volumes.push(VolumeSpec {
                kind: VolumeKind::Bind,
                source: "/srv/../etc".into(),
                target: "/x".into(),
                read_only: false,
            }))
            .starts_with("invalid volumes.source")
        );
        assert!(
            bad(|s| s.resources.memory_swap_bytes = Some(1 << 30))
                .starts_with("invalid resources.memorySwapBytes")
        );
        // A template may say how updates treat its containers, checked when it is stored.
        for (key, value, problem) in [
            ("zedops.update", "sometimes", "never or pinned"),
            ("zedops.update.hook", " ", "must be a command"),
            ("zedops.update.hook-wait", "601", "from 0 to 600"),
            ("zedops.update.hook-wait", "ten", "from 0 to 600"),
        ] {
            let mut s = spec();
            s.labels.insert(key.into(), value.into());
            let err = s.validate().unwrap_err().to_string();
            assert!(
                err.starts_with("invalid labels") && err.contains(problem),
                "{err}"
            );
        }
        let mut ok = spec();
        ok.labels.insert(LABEL_PROTECTED.into(), "true".into());
        ok.labels
            .insert(crate::LABEL_UPDATE.into(), "pinned".into());
        ok.labels.insert(
            crate::LABEL_UPDATE_HOOK.into(),
            "rcon-cli say 'restart in 60 s'".into(),
        );
        ok.labels
            .insert(crate::LABEL_UPDATE_HOOK_WAIT.into(), "60".into());
        ok.ports.push(PortSpec {
            container: 16261,
            host: None,
            protocol: PortProtocol::Udp,
            host_ip: None,
        });
        assert!(ok.validate().is_ok());
        let json = serde_json::to_value(&ok).unwrap();
        assert_eq!(json["ports"][0]["protocol"], "udp");
        assert_eq!(json["restart"], "no");
    }

    #[test]
    fn image_ids_for_removal() {
        assert!(is_image_id(&format!("sha256:{}", "ab".repeat(32))));
        assert!(is_image_id("0123456789ab"));
        assert!(!is_image_id("0123") && !is_image_id("../../x"));
    }
}
