//! Events pushed to the UI. They are how a row updates by itself: after an action the backend
//! re-lists that agent and emits [`ContainersUpdated`]; relay pushes become [`AgentStatusChanged`].

use serde::{Deserialize, Serialize};
use specta::Type;
use tauri_specta::Event;
use zedops_client::AgentStatus;

use crate::types::ContainerView;

/// An agent's container list changed (after an action, or when the agent came back online).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, Event)]
#[serde(rename_all = "camelCase")]
pub struct ContainersUpdated {
    pub agent_id: String,
    pub containers: Vec<ContainerView>,
}

/// The relay pushed an agent's new status: it came online or went offline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, Event)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatusChanged {
    pub agent_id: String,
    pub name: String,
    pub online: bool,
    pub last_seen: Option<String>,
}

impl From<&AgentStatus> for AgentStatusChanged {
    fn from(s: &AgentStatus) -> Self {
        Self {
            agent_id: s.agent_id.to_string(),
            name: s.name.clone(),
            online: s.online,
            last_seen: s.last_seen.clone(),
        }
    }
}

/// The connection to the relay dropped or came back. When `signedOut` is true the relay
/// refused the session for good and the UI returns to the sign-in form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, Event)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionChanged {
    pub connected: bool,
    pub reason: Option<String>,
    pub signed_out: bool,
}
