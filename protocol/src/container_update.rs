//! Updating one container to a newer image (`container.update`): the request, the frames of its
//! streamed answer (phases, pull progress, the pre-update hook, the outcome) and the labels and
//! limits the agent applies.
//!
//! The agent journals the update, runs the optional pre-update hook in the old container,
//! pulls, renames the old container to `<name>.zedops-old`, stops it, creates the new one with
//! the old one's full configuration but the new image under the original name, starts it,
//! waits until it is healthy, and removes the old one. Any failure puts the old container back
//! and ends the stream with `UPDATE_ROLLED_BACK`.

use serde::{Deserialize, Serialize};

use crate::deploy::{PullProgress, is_valid_image_ref};
use crate::error::{ErrorCode, ProtocolError};
use crate::ids::{AgentRef, ContainerId, ContainerRef};
use crate::payload::{Validate, check_target};
use crate::stream::StreamEnd;

/// Seconds the new container gets to become healthy when the request names none.
pub const DEFAULT_UPDATE_HEALTH_TIMEOUT_SECS: u32 = 60;
/// Longest health timeout a request may ask for.
pub const MAX_UPDATE_HEALTH_TIMEOUT_SECS: u32 = 3600;
/// Seconds a container without a health check must run without restarting to count as healthy.
pub const DEFAULT_UPDATE_STABLE_SECS: u32 = 10;
/// Longest `stableSecs` a request may ask for.
pub const MAX_UPDATE_STABLE_SECS: u32 = 600;
/// Updates one agent runs at once; more are refused with `RATE_LIMITED`.
pub const MAX_UPDATES_PER_AGENT: usize = 4;
/// Most log lines of the failed new container a rollback reports.
pub const MAX_UPDATE_LOG_LINES: usize = 50;
/// Most bytes of those log lines together.
pub const MAX_UPDATE_LOG_BYTES: usize = 8 * 1024;
/// Most bytes of a hook's output the progress stream carries.
pub const MAX_HOOK_OUTPUT_BYTES: usize = 4 * 1024;
/// Longest wait after the hook (`zedops.update.hook-wait`); longer values are refused.
pub const MAX_HOOK_WAIT_SECS: u32 = 600;
/// Longest the hook command itself may run before the update is abandoned.
pub const HOOK_TIMEOUT_SECS: u32 = 60;
/// Suffix of the old container's name while an update is under way.
pub const UPDATE_OLD_SUFFIX: &str = ".zedops-old";
/// Label: a command run (without a shell, split on spaces; `sh -c '…'` for one) in the old
/// container before it is stopped, e.g. a warning to players.
pub const LABEL_UPDATE_HOOK: &str = "zedops.update.hook";
/// Label: seconds to wait after the hook before stopping the old container (at most
/// [`MAX_HOOK_WAIT_SECS`]).
pub const LABEL_UPDATE_HOOK_WAIT: &str = "zedops.update.hook-wait";

/// `container.update`, client → relay → agent: update one container to the newest build of its
/// image reference (or to `image`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerUpdateRequest {
    pub agent_id: AgentRef,
    /// Container name, id or id prefix.
    pub container_id: ContainerRef,
    /// Another image reference to move to; absent: the reference the container was created
    /// with, pulled again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Seconds the new container gets to become healthy (default
    /// [`DEFAULT_UPDATE_HEALTH_TIMEOUT_SECS`], at most [`MAX_UPDATE_HEALTH_TIMEOUT_SECS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_timeout_secs: Option<u32>,
    /// For a container without a health check: seconds it must run without restarting
    /// (default [`DEFAULT_UPDATE_STABLE_SECS`], at most [`MAX_UPDATE_STABLE_SECS`], below the
    /// health timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_secs: Option<u32>,
    /// Recreate the container even when the pulled image is the one it already runs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

impl ContainerUpdateRequest {
    /// The health timeout in effect.
    pub fn health_timeout(&self) -> u32 {
        self.health_timeout_secs
            .unwrap_or(DEFAULT_UPDATE_HEALTH_TIMEOUT_SECS)
    }

    /// The stable time in effect (never above the health timeout).
    pub fn stable(&self) -> u32 {
        self.stable_secs
            .unwrap_or(DEFAULT_UPDATE_STABLE_SECS)
            .min(self.health_timeout())
    }
}

impl Validate for ContainerUpdateRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_target(&self.agent_id, &self.container_id)?;
        if let Some(image) = &self.image
            && !is_valid_image_ref(image)
        {
            return Err(ProtocolError::invalid(
                "image",
                "must be an image reference, e.g. nginx:1.27 or registry:5000/app:2",
            ));
        }
        if self
            .health_timeout_secs
            .is_some_and(|t| t == 0 || t > MAX_UPDATE_HEALTH_TIMEOUT_SECS)
        {
            return Err(ProtocolError::invalid(
                "healthTimeoutSecs",
                "must be 1 to 3600 seconds",
            ));
        }
        if self.stable_secs.is_some_and(|s| s > MAX_UPDATE_STABLE_SECS) {
            return Err(ProtocolError::invalid(
                "stableSecs",
                "must be 0 to 600 seconds",
            ));
        }
        Ok(())
    }
}

