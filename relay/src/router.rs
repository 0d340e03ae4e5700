//! Serves one client request: checks it against the policy, answers relay subjects itself,
//! forwards container subjects to the right agent, audits actions, and builds the answer frame.

use serde::Serialize;
use tracing::{info, warn};
use zedops_protocol::{
    AgentListResponse, AgentRequest, AgentSummary, ClientPush, ClientRequest, ClientRequestKind,
    ContainerActionRequest, ContainerListRequest, Envelope, ErrorCode, ErrorReply, Frame,
    LogsRequest, Operation, ProtocolError, StatsRequest, StreamCancelled,
};

use crate::connection::ClientConn;
use crate::hub::AgentLink;
use crate::lookup::{audited_agent_id, online_agent};
use crate::policy;
use crate::state::AppState;
use crate::store::{AuditEntry, Session};
use crate::streams::{OpenStream, StreamKind};
use crate::time::rfc3339;
use crate::{admin, lookup};

/// How a request is answered.
pub enum Reply {
    /// One frame (text).
    Frame(String),
    /// Many frames to `inbox`, from an agent's stream (see [`crate::streams::pump`]).
    Stream { inbox: String, stream: OpenStream },
}

/// The answer to one request. `conn` is the connection's state: its subscription, which
/// `event.subscribe` replaces, and its open streams, which `stream.cancel` stops.
pub async fn handle(state: &AppState, session: &Session, conn: &ClientConn, frame: Frame) -> Reply {
    let Some(reply) = frame.reply.as_deref() else {
        let error = ErrorReply::new(
            ErrorCode::InvalidRequest,
            "requests need a reply inbox (\"reply\": \"_INBOX.<id>\")",
        );
        return Reply::Frame(ClientPush::Error(error).to_frame(None));
    };
    Reply::Frame(match serve(state, session, conn, &frame).await {
        Ok(Answer::Json(data)) => Envelope::new(reply, &data).to_json(),
        Ok(Answer::Raw(raw)) => {
            let subject = serde_json::to_string(reply).expect("strings serialise");
            format!(r#"{{"subject":{subject},"data":{raw}}}"#)
        }
        Ok(Answer::Stream(stream)) => {
            return Reply::Stream {
                inbox: reply.to_string(),
                stream,
            };
        }
        Err(error) => Envelope::new(reply, &error).to_json(),
    })
}

enum Answer {
    Json(serde_json::Value),
    /// An agent's answer, forwarded as it came.
    Raw(String),
    /// An agent's streamed answer, still to be pumped.
    Stream(OpenStream),
}

fn json(value: impl Serialize) -> Answer {
    Answer::Json(serde_json::to_value(value).expect("protocol types serialise"))
}

async fn serve(
    state: &AppState,
    session: &Session,
    conn: &ClientConn,
    frame: &Frame,
) -> Result<Answer, ErrorReply> {
    let Some(kind) = ClientRequestKind::from_subject(&frame.subject) else {
        warn!(subject = ?frame.subject, "unknown subject from client");
        return Err(ProtocolError::UnknownSubject(frame.subject.clone()).to_reply());
    };
    // Refused before its payload is read: a role that may not send it learns nothing more.
    if !policy::allows(session.role, kind.need()) {
        return Err(refuse(state, session, kind, frame).await);
    }
    let request = kind.decode(frame).map_err(|e| e.to_reply())?;
    match request {
        ClientRequest::AgentList(_) => agent_list(state).await.map(json),
        ClientRequest::ContainerList(request) => {
            let link = online_agent(state, &request.agent_id).await?;
            let forward = AgentRequest::ContainerList(ContainerListRequest {
                agent_id: link.id.clone(),
            });
            forward_once(state, &link, &forward).await
        }
        ClientRequest::ContainerInspect(request) => {
            let link = online_agent(state, &request.agent_id).await?;
            let forward = AgentRequest::ContainerInspect(ContainerActionRequest {
                agent_id: link.id.clone(),
                container_id: request.container_id,
            });
            forward_once(state, &link, &forward).await
        }
        ClientRequest::EventSubscribe(request) => {
            let (wanted, answer) = lookup::subscription(state, &request).await?;
            conn.watching.send_replace(wanted);
            Ok(json(answer))
        }
        ClientRequest::ContainerLogs(request) => {
            let reference = request.agent_id.clone();
            let open = |agent_id| {
                AgentRequest::ContainerLogs(LogsRequest {
                    agent_id,
                    ..request
                })
            };
            stream(state, session, &reference, StreamKind::Logs, open).await
        }
        ClientRequest::ContainerStats(request) => {
            let reference = request.agent_id.clone();
            let open = |agent_id| {
                AgentRequest::ContainerStats(StatsRequest {
                    agent_id,
                    ..request
                })
            };
            stream(state, session, &reference, StreamKind::Stats, open).await
        }
        ClientRequest::StreamCancel(request) => {
            let cancelled = conn.streams.cancel(&request.inbox);
            Ok(json(StreamCancelled { cancelled }))
        }
        ClientRequest::ContainerStart(request) => {
            action(state, session, Operation::Start, request).await
        }
        ClientRequest::ContainerStop(request) => {
            action(state, session, Operation::Stop, request).await
        }
        ClientRequest::ContainerRestart(request) => {
            action(state, session, Operation::Restart, request).await
        }
        ClientRequest::AgentRevoke(request) => {
            admin::revoke_agent(state, session, request).await.map(json)
        }
        ClientRequest::AgentRotate(request) => {
            admin::rotate_agent(state, session, request).await.map(json)
        }
        ClientRequest::AgentUpdate(request) => crate::update::update_agent(state, session, request)
            .await
            .map(json),
        ClientRequest::SessionList(_) => admin::sessions(state, session).await.map(json),
        ClientRequest::SessionRevoke(request) => admin::revoke_session(state, session, request)
            .await
            .map(json),
        ClientRequest::TokenCreate(request) => {
            admin::create_token(state, session, request).await.map(json)
        }
        ClientRequest::TokenList(_) => admin::token_list(state).await.map(json),
        ClientRequest::TokenRevoke(request) => {
            admin::token_revoke(state, session, request).await.map(json)
        }
        ClientRequest::AuditList(request) => admin::audit_list(state, request).await.map(json),
        ClientRequest::UserList(_) => admin::user_list(state).await.map(json),
        ClientRequest::UserCreate(request) => {
            admin::user_create(state, session, request).await.map(json)
        }
        ClientRequest::UserUpdate(request) => {
            admin::user_update(state, session, request).await.map(json)
        }
        ClientRequest::UserPassword(request) => admin::user_password(state, session, request)
            .await
            .map(json),
    }
}

/// A request the sender's role may not send: audited (a container action under the same name
/// as an allowed one, `stop` rather than `container.stop`, with its target when the payload
/// names one) and refused with the role that would be allowed.
async fn refuse(
    state: &AppState,
    session: &Session,
    kind: ClientRequestKind,
    frame: &Frame,
) -> ErrorReply {
    warn!(user = %session.user, role = %session.role, subject = %kind, "refused by policy");
    let operation = kind.operation();
    let target = operation.and_then(|_| frame.payload::<ContainerActionRequest>().ok());
    let agent_id = match &target {
        Some(t) => Some(audited_agent_id(state, &t.agent_id).await),
        None => None,
    };
    let entry = AuditEntry {
        operation: operation.map_or(kind.subject(), Operation::as_str),
        result: "forbidden",
        agent_id: agent_id.as_deref(),
        container: target.as_ref().map(|t| t.container_id.as_str()),
        error_code: Some(ErrorCode::Forbidden.as_str()),
        ..audit_base(session)
    };
    if let Err(error) = audit(state, entry).await {
        return error;
    }
    ErrorReply::new(
        ErrorCode::Forbidden,
        format!(
            "your role ({}) may not {kind}; ask an admin for the {} role",
            session.role,
            policy::least_role(kind.need())
        ),
    )
}

/// Forwards a request with one answer to `link`, whose answer goes back as it came.
async fn forward_once(
    state: &AppState,
    link: &AgentLink,
    request: &AgentRequest,
) -> Result<Answer, ErrorReply> {
    let raw = link
        .request(request, state.timeouts.list)
        .await
        .map_err(|e| e.to_reply(&link.name))?;
    Ok(Answer::Raw(raw))
}

/// Opens a streamed answer at the agent `reference` names; `request` rebuilds the request with
/// the agent's id in place of the reference. The user and the agent each have a bounded number
/// of streams open at once.
async fn stream(
    state: &AppState,
    session: &Session,
    reference: &str,
    kind: StreamKind,
    request: impl FnOnce(String) -> AgentRequest,
) -> Result<Answer, ErrorReply> {
    let link = online_agent(state, reference).await?;
    let user_slot = state.hub.user_stream_slot(&session.user)?;
    let (agent_inbox, rx, shared) = link
        .open_stream(&request(link.id.clone()), kind)
        .await
        .map_err(|e| e.to_reply(&link.name))?;
    Ok(Answer::Stream(OpenStream {
        link,
        agent_inbox,
        rx,
        shared,
        user_slot,
    }))
}

/// Forwards start, stop or restart: audited as `pending` before it is sent, and the entry
/// completed with the outcome before answering.
async fn action(
    state: &AppState,
    session: &Session,
    operation: Operation,
    request: ContainerActionRequest,
) -> Result<Answer, ErrorReply> {
    let link = match online_agent(state, &request.agent_id).await {
        Ok(link) => link,
        Err(error) => {
            let agent_id = audited_agent_id(state, &request.agent_id).await;
            let entry = AuditEntry {
                agent_id: Some(&agent_id),
                container: Some(&request.container_id),
                operation: operation.as_str(),
                result: "failed",
                error_code: Some(error.error_code.as_str()),
                ..audit_base(session)
            };
            audit(state, entry).await?;
            return Err(error);
        }
    };
    let forward = AgentRequest::container_action(
        operation,
        ContainerActionRequest {
            agent_id: link.id.clone(),
            container_id: request.container_id.clone(),
        },
    );
    // Written before the agent is asked, so an action is on record even if the relay stops
    // while it runs; an action whose entry cannot be written is not sent.
    let pending = AuditEntry {
        agent_id: Some(&link.id),
        container: Some(&request.container_id),
        operation: operation.as_str(),
        result: "pending",
        ..audit_base(session)
    };
    let audit_id = state.store.audit_begin(pending).await.map_err(|e| {
        tracing::error!(%e, "could not write the audit log; the action was not sent");
        ErrorReply::new(
            ErrorCode::Internal,
            "the relay could not write its audit log, so it did not send the action; see the relay's log",
        )
    })?;
    let outcome = link.request(&forward, state.timeouts.operation).await;
    let error_code = match &outcome {
        Ok(raw) => answer_error_code(raw),
        Err(e) => Some(e.to_reply(&link.name).error_code.as_str().to_string()),
    };
    let result = if error_code.is_none() { "ok" } else { "failed" };
    if let Err(e) = state
        .store
        .audit_finish(audit_id, result, error_code.as_deref())
        .await
    {
        // The action ran; its entry stays `pending`. The answer still goes to the user.
        tracing::error!(%e, audit_id, "could not record an action's outcome in the audit log");
    }
    info!(agent = %link.name, container = ?request.container_id, %operation, error = ?error_code, "container action");
    outcome.map(Answer::Raw).map_err(|e| e.to_reply(&link.name))
}

/// The `errorCode` of an agent's answer, if it is a failure.
fn answer_error_code(raw: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Outcome {
        error_code: Option<String>,
    }
    match serde_json::from_str::<Outcome>(raw) {
        Ok(outcome) => outcome.error_code,
        Err(_) => Some(ErrorCode::InvalidRequest.as_str().into()),
    }
}

fn audit_base(session: &Session) -> AuditEntry<'_> {
    AuditEntry {
        user: Some(&session.user),
        session_id: Some(&session.id),
        ..Default::default()
    }
}

/// Writes an audit entry; an action whose audit cannot be written is not acknowledged.
async fn audit(state: &AppState, entry: AuditEntry<'_>) -> Result<(), ErrorReply> {
    state.store.audit(entry).await.map_err(|e| {
        tracing::error!(%e, "could not write the audit log");
        ErrorReply::new(
            ErrorCode::Internal,
            "the relay could not write its audit log; see the relay's log",
        )
    })
}

/// Every enrolled agent with its live status.
async fn agent_list(state: &AppState) -> Result<AgentListResponse, ErrorReply> {
    let online = state.hub.online();
    let records = state.store.agents().await?;
    let agents: Vec<AgentSummary> = records
        .into_iter()
        .map(|r| {
            let live = online.get(&r.id).copied();
            AgentSummary {
                online: live.is_some(),
                last_seen: live.or(r.last_seen).map(rfc3339),
                id: r.id,
                name: r.name,
                info: r.info,
            }
        })
        .collect();
    Ok(AgentListResponse {
        count: agents.len(),
        agents,
    })
}
