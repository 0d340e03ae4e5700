//! `agent.update` (admin, audited): tells a connected agent to install the signed build this
//! relay serves for its platform (`--downloads`, see [`crate::download`]) and answers once the
//! agent has checked and installed it and is restarting. Whether the new build came back shows
//! in the agent's next hello (`info.version`); if it does not connect within the agent's
//! deadline, the agent reverts by itself.
//!
//! The relay only announces what it serves (version, SHA-256, size); the agent trusts none of
//! it beyond what the release key signed, so a relay cannot use this to run other code.

use std::time::Duration;

use zedops_protocol::{
    AGENT_UPDATE_SINCE, AgentId, AgentRequest, AgentUpdateOrder, AgentUpdateRequest, AgentUpdated,
    ErrorCode, ErrorReply, subject,
};

use crate::hub::AgentLink;
use crate::state::AppState;
use crate::store::{AuditEntry, Session, StoreError};

/// How long the agent may take to download, check and install a build (its download gives up
/// after 5 minutes).
pub const UPDATE_TIMEOUT: Duration = Duration::from_secs(330);

pub(crate) async fn update_agent(
    state: &AppState,
    session: &Session,
    request: AgentUpdateRequest,
) -> Result<AgentUpdated, ErrorReply> {
    let outcome = update(state, &request).await;
    let (agent_id, detail, error) = match &outcome {
        Ok(done) => (
            Some(done.agent_id.clone()),
            format!("{} -> {}", done.from, done.to),
            None,
        ),
        Err((id, version, error)) => (id.clone(), version.clone(), Some(error)),
    };
    let entry = AuditEntry {
        agent_id: Some(agent_id.as_deref().unwrap_or(&request.agent_id)),
        operation: subject::AGENT_UPDATE,
        detail: Some(&detail),
        ..AuditEntry::by(session)
    }
    .ended(error);
    state.store.audit(entry).await.map_err(internal)?;
    match outcome {
        Ok(done) => {
            tracing::info!(agent = %done.agent_id, from = %done.from, to = %done.to, by = %session.user, "agent updating");
            Ok(done)
        }
        Err((_, _, error)) => Err(error),
    }
}

/// The agent's id (when known), the version asked for (for the audit), and why it failed.
type UpdateError = (Option<AgentId>, String, ErrorReply);

async fn update(
    state: &AppState,
    request: &AgentUpdateRequest,
) -> Result<AgentUpdated, UpdateError> {
    let asked = request.version.clone().unwrap_or_default();
    let link = connected(state, &request.agent_id)
        .await
        .map_err(|e| (None, asked.clone(), e))?;
    let id = Some(AgentId::from(&link.id));
    let fail = |error: ErrorReply| (id.clone(), asked.clone(), error);
    let spoken = link
        .protocol_version
        .load(std::sync::atomic::Ordering::Relaxed);
    if spoken < AGENT_UPDATE_SINCE {
        return Err(fail(ErrorReply::new(
            ErrorCode::Unsupported,
            format!(
                "agent {} speaks protocol {spoken}, which has no agent.update; install the new \
                 agent on that server once with the install command, later updates go through \
                 the relay",
                link.name
            ),
        )));
    }
    let record = state
        .store
        .find_agent(&link.id)
        .await
        .map_err(|e| fail(internal(e)))?;
    let info = record.and_then(|r| r.info).ok_or_else(|| {
        fail(ErrorReply::new(
            ErrorCode::Internal,
            "the agent's platform is not known yet; retry in a moment",
        ))
    })?;
    // `linux (Debian GNU/Linux 12)` and `x86_64` → `linux-x86_64`.
    let os = info.os.split_whitespace().next().unwrap_or_default();
    let platform = format!("{os}-{}", info.arch);
    let Some(build) = state.installer.build(&platform) else {
        return Err(fail(ErrorReply::new(
            ErrorCode::UpdateRefused,
            format!(
                "this relay serves no signed agent build for {platform}; its admin must put \
                 zedops-agent-{platform} and its .minisig from scripts/release in the \
                 --downloads directory and restart the relay"
            ),
        )));
    };
    if let Some(wanted) = &request.version
        && *wanted != build.version
    {
        return Err(fail(ErrorReply::new(
            ErrorCode::UpdateRefused,
            format!(
                "this relay serves agent {} for {platform}, not {wanted}; leave out --version or \
                 serve {wanted}",
                build.version
            ),
        )));
    }
    let asked = build.version.clone();
    let fail = |error: ErrorReply| (id.clone(), asked.clone(), error);
    let order = AgentUpdateOrder {
        version: build.version.clone(),
        platform: platform.clone(),
        sha256: build.sha256.clone(),
        size: build.size,
        allow_downgrade: request.allow_downgrade,
    };
    // Watched from here: the agent's progress goes to the admins, then its reconnection.
    state
        .agent_updates
        .begin(&link.id, &link.name, &info.version, &build.version);
    let raw = link
        .request(&AgentRequest::AgentUpdateInstall(order), UPDATE_TIMEOUT)
        .await
        .map_err(|e| {
            state.agent_updates.failed(&link.id);
            fail(e.to_reply(&link.name))
        })?;
    match serde_json::from_str::<AgentUpdated>(&raw) {
        Ok(mut done) => {
            done.agent_id = link.id.clone().into();
            state.agent_updates.restarting(&done);
            Ok(done)
        }
        Err(_) => {
            state.agent_updates.failed(&link.id);
            let reply = serde_json::from_str::<ErrorReply>(&raw).unwrap_or_else(|_| {
                ErrorReply::new(
                    ErrorCode::Internal,
                    "the agent answered the update with something unexpected",
                )
            });
            Err(fail(unsupported_if_unknown(
                reply,
                &link.name,
                &info.version,
            )))
        }
    }
}

