//! Payloads of "update available": each agent asks the registry, for every image reference its
//! containers use, whether it now serves another digest under the same reference, and pushes
//! what it found (`updates.state`); the relay keeps each agent's latest state in memory, pushes
//! it to subscribed clients and answers `updates.list`; `updates.check` asks agents to check now.
//!
//! An agent's state is bounded ([`MAX_UPDATE_ENTRIES`], [`MAX_SKIPPED_ENTRIES`], field lengths),
//! so the largest one fits in one frame and a compromised agent cannot make the relay hold more.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::deploy::{MAX_CONTAINER_NAME_LEN, MAX_IMAGE_REF_LEN, is_valid_image_ref};
use crate::error::ProtocolError;
use crate::ids::{AgentId, AgentRef};
use crate::limits::{MAX_AGENT_REF_LEN, MAX_NAME_LEN, check_len};
use crate::payload::Validate;

/// Containers with an update one agent may report; more are refused as a whole by the relay
/// (the agent keeps the first ones and logs the rest).
pub const MAX_UPDATE_ENTRIES: usize = 1000;
/// Images one agent may report as not checked, with their reason.
pub const MAX_SKIPPED_ENTRIES: usize = 200;
/// Longest reason an image was not checked.
pub const MAX_SKIP_REASON_LEN: usize = 200;
/// Longest value of the `zedops.update` label carried with an entry.
pub const MAX_UPDATE_LABEL_LEN: usize = 32;
/// How long the relay waits for one agent's on-demand check (every image, a few registry calls
/// at a time, each with its own timeout).
pub const UPDATE_CHECK_TIMEOUT: Duration = Duration::from_secs(120);
/// The label that keeps a container out of fleet updates: `never` (always skipped) or
/// `pinned` (only when named explicitly).
pub const LABEL_UPDATE: &str = "zedops.update";

/// One container whose image reference the registry now serves in another build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageUpdate {
    /// The container's name (without Docker's leading `/`).
    pub container: String,
    /// The image reference it was created from, e.g. `registry.example.com/game:1`.
    pub image: String,
    /// `sha256:…` the container's image has under that reference (its repo digest).
    pub current_digest: String,
    /// `sha256:…` the registry serves for the reference now.
    pub new_digest: String,
    /// When the agent first found this new digest, Unix seconds.
    pub found_at: i64,
    /// The container's `zedops.update` label (`never`, `pinned`), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// An image reference the agent did not check, and why (built locally, pinned to a digest,
/// registry unreachable or refusing, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SkippedImage {
    pub image: String,
    pub reason: String,
}

/// One agent's update state: `updates.state` (agent → relay → subscribed clients) and the
/// answer of an agent to `updates.check`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateState {
    /// Set by the relay from the connection (an agent's own value is ignored).
    #[serde(default)]
    pub agent_id: AgentId,
    /// When the last check finished, Unix seconds; absent when the agent has never checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<i64>,
    /// Containers with an update, at most [`MAX_UPDATE_ENTRIES`].
    #[serde(default)]
    pub updates: Vec<ImageUpdate>,
    /// Images not checked, at most [`MAX_SKIPPED_ENTRIES`].
    #[serde(default)]
    pub skipped: Vec<SkippedImage>,
}

/// True for `sha256:` and 64 lower-case hex digits.
pub fn is_digest(value: &str) -> bool {
    value.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Printable text without control characters (safe for a terminal and a log).
fn is_plain(value: &str) -> bool {
    !value.chars().any(char::is_control)
}

impl Validate for ImageUpdate {
    fn validate(&self) -> Result<(), ProtocolError> {
        let invalid = ProtocolError::invalid;
        if self.container.is_empty()
            || self.container.len() > MAX_CONTAINER_NAME_LEN
            || !is_plain(&self.container)
        {
            return Err(invalid("container", "must be 1 to 128 printable bytes"));
        }
        if !is_valid_image_ref(&self.image) {
            return Err(invalid("image", "must be an image reference"));
        }
        if !is_digest(&self.current_digest) {
            return Err(invalid(
                "currentDigest",
                "must be sha256: and 64 hex digits",
            ));
        }
        if !is_digest(&self.new_digest) {
            return Err(invalid("newDigest", "must be sha256: and 64 hex digits"));
        }
        if let Some(label) = &self.label
            && (label.len() > MAX_UPDATE_LABEL_LEN || !is_plain(label))
        {
            return Err(invalid("label", "must be at most 32 printable bytes"));
        }
        Ok(())
    }
}

impl Validate for SkippedImage {
    fn validate(&self) -> Result<(), ProtocolError> {
        // Skipped images may be image ids or odd local names: bounded and printable is enough.
        if self.image.is_empty() || self.image.len() > MAX_IMAGE_REF_LEN || !is_plain(&self.image) {
            return Err(ProtocolError::invalid(
                "skipped.image",
                "must be 1 to 255 printable bytes",
            ));
        }
        if self.reason.len() > MAX_SKIP_REASON_LEN || !is_plain(&self.reason) {
            return Err(ProtocolError::invalid(
                "skipped.reason",
                "must be at most 200 printable bytes",
            ));
        }
        Ok(())
    }
}

impl Validate for UpdateState {
    fn validate(&self) -> Result<(), ProtocolError> {
        if self.agent_id.len() > MAX_AGENT_REF_LEN {
            return Err(ProtocolError::invalid(
                "agentId",
                "must be at most 64 bytes",
            ));
        }
        if self.updates.len() > MAX_UPDATE_ENTRIES {
            return Err(ProtocolError::invalid(
                "updates",
                "at most 1000 containers with an update per agent",
            ));
        }
        if self.skipped.len() > MAX_SKIPPED_ENTRIES {
            return Err(ProtocolError::invalid(
                "skipped",
                "at most 200 skipped images per agent",
            ));
        }
        self.updates.iter().try_for_each(Validate::validate)?;
        self.skipped.iter().try_for_each(Validate::validate)
    }
}

/// `updates.list` (client → relay, any role): the latest state of one agent (id or name) or of
/// every agent that reported one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateListRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<AgentRef>,
}

