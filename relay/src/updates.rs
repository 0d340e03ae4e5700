//! Update available, at the relay: each agent's latest `updates.state` kept in memory (by the
//! hub, in update_states.rs; the agent keeps its own copy on disk and pushes it again after
//! every reconnect, so nothing is lost with a relay restart), fanned out to the clients that
//! watch the agent, and served by `updates.list` (any role) and `updates.check` (operators: ask
//! one agent or all to check now and answer with their fresh states).
//!
//! What one agent can make the relay hold is bounded by the payload's validation (at most
//! [`zedops_protocol::MAX_UPDATE_ENTRIES`] updates, short fields); a bigger push is refused with
//! `INVALID_REQUEST` before it gets here, and the state kept stays the previous one.

use std::sync::Arc;

use futures_util::future::join_all;
use tracing::{info, warn};
use zedops_protocol::{
    AgentRequest, AgentUpdates, ClientPush, ErrorCode, ErrorReply, UPDATE_CHECK_TIMEOUT,
    UpdateCheckFailure, UpdateCheckRequest, UpdateListRequest, UpdateListResponse, UpdateState,
};

use crate::hub::AgentLink;
use crate::state::AppState;
use crate::store::Session;
use crate::update_states::Kept;

/// An agent's `updates.state` push (already validated): kept under the connection's agent id
/// (never the payload's) and pushed to the clients watching that agent.
pub(crate) fn received(state: &AppState, link: &AgentLink, mut pushed: UpdateState) {
    pushed.agent_id = link.id.clone().into();
    keep_and_push(state, link, pushed);
}

fn keep_and_push(state: &AppState, link: &AgentLink, pushed: UpdateState) {
    // Debug only: a state comes after every check and reconnect, and an agent may push often.
    tracing::debug!(agent = %link.name, updates = pushed.updates.len(), "update state from an agent");
    let frame = ClientPush::UpdatesState(pushed.clone()).to_frame(None);
    state.hub.updates.keep(&link.id, &link.name, pushed);
    state.hub.push_event(&link.id, frame);
}

fn entry(state: &AppState, agent_id: String, kept: Kept) -> AgentUpdates {
    let online = state.hub.agent(&agent_id).is_some();
    let mut update_state = kept.state;
    update_state.agent_id = agent_id.into();
    AgentUpdates {
        name: kept.name,
        online,
        state: update_state,
    }
}

/// `updates.list`: the kept state of one agent or of every agent that reported one, by name.
/// An agent that has not reported yet is listed with no state (never checked).
pub(crate) async fn list(
    state: &AppState,
    request: UpdateListRequest,
) -> Result<UpdateListResponse, ErrorReply> {
    let mut agents = match request.agent_id {
        Some(reference) => match state.hub.updates.find(&reference) {
            Some((id, kept)) => vec![entry(state, id, kept)],
            None => {
                // Known but silent so far: an empty state; unknown: NOT_FOUND.
                let (id, name) = known_agent(state, &reference).await?;
                let online = state.hub.agent(&id).is_some();
                vec![AgentUpdates {
                    name,
                    online,
                    state: UpdateState {
                        agent_id: id.into(),
                        ..UpdateState::default()
                    },
                }]
            }
        },
        None => state
            .hub
            .updates
            .all()
            .into_iter()
            .map(|(id, kept)| entry(state, id, kept))
            .collect(),
    };
    agents.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(UpdateListResponse {
        agents,
        failed: vec![],
    })
}

/// The id and name of an enrolled agent, online or not.
async fn known_agent(state: &AppState, reference: &str) -> Result<(String, String), ErrorReply> {
    if let Some(link) = state.hub.agent(reference) {
        return Ok((link.id.clone(), link.name.clone()));
    }
    match state.store.find_agent(reference).await? {
        Some(agent) => Ok((agent.id, agent.name)),
        None => Err(ErrorReply::new(
            ErrorCode::NotFound,
            format!("no agent named or with id {reference:?}; `zedops agents` lists them"),
        )),
    }
}

/// `updates.check`: one agent (which must be online) or every connected agent checks now, all
/// at once (each agent bounds its own registry calls); answered when every agent has answered
/// or timed out, with the fresh states and the agents that could not check.
pub(crate) async fn check(
    state: &AppState,
    session: &Session,
    request: UpdateCheckRequest,
) -> Result<UpdateListResponse, ErrorReply> {
    let links: Vec<Arc<AgentLink>> = match &request.agent_id {
        Some(reference) => vec![crate::lookup::online_agent(state, reference).await?],
        None => {
            let mut links: Vec<_> = state
                .hub
                .online()
                .keys()
                .filter_map(|id| state.hub.agent(id))
                .collect();
            links.sort_by(|a, b| a.name.cmp(&b.name));
            links
        }
    };
    info!(by = %session.user, agents = links.len(), "checking images for updates");
    let asked = links.iter().map(|link| async move {
        let order = AgentRequest::UpdatesCheck(UpdateCheckRequest {
            agent_id: Some(link.id.clone().into()),
        });
        let answer = link
            .request(&order, UPDATE_CHECK_TIMEOUT)
            .await
            .map_err(|e| e.to_reply(&link.name))
            .and_then(|raw| decode_answer(&raw));
        (link.clone(), answer)
    });
    let mut response = UpdateListResponse::default();
    for (link, answer) in join_all(asked).await {
        match answer {
            Ok(mut fresh) => {
                fresh.agent_id = link.id.clone().into();
                keep_and_push(state, &link, fresh.clone());
                response.agents.push(AgentUpdates {
                    name: link.name.clone(),
                    online: true,
                    state: fresh,
                });
            }
            Err(reply) => {
                warn!(agent = %link.name, code = %reply.error_code, "an agent could not check for updates");
                response.failed.push(UpdateCheckFailure {
                    agent_id: link.id.clone().into(),
                    name: link.name.clone(),
                    error_code: reply.error_code,
                    error: reply.error,
                });
            }
        }
    }
    // Asked for one agent: its failure is the answer.
    if request.agent_id.is_some()
        && let Some(failure) = response.failed.pop()
    {
        return Err(ErrorReply::new(failure.error_code, failure.error));
    }
    Ok(response)
}

/// An agent's answer to `updates.check`: its state (validated like a push) or its refusal.
fn decode_answer(raw: &str) -> Result<UpdateState, ErrorReply> {
    use zedops_protocol::payload::Validate;
    if let Ok(refusal) = serde_json::from_str::<ErrorReply>(raw) {
        return Err(refusal);
    }
    let fresh: UpdateState = serde_json::from_str(raw).map_err(|e| {
        warn!(error = %e, "refused an unreadable updates.check answer from an agent");
        ErrorReply::new(
            ErrorCode::Internal,
            "the agent's answer was unreadable; see the relay's log",
        )
    })?;
    fresh.validate().map_err(|e| {
        warn!(error = %e, "refused an updates.check answer over the bounds");
        ErrorReply::new(
            ErrorCode::InvalidRequest,
            format!("the agent's answer was refused: {e}"),
        )
    })?;
    Ok(fresh)
}
