//! Payloads of `agent.update`: an admin asks the relay to update an agent (client → relay), and
//! the relay tells the agent which signed build to fetch and what to expect of it (relay →
//! agent). The agent trusts none of it beyond what the release key signed: the announced
//! version, SHA-256 and size only let it refuse a download early and name what went wrong.

use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;
use crate::ids::{AgentId, AgentRef};
use crate::limits::{MAX_AGENT_REF_LEN, MAX_INFO_LEN, check_len};
use crate::payload::Validate;

/// Largest agent build an agent downloads (the agent is about 4 MB; 64 MiB leaves room for
/// debug builds and future growth while keeping a hostile relay from filling a disk).
pub const MAX_AGENT_BUILD_BYTES: u64 = 64 * 1024 * 1024;

/// The protocol version that introduced `agent.update`; agents that said an older one in their
/// hello are answered `UNSUPPORTED` by the relay without being asked.
pub const AGENT_UPDATE_SINCE: u32 = 2;

/// `agent.update` request (client → relay, admin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentUpdateRequest {
    /// The agent's id or name.
    pub agent_id: AgentRef,
    /// The version the admin expects the relay to serve; refused (`UPDATE_REFUSED`) when the
    /// relay serves another. Absent: whatever the relay serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Install even when the served version is not newer than the agent's.
    #[serde(default)]
    pub allow_downgrade: bool,
}

impl Validate for AgentUpdateRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_len("agentId", &self.agent_id, MAX_AGENT_REF_LEN)?;
        if let Some(version) = &self.version
            && !is_version_text(version)
        {
            return Err(ProtocolError::invalid(
                "version",
                "must be a version such as 0.2.0",
            ));
        }
        Ok(())
    }
}

/// `agent.update` (relay → agent): fetch `/download/agent/<platform>` and its `.minisig` from the
/// relay the agent is connected to, check them, install and restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentUpdateOrder {
    /// The release version the relay announces; must equal the signed trusted comment's.
    pub version: String,
    /// `<os>-<arch>` of the build, e.g. `linux-x86_64`; must be the agent's own.
    pub platform: String,
    /// The SHA-256 (hex) the relay computed of the build; must equal the download's.
    pub sha256: String,
    /// The build's size in bytes; the download must have exactly this many.
    pub size: u64,
    pub allow_downgrade: bool,
}

impl Validate for AgentUpdateOrder {
    fn validate(&self) -> Result<(), ProtocolError> {
        if !is_version_text(&self.version) {
            return Err(ProtocolError::invalid(
                "version",
                "must be a version such as 0.2.0",
            ));
        }
        if self.platform.is_empty()
            || self.platform.len() > 64
            || !self
                .platform
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ProtocolError::invalid("platform", "must be <os>-<arch>"));
        }
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ProtocolError::invalid("sha256", "must be 64 hex digits"));
        }
        if self.size == 0 || self.size > MAX_AGENT_BUILD_BYTES {
            return Err(ProtocolError::invalid("size", "must be 1 byte to 64 MiB"));
        }
        Ok(())
    }
}

/// The answer to both: the build was verified and installed, and the agent is restarting into
/// it. Whether it came back is seen in `agent.status` / `agent.list` (its `info.version`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentUpdated {
    /// Set by the relay in the answer to the client; empty in the agent's answer.
    #[serde(default)]
    pub agent_id: AgentId,
    /// The version the agent ran.
    pub from: String,
    /// The version it restarts into.
    pub to: String,
    /// Seconds the new build has to connect before the old one comes back by itself.
    pub revert_after_secs: u64,
}

impl Validate for AgentUpdated {}

/// Where an agent's update is, in order: `downloading` (repeated with `bytes`), `verifying`,
/// `restarting`, then `online` (connected again with the new version) or `rolled-back` (back on
/// the old version; `reason` says why).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum AgentUpdatePhase {
    /// The agent downloads the build (`bytes` of `total` so far).
    Downloading,
    /// The download is complete; size, SHA-256 and signature are being checked.
    Verifying,
    /// The build is installed and the agent restarts into it (sent by the relay on the answer).
    Restarting,
    /// The agent is connected again and reports the new version (sent by the relay).
    Online,
    /// The new build did not stay: the agent runs its previous version again.
    RolledBack,
}