/// `updates.check` (client → relay, operator or admin): ask one agent (id or name), or every
/// connected agent when absent, to check now; answered when all have answered. The relay sends
/// each agent the same payload with its id (relay → agent), answered with the agent's fresh
/// [`UpdateState`]; a check already running there is joined, not started twice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateCheckRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<AgentRef>,
}

fn check_optional_agent(agent_id: &Option<AgentRef>) -> Result<(), ProtocolError> {
    match agent_id {
        Some(a) => check_len("agentId", a, MAX_AGENT_REF_LEN),
        None => Ok(()),
    }
}

impl Validate for UpdateListRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_optional_agent(&self.agent_id)
    }
}

impl Validate for UpdateCheckRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_optional_agent(&self.agent_id)
    }
}

/// One agent's state in an answer, with its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentUpdates {
    pub name: String,
    /// Whether the agent is connected now (its state is the last it pushed either way).
    pub online: bool,
    pub state: UpdateState,
}

/// An agent that could not check (offline, too old, timed out), in a `updates.check` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateCheckFailure {
    pub agent_id: AgentId,
    pub name: String,
    pub error_code: crate::ErrorCode,
    pub error: String,
}

/// Answer of `updates.list` and `updates.check`: each agent's state, by name; for a check also
/// the agents that could not check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateListResponse {
    pub agents: Vec<AgentUpdates>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<UpdateCheckFailure>,
}

impl Validate for UpdateListResponse {}

const _: () = assert!(MAX_NAME_LEN <= MAX_CONTAINER_NAME_LEN);

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> ImageUpdate {
        ImageUpdate {
            container: "web".into(),
            image: "127.0.0.1:5000/zt/web:1".into(),
            current_digest: format!("sha256:{}", "a".repeat(64)),
            new_digest: format!("sha256:{}", "b".repeat(64)),
            found_at: 1,
            label: None,
        }
    }

    #[test]
    fn a_state_is_bounded_in_entries_and_fields() {
        let mut state = UpdateState {
            updates: vec![entry(); MAX_UPDATE_ENTRIES],
            ..Default::default()
        };
        state.validate().unwrap();
        // The largest state fits in one frame.
        let mut big = entry();
        big.container = "c".repeat(MAX_CONTAINER_NAME_LEN);
        big.image = format!("{}:1", "a".repeat(MAX_IMAGE_REF_LEN - 2));
        big.label = Some("l".repeat(MAX_UPDATE_LABEL_LEN));
        let largest = UpdateState {
            agent_id: "a".repeat(MAX_AGENT_REF_LEN).into(),
            checked_at: Some(i64::MAX),
            updates: vec![big; MAX_UPDATE_ENTRIES],
            skipped: vec![
                SkippedImage {
                    image: "i".repeat(MAX_IMAGE_REF_LEN),
                    reason: "r".repeat(MAX_SKIP_REASON_LEN)
                };
                MAX_SKIPPED_ENTRIES
            ],
        };
        largest.validate().unwrap();
        let text = crate::Envelope::new(crate::subject::UPDATES_STATE, &largest).to_json();
        assert!(text.len() < crate::MAX_FRAME_BYTES, "{}", text.len());

        state.updates.push(entry());
        let err = state.validate().unwrap_err();
        assert!(err.to_string().contains("at most 1000"), "{err}");
        let mut bad = entry();
        bad.new_digest = "sha256:xyz".into();
        let state = UpdateState {
            updates: vec![bad],
            ..Default::default()
        };
        assert!(
            state
                .validate()
                .unwrap_err()
                .to_string()
                .contains("newDigest")
        );
        let state = UpdateState {
            skipped: vec![SkippedImage {
                image: "x".into(),
                reason: "\u{1b}[31mred".into(),
            }],
            ..Default::default()
        };
        assert!(state.validate().is_err());
    }
}
