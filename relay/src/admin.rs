//! The administration subjects (admin role, checked by the policy before the router calls these): revoking
//! agents and device sessions, creating, listing and revoking registration tokens, reading the
//! audit log, managing users, and rotating agent tokens. Every change is audited before it is
//! answered; revocations, disabled users and role changes close live connections at once.

use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use zedops_protocol::{
    AgentRef, AgentRequest, AgentRevokeRequest, AgentRevoked, AgentRotateRequest, AgentRotated,
    AgentToken, AgentTokenStored, AuditListRequest, AuditListResponse, AuditRecord, ErrorCode,
    ErrorReply, MAX_AUDIT_ENTRIES, SessionId, SessionListResponse, SessionRevokeRequest,
    SessionRevoked, SessionSummary, TokenCreateRequest, TokenCreated, TokenListResponse,
    TokenRevokeRequest, TokenRevoked, TokenSummary, UserCreateRequest, UserListResponse,
    UserSummary, UserUpdateRequest, subject,
};

use crate::hub::Kick;
use crate::secret::{self, TokenKind};
use crate::state::AppState;
use crate::store::{AuditEntry, Session, StoreError, TokenRow, UserRow, now};
use crate::time::rfc3339;

/// Lifetime of a registration token when the request names none.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);

async fn audit(
    state: &AppState,
    session: &Session,
    operation: &str,
    agent_id: Option<&str>,
) -> Result<(), ErrorReply> {
    let entry = AuditEntry {
        agent_id,
        operation,
        ..AuditEntry::by(session)
    }
    .ended(None);
    Ok(state.store.audit(entry).await?)
}

/// Audits an admin change to a user or token (`target`), successful or not.
pub(crate) async fn audit_change(
    state: &AppState,
    session: &Session,
    operation: &str,
    target: &str,
    detail: Option<&str>,
    error: Option<&ErrorReply>,
) -> Result<(), ErrorReply> {
    let entry = AuditEntry {
        operation,
        target: Some(target),
        detail,
        ..AuditEntry::by(session)
    }
    .ended(error);
    Ok(state.store.audit(entry).await?)
}

/// Audits an admin change's `outcome` (see [`audit_change`]) and passes it on; when the entry
/// cannot be written, that failure is the answer.
pub(crate) async fn audit_outcome<T>(
    state: &AppState,
    session: &Session,
    operation: &str,
    target: &str,
    detail: Option<&str>,
    outcome: Result<T, ErrorReply>,
) -> Result<T, ErrorReply> {
    let error = outcome.as_ref().err();
    audit_change(state, session, operation, target, detail, error).await?;
    outcome
}

pub(crate) async fn revoke_agent(
    state: &AppState,
    session: &Session,
    request: AgentRevokeRequest,
) -> Result<AgentRevoked, ErrorReply> {
    let agent = outcome(state.store.revoke_agent(&request.agent_id).await)??;
    audit(state, session, subject::AGENT_REVOKE, Some(&agent.id)).await?;
    state.hub.kick_agent(&agent.id);
    tracing::info!(agent = %agent.name, by = %session.user, "agent revoked");
    Ok(AgentRevoked {
        agent_id: agent.id.into(),
        name: agent.name,
    })
}

pub(crate) async fn sessions(
    state: &AppState,
    session: &Session,
) -> Result<SessionListResponse, ErrorReply> {
    let rows = state.store.sessions().await?;
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

pub(crate) async fn revoke_session(
    state: &AppState,
    session: &Session,
    request: SessionRevokeRequest,
) -> Result<SessionRevoked, ErrorReply> {
    if !state.store.revoke_session(&request.session_id).await? {
        return Err(ErrorReply::new(
            ErrorCode::NotFound,
            format!(
                "no live session with id {:?}; `zedops sessions` lists them",
                request.session_id.as_str()
            ),
        ));
    }
    audit(state, session, subject::SESSION_REVOKE, None).await?;
    state.hub.kick_session(&request.session_id);
    tracing::info!(session = ?request.session_id, by = %session.user, "session revoked");
    Ok(SessionRevoked {
        session_id: request.session_id,
    })
}

pub(crate) async fn create_token(
    state: &AppState,
    session: &Session,
    request: TokenCreateRequest,
) -> Result<TokenCreated, ErrorReply> {
    let ttl = request
        .ttl_secs
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TOKEN_TTL);
    let (id, token) = state.store.create_registration_token_with_id(ttl).await?;
    audit_change(state, session, subject::TOKEN_CREATE, &id, None, None).await?;
    Ok(TokenCreated {
        id,
        token,
        expires_at: rfc3339(now() + ttl.as_secs() as i64),
    })
}

