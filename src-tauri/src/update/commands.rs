//! The "Update agents" commands: the relay's offered version, and a rollout with each agent's
//! state on a channel. Thin wrappers over [`super`].

use std::sync::Arc;

use tauri::AppHandle;
use tauri::ipc::Channel;

use super::AgentUpdateEvent;
use crate::error::AppError;
use crate::state::client;

/// The agent version the relay serves (signed), or `null` when it serves none.
#[tauri::command]
#[specta::specta]
pub async fn offered_agent_version(app: AppHandle) -> Result<Option<String>, AppError> {
    super::offered_version(&client(&app).await?).await
}

/// (Admin) Updates the agents (ids, in order): the first `canary` one at a time, then
/// `parallel` at a time, stopping at the first failure. Each agent's state arrives on
/// `on_event`; resolves with how many are online with the new version.
#[tauri::command]
#[specta::specta]
pub async fn update_agents(
    app: AppHandle,
    agent_ids: Vec<String>,
    canary: u32,
    parallel: u32,
    on_event: Channel<AgentUpdateEvent>,
) -> Result<u32, AppError> {
    let client = client(&app).await?;
    let report: super::Report = Arc::new(move |event| {
        let _ = on_event.send(event);
    });
    super::roll_out(&client, &agent_ids, canary, parallel, report).await
}
