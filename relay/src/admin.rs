//! The administration subjects (admin role, checked by the policy before these run): revoking
//! agents and device sessions, creating registration tokens, reading the audit log. Every
//! change is audited before it is answered, and revocations close live connections at once.

use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use zedops_protocol::{
    AgentRevokeRequest, AgentRevoked, AuditListRequest, AuditListResponse, AuditRecord, ErrorCode,
    ErrorReply, Frame, MAX_AUDIT_ENTRIES, SessionListRequest, SessionListResponse,
    SessionRevokeRequest, SessionRevoked, SessionSummary, TokenCreateRequest, TokenCreated,
    subject,
};

use crate::server::AppState;
use crate::store::{AuditEntry, Session, StoreError, now};
use crate::time::rfc3339;

/// Lifetime of a registration token when the request names none.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);

/// Serves one admin subject; the answer's JSON value.
pub async fn serve(
    state: &AppState,
    session: &Session,
    frame: &Frame,
) -> Result<serde_json::Value, ErrorReply> {
    let invalid = |e: zedops_protocol::ProtocolError| e.to_reply();
    let value = match frame.subject.as_str() {
        subject::AGENT_REVOKE => {
            to_json(revoke_agent(state, session, frame.payload().map_err(invalid)?).await?)
        }
        subject::SESSION_LIST => {
            frame.payload::<SessionListRequest>().map_err(invalid)?;
            to_json(sessions(state, session).await?)
        }
        subject::SESSION_REVOKE => {
            to_json(revoke_session(state, session, frame.payload().map_err(invalid)?).await?)
        }
        subject::TOKEN_CREATE => {
            to_json(create_token(state, session, frame.payload().map_err(invalid)?).await?)
        }
        subject::AUDIT_LIST => to_json(audit_list(state, frame.payload().map_err(invalid)?).await?),
        other => {
            return Err(ErrorReply::new(
                ErrorCode::InvalidRequest,
                format!("unknown subject {other:?}"),
            ));
        }
    };
    Ok(value)
}

fn to_json(value: impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(value).expect("protocol types serialise")
}

fn internal(e: StoreError) -> ErrorReply {
    tracing::error!(%e, "store failure in an admin request");
    ErrorReply::new(
        ErrorCode::Internal,
        "the relay could not use its database; see the relay's log",
    )
}

async fn audit(
    state: &AppState,
    session: &Session,
    operation: &str,
    agent_id: Option<&str>,
) -> Result<(), ErrorReply> {
    let entry = AuditEntry {
        user: Some(&session.user),
        session_id: Some(&session.id),
        agent_id,
        operation,
        result: "ok",
        ..Default::default()
    };
    state.store.audit(entry).await.map_err(internal)
}

async fn revoke_agent(
    state: &AppState,
    session: &Session,
    request: AgentRevokeRequest,
) -> Result<AgentRevoked, ErrorReply> {
    let agent = match state.store.revoke_agent(&request.agent_id).await {
        Ok(agent) => agent,
        Err(StoreError::NoSuchAgent(name)) => {
            return Err(ErrorReply::new(
                ErrorCode::NotFound,
                format!("no agent named or with id {name:?}"),
            ));
        }
        Err(e) => return Err(internal(e)),
    };
    audit(state, session, subject::AGENT_REVOKE, Some(&agent.id)).await?;
    state.hub.kick_agent(&agent.id);
    tracing::info!(agent = %agent.name, by = %session.user, "agent revoked");
    Ok(AgentRevoked {
        agent_id: agent.id,
        name: agent.name,
    })
}

async fn sessions(state: &AppState, session: &Session) -> Result<SessionListResponse, ErrorReply> {
    let rows = state.store.sessions().await.map_err(internal)?;
    let sessions: Vec<SessionSummary> = rows
        .into_iter()
        .map(|r| SessionSummary {
            current: r.id == session.id,
            id: r.id,
            user: r.user,
            device: r.device,
            created_at: rfc3339(r.created_at),
            last_used_at: r.last_used_at.map(rfc3339),
        })
        .collect();
    Ok(SessionListResponse {
        count: sessions.len(),
        sessions,
    })
}

async fn revoke_session(
    state: &AppState,
    session: &Session,
    request: SessionRevokeRequest,
) -> Result<SessionRevoked, ErrorReply> {
    if !state
        .store
        .revoke_session(&request.session_id)
        .await
        .map_err(internal)?
    {
        return Err(ErrorReply::new(
            ErrorCode::NotFound,
            format!("no live session with id {:?}", request.session_id),
        ));
    }
    audit(state, session, subject::SESSION_REVOKE, None).await?;
    state.hub.kick_session(&request.session_id);
    tracing::info!(session = %request.session_id, by = %session.user, "session revoked");
    Ok(SessionRevoked {
        session_id: request.session_id,
    })
}

async fn create_token(
    state: &AppState,
    session: &Session,
    request: TokenCreateRequest,
) -> Result<TokenCreated, ErrorReply> {
    let ttl = request
        .ttl_secs
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TOKEN_TTL);
    let token = state
        .store
        .create_registration_token(ttl)
        .await
        .map_err(internal)?;
    audit(state, session, subject::TOKEN_CREATE, None).await?;
    Ok(TokenCreated {
        token,
        expires_at: rfc3339(now() + ttl.as_secs() as i64),
    })
}

async fn audit_list(
    state: &AppState,
    request: AuditListRequest,
) -> Result<AuditListResponse, ErrorReply> {
    let since = match &request.since {
        Some(text) => Some(
            OffsetDateTime::parse(text, &Rfc3339)
                .map_err(|_| {
                    ErrorReply::new(
                        ErrorCode::InvalidRequest,
                        format!("since {text:?} is not an RFC 3339 time"),
                    )
                })?
                .unix_timestamp(),
        ),
        None => None,
    };
    // A name is resolved to the id the log records; an unknown one simply matches nothing.
    let agent_id = match &request.agent_id {
        Some(reference) => Some(
            match state.store.find_agent(reference).await.map_err(internal)? {
                Some(agent) => agent.id,
                None => reference.clone(),
            },
        ),
        None => None,
    };
    let limit = request.limit.unwrap_or(MAX_AUDIT_ENTRIES);
    let rows = state
        .store
        .audit_list(agent_id.as_deref(), since, limit)
        .await
        .map_err(internal)?;
    let entries: Vec<AuditRecord> = rows
        .into_iter()
        .map(|r| AuditRecord {
            id: r.id,
            at: rfc3339(r.at),
            user: r.user,
            session_id: r.session_id,
            agent_id: r.agent_id,
            container: r.container,
            operation: r.operation,
            result: r.result,
            error_code: r.error_code,
        })
        .collect();
    Ok(AuditListResponse {
        count: entries.len(),
        entries,
    })
}
