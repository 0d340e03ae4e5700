//! Payloads of `agent.update`: an admin asks the relay to update an agent (client → relay), and
//! the relay tells the agent which signed build to fetch and what to expect of it (relay →
//! agent). The agent trusts none of it beyond what the release key signed: the announced
//! version, SHA-256 and size only let it refuse a download early and name what went wrong.

use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;
use crate::limits::MAX_INFO_LEN;
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
    pub agent_id: String,
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
        if self.agent_id.is_empty() || self.agent_id.len() > 64 {
            return Err(ProtocolError::invalid("agentId", "must be 1 to 64 bytes"));
        }
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
    pub agent_id: String,
    /// The version the agent ran.
    pub from: String,
    /// The version it restarts into.
    pub to: String,
    /// Seconds the new build has to connect before the old one comes back by itself.
    pub revert_after_secs: u64,
}

impl Validate for AgentUpdated {}

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
        let json = r#"{"agentId":"web-1","allowDowngrade":true}"#;
        let request: AgentUpdateRequest = serde_json::from_str(json).unwrap();
        assert!(request.allow_downgrade && request.version.is_none());
    }
}
