//! Serves one client request: checks it against the policy, answers relay subjects itself,
//! forwards container subjects to the right agent, audits actions, and builds the answer frame.

use serde::Serialize;
use tracing::{info, warn};
use zedops_protocol::{
    AgentListResponse, AgentRef, AgentRequest, AgentSummary, ClientPush, ClientRequest,
    ClientRequestKind, ContainerActionRequest, ContainerListRequest, ContainerRemoveRequest,
    DeployRequest, Envelope, ErrorCode, ErrorReply, Frame, ImageListRequest, ImagePullRequest,
    ImageRemoveRequest, LogsRequest, Operation, ProtocolError, StatsRequest, StreamCancelled,
};
use zedops_protocol::{
    AttachRequest, ExecRequest, FileGetRequest, FilePathRequest, FilePutRequest, SendRequest,
};

use crate::connection::ClientConn;
use crate::hub::AgentLink;
use crate::lookup::{audited_agent_id, online_agent};
use crate::policy;
use crate::state::AppState;
use crate::store::{AuditEntry, Session};
use crate::streams::{OpenStream, StreamKind};
use crate::templates;
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
    let need = crate::console_limits::need(kind, &state.limits.console);
    if !policy::allows(session.role, need) {
        return refuse(state, session, kind, need, frame).await;
    }
    let request = kind.decode(frame).map_err(|e| e.to_reply())?;
    match request {
        ClientRequest::AgentList(_) => agent_list(state).await.map(json),
        ClientRequest::ContainerList(request) => {
            let link = online_agent(state, &request.agent_id).await?;
            let forward = AgentRequest::ContainerList(ContainerListRequest {
                agent_id: link.id.clone().into(),
            });
            forward_once(state, &link, &forward).await
        }
        ClientRequest::ContainerInspect(request) => {
            let link = online_agent(state, &request.agent_id).await?;
            let forward = AgentRequest::ContainerInspect(ContainerActionRequest {
                agent_id: link.id.clone().into(),
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
        ClientRequest::ContainerExec(request) => {
            let container = request.container_id.clone();
            let link =
                audited_agent(state, session, &request.agent_id, "exec", Some(&container)).await?;
            // The command is on record; what is typed into the session never is.
            let detail = exec_detail(&request);
            let forward = AgentRequest::ContainerExec(ExecRequest {
                agent_id: link.id.clone().into(),
                ..request
            });
            let what = Audited {
                operation: "exec",
                container: Some(&container),
                target: None,
                detail: &detail,
            };
            audited_stream(state, session, link, what, forward, StreamKind::Console).await
        }
        ClientRequest::ContainerAttach(request) => {
            let container = request.container_id.clone();
            let link = audited_agent(
                state,
                session,
                &request.agent_id,
                "attach",
                Some(&container),
            )
            .await?;
            let detail = format!("stdin={}", request.stdin);
            let forward = AgentRequest::ContainerAttach(AttachRequest {
                agent_id: link.id.clone().into(),
                ..request
            });
            let what = Audited {
                operation: "attach",
                container: Some(&container),
                target: None,
                detail: &detail,
            };
            audited_stream(state, session, link, what, forward, StreamKind::Console).await
        }
        ClientRequest::ContainerSend(request) => {
            let (reference, container) = (request.agent_id.clone(), request.container_id.clone());
            let detail = request.line.clone();
            let forward = |agent_id| {
                AgentRequest::ContainerSend(SendRequest {
                    agent_id,
                    ..request
                })
            };
            let what = Audited {
                operation: "send",
                container: Some(&container),
                target: None,
                detail: &detail,
            };
            audited_once(state, session, &reference, what, forward).await
        }
        ClientRequest::StreamInput(input) => {
            // Normally sent without a reply inbox and handled by the connection in order; one
            // sent with an inbox is forwarded too and answered with whether it had a stream.
            let forwarded = conn.streams.input(input).await;
            Ok(json(serde_json::json!({ "forwarded": forwarded })))
        }
        ClientRequest::FileList(request) => {
            let link = online_agent(state, &request.agent_id).await?;
            let forward = AgentRequest::FileList(FilePathRequest {
                agent_id: link.id.clone().into(),
                ..request
            });
            forward_once(state, &link, &forward).await
        }
        ClientRequest::FileGet(request) => {
            let reference = request.agent_id.clone();
            let open = |agent_id| {
                AgentRequest::FileGet(FileGetRequest {
                    agent_id,
                    ..request
                })
            };
            stream(state, session, &reference, StreamKind::File, open).await
        }
        ClientRequest::FilePut(request) => {
            let container = request.container_id.clone();
            let link = audited_agent(
                state,
                session,
                &request.agent_id,
                "file.put",
                Some(&container),
            )
            .await?;
            let detail = format!("{} bytes", request.size);
            let path = request.path.clone();
            let forward = AgentRequest::FilePut(FilePutRequest {
                agent_id: link.id.clone().into(),
                ..request
            });
            let what = Audited {
                operation: "file.put",
                container: Some(&container),
                target: Some(&path),
                detail: &detail,
            };
            audited_stream(state, session, link, what, forward, StreamKind::File).await
        }
        ClientRequest::FileRemove(request) => {
            file_change(
                state,
                session,
                "file.remove",
                request,
                AgentRequest::FileRemove,
            )
            .await
        }
        ClientRequest::FileMkdir(request) => {
            file_change(
                state,
                session,
                "file.mkdir",
                request,
                AgentRequest::FileMkdir,
            )
            .await
        }
        ClientRequest::StreamCancel(request) => {
            let cancelled = conn.streams.cancel(&request.inbox);
            Ok(json(StreamCancelled { cancelled }))
        }
        ClientRequest::ContainerStart(request) => {
            let container = request.container_id.clone();
            let answer = action(state, session, Operation::Start, request).await;
            Ok(action_answer(answer, Operation::Start, &container))
        }
        ClientRequest::ContainerStop(request) => {
            let container = request.container_id.clone();
            let answer = action(state, session, Operation::Stop, request).await;
            Ok(action_answer(answer, Operation::Stop, &container))
        }
        ClientRequest::ContainerRestart(request) => {
            let container = request.container_id.clone();
            let answer = action(state, session, Operation::Restart, request).await;
            Ok(action_answer(answer, Operation::Restart, &container))
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
        ClientRequest::ContainerDeploy(request) => deploy(state, session, request).await,
        ClientRequest::ContainerRemove(request) => {
            let detail = format!("force={}, volumes={}", request.force, request.volumes);
            let (reference, container) = (request.agent_id.clone(), request.container_id.clone());
            let forward = |agent_id| {
                AgentRequest::ContainerRemove(ContainerRemoveRequest {
                    agent_id,
                    ..request
                })
            };
            let what = Audited {
                operation: "remove",
                container: Some(&container),
                target: None,
                detail: &detail,
            };
            audited_once(state, session, &reference, what, forward).await
        }
        ClientRequest::ImageList(request) => {
            let link = online_agent(state, &request.agent_id).await?;
            let forward = AgentRequest::ImageList(ImageListRequest {
                agent_id: link.id.clone().into(),
            });
            forward_once(state, &link, &forward).await
        }
        ClientRequest::ImagePull(request) => {
            let link = audited_agent(state, session, &request.agent_id, "pull", None).await?;
            let forward = AgentRequest::ImagePull(ImagePullRequest {
                agent_id: link.id.clone().into(),
                image: request.image.clone(),
            });
            let what = Audited {
                operation: "pull",
                container: None,
                target: Some(&request.image),
                detail: "",
            };
            audited_stream(state, session, link, what, forward, StreamKind::Deploy).await
        }
        ClientRequest::ImageRemove(request) => {
            let detail = format!("force={}", request.force);
            let (reference, image) = (request.agent_id.clone(), request.image.clone());
            let forward = |agent_id| {
                AgentRequest::ImageRemove(ImageRemoveRequest {
                    agent_id,
                    ..request
                })
            };
            let what = Audited {
                operation: "rmi",
                container: None,
                target: Some(&image),
                detail: &detail,
            };
            audited_once(state, session, &reference, what, forward).await
        }
        ClientRequest::TemplateList(_) => templates::list(state).await.map(json),
        ClientRequest::TemplateShow(request) => templates::show(state, request).await.map(json),
        ClientRequest::TemplateAdd(request) => {
            templates::add(state, session, *request).await.map(json)
        }
        ClientRequest::TemplateUpdate(request) => {
            templates::change(state, session, *request).await.map(json)
        }
        ClientRequest::TemplateRemove(request) => {
            templates::remove(state, session, request).await.map(json)
        }
        ClientRequest::RegistryAdd(request) => crate::registry::add(state, session, request)
            .await
            .map(json),
        ClientRequest::RegistryList(_) => crate::registry::list(state).await.map(json),
        ClientRequest::RegistryRemove(request) => crate::registry::remove(state, session, request)
            .await
            .map(json),
        ClientRequest::ContainerUpdate(request) => {
            let container = request.container_id.clone();
            let link = audited_agent(
                state,
                session,
                &request.agent_id,
                "update",
                Some(&container),
            )
            .await?;
            // Options only: an image reference and numbers, never a secret.
            let detail = format!(
                "healthTimeoutSecs={}, stableSecs={}, force={}",
                request.health_timeout(),
                request.stable(),
                request.force
            );
            let image = request.image.clone();
            info!(agent = %link.name, container = %container, by = %session.user, "updating a container");
            let forward = AgentRequest::ContainerUpdate(zedops_protocol::ContainerUpdateRequest {
                agent_id: link.id.clone().into(),
                ..request
            });
            let what = Audited {
                operation: "update",
                container: Some(&container),
                target: image.as_deref(),
                detail: &detail,
            };
            audited_stream(state, session, link, what, forward, StreamKind::Update).await
        }
        ClientRequest::UpdatesList(request) => crate::updates::list(state, request).await.map(json),
        ClientRequest::UpdatesCheck(request) => crate::updates::check(state, session, request)
            .await
            .map(json),
    }
}

/// What an audited deploy, pull or removal records.
struct Audited<'a> {
    operation: &'a str,
    container: Option<&'a str>,
    target: Option<&'a str>,
    /// Template, version and variables (secrets masked), or the options; never a secret.
    detail: &'a str,
}

/// The connected agent `reference` names; when there is none the refusal is audited.
async fn audited_agent(
    state: &AppState,
    session: &Session,
    reference: &str,
    operation: &str,
    container: Option<&str>,
) -> Result<std::sync::Arc<AgentLink>, ErrorReply> {
    match online_agent(state, reference).await {
        Ok(link) => Ok(link),
        Err(error) => {
            let agent_id = audited_agent_id(state, reference).await;
            let entry = AuditEntry {
                agent_id: Some(&agent_id),
                container,
                operation,
                result: "failed",
                error_code: Some(error.error_code.as_str()),
                ..audit_base(session)
            };
            audit(state, entry).await?;
            Err(error)
        }
    }
}

/// Writes the `pending` entry of an audited request; a request whose entry cannot be written
/// is not sent.
async fn audit_pending(
    state: &AppState,
    session: &Session,
    link: &AgentLink,
    what: &Audited<'_>,
) -> Result<i64, ErrorReply> {
    let pending = AuditEntry {
        agent_id: Some(&link.id),
        container: what.container,
        operation: what.operation,
        result: "pending",
        target: what.target,
        detail: (!what.detail.is_empty()).then_some(what.detail),
        ..audit_base(session)
    };
    state.store.audit_begin(pending).await.map_err(|e| {
        tracing::error!(%e, "could not write the audit log; the request was not sent");
        crate::failure::audit_failed(
            &e,
            "the request was not sent (its audit entry could not be written)",
            "the relay could not write its audit log, so it did not send the request; see the relay's log",
        )
    })
}

/// `container.deploy`: resolves the template at the relay (the agent gets only the result),
/// audits it with the template, version and variables (secrets masked), and streams the
/// agent's `container.create` answer back.
async fn deploy(
    state: &AppState,
    session: &Session,
    request: DeployRequest,
) -> Result<Answer, ErrorReply> {
    let link = audited_agent(
        state,
        session,
        &request.agent_id,
        "create",
        Some(&request.name),
    )
    .await?;
    let (create, detail) = match templates::resolve_deploy(state, session, &link.id, &request).await
    {
        Ok(resolved) => resolved,
        Err(error) => {
            let detail = format!("template {}: {}", request.template, error.error);
            let entry = AuditEntry {
                agent_id: Some(&link.id),
                container: Some(&request.name),
                operation: "create",
                result: "failed",
                error_code: Some(error.error_code.as_str()),
                target: Some(&request.template),
                detail: Some(&detail),
                ..audit_base(session)
            };
            audit(state, entry).await?;
            return Err(error);
        }
    };
    info!(agent = %link.name, container = %request.name, template = %request.template, by = %session.user, "deploying a template");
    let what = Audited {
        operation: "create",
        container: Some(&request.name),
        target: Some(&request.template),
        detail: &detail,
    };
    audited_stream(
        state,
        session,
        link,
        what,
        AgentRequest::ContainerCreate(Box::new(create)),
        StreamKind::Deploy,
    )
    .await
}

/// `file.remove` and `file.mkdir`: forwarded with one answer, audited with the path.
async fn file_change(
    state: &AppState,
    session: &Session,
    operation: &str,
    request: FilePathRequest,
    variant: fn(FilePathRequest) -> AgentRequest,
) -> Result<Answer, ErrorReply> {
    let (reference, container, path) = (
        request.agent_id.clone(),
        request.container_id.clone(),
        request.path.clone(),
    );
    let forward = |agent_id| {
        variant(FilePathRequest {
            agent_id,
            ..request
        })
    };
    let what = Audited {
        operation,
        container: Some(&container),
        target: Some(&path),
        detail: "",
    };
    audited_once(state, session, &reference, what, forward).await
}

/// An exec's command for the audit log, cut at 1,000 bytes (on a character boundary).
fn exec_detail(request: &ExecRequest) -> String {
    let mut detail = format!("tty={} cmd={:?}", request.tty, request.cmd);
    if detail.len() > 1000 {
        let mut cut = 1000;
        while !detail.is_char_boundary(cut) {
            cut -= 1;
        }
        detail.truncate(cut);
        detail.push('…');
    }
    detail
}

/// Opens an audited streamed answer (create, pull, exec, attach, upload): the entry is
/// `pending` until the stream's last frame, whose outcome completes it.
async fn audited_stream(
    state: &AppState,
    session: &Session,
    link: std::sync::Arc<AgentLink>,
    what: Audited<'_>,
    request: AgentRequest,
    kind: StreamKind,
) -> Result<Answer, ErrorReply> {
    let audit_id = audit_pending(state, session, &link, &what).await?;
    // Exec and attach count against the user's console sessions too (`--max-console-sessions`).
    let console = match kind {
        StreamKind::Console => state
            .hub
            .consoles
            .slot(&session.user, &state.limits.console)
            .map(Some),
        _ => Ok(None),
    };
    let opened = match console.and_then(|c| Ok((c, state.hub.user_stream_slot(&session.user)?))) {
        Ok((console, slot)) => link
            .open_stream(&request, kind)
            .await
            .map(|opened| (console, slot, opened))
            .map_err(|e| e.to_reply(&link.name)),
        Err(error) => Err(error),
    };
    match opened {
        Ok((console, user_slot, (agent_inbox, rx, shared))) => Ok(Answer::Stream(OpenStream {
            link,
            agent_inbox,
            rx,
            shared,
            user_slot,
            audit: Some((state.store.clone(), audit_id)),
            console,
        })),
        Err(error) => {
            let code = error.error_code.as_str();
            if let Err(e) = state
                .store
                .audit_finish(audit_id, "failed", Some(code))
                .await
            {
                tracing::error!(%e, audit_id, "could not record a refusal in the audit log");
            }
            Err(error)
        }
    }
}

/// Forwards a removal (container or image) with one answer, audited like an action.
async fn audited_once(
    state: &AppState,
    session: &Session,
    reference: &str,
    what: Audited<'_>,
    forward: impl FnOnce(AgentRef) -> AgentRequest,
) -> Result<Answer, ErrorReply> {
    let link = audited_agent(state, session, reference, what.operation, what.container).await?;
    let audit_id = audit_pending(state, session, &link, &what).await?;
    let outcome = link
        .request(&forward(link.id.clone().into()), state.timeouts.operation)
        .await;
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
        tracing::error!(%e, audit_id, "could not record an outcome in the audit log");
    }
    info!(agent = %link.name, operation = what.operation, container = ?what.container, target = ?what.target, error = ?error_code, "audited request");
    outcome.map(Answer::Raw).map_err(|e| e.to_reply(&link.name))
}

/// A container action's answer: the agent's as it came, or a failure of the relay's own
/// (refused by policy, agent offline or unknown, timeout, audit log unwritable) in the same
/// shape as the agent's failures, `success`, `containerId` and `operation` beside `errorCode` and
/// `error` (and `retryAfterSecs` when there is one).
fn action_answer(
    answer: Result<Answer, ErrorReply>,
    operation: Operation,
    container: &str,
) -> Answer {
    let error = match answer {
        Ok(answer) => return answer,
        Err(error) => error,
    };
    let mut data = serde_json::to_value(&error).expect("protocol types serialise");
    data["success"] = false.into();
    data["containerId"] = container.into();
    data["operation"] = operation.as_str().into();
    Answer::Json(data)
}

/// A request the sender's role may not send: audited (a container action under the same name
/// as an allowed one, `stop` rather than `container.stop`, with its target when the payload
/// names one) and refused with the role that would be allowed.
async fn refuse(
    state: &AppState,
    session: &Session,
    kind: ClientRequestKind,
    need: policy::Need,
    frame: &Frame,
) -> Result<Answer, ErrorReply> {
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
    audit(state, entry).await?;
    let refusal = ErrorReply::new(
        ErrorCode::Forbidden,
        format!(
            "your role ({}) may not {kind}; ask an admin for the {} role",
            session.role,
            policy::least_role(need)
        ),
    );
    // A refused action answers like a failed one when its payload names the container.
    match (operation, &target) {
        (Some(operation), Some(target)) => Ok(action_answer(
            Err(refusal),
            operation,
            target.container_id.as_str(),
        )),
        _ => Err(refusal),
    }
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
    request: impl FnOnce(AgentRef) -> AgentRequest,
) -> Result<Answer, ErrorReply> {
    let link = online_agent(state, reference).await?;
    let user_slot = state.hub.user_stream_slot(&session.user)?;
    let (agent_inbox, rx, shared) = link
        .open_stream(&request(link.id.clone().into()), kind)
        .await
        .map_err(|e| e.to_reply(&link.name))?;
    Ok(Answer::Stream(OpenStream {
        link,
        agent_inbox,
        rx,
        shared,
        user_slot,
        audit: None,
        console: None,
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
            agent_id: link.id.clone().into(),
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
        crate::failure::audit_failed(
            &e,
            "the action was not sent (its audit entry could not be written)",
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
        crate::failure::audit_failed(
            &e,
            "nothing was done (the audit entry could not be written)",
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
