//! "Update agents" over `zedops-client`, with no Tauri in sight: the agent version the relay
//! offers, and a rollout that has agents install it, canaries first (one at a time), then the
//! rest a few at a time, stopping at the first failure, with each agent's state reported as it
//! changes: updating (downloading and verifying), restarting, online with the new version, or
//! failed (refused with nothing replaced, or rolled back). The relay checks the role (admin)
//! and the agent the build's signature.

pub mod commands;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use specta::Type;
use zedops_client::Client;
use zedops_protocol::AgentUpdated;

use crate::error::{AppError, ErrorCode};

/// Time beyond the agent's revert deadline to wait for it to show up again.
const COME_BACK_MARGIN: Duration = Duration::from_secs(30);
/// How often the agent list is asked while waiting for an agent to come back.
const POLL: Duration = Duration::from_secs(1);
/// Most agents updated at once after the canaries.
pub const MAX_PARALLEL: u32 = 20;

/// Where one agent's update is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateState {
    /// Waiting for its wave.
    Queued,
    /// The agent downloads and verifies the build.
    Updating,
    /// Installed; the agent restarts into it.
    Restarting,
    /// Back online with the new version.
    Online,
    /// Refused (nothing replaced) or rolled back.
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

fn say(report: &Report, agent: &str, state: UpdateState, detail: String) {
    report(AgentUpdateEvent {
        agent_id: agent.to_string(),
        state,
        detail,
    })
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
    for agent in agents {
        say(
            &report,
            agent,
            UpdateState::Queued,
            "Waiting for its turn.".into(),
        );
    }
    let canaries = (canary as usize).min(agents.len());
    let parallel = parallel.clamp(1, MAX_PARALLEL) as usize;
    let waves = agents[..canaries]
        .chunks(1)
        .chain(agents[canaries..].chunks(parallel));
    let (mut done, mut updated) = (0, 0);
    for wave in waves {
        let mut running = tokio::task::JoinSet::new();
        for agent in wave {
            let (client, agent, report) = (client.clone(), agent.clone(), report.clone());
            running.spawn(async move { one(&client, &agent, &report).await });
        }
        let mut failed = 0;
        while let Some(ok) = running.join_next().await {
            if ok.unwrap_or(false) {
                updated += 1;
            } else {
                failed += 1;
            }
        }
        done += wave.len();
        if failed > 0 {
            for agent in &agents[done..] {
                say(
                    &report,
                    agent,
                    UpdateState::NotStarted,
                    "Not started: an agent before it failed.".into(),
                );
            }
            return Err(AppError::new(
                ErrorCode::Wire(zedops_client::ErrorCode::UpdateFailed),
                format!(
                    "The rollout stopped at the first failure ({failed} failed, {updated} updated, {} not started): see each agent's row.",
                    agents.len() - done
                ),
            ));
        }
    }
    Ok(updated)
}

/// Updates one agent and waits for it to come back; true when it is online with the new version.
async fn one(client: &Client, agent: &str, report: &Report) -> bool {
    say(
        report,
        agent,
        UpdateState::Updating,
        "Downloading and verifying the build.".into(),
    );
    let updated = match client.update_agent(agent, None, false).await {
        Ok(updated) => updated,
        Err(err) => {
            let err = AppError::from(err);
            say(
                report,
                agent,
                UpdateState::Failed,
                format!("Refused, nothing replaced: {}", err.message),
            );
            return false;
        }
    };
    say(
        report,
        agent,
        UpdateState::Restarting,
        format!("{} → {} installed; restarting.", updated.from, updated.to),
    );
    let started = Instant::now();
    match come_back(client, &updated).await {
        Ok(()) => {
            say(
                report,
                agent,
                UpdateState::Online,
                format!(
                    "Online with {} ({} s).",
                    updated.to,
                    started.elapsed().as_secs()
                ),
            );
            true
        }
        Err(why) => {
            say(
                report,
                agent,
                UpdateState::Failed,
                format!("Rolled back: {why}"),
            );
            false
        }
    }
}

/// Waits until the agent is online again with the new version; says what was seen instead.
async fn come_back(client: &Client, updated: &AgentUpdated) -> Result<(), String> {
    let deadline =
        Instant::now() + Duration::from_secs(updated.revert_after_secs) + COME_BACK_MARGIN;
    let (mut went_offline, mut seen) = (false, None);
    loop {
        tokio::time::sleep(POLL).await;
        if let Ok(agents) = client.agents().await
            && let Some(agent) = agents.into_iter().find(|a| a.id == updated.agent_id)
        {
            let version = agent.info.as_ref().map(|i| i.version.clone());
            if agent.online && version.as_deref() == Some(updated.to.as_str()) {
                return Ok(());
            }
            went_offline |= !agent.online;
            let reverted = went_offline && agent.online;
            seen = Some((agent.online, version));
            if reverted {
                break;
            }
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    Err(match seen {
        Some((true, version)) => format!(
            "it is online with {} again, not {}; its log on the server says why.",
            version.unwrap_or_else(|| "an unknown version".into()),
            updated.to
        ),
        _ => format!(
            "it did not come back within {} s; check the agent on that server.",
            updated.revert_after_secs + COME_BACK_MARGIN.as_secs()
        ),
    })
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
    }
}