/// The steps of an update, in order (`rollback` only after a failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum UpdatePhase {
    /// The update is recorded in the agent's journal.
    Journal,
    /// The pre-update hook runs in the old container, then its wait.
    Hook,
    /// The image is pulled.
    Pull,
    /// The old container is renamed `<name>.zedops-old`.
    RenameOld,
    /// The old container is stopped with its own stop signal and grace.
    StopOld,
    /// The new container is created under the original name.
    Create,
    /// The new container is started.
    Start,
    /// Waiting for the new container to be healthy.
    Health,
    /// The old container is removed (never its volumes).
    RemoveOld,
    /// Something failed: the new container is removed and the old one restored.
    Rollback,
}

impl UpdatePhase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Journal => "journal",
            Self::Hook => "hook",
            Self::Pull => "pull",
            Self::RenameOld => "rename-old",
            Self::StopOld => "stop-old",
            Self::Create => "create",
            Self::Start => "start",
            Self::Health => "health",
            Self::RemoveOld => "remove-old",
            Self::Rollback => "rollback",
        }
    }
}

impl std::fmt::Display for UpdatePhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A phase that began, with a sentence about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateStep {
    pub phase: UpdatePhase,
    pub message: String,
}

/// How the pre-update hook ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HookOutcome {
    /// The command as the label gave it.
    pub command: String,
    /// Its exit code; `null` when it could not be run or did not end in time.
    #[serde(default)]
    pub exit_code: Option<i64>,
    /// Its output (stdout and stderr together), at most [`MAX_HOOK_OUTPUT_BYTES`], made safe
    /// to show.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output: String,
    /// Seconds waited after it before the old container is stopped.
    pub wait_secs: u32,
}

/// A finished update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerUpdated {
    /// The container's name (unchanged by the update).
    pub name: String,
    /// The image reference the new container runs.
    pub image: String,
    /// The old container's image id (`sha256:…`).
    pub old_image_id: String,
    /// The old image's registry digest (`repo@sha256:…`), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_digest: Option<String>,
    /// The new image id.
    pub new_image_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_digest: Option<String>,
    /// The new container's id; the old one's when nothing changed.
    pub container_id: ContainerId,
    /// False when the image was already the newest and the container was left as it was.
    pub changed: bool,
}

/// What a rolled back update reports besides its end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateRollback {
    /// The phase that failed.
    pub phase: UpdatePhase,
    /// What failed, in plain words.
    pub reason: String,
    /// The code of the failure itself when it had one (e.g. `REGISTRY_UNREACHABLE` for a pull,
    /// `PORT_IN_USE` for a start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
    /// The new container's last log lines (at most [`MAX_UPDATE_LOG_LINES`] and
    /// [`MAX_UPDATE_LOG_BYTES`], control characters removed); empty when it never ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<String>,
    /// True when the old container runs again under its name.
    pub restored: bool,
}

/// One frame of a `container.update` answer: steps, pull progress and the hook's outcome as
/// they come, then the last frame with `end` (and `updated` on success, `rolledBack` with
/// `UPDATE_ROLLED_BACK`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerUpdateFrame {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<UpdateStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<PullProgress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<HookOutcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<ContainerUpdated>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<UpdateRollback>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<StreamEnd>,
}

impl Validate for ContainerUpdateFrame {
    fn validate(&self) -> Result<(), ProtocolError> {
        if let Some(rollback) = &self.rolled_back
            && (rollback.logs.len() > MAX_UPDATE_LOG_LINES
                || rollback.logs.iter().map(String::len).sum::<usize>()
                    > MAX_UPDATE_LOG_BYTES + MAX_UPDATE_LOG_LINES * 4)
        {
            return Err(ProtocolError::invalid(
                "rolledBack.logs",
                "more log lines than the limit",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> ContainerUpdateRequest {
        ContainerUpdateRequest {
            agent_id: "web-1".into(),
            container_id: "game".into(),
            image: None,
            health_timeout_secs: None,
            stable_secs: None,
            force: false,
        }
    }

    #[test]
    fn defaults_and_bounds() {
        let r = request();
        assert!(r.validate().is_ok());
        assert_eq!((r.health_timeout(), r.stable()), (60, 10));
        let short = ContainerUpdateRequest {
            health_timeout_secs: Some(5),
            ..request()
        };
        assert_eq!(short.stable(), 5);
        for bad in [
            ContainerUpdateRequest {
                health_timeout_secs: Some(0),
                ..request()
            },
            ContainerUpdateRequest {
                health_timeout_secs: Some(3601),
                ..request()
            },
            ContainerUpdateRequest {
                stable_secs: Some(601),
                ..request()
            },
            ContainerUpdateRequest {
                image: Some("Bad Image".into()),
                ..request()
            },
            ContainerUpdateRequest {
                container_id: "../x".into(),
                ..request()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn phases_have_their_wire_names() {
        for phase in [UpdatePhase::RenameOld, UpdatePhase::Rollback] {
            assert_eq!(
                serde_json::to_value(phase).unwrap(),
                serde_json::Value::from(phase.as_str())
            );
        }
    }
}
