//! The image update commands: the lists, "Check for updates", one container's Update with its
//! steps on a channel, and "Update all". Thin wrappers over [`super`].

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use tauri::AppHandle;
use tauri::ipc::Channel;

use super::{
    AgentImageUpdates, ContainerUpdateEvent, ContainerUpdateOutcome, FleetItemState,
    FleetUpdateEvent, FleetUpdateSummary, ImageUpdateCheck,
};
use crate::error::AppError;
use crate::relist::relist_and_push;
use crate::state::client;

/// Every agent's containers with a newer image, as the relay keeps them (any role).
#[tauri::command]
#[specta::specta]
pub async fn list_image_updates(app: AppHandle) -> Result<Vec<AgentImageUpdates>, AppError> {
    super::list(&client(&app).await?).await
}

/// (Operator) Has one agent (`null`: every connected agent) check its images now.
#[tauri::command]
#[specta::specta]
pub async fn check_image_updates(
    app: AppHandle,
    agent_id: Option<String>,
) -> Result<ImageUpdateCheck, AppError> {
    super::check(&client(&app).await?, agent_id.as_deref()).await
}

/// (Operator) Updates one container to the newest build of its image; each step (and the
/// pull's progress) arrives on `on_event`. A rollback resolves with its reason and log lines.
/// The agent's list is pushed again and its updates checked again afterwards.
#[tauri::command]
#[specta::specta]
pub async fn update_container(
    app: AppHandle,
    agent_id: String,
    container: String,
    on_event: Channel<ContainerUpdateEvent>,
) -> Result<ContainerUpdateOutcome, AppError> {
    let client = client(&app).await?;
    let done = super::update_one(&client, &agent_id, &container, |e| {
        let _ = on_event.send(e);
    })
    .await;
    relist_and_push(&app, &client, &agent_id).await;
    if done.is_ok() {
        // The badge goes once the agent's fresh state is pushed (best effort).
        let _ = client.check_updates(Some(&agent_id)).await;
    }
    done
}

/// (Operator) "Update all": every container with an update on `agent_id` (`null`: all agents),
/// the first `canary` one at a time, then `parallel` at a time, stopping at the first rollback.
/// Each container's state arrives on `on_event`; resolves with the summary.
#[tauri::command]
#[specta::specta]
pub async fn update_all_containers(
    app: AppHandle,
    agent_id: Option<String>,
    canary: u32,
    parallel: u32,
    on_event: Channel<FleetUpdateEvent>,
) -> Result<FleetUpdateSummary, AppError> {
    let client = client(&app).await?;
    let touched = Arc::new(Mutex::new(BTreeSet::new()));
    let report: super::FleetReport = {
        let touched = touched.clone();
        Arc::new(move |e: FleetUpdateEvent| {
            if matches!(
                e.state,
                FleetItemState::Updated | FleetItemState::RolledBack
            ) {
                touched
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(e.agent_id.clone());
            }
            let _ = on_event.send(e);
        })
    };
    let summary = super::update_all(&client, agent_id, canary, parallel, report).await;
    // The containers that changed have new ids: those agents' lists again.
    let touched = std::mem::take(&mut *touched.lock().unwrap_or_else(|p| p.into_inner()));
    for agent in touched {
        relist_and_push(&app, &client, &agent).await;
    }
    summary
}