pub(crate) async fn audit_list(
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
    // A name is resolved to the id the log records; an unknown one is taken as the id of an
    // agent since revoked, whose entries stay.
    let (agent_id, known) = match &request.agent_id {
        Some(reference) => match state.store.find_agent(reference).await? {
            Some(agent) => (Some(agent.id), true),
            None => (Some(reference.to_string()), false),
        },
        None => (None, true),
    };
    let limit = request.limit.unwrap_or(MAX_AUDIT_ENTRIES);
    let rows = state
        .store
        .audit_list(agent_id.as_deref(), since, limit)
        .await?;
    // Neither an agent nor in the log: a typo, said as one rather than an empty log.
    if let (Some(reference), false, true) = (&request.agent_id, known, rows.is_empty()) {
        return Err(ErrorReply::new(
            ErrorCode::NotFound,
            format!(
                "no agent {reference} is known and the audit log has no entries for it; \
                 `zedops agents` lists the agents"
            ),
        ));
    }
    let entries: Vec<AuditRecord> = rows
        .into_iter()
        .map(|r| AuditRecord {
            id: r.id,
            at: rfc3339(r.at),
            user: r.user,
            session_id: r.session_id.map(SessionId::from),
            agent_id: r.agent_id.map(AgentRef::from),
            container: r.container,
            operation: r.operation,
            result: r.result,
            error_code: r.error_code,
            target: r.target,
            detail: r.detail,
        })
        .collect();
    Ok(AuditListResponse {
        count: entries.len(),
        entries,
    })
}

// ---- users ------------------------------------------------------------------------------------

fn user_summary(row: UserRow) -> UserSummary {
    UserSummary {
        name: row.name,
        role: row.role,
        disabled: row.disabled,
        created_at: rfc3339(row.created_at),
        sessions: row.sessions,
    }
}

pub(crate) async fn user_list(state: &AppState) -> Result<UserListResponse, ErrorReply> {
    let users: Vec<UserSummary> = state
        .store
        .users()
        .await?
        .into_iter()
        .map(user_summary)
        .collect();
    Ok(UserListResponse {
        count: users.len(),
        users,
    })
}

pub(crate) async fn user_create(
    state: &AppState,
    session: &Session,
    request: UserCreateRequest,
) -> Result<UserSummary, ErrorReply> {
    let detail = format!("role {}", request.role);
    let created = state
        .store
        .add_user(&request.name, &request.password, request.role)
        .await;
    // A database failure is audited as the attempt's outcome too.
    let outcome = outcome(created).and_then(|done| done);
    let name = &request.name;
    audit_outcome(
        state,
        session,
        subject::USER_CREATE,
        name,
        Some(&detail),
        outcome,
    )
    .await?;
    tracing::info!(user = ?request.name, role = %request.role, by = %session.user, "user created");
    let row = state
        .store
        .user(&request.name)
        .await?
        .ok_or_else(|| internal_msg("a user just created is missing"))?;
    Ok(user_summary(row))
}

fn internal_msg(what: &str) -> ErrorReply {
    tracing::error!(what, "unexpected state in an admin request");
    ErrorReply::new(
        ErrorCode::Internal,
        "the relay's database changed unexpectedly; see the relay's log",
    )
}

/// Changes a role and/or the disabled flag. Disabling revokes the user's sessions and closes
/// their connections; a role change closes the user's connections so that each authenticates
/// again and gets the new role: no connection keeps a permission it no longer has.
pub(crate) async fn user_update(
    state: &AppState,
    session: &Session,
    request: UserUpdateRequest,
) -> Result<UserSummary, ErrorReply> {
    let mut words = vec![];
    if let Some(role) = request.role {
        words.push(format!("role {role}"));
    }
    match request.disabled {
        Some(true) => words.push("disable".to_string()),
        Some(false) => words.push("enable".to_string()),
        None => {}
    }
    let detail = words.join(", ");
    let outcome = outcome(
        state
            .store
            .update_user(&request.name, request.role, request.disabled)
            .await,
    )?;
    let name = &request.name;
    let changed = audit_outcome(
        state,
        session,
        subject::USER_UPDATE,
        name,
        Some(&detail),
        outcome,
    )
    .await?;
    let why = if changed.user.disabled {
        Some(Kick::Revoked)
    } else if changed.role_changed {
        Some(Kick::RoleChanged)
    } else {
        None
    };
    let mut closed = 0;
    if let Some(why) = why {
        for id in &changed.sessions {
            closed += state.hub.kick_session_because(id, why);
        }
    }
    tracing::info!(user = ?request.name, change = %detail, by = %session.user, closed, "user changed");
    Ok(user_summary(changed.user))
}