/// `agent.update.progress`: agent → relay while it runs an `agent.update.install`
/// (`downloading`, `verifying`) and once after a revert (`rolled-back`, with the reason its
/// guard recorded); relay → every admin client for all phases, with `agentId` and `name` set by
/// the relay (an agent's own are ignored). Agents send at most 4 a second; the relay forwards
/// progress only for an update it started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentUpdateProgress {
    /// Set by the relay; empty from the agent.
    #[serde(default)]
    pub agent_id: AgentId,
    /// The agent's name, set by the relay; empty from the agent.
    #[serde(default)]
    pub name: String,
    pub phase: AgentUpdatePhase,
    /// The version being installed (for `rolled-back`: the one that was taken back).
    pub version: String,
    /// `downloading`: bytes received so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// `downloading`: the build's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// `online`, `rolled-back`: the version the agent runs now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<String>,
    /// `rolled-back`: why, in words (at most 1 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Longest `reason` in an [`AgentUpdateProgress`].
pub const MAX_UPDATE_REASON_LEN: usize = 1024;

impl AgentUpdateProgress {
    /// A `phase` of the update to `version`, with nothing else said (the relay fills in the
    /// agent's id and name).
    pub fn new(phase: AgentUpdatePhase, version: impl Into<String>) -> Self {
        Self {
            agent_id: AgentId::default(),
            name: String::new(),
            phase,
            version: version.into(),
            bytes: None,
            total: None,
            running: None,
            reason: None,
        }
    }
}

impl Validate for AgentUpdateProgress {
    fn validate(&self) -> Result<(), ProtocolError> {
        if !is_version_text(&self.version) {
            return Err(ProtocolError::invalid(
                "version",
                "must be a version such as 0.2.0",
            ));
        }
        if let Some(running) = &self.running
            && !is_version_text(running)
        {
            return Err(ProtocolError::invalid(
                "running",
                "must be a version such as 0.2.0",
            ));
        }
        if self.agent_id.len() > 64 || self.name.len() > 64 {
            return Err(ProtocolError::invalid(
                "agentId",
                "must be at most 64 bytes",
            ));
        }
        if let (Some(bytes), Some(total)) = (self.bytes, self.total)
            && (bytes > total || total > MAX_AGENT_BUILD_BYTES)
        {
            return Err(ProtocolError::invalid(
                "bytes",
                "must be at most total, which is at most 64 MiB",
            ));
        }
        if self
            .reason
            .as_ref()
            .is_some_and(|r| r.len() > MAX_UPDATE_REASON_LEN)
        {
            return Err(ProtocolError::invalid("reason", "must be at most 1 KiB"));
        }
        Ok(())
    }
}

/// Plain version text: digits first, then digits, letters, `.`, `-`, `+`; at most
/// [`MAX_INFO_LEN`] bytes. Semantic-version order is each side's business.
fn is_version_text(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_INFO_LEN
        && text.as_bytes()[0].is_ascii_digit()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_out_of_bounds_are_refused() {
        let good = AgentUpdateOrder {
            version: "0.2.0".into(),
            platform: "linux-x86_64".into(),
            sha256: "a".repeat(64),
            size: 4_000_000,
            allow_downgrade: false,
        };
        assert!(good.validate().is_ok());
        let mut bad = good.clone();
        bad.size = MAX_AGENT_BUILD_BYTES + 1;
        assert!(bad.validate().is_err());
        let mut bad = good.clone();
        bad.platform = "../linux".into();
        assert!(bad.validate().is_err());
        let mut bad = good.clone();
        bad.version = "$(reboot)".into();
        assert!(bad.validate().is_err());
        let mut bad = good;
        bad.sha256 = "z".repeat(64);
        assert!(bad.validate().is_err());
        let progress = AgentUpdateProgress {
            agent_id: AgentId::default(),
            name: String::new(),
            phase: AgentUpdatePhase::Downloading,
            version: "0.2.0".into(),
            bytes: Some(10),
            total: Some(20),
            running: None,
            reason: None,
        };
        assert!(progress.validate().is_ok());
        let mut bad = progress.clone();
        bad.bytes = Some(21);
        assert!(bad.validate().is_err());
        let mut bad = progress;
        bad.reason = Some("x".repeat(MAX_UPDATE_REASON_LEN + 1));
        assert!(bad.validate().is_err());
        assert_eq!(
            serde_json::to_value(AgentUpdatePhase::RolledBack).unwrap(),
            "rolled-back"
        );
        let json = r#"{"agentId":"web-1","allowDowngrade":true}"#;
        let request: AgentUpdateRequest = serde_json::from_str(json).unwrap();
        assert!(request.allow_downgrade && request.version.is_none());
    }
}
