//! Private registry logins (issue 14): `registry.add|list|remove` (admins), kept sealed in the
//! database (see [`crate::registry_key`]), and `registry.logins`, the whole set sent to each
//! agent when it connects and to every connected agent whenever an admin changes it. Passwords
//! are never logged, never audited and never in an answer to a client.

use std::sync::Arc;
use std::time::Duration;

use zedops_protocol::{
    AgentRequest, ErrorCode, ErrorReply, MAX_REGISTRY_LOGINS, RegistryAddRequest, RegistryAdded,
    RegistryListResponse, RegistryLogin, RegistryLogins, RegistryRemoveRequest, RegistryRemoved,
    RegistrySummary, registry_server,
};

use crate::admin::audit_outcome;
use crate::hub::AgentLink;
use crate::state::AppState;
use crate::store::Session;
use crate::store::registry_logins;
use crate::time::rfc3339;

/// Audit operations.
pub const AUDIT_ADD: &str = "registry.add";
pub const AUDIT_REMOVE: &str = "registry.remove";

/// How long the relay waits for an agent to take a new set of logins.
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

fn key_failure(e: crate::registry_key::KeyError) -> ErrorReply {
    tracing::error!(%e, "registry key");
    ErrorReply::new(
        ErrorCode::Internal,
        "the relay could not use the key that seals registry passwords; see the relay's log",
    )
}

fn server_of(server: &str) -> Result<String, ErrorReply> {
    registry_server(server).map_err(|e| e.to_reply())
}

/// `registry.add` (admin): store or replace a login, then hand the new set to every agent.
pub async fn add(
    state: &AppState,
    session: &Session,
    request: RegistryAddRequest,
) -> Result<RegistryAdded, ErrorReply> {
    let server = server_of(&request.server)?;
    let detail = format!("user {}", request.username.escape_debug());
    let outcome = async {
        let existing = registry_logins::all(&state.store).await?;
        if existing.len() >= MAX_REGISTRY_LOGINS && !existing.iter().any(|r| r.server == server) {
            return Err(ErrorReply::new(
                ErrorCode::InvalidRequest,
                format!(
                    "the relay keeps at most {MAX_REGISTRY_LOGINS} registry logins; remove one with `zedops registry rm SERVER` first"
                ),
            ));
        }
        let sealed = state
            .registry_key
            .seal(&server, &request.password)
            .map_err(key_failure)?;
        Ok(registry_logins::upsert(
            &state.store,
            &server,
            &request.username,
            &sealed,
            &session.user,
        )
        .await?)
    }
    .await;
    let replaced =
        audit_outcome(state, session, AUDIT_ADD, &server, Some(&detail), outcome).await?;
    tracing::info!(server = %server, user = %request.username.escape_debug(), by = %session.user, replaced, "stored a registry login");
    let agents = push_all(state).await;
    Ok(RegistryAdded {
        server,
        username: request.username,
        replaced,
        agents,
    })
}

/// `registry.list` (admin): servers and users, never passwords.
pub async fn list(state: &AppState) -> Result<RegistryListResponse, ErrorReply> {
    let rows = registry_logins::all(&state.store).await?;
    Ok(RegistryListResponse {
        registries: rows
            .into_iter()
            .map(|r| RegistrySummary {
                server: r.server,
                username: r.username,
                updated_by: r.updated_by,
                updated_at: rfc3339(r.updated_at),
            })
            .collect(),
    })
}

/// `registry.remove` (admin).
pub async fn remove(
    state: &AppState,
    session: &Session,
    request: RegistryRemoveRequest,
) -> Result<RegistryRemoved, ErrorReply> {
    let server = server_of(&request.server)?;
    let outcome = match registry_logins::delete(&state.store, &server).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(ErrorReply::new(
            ErrorCode::NotFound,
            format!("there is no login for {server}; `zedops registry list` shows them"),
        )),
        Err(e) => Err(e.into()),
    };
    audit_outcome(state, session, AUDIT_REMOVE, &server, None, outcome).await?;
    tracing::info!(server = %server, by = %session.user, "removed a registry login");
    let agents = push_all(state).await;
    Ok(RegistryRemoved { server, agents })
}

/// Every login with its password opened. A login that does not open (another relay's key) is
/// left out with an error in the log; the others still go.
async fn logins(state: &AppState) -> Option<RegistryLogins> {
    let rows = match registry_logins::all(&state.store).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!(%e, "could not read the registry logins to send to agents");
            return None;
        }
    };
    let mut logins = Vec::with_capacity(rows.len());
    for row in rows.into_iter().take(MAX_REGISTRY_LOGINS) {
        match state.registry_key.open(&row.server, &row.secret) {
            Ok(password) => logins.push(RegistryLogin {
                server: row.server,
                username: row.username,
                password,
            }),
            Err(e) => tracing::error!(server = %row.server, %e, "left a registry login out"),
        }
    }
    Some(RegistryLogins { logins })
}

/// Sends `logins` to one agent and waits for it to take them.
async fn send(link: &AgentLink, logins: RegistryLogins) -> bool {
    let count = logins.logins.len();
    match link
        .request(&AgentRequest::RegistryLogins(logins), PUSH_TIMEOUT)
        .await
    {
        Ok(raw) if serde_json::from_str::<zedops_protocol::RegistryLoginsStored>(&raw).is_ok() => {
            tracing::debug!(agent = %link.name, count, "sent the registry logins");
            true
        }
        // An agent older than registry logins answers UNSUPPORTED; it pulls without them.
        Ok(raw) => {
            let code = serde_json::from_str::<ErrorReply>(&raw)
                .map(|e| e.error_code.as_str().to_string())
                .unwrap_or_default();
            tracing::warn!(agent = %link.name, code = %code, "the agent did not take the registry logins");
            false
        }
        Err(e) => {
            tracing::warn!(agent = %link.name, error = ?e.to_reply(&link.name).error, "could not send the registry logins");
            false
        }
    }
}

/// Sends the current logins to every connected agent and waits (at most [`PUSH_TIMEOUT`]) for
/// them; returns how many took them.
async fn push_all(state: &AppState) -> u32 {
    let Some(logins) = logins(state).await else {
        return 0;
    };
    let links: Vec<Arc<AgentLink>> = state
        .hub
        .online()
        .keys()
        .filter_map(|id| state.hub.agent(id))
        .collect();
    let sends = links.iter().map(|link| send(link, logins.clone()));
    futures_util::future::join_all(sends)
        .await
        .into_iter()
        .filter(|ok| *ok)
        .count() as u32
}

/// Sends the logins to an agent that has just connected (in the background: the connection
/// serves meanwhile; the request is queued first thing after the welcome). Nothing is sent
/// when there are none: an agent drops its logins at every new connection.
pub fn on_connect(state: &Arc<AppState>, link: &Arc<AgentLink>) {
    let (state, link) = (state.clone(), link.clone());
    tokio::spawn(async move {
        if let Some(logins) = logins(&state).await
            && !logins.logins.is_empty()
        {
            send(&link, logins).await;
        }
    });
}