/// Sets a user's password. The user's other device sessions are revoked and their connections
/// closed (a password is reset because the old one may be known); an admin changing their own
/// password keeps the session that asked. Audited; the password is never logged.
pub(crate) async fn user_password(
    state: &AppState,
    session: &Session,
    request: zedops_protocol::UserPasswordRequest,
) -> Result<zedops_protocol::UserPasswordSet, ErrorReply> {
    let keep = (request.name == session.user).then_some(session.id.as_str());
    let result = state
        .store
        .set_password(&request.name, &request.password, keep)
        .await;
    let outcome = outcome(result)?;
    let detail = format!("{} session(s) ended", outcome.as_ref().map_or(0, Vec::len));
    let name = &request.name;
    let ended = audit_outcome(
        state,
        session,
        subject::USER_PASSWORD,
        name,
        Some(&detail),
        outcome,
    )
    .await?;
    for id in &ended {
        state.hub.kick_session_because(id, Kick::Revoked);
    }
    tracing::info!(user = ?request.name, by = %session.user, sessions_ended = ended.len(), "password set");
    Ok(zedops_protocol::UserPasswordSet {
        name: request.name,
        sessions_ended: ended.len().try_into().unwrap_or(u32::MAX),
    })
}

// ---- registration tokens ----------------------------------------------------------------------

fn token_summary(row: TokenRow, at: i64) -> TokenSummary {
    TokenSummary {
        state: row.state(at).to_string(),
        id: row.id,
        created_at: rfc3339(row.created_at),
        expires_at: rfc3339(row.expires_at),
        used_at: row.used_at.map(rfc3339),
        used_by_agent: row.used_by_agent,
        revoked_at: row.revoked_at.map(rfc3339),
    }
}

pub(crate) async fn token_list(state: &AppState) -> Result<TokenListResponse, ErrorReply> {
    let at = now();
    let tokens: Vec<TokenSummary> = state
        .store
        .registration_tokens()
        .await?
        .into_iter()
        .map(|row| token_summary(row, at))
        .collect();
    Ok(TokenListResponse {
        count: tokens.len(),
        tokens,
    })
}

pub(crate) async fn token_revoke(
    state: &AppState,
    session: &Session,
    request: TokenRevokeRequest,
) -> Result<TokenRevoked, ErrorReply> {
    let revoked = state
        .store
        .revoke_registration_token(&request.token_id)
        .await;
    let outcome = outcome(revoked)?.map(|_| ());
    let id = &request.token_id;
    audit_outcome(state, session, subject::TOKEN_REVOKE, id, None, outcome).await?;
    tracing::info!(token = ?request.token_id, by = %session.user, "registration token revoked");
    Ok(TokenRevoked {
        token_id: request.token_id,
    })
}

// ---- agent token rotation -------------------------------------------------------------------

/// Gives a connected agent a new permanent token: the relay remembers the new token's hash as
/// pending, sends the token over the agent's live connection, and only when the agent answers
/// that it stored it does the new hash replace the old one (which is refused from then on). If
/// the agent cannot store it, the old token stays; if the answer is lost, whichever token the
/// agent next authenticates with becomes the only one.
pub(crate) async fn rotate_agent(
    state: &AppState,
    session: &Session,
    request: AgentRotateRequest,
) -> Result<AgentRotated, ErrorReply> {
    let outcome = rotate(state, &request.agent_id).await;
    let (agent_id, name, error) = match outcome {
        Ok((id, name)) => (Some(id), name, None),
        Err((id, error)) => (id, String::new(), Some(error)),
    };
    let entry = AuditEntry {
        agent_id: Some(agent_id.as_deref().unwrap_or(&request.agent_id)),
        operation: subject::AGENT_ROTATE,
        ..AuditEntry::by(session)
    }
    .ended(error.as_ref());
    state.store.audit(entry).await?;
    match error {
        Some(error) => Err(error),
        None => {
            tracing::info!(agent = %name, by = %session.user, "agent token rotated");
            Ok(AgentRotated {
                agent_id: agent_id.unwrap_or_default().into(),
                name,
            })
        }
    }
}

type RotateError = (Option<String>, ErrorReply);

