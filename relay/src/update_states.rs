//! Each agent's latest `updates.state`, kept in memory by the hub. A leaf so the hub can hold
//! it; serving and checking the states is the `updates` module, above the relay's state.

use std::collections::HashMap;
use std::sync::Mutex;

use zedops_protocol::UpdateState;

/// Every agent's latest update state, by agent id.
#[derive(Default)]
pub struct UpdateStates {
    by_agent: Mutex<HashMap<String, Kept>>,
}

/// One agent's state and the name it had when it pushed it.
#[derive(Clone)]
pub(crate) struct Kept {
    pub name: String,
    pub state: UpdateState,
}

impl UpdateStates {
    pub(crate) fn keep(&self, agent_id: &str, name: &str, state: UpdateState) {
        self.by_agent.lock().expect("update states lock").insert(
            agent_id.to_string(),
            Kept {
                name: name.to_string(),
                state,
            },
        );
    }

    /// The kept state of the agent `reference` names (id first, then name).
    pub(crate) fn find(&self, reference: &str) -> Option<(String, Kept)> {
        let by_agent = self.by_agent.lock().expect("update states lock");
        if let Some(kept) = by_agent.get(reference) {
            return Some((reference.to_string(), kept.clone()));
        }
        by_agent
            .iter()
            .find(|(_, kept)| kept.name == reference)
            .map(|(id, kept)| (id.clone(), kept.clone()))
    }

    pub(crate) fn all(&self) -> Vec<(String, Kept)> {
        let by_agent = self.by_agent.lock().expect("update states lock");
        by_agent
            .iter()
            .map(|(id, kept)| (id.clone(), kept.clone()))
            .collect()
    }

    /// Forgets a revoked agent's state.
    pub fn forget(&self, agent_id: &str) {
        self.by_agent
            .lock()
            .expect("update states lock")
            .remove(agent_id);
    }
}
