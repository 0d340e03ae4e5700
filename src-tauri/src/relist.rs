//! Listing an agent's containers again: the app's picture of the fleet and the tray take the
//! fresh list, and the UI gets it pushed. Below the commands and `service` that call it, so a
//! feature's commands (deploy, image updates) need not import `service`, which sits above them.

use tauri::{AppHandle, Manager};
use tauri_specta::Event;
use zedops_client::Client;

use crate::error::AppError;
use crate::events::ContainersUpdated;
use crate::state::AppState;
use crate::tray;
use crate::types::{self, ContainerView};

/// Lists an agent's containers and keeps the list in the app's picture of the fleet.
pub(crate) async fn relist(
    app: &AppHandle,
    client: &Client,
    agent_id: &str,
) -> Result<Vec<ContainerView>, AppError> {
    let list = types::containers(client.containers(agent_id).await?);
    app.state::<AppState>()
        .fleet()
        .set_containers(agent_id, &list);
    tray::refresh(app);
    Ok(list)
}

/// Lists an agent's containers again and pushes the list to the UI (after a deploy or a
/// removal, which change the list itself); a failure is only logged, the push will follow.
pub(crate) async fn relist_and_push(app: &AppHandle, client: &Client, agent_id: &str) {
    match relist(app, client, agent_id).await {
        Ok(containers) => {
            let _ = ContainersUpdated {
                agent_id: agent_id.to_string(),
                containers,
            }
            .emit(app);
        }
        Err(err) => tracing::warn!(%err, agent_id, "could not re-list the containers"),
    }
}
