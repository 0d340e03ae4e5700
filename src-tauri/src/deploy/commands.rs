//! The deploy commands: templates, deploy with pull progress, removal, images. Thin wrappers
//! over [`super`], kept here so the deploy feature stays in one folder.

use std::collections::BTreeMap;

use tauri::AppHandle;
use tauri::ipc::Channel;
use zedops_protocol::{TemplateSaved, TemplateSummary};

use super::{DeployedView, ImageRemovedView, ImageView, PullProgressView, TemplateView};
use crate::error::AppError;
use crate::relist::relist_and_push;
use crate::state::client;

/// Every template (any role).
#[tauri::command]
#[specta::specta]
pub async fn list_templates(app: AppHandle) -> Result<Vec<TemplateSummary>, AppError> {
    super::templates(&client(&app).await?).await
}

/// One template in full: its variables and its JSON text.
#[tauri::command]
#[specta::specta]
pub async fn show_template(app: AppHandle, name: String) -> Result<TemplateView, AppError> {
    super::template(&client(&app).await?, &name).await
}

/// (Admin) Stores the JSON text as a new template, or (`update`) as the next version of the
/// template it names.
#[tauri::command]
#[specta::specta]
pub async fn save_template(
    app: AppHandle,
    json: String,
    update: bool,
) -> Result<TemplateSaved, AppError> {
    super::save_template(&client(&app).await?, &json, update).await
}

/// (Admin) Removes a template; containers made from it stay.
#[tauri::command]
#[specta::specta]
pub async fn remove_template(app: AppHandle, name: String) -> Result<TemplateSaved, AppError> {
    super::remove_template(&client(&app).await?, &name).await
}

/// Deploys a template onto an agent; the pull's progress arrives on `on_progress`. Resolves
/// once the container exists (and runs, with `start`); the agent's list is pushed again.
#[tauri::command]
#[specta::specta]
pub async fn deploy_container(
    app: AppHandle,
    agent_id: String,
    template: String,
    name: String,
    variables: BTreeMap<String, String>,
    start: bool,
    on_progress: Channel<PullProgressView>,
) -> Result<DeployedView, AppError> {
    let client = client(&app).await?;
    let done = super::deploy(
        &client,
        &agent_id,
        &template,
        &name,
        variables,
        start,
        |p| {
            let _ = on_progress.send(p);
        },
    )
    .await;
    // Also after a failure: a failed start leaves a created container behind.
    relist_and_push(&app, &client, &agent_id).await;
    done
}

/// Removes a container (a running one only with `force`); the agent's list is pushed again.
#[tauri::command]
#[specta::specta]
pub async fn remove_container(
    app: AppHandle,
    agent_id: String,
    container_id: String,
    force: bool,
    volumes: bool,
) -> Result<(), AppError> {
    let client = client(&app).await?;
    let done = super::remove_container(&client, &agent_id, &container_id, force, volumes).await;
    relist_and_push(&app, &client, &agent_id).await;
    done
}

/// An agent's images, largest first, with the containers that use them.
#[tauri::command]
#[specta::specta]
pub async fn list_images(app: AppHandle, agent_id: String) -> Result<Vec<ImageView>, AppError> {
    super::images(&client(&app).await?, &agent_id).await
}

/// Pulls an image onto an agent; the progress arrives on `on_progress`. Resolves with the
/// image's id once the agent has it.
#[tauri::command]
#[specta::specta]
pub async fn pull_image(
    app: AppHandle,
    agent_id: String,
    image: String,
    on_progress: Channel<PullProgressView>,
) -> Result<String, AppError> {
    super::pull_image(&client(&app).await?, &agent_id, &image, |p| {
        let _ = on_progress.send(p);
    })
    .await
}

/// Removes an image (one in use or with several tags only with `force`).
#[tauri::command]
#[specta::specta]
pub async fn remove_image(
    app: AppHandle,
    agent_id: String,
    image: String,
    force: bool,
) -> Result<ImageRemovedView, AppError> {
    super::remove_image(&client(&app).await?, &agent_id, &image, force).await
}
