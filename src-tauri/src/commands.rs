//! The Tauri commands: thin wrappers, each one call into `service` or `session`.

use tauri::AppHandle;
use tauri::ipc::Channel;

use crate::detail::views::{ContainerDetailView, LogBatch, StatsUpdate};
use crate::error::AppError;
use crate::service;
use crate::types::{
    Action, ActionOutcome, AgentView, AuditEntry, ContainerView, LastLogin, RegistrationToken,
    SessionInfo,
};

/// Signs in with a password; the device token it buys goes into the OS keyring.
#[tauri::command]
#[specta::specta]
pub async fn sign_in(
    app: AppHandle,
    relay: String,
    username: String,
    password: String,
) -> Result<SessionInfo, AppError> {
    service::sign_in(&app, &relay, &username, &password).await
}

/// Signs in silently with the token stored for the last relay; `null` when there is none.
#[tauri::command]
#[specta::specta]
pub async fn resume_session(app: AppHandle) -> Result<Option<SessionInfo>, AppError> {
    service::resume(&app).await
}

/// The last relay and user name, to prefill the sign-in form.
#[tauri::command]
#[specta::specta]
pub async fn last_login() -> Result<LastLogin, AppError> {
    crate::session::last_login().await
}

/// Ends the session at the relay and deletes the keyring entry.
#[tauri::command]
#[specta::specta]
pub async fn sign_out(app: AppHandle) -> Result<(), AppError> {
    service::sign_out(&app).await
}

#[tauri::command]
#[specta::specta]
pub async fn list_agents(app: AppHandle) -> Result<Vec<AgentView>, AppError> {
    service::list_agents(&app).await
}

#[tauri::command]
#[specta::specta]
pub async fn list_containers(
    app: AppHandle,
    agent_id: String,
) -> Result<Vec<ContainerView>, AppError> {
    service::list_containers(&app, &agent_id).await
}

/// Starts, stops or restarts a container; the agent's new list also arrives as `ContainersUpdated`.
#[tauri::command]
#[specta::specta]
pub async fn container_action(
    app: AppHandle,
    agent_id: String,
    container_id: String,
    action: Action,
) -> Result<ActionOutcome, AppError> {
    service::container_action(&app, &agent_id, &container_id, action).await
}

/// (Admin) A single-use registration token valid for `ttl_secs`, with the one-line install
/// command for a new server. `public_url` is the relay address servers reach; `null` uses the
/// address this app signed in to.
#[tauri::command]
#[specta::specta]
pub async fn create_registration_token(
    app: AppHandle,
    ttl_secs: u32,
    public_url: Option<String>,
) -> Result<RegistrationToken, AppError> {
    service::create_registration_token(&app, ttl_secs, public_url).await
}

/// (Admin) The newest audit log entries, of one agent (id or name) or of all.
#[tauri::command]
#[specta::specta]
pub async fn list_audit(
    app: AppHandle,
    agent_id: Option<String>,
) -> Result<Vec<AuditEntry>, AppError> {
    service::list_audit(&app, agent_id).await
}

/// One container in detail (image, command, env with secrets masked, mounts, ports, health).
#[tauri::command]
#[specta::specta]
pub async fn inspect_container(
    app: AppHandle,
    agent_id: String,
    container_id: String,
) -> Result<ContainerDetailView, AppError> {
    service::inspect_container(&app, &agent_id, &container_id).await
}

/// Follows a container's output: the last `tail` lines (default 500), then new ones, as batches
/// on `on_batch`; the last batch says why it ended. Returns the watch id for `close_watch`.
#[tauri::command]
#[specta::specta]
pub async fn watch_logs(
    app: AppHandle,
    agent_id: String,
    container_id: String,
    tail: Option<u32>,
    on_batch: Channel<LogBatch>,
) -> Result<u32, AppError> {
    service::watch_logs(&app, agent_id, container_id, tail, on_batch).await
}

/// Follows a running container's resource usage, a sample about every second, on `on_update`.
/// Returns the watch id for `close_watch`.
#[tauri::command]
#[specta::specta]
pub async fn watch_stats(
    app: AppHandle,
    agent_id: String,
    container_id: String,
    on_update: Channel<StatsUpdate>,
) -> Result<u32, AppError> {
    service::watch_stats(&app, agent_id, container_id, on_update).await
}

/// Stops a log or stats watch (the view closed); unknown ids are ignored.
#[tauri::command]
#[specta::specta]
pub fn close_watch(app: AppHandle, id: u32) {
    service::close_watch(&app, id)
}