fn internal(e: StoreError) -> ErrorReply {
    tracing::error!(%e, "store failure in agent.update");
    ErrorReply::new(
        ErrorCode::Internal,
        "the relay could not use its database; see the relay's log",
    )
}

/// The connected agent with this id or name, or why there is none.
async fn connected(
    state: &AppState,
    reference: &str,
) -> Result<std::sync::Arc<AgentLink>, ErrorReply> {
    if let Some(link) = state.hub.agent(reference) {
        return Ok(link);
    }
    Err(match state.store.find_agent(reference).await {
        Ok(Some(agent)) => ErrorReply::new(
            ErrorCode::AgentOffline,
            format!(
                "agent {} is not connected; it can only be updated while it is online",
                agent.name
            ),
        ),
        Ok(None) => ErrorReply::new(
            ErrorCode::NotFound,
            format!("no agent named or with id {reference:?}; `zedops agents` lists them"),
        ),
        Err(e) => internal(e),
    })
}

/// An agent older than `agent.update.install` answers `INVALID_REQUEST` (0.1.0: "invalid
/// subject: not a request this agent handles"; later: "unknown subject …"): said as
/// `UNSUPPORTED`, with what to do.
fn unsupported_if_unknown(reply: ErrorReply, agent: &str, version: &str) -> ErrorReply {
    let unknown = reply.error.contains("unknown subject")
        || reply.error.contains("not a request this agent handles");
    if reply.error_code == ErrorCode::Unsupported
        || (reply.error_code == ErrorCode::InvalidRequest && unknown)
    {
        return ErrorReply::new(
            ErrorCode::Unsupported,
            format!(
                "agent {agent} ({version}) is too old to update itself; install the new agent on \
                 that server once with the install command, later updates go through the relay"
            ),
        );
    }
    ErrorReply::new(
        reply.error_code,
        format!("agent {agent} did not update: {}", reply.error),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_agents_unknown_subject_reads_as_unsupported() {
        let old = ErrorReply::new(
            ErrorCode::InvalidRequest,
            "unknown subject \"agent.update.install\"",
        );
        let said = unsupported_if_unknown(old, "web-1", "0.1.0");
        assert_eq!(said.error_code, ErrorCode::Unsupported);
        let first = ErrorReply::new(
            ErrorCode::InvalidRequest,
            "invalid subject: not a request this agent handles",
        );
        let said = unsupported_if_unknown(first, "web-1", "0.1.0");
        assert_eq!(said.error_code, ErrorCode::Unsupported);
        assert!(said.error.contains("too old"), "{}", said.error);
        let refused = ErrorReply::new(ErrorCode::UpdateRefused, "bad signature");
        let said = unsupported_if_unknown(refused, "web-1", "0.1.0");
        assert_eq!(said.error_code, ErrorCode::UpdateRefused);
    }
}
