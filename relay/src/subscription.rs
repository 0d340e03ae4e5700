//! Which agents' live state (container events and snapshots) one client connection receives,
//! as set by its `event.subscribe` requests.

use std::collections::HashSet;

use zedops_protocol::{ErrorCode, ErrorReply, EventSubscribe, EventSubscribed};

use crate::server::AppState;

/// One connection's subscription. Connections start with none, so a CLI that only lists pays
/// nothing for the fleet's events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Subscription {
    #[default]
    Off,
    /// Every agent, including ones enrolled later.
    Fleet,
    /// These agent ids.
    Agents(HashSet<String>),
}

impl Subscription {
    /// Whether a push about `agent_id` goes to this connection.
    pub fn wants(&self, agent_id: &str) -> bool {
        match self {
            Subscription::Off => false,
            Subscription::Fleet => true,
            Subscription::Agents(ids) => ids.contains(agent_id),
        }
    }

    pub fn is_on(&self) -> bool {
        *self != Subscription::Off
    }
}

/// Resolves a request's agent names and ids to ids. Every signed-in role may watch every agent
/// (the policy's `Read`), so there is nothing to filter out; an unknown agent is an error, so a
/// typo does not silently watch nothing.
pub async fn resolve(
    state: &AppState,
    request: &EventSubscribe,
) -> Result<(Subscription, EventSubscribed), ErrorReply> {
    let Some(agents) = &request.agents else {
        return Ok((Subscription::Fleet, EventSubscribed { agents: None }));
    };
    let mut ids = Vec::with_capacity(agents.len());
    for reference in agents {
        let id = match state.hub.agent(reference) {
            Some(link) => link.id.clone(),
            None => match state.store.find_agent(reference).await {
                Ok(Some(agent)) => agent.id,
                Ok(None) => {
                    return Err(ErrorReply::new(
                        ErrorCode::NotFound,
                        format!(
                            "no agent named or with id {reference:?}; `zedops agents` lists them"
                        ),
                    ));
                }
                Err(e) => {
                    tracing::error!(%e, "store failure resolving a subscription");
                    return Err(ErrorReply::new(
                        ErrorCode::Internal,
                        "the relay could not read its database; see the relay's log",
                    ));
                }
            },
        };
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    let subscription = if ids.is_empty() {
        Subscription::Off
    } else {
        Subscription::Agents(ids.iter().cloned().collect())
    };
    Ok((subscription, EventSubscribed { agents: Some(ids) }))
}
