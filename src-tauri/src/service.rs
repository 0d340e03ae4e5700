//! What the commands do, with the app's state and events: each command is a one-line call here.
//! Kept apart from `session` (pure client work) so the Tauri-specific glue stays in one place.

use tauri::ipc::Channel;
use tauri::{AppHandle, Manager};
use tauri_specta::Event;

use crate::detail::views::{ContainerDetailView, LogBatch, StatsUpdate};
use crate::detail::{self, Watches};
use crate::error::AppError;
use crate::events::ContainersUpdated;
use crate::relist::relist;
use crate::session::{self, Session};
use crate::state::AppState;
use crate::types::{
    Action, ActionOutcome, AgentView, AuditEntry, ContainerView, RegistrationToken, SessionInfo,
};
use crate::{admin, alerting, forward, notify, tray};

fn state(app: &AppHandle) -> tauri::State<'_, AppState> {
    app.state::<AppState>()
}

async fn activate(app: &AppHandle, session: Session) {
    let forwarder = forward::spawn(app.clone(), session.client.clone());
    state(app).activate(session, forwarder).await;
    tray::refresh(app);
}

pub async fn sign_in(
    app: &AppHandle,
    relay: &str,
    user: &str,
    password: &str,
) -> Result<SessionInfo, AppError> {
    let (session, info) = session::sign_in(relay, user, password).await?;
    activate(app, session).await;
    Ok(info)
}

pub async fn resume(app: &AppHandle) -> Result<Option<SessionInfo>, AppError> {
    let Some((session, info)) = session::resume().await? else {
        return Ok(None);
    };
    activate(app, session).await;
    Ok(Some(info))
}

pub async fn sign_out(app: &AppHandle) -> Result<(), AppError> {
    app.state::<Watches>().close_all();
    app.state::<crate::console::Consoles>().close_all();
    let taken = state(app).take().await;
    // The session's alerts go with it; then the tray shows the signed-out look.
    alerting::clear(app);
    tray::signed_out(app);
    match taken {
        Some(session) => session::sign_out(session).await,
        None => Ok(()),
    }
}

pub async fn list_agents(app: &AppHandle) -> Result<Vec<AgentView>, AppError> {
    let agents: Vec<AgentView> = state(app)
        .client()
        .await?
        .agents()
        .await?
        .into_iter()
        .map(AgentView::from)
        .collect();
    state(app).fleet().set_agents(&agents);
    tray::refresh(app);
    Ok(agents)
}

/// Lists an agent's containers and records the counts for the tray.
pub async fn list_containers(
    app: &AppHandle,
    agent_id: &str,
) -> Result<Vec<ContainerView>, AppError> {
    let client = state(app).client().await?;
    relist(app, &client, agent_id).await
}

/// Runs an action. The row learns its new state from the container event the agent pushes
/// (the session subscribes to the whole fleet); only when that subscription is not live (the
/// connection is down or subscribing failed) is the agent listed again and the list pushed to
/// the UI. A failure also shows a native notification, since the window may be hidden in the
/// tray.
pub async fn container_action(
    app: &AppHandle,
    agent_id: &str,
    container: &str,
    action: Action,
) -> Result<ActionOutcome, AppError> {
    let client = state(app).client().await?;
    let done = client.action(agent_id, container, action.into()).await;
    // Re-listed whatever the outcome when no push will come: a failed stop may still have
    // changed the state.
    let containers = if client.is_subscribed() {
        None
    } else {
        match relist(app, &client, agent_id).await {
            Ok(list) => {
                let _ = ContainersUpdated {
                    agent_id: agent_id.to_string(),
                    containers: list.clone(),
                }
                .emit(app);
                Some(list)
            }
            Err(err) => {
                tracing::warn!(%err, agent_id, "could not re-list after an action");
                None
            }
        }
    };
    match done {
        Ok(_) => Ok(ActionOutcome {
            agent_id: agent_id.to_string(),
            container_id: container.to_string(),
            action,
            containers,
        }),
        Err(err) => {
            let err = AppError::from(err);
            notify::show(
                app,
                &format!("{} {container} failed", action.label()),
                &err.message,
            );
            Err(err)
        }
    }
}

/// A registration token and its install command; `public_url` defaults to the signed-in relay.
pub async fn create_registration_token(
    app: &AppHandle,
    ttl_secs: u32,
    public_url: Option<String>,
) -> Result<RegistrationToken, AppError> {
    let client = state(app).client().await?;
    let url = public_url
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| client.relay());
    admin::create_registration_token(&client, ttl_secs, &url).await
}

pub async fn list_audit(
    app: &AppHandle,
    agent_id: Option<String>,
) -> Result<Vec<AuditEntry>, AppError> {
    let client = state(app).client().await?;
    admin::audit_log(&client, agent_id.as_deref()).await
}

pub async fn inspect_container(
    app: &AppHandle,
    agent_id: &str,
    container: &str,
) -> Result<ContainerDetailView, AppError> {
    let client = state(app).client().await?;
    detail::inspect(&client, agent_id, container).await
}

/// Starts a log watch feeding `channel`; it stops by itself once the window stops listening.
pub async fn watch_logs(
    app: &AppHandle,
    agent_id: String,
    container: String,
    tail: Option<u32>,
    channel: Channel<LogBatch>,
) -> Result<u32, AppError> {
    let client = state(app).client().await?;
    Ok(app.state::<Watches>().start(async move {
        detail::pump_logs(&client, &agent_id, &container, tail, |batch| {
            channel.send(batch).is_ok()
        })
        .await
    }))
}

/// Starts a stats watch feeding `channel`.
pub async fn watch_stats(
    app: &AppHandle,
    agent_id: String,
    container: String,
    channel: Channel<StatsUpdate>,
) -> Result<u32, AppError> {
    let client = state(app).client().await?;
    Ok(app.state::<Watches>().start(async move {
        detail::pump_stats(&client, &agent_id, &container, |update| {
            channel.send(update).is_ok()
        })
        .await
    }))
}

pub fn close_watch(app: &AppHandle, id: u32) {
    app.state::<Watches>().close(id);
}