async fn rotate(state: &AppState, reference: &str) -> Result<(String, String), RotateError> {
    let Some(link) = state.hub.agent(reference) else {
        return Err(match state.store.find_agent(reference).await {
            Ok(Some(agent)) => (
                Some(agent.id),
                ErrorReply::new(
                    ErrorCode::AgentOffline,
                    format!(
                        "agent {} is not connected; its token can only be rotated while it is online",
                        agent.name
                    ),
                ),
            ),
            Ok(None) => (
                None,
                ErrorReply::new(
                    ErrorCode::NotFound,
                    format!("no agent named or with id {reference:?}; `zedops agents` lists them"),
                ),
            ),
            Err(e) => (None, e.into()),
        });
    };
    let id = Some(link.id.clone());
    let token = secret::new_token(TokenKind::Agent);
    let next_hash = secret::token_hash(&token);
    state
        .store
        .begin_rotation(&link.id, &next_hash)
        .await
        .map_err(|e| (id.clone(), e.into()))?;
    let answer = link
        .request(
            &AgentRequest::AgentToken(AgentToken { token }),
            state.timeouts.operation,
        )
        .await;
    let raw = match answer {
        Ok(raw) => raw,
        Err(e @ crate::hub::RouteError::Busy(_)) => {
            // Never sent: the new token exists nowhere but here.
            let _ = state.store.abort_rotation(&link.id, &next_hash).await;
            return Err((id, e.to_reply(&link.name)));
        }
        Err(e) => {
            // The agent may or may not have stored the new token: both stay valid until it
            // authenticates with one of them.
            tracing::warn!(agent = %link.name, ?e, "agent did not confirm a token rotation");
            let mut reply = e.to_reply(&link.name);
            reply.error = format!(
                "{}; the rotation was not confirmed (the agent's current token keeps working)",
                reply.error
            );
            return Err((id, reply));
        }
    };
    match serde_json::from_str::<AgentTokenStored>(&raw) {
        Ok(stored) if stored.agent_id == link.id => {}
        _ => {
            let _ = state.store.abort_rotation(&link.id, &next_hash).await;
            let reply = serde_json::from_str::<ErrorReply>(&raw).unwrap_or_else(|_| {
                ErrorReply::new(
                    ErrorCode::InvalidRequest,
                    "the agent answered the rotation with something unexpected",
                )
            });
            tracing::warn!(agent = %link.name, code = %reply.error_code, error = ?reply.error, "agent refused a token rotation");
            return Err((
                id,
                ErrorReply::new(
                    reply.error_code,
                    format!(
                        "agent {} could not store a new token ({}); its old token stays valid",
                        link.name, reply.error
                    ),
                ),
            ));
        }
    }
    match state.store.finish_rotation(&link.id, &next_hash).await {
        Ok(true) => Ok((link.id.clone(), link.name.clone())),
        Ok(false) => Err((
            id,
            ErrorReply::new(
                ErrorCode::Internal,
                format!(
                    "agent {} stored the new token but reconnected or was revoked meanwhile; run the rotation again",
                    link.name
                ),
            ),
        )),
        Err(e) => Err((id, e.into())),
    }
}

/// A store call's result as an admin request's outcome: done, or refused because of the
/// request (`Ok(Err)`: no such user, agent or token, a name taken, the last admin, a used
/// token), told in words that say what to do; the database failing is the outer error.
#[track_caller]
fn outcome<T>(result: Result<T, StoreError>) -> Result<Result<T, ErrorReply>, ErrorReply> {
    let refusal = match result {
        Ok(done) => return Ok(Ok(done)),
        Err(StoreError::NoSuchUser(name)) => ErrorReply::new(
            ErrorCode::NotFound,
            format!("no user named {name:?}; `zedops user list` lists them"),
        ),
        Err(StoreError::NoSuchAgent(name)) => ErrorReply::new(
            ErrorCode::NotFound,
            format!("no agent named or with id {name:?}"),
        ),
        Err(StoreError::NoSuchToken(id)) => ErrorReply::new(
            ErrorCode::NotFound,
            format!("no registration token with id {id:?}; `zedops token list` lists them"),
        ),
        Err(StoreError::UserExists(name)) => ErrorReply::new(
            ErrorCode::NameTaken,
            format!("a user named {name} already exists; choose another name"),
        ),
        Err(StoreError::LastAdmin(name)) => ErrorReply::new(
            ErrorCode::InvalidRequest,
            format!(
                "{name} is the last enabled admin; make another user admin first, or nobody could administer this relay"
            ),
        ),
        Err(StoreError::TokenUsed(id)) => ErrorReply::new(
            ErrorCode::InvalidRequest,
            format!(
                "registration token {id} was already used to enrol an agent; revoke that agent instead"
            ),
        ),
        Err(failed) => return Err(failed.into()),
    };
    Ok(Err(refusal))
}
