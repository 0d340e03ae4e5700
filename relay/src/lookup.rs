//! Finds the agent a request names by id or name: the live connection first, then the
//! database (an enrolled agent that is offline, or none at all), for the router's forwarding,
//! the audit log and event subscriptions.

use std::sync::Arc;
use std::time::Duration;

use zedops_protocol::{ErrorCode, ErrorReply, EventSubscribe, EventSubscribed};

use crate::hub::AgentLink;
use crate::state::AppState;
use crate::subscription::Subscription;

/// The connected agent with this id or name, or why there is none.
pub async fn online_agent(
    state: &AppState,
    id_or_name: &str,
) -> Result<Arc<AgentLink>, ErrorReply> {
    if let Some(link) = state.hub.agent(id_or_name) {
        return Ok(link);
    }
    match state.store.find_agent(id_or_name).await {
        Ok(Some(agent)) if state.hub.agent_moving(&agent.id) => {
            // Its relay is draining (a rolling upgrade): the agent is on its way to another
            // relay. The request waits for it rather than failing, as long as the agent counts
            // as moving (10 s from the drain's notice, see cluster/moving.rs): an agent whose
            // reconnection first lands on the draining relay again takes a few seconds more.
            while state.hub.agent_moving(&agent.id) {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if let Some(link) = state.hub.agent(&agent.id) {
                    return Ok(link);
                }
            }
            state
                .hub
                .agent(&agent.id)
                .ok_or_else(|| offline(&agent.name))
        }
        Ok(Some(agent)) => Err(offline(&agent.name)),
        Ok(None) => Err(ErrorReply::new(
            ErrorCode::NotFound,
            format!("no agent named or with id {id_or_name:?}; `zedops agents` lists them"),
        )),
        Err(e) => Err(e.into()),
    }
}

/// An enrolled agent that is not connected to any relay.
fn offline(name: &str) -> ErrorReply {
    ErrorReply::new(
        ErrorCode::AgentOffline,
        format!(
            "agent {name} is not connected to the relay; check that zedops-agent runs on that server"
        ),
    )
}

/// The id the audit log records for an agent reference (an id or a name): the agent's id when
/// it is known, else the reference as given.
pub async fn audited_agent_id(state: &AppState, reference: &str) -> String {
    if let Some(link) = state.hub.agent(reference) {
        return link.id.clone();
    }
    match state.store.find_agent(reference).await {
        Ok(Some(agent)) => agent.id,
        _ => reference.to_string(),
    }
}

/// Resolves a request's agent names and ids to ids. Every signed-in role may watch every agent
/// (the policy's `Read`), so there is nothing to filter out; an unknown agent is an error, so a
/// typo does not silently watch nothing.
pub async fn subscription(
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
                Err(e) => return Err(e.into()),
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
