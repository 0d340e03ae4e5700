//! "Update agents" over `zedops-client`, with no Tauri in sight: the agent version the relay
//! offers, and a rollout that has agents install it, canaries first (one at a time), then the
//! rest a few at a time, stopping at the first failure, with each agent's state reported live
//! as it changes (from the relay's `agent.update.progress`, see
//! [`zedops_client::agent_update`]): downloading (bytes), verifying, restarting, online with
//! the new version, rolled back with the reason, or failed (refused, nothing replaced). The
//! relay checks the role (admin) and the agent the build's signature.

pub mod commands;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use specta::Type;
use zedops_client::Client;
use zedops_client::agent_update::{self, AgentStep, AgentUpdateOptions};

use crate::error::{AppError, ErrorCode};

/// Most agents updated at once after the canaries.
pub const MAX_PARALLEL: u32 = 20;

/// Where one agent's update is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateState {
    /// Waiting for its wave.
    Queued,
    /// Asked; the agent starts downloading (a relay that sends no progress stays here until
    /// the agent restarts).
    Updating,
    /// The agent downloads the build (`bytes` of `total`).
    Downloading,
    /// The agent checks size, SHA-256 and the release signature.
    Verifying,
    /// Installed; the agent restarts into it.
    Restarting,
    /// Back online with the new version.
    Online,
    /// The new build did not stay: the agent runs its old version again (`detail` says why).
    RolledBack,
    /// Refused or failed before anything was replaced.
    Failed,
    /// Not started: an earlier agent failed.
    NotStarted,
}

/// One agent's state, as it changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct AgentUpdateEvent {
    pub agent_id: String,
    pub state: UpdateState,
    /// In words: the versions, or why it failed.
    pub detail: String,
    /// `downloading`: bytes received and the build's size (a build is at most 64 MiB).
    pub bytes: Option<u32>,
    pub total: Option<u32>,
}

/// The agent version the relay serves (signed), or `null` when it serves none.
pub async fn offered_version(client: &Client) -> Result<Option<String>, AppError> {
    let ca = std::env::var_os(crate::session::CA_FILE_ENV)
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from);
    Ok(zedops_client::agent_release(&client.relay(), ca.as_deref(), false).await?)
}

/// Where state changes go.
pub type Report = Arc<dyn Fn(AgentUpdateEvent) + Send + Sync>;

/// The app's event for one step of the client library's follow.
fn event(agent: &str, step: AgentStep) -> AgentUpdateEvent {
    let (state, detail, bytes, total) = match step {
        AgentStep::Queued => (
            UpdateState::Queued,
            "Waiting for its turn.".into(),
            None,
            None,
        ),
        AgentStep::Asked => (
            UpdateState::Updating,
            "Asked to update; downloading the build.".into(),
            None,
            None,
        ),
        AgentStep::Downloading { bytes, total } => (
            UpdateState::Downloading,
            format!(
                "Downloading: {:.1} of {:.1} MB.",
                bytes as f64 / 1e6,
                total as f64 / 1e6
            ),
            Some(u32::try_from(bytes).unwrap_or(u32::MAX)),
            Some(u32::try_from(total).unwrap_or(u32::MAX)),
        ),
        AgentStep::Verifying => (
            UpdateState::Verifying,
            "Checking size, SHA-256 and the release signature.".into(),
            None,
            None,
        ),
        AgentStep::Restarting { from, to } => (
            UpdateState::Restarting,
            format!("{from} → {to} installed; restarting."),
            None,
            None,
        ),
        AgentStep::Online { version } => (
            UpdateState::Online,
            format!("Online with {version}."),
            None,
            None,
        ),
        AgentStep::RolledBack { reason } => (
            UpdateState::RolledBack,
            format!("Rolled back: {reason}"),
            None,
            None,
        ),
        AgentStep::Failed { reason, .. } => (
            UpdateState::Failed,
            format!("Refused, nothing replaced: {reason}"),
            None,
            None,
        ),
        AgentStep::NotStarted => (
            UpdateState::NotStarted,
            "Not started: an agent before it failed.".into(),
            None,
            None,
        ),
    };
    AgentUpdateEvent {
        agent_id: agent.to_string(),
        state,
        detail,
        bytes,
        total,
    }
}

/// Updates `agents` (ids), the first `canary` one at a time, then `parallel` at a time; stops
/// at the first failure. Every state change goes to `report`. Returns how many are online with
/// the new version.
pub async fn roll_out(
    client: &Client,
    agents: &[String],
    canary: u32,
    parallel: u32,
    report: Report,
) -> Result<u32, AppError> {
    if agents.is_empty() {
        return Err(AppError::new(
            ErrorCode::INVALID_INPUT,
            "Choose at least one agent to update.",
        ));
    }
    let parallel = parallel.clamp(1, MAX_PARALLEL) as usize;
    let said = move |agent: &str, step: AgentStep| report(event(agent, step));
    let summary = agent_update::roll_out(
        client,
        agents,
        canary as usize,
        parallel,
        &AgentUpdateOptions::default(),
        &said,
    )
    .await;
    let updated = summary.updated.len() as u32;
    if summary.failed.is_empty() {
        return Ok(updated);
    }
    Err(AppError::new(
        ErrorCode::Wire(zedops_client::ErrorCode::UpdateFailed),
        format!(
            "The rollout stopped at the first failure ({} failed, {updated} updated, {} not started): see each agent's row.",
            summary.failed.len(),
            summary.not_started.len()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_kebab_case_for_the_ui() {
        assert_eq!(
            serde_json::to_value(UpdateState::NotStarted).unwrap(),
            "not-started"
        );
        assert_eq!(serde_json::to_value(UpdateState::Online).unwrap(), "online");
        assert_eq!(
            serde_json::to_value(UpdateState::RolledBack).unwrap(),
            "rolled-back"
        );
        let e = event(
            "a1",
            AgentStep::Downloading {
                bytes: 1_000_000,
                total: 4_000_000,
            },
        );
        assert_eq!((e.bytes, e.total), (Some(1_000_000), Some(4_000_000)));
        assert_eq!(e.detail, "Downloading: 1.0 of 4.0 MB.");
    }
}
