//! Turns the relay's pushes into UI events, tray updates and notifications, for one session.
//! The session subscribes to the whole fleet's container events, so every table updates from
//! pushes alone.

mod alerts;

use std::time::Instant;

use tauri::async_runtime::JoinHandle;
use tauri::{AppHandle, Manager};
use tauri_specta::Event;
use tokio::sync::broadcast::error::RecvError;
use zedops_client::{Client, ClientEvent, ContainerEvent};

use crate::events::{ConnectionChanged, ContainersUpdated};
use crate::state::AppState;
use crate::{notify, tray, types};

pub fn spawn(app: AppHandle, client: Client) -> JoinHandle<()> {
    let mut events = client.events();
    tauri::async_runtime::spawn(async move {
        // Once: the client renews the subscription itself after a reconnect.
        if let Err(err) = client.subscribe(None).await {
            tracing::warn!(%err, "could not subscribe to container events; tables update after actions only");
        }
        let mut alerts = alerts::Alerts::default();
        loop {
            match events.recv().await {
                Ok(event) => handle(&app, &client, &mut alerts, event).await,
                // Missed pushes: a fresh agent list in the UI sets things right.
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "missed relay pushes");
                    let _ = ConnectionChanged {
                        connected: true,
                        reason: Some("missed updates from the relay; reloading".into()),
                        signed_out: false,
                    }
                    .emit(&app);
                }
                Err(RecvError::Closed) => return,
            }
        }
    })
}

async fn handle(app: &AppHandle, client: &Client, alerts: &mut alerts::Alerts, event: ClientEvent) {
    match event {
        ClientEvent::AgentStatus(status) => {
            let was = app.state::<AppState>().fleet().set_online(
                &status.agent_id,
                &status.name,
                status.online,
            );
            let _ = types::agent_status(&status).emit(app);
            tray::refresh(app);
            if was != Some(status.online) {
                let (title, body) = if status.online {
                    (
                        format!("{} is back online", status.name),
                        format!("Agent {} reconnected to the relay.", status.name),
                    )
                } else {
                    (
                        format!("{} is offline", status.name),
                        format!(
                            "Agent {} lost its connection to the relay; its containers cannot be controlled until it is back.",
                            status.name
                        ),
                    )
                };
                notify::show(app, &title, &body);
            }
            if status.online {
                // Its containers may have changed while it was away.
                match client.containers(&status.agent_id).await {
                    Ok(list) => {
                        let containers = types::containers(list);
                        app.state::<AppState>()
                            .fleet()
                            .set_containers(&status.agent_id, &containers);
                        tray::refresh(app);
                        let _ = ContainersUpdated {
                            agent_id: status.agent_id,
                            containers,
                        }
                        .emit(app);
                    }
                    Err(err) => {
                        tracing::warn!(%err, "could not list a returning agent's containers")
                    }
                }
            }
        }
        ClientEvent::Connected => {
            let _ = ConnectionChanged {
                connected: true,
                reason: None,
                signed_out: false,
            }
            .emit(app);
        }
        ClientEvent::Disconnected { reason } => {
            // The client stops reconnecting only when the relay refused the session or this
            // version; its reason then says to log in again or to update.
            let signed_out = reason.contains("log in again") || reason.contains("update zedops");
            let _ = ConnectionChanged {
                connected: false,
                reason: Some(reason),
                signed_out,
            }
            .emit(app);
        }
        ClientEvent::Error(reply) => tracing::warn!(%reply, "the relay reported an error"),
        ClientEvent::Container(event) => container_changed(app, alerts, *event),
        ClientEvent::Sync(sync) => {
            let containers = types::containers(sync.containers);
            app.state::<AppState>()
                .fleet()
                .set_containers(&sync.agent_id, &containers);
            tray::refresh(app);
            let _ = ContainersUpdated {
                agent_id: sync.agent_id,
                containers,
            }
            .emit(app);
        }
        ClientEvent::Resync { missed } => {
            // Dropped events: the UI reloads everything, as after a reconnect.
            tracing::warn!(missed, "the relay dropped container events; reloading");
            let _ = ConnectionChanged {
                connected: true,
                reason: Some("missed updates from the relay; reloading".into()),
                signed_out: false,
            }
            .emit(app);
        }
        _ => {}
    }
}

/// One container changed: its row is patched in place, and a crash, OOM kill or failing health
/// check raises a notification naming server and container.
fn container_changed(app: &AppHandle, alerts: &mut alerts::Alerts, event: ContainerEvent) {
    let row = event.container.clone().map(types::ContainerView::from);
    let (updated, agent) = {
        let state = app.state::<AppState>();
        let mut fleet = state.fleet();
        let updated = fleet.apply(&event.agent_id, &event.container_id, row);
        let agent = fleet
            .agent_name(&event.agent_id)
            .unwrap_or(&event.agent_id)
            .to_string();
        (updated, agent)
    };
    if let Some(containers) = updated {
        tray::refresh(app);
        let _ = ContainersUpdated {
            agent_id: event.agent_id.clone(),
            containers,
        }
        .emit(app);
    }
    if let Some(alert) = alerts.check(&agent, &event, Instant::now()) {
        notify::show(app, &alert.title, &alert.body);
    }
}
