//! Turns the relay's pushes into UI events, tray updates and notifications, for one session.

use tauri::async_runtime::JoinHandle;
use tauri::{AppHandle, Manager};
use tauri_specta::Event;
use tokio::sync::broadcast::error::RecvError;
use zedops_client::{Client, ClientEvent};

use crate::events::{ConnectionChanged, ContainersUpdated};
use crate::state::AppState;
use crate::{notify, tray, types};

pub fn spawn(app: AppHandle, client: Client) -> JoinHandle<()> {
    let mut events = client.events();
    tauri::async_runtime::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => handle(&app, &client, event).await,
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

async fn handle(app: &AppHandle, client: &Client, event: ClientEvent) {
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
        // Container events are not subscribed to yet; the tables re-list after actions.
        _ => {}
    }
}
