//! Serves one client request: checks it against the policy, answers relay subjects itself,
//! forwards container subjects to the right agent, audits actions, and builds the answer frame.

use serde::Serialize;
use tracing::{info, warn};
use zedops_protocol::{
    AgentListResponse, AgentRequest, AgentSummary, ClientPush, ClientRequest, ClientRequestKind,
    ContainerActionRequest, DeployRequest, Envelope, ErrorCode, ErrorReply, ExecRequest,
    FilePathRequest, Frame, Operation, ProtocolError, StreamCancelled, named_target,
};

use crate::addressed::Addressed;
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
    let ask = Ask { state, session };
    match request {
        ClientRequest::AgentList(_) => agent_list(state).await.map(json),
        ClientRequest::ContainerList(r) => forward(state, r, AgentRequest::ContainerList).await,
        ClientRequest::ContainerInspect(r) => {
            forward(state, r, AgentRequest::ContainerInspect).await
        }
        ClientRequest::EventSubscribe(request) => {
            let (wanted, answer) = lookup::subscription(state, &request).await?;
            conn.watching.send_replace(wanted);
            Ok(json(answer))
        }
        ClientRequest::ContainerLogs(r) => {
            stream(ask, r, StreamKind::Logs, AgentRequest::ContainerLogs).await
        }
        ClientRequest::ContainerStats(r) => {
            stream(ask, r, StreamKind::Stats, AgentRequest::ContainerStats).await
        }
        ClientRequest::ContainerExec(r) => {
            // The command is on record; what is typed into the session never is.
            let audited =
                Audited::new("exec", Some(r.container_id.as_str()), None, exec_detail(&r));
            audited
                .stream(ask, r, StreamKind::Console, AgentRequest::ContainerExec)
                .await
        }
        ClientRequest::ContainerAttach(r) => {
            let detail = format!("stdin={}", r.stdin);
            let audited = Audited::new("attach", Some(r.container_id.as_str()), None, detail);
            audited
                .stream(ask, r, StreamKind::Console, AgentRequest::ContainerAttach)
                .await
        }
        ClientRequest::ContainerSend(r) => {
            let audited = Audited::new("send", Some(r.container_id.as_str()), None, r.line.clone());
            audited.once(ask, r, AgentRequest::ContainerSend).await
        }
        ClientRequest::StreamInput(input) => {
            // Normally sent without a reply inbox and handled by the connection in order; one
            // sent with an inbox is forwarded too and answered with whether it had a stream.
            let forwarded = conn.streams.input(input).await;
            Ok(json(serde_json::json!({ "forwarded": forwarded })))
        }
        ClientRequest::FileList(r) => forward(state, r, AgentRequest::FileList).await,
        ClientRequest::FileGet(r) => stream(ask, r, StreamKind::File, AgentRequest::FileGet).await,
        ClientRequest::FilePut(r) => {
            let detail = format!("{} bytes", r.size);
            let (container, path) = (Some(r.container_id.as_str()), Some(r.path.as_str()));
            let audited = Audited::new("file.put", container, path, detail);
            audited
                .stream(ask, r, StreamKind::File, AgentRequest::FilePut)
                .await
        }
        ClientRequest::FileRemove(r) => {
            file_change(ask, "file.remove", r, AgentRequest::FileRemove).await
        }
        ClientRequest::FileMkdir(r) => {
            file_change(ask, "file.mkdir", r, AgentRequest::FileMkdir).await
        }
        ClientRequest::StreamCancel(request) => {
            let cancelled = conn.streams.cancel(&request.inbox);
            Ok(json(StreamCancelled { cancelled }))
        }
        ClientRequest::ContainerStart(r) => Ok(action(ask, Operation::Start, r).await),
        ClientRequest::ContainerStop(r) => Ok(action(ask, Operation::Stop, r).await),
        ClientRequest::ContainerRestart(r) => Ok(action(ask, Operation::Restart, r).await),
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
        ClientRequest::ContainerRemove(r) => {
            let detail = format!("force={}, volumes={}", r.force, r.volumes);
            let audited = Audited::new("remove", Some(r.container_id.as_str()), None, detail);
            audited.once(ask, r, AgentRequest::ContainerRemove).await
        }
        ClientRequest::ImageList(r) => forward(state, r, AgentRequest::ImageList).await,
        ClientRequest::ImagePull(r) => {
            let audited = Audited::new("pull", None, Some(&r.image), "");
            audited
                .stream(ask, r, StreamKind::Deploy, AgentRequest::ImagePull)
                .await
        }
        ClientRequest::ImageRemove(r) => {
            let detail = format!("force={}", r.force);
            let audited = Audited::new("rmi", None, Some(&r.image), detail);
            audited.once(ask, r, AgentRequest::ImageRemove).await
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
        ClientRequest::ContainerUpdate(r) => {
            // Options only: an image reference and numbers, never a secret.
            let detail = format!(
                "healthTimeoutSecs={}, stableSecs={}, force={}",
                r.health_timeout(),
                r.stable(),
                r.force
            );
            let (container, image) = (Some(r.container_id.as_str()), r.image.as_deref());
            let audited = Audited::new("update", container, image, detail);
            audited
                .stream(ask, r, StreamKind::Update, AgentRequest::ContainerUpdate)
                .await
        }
        ClientRequest::UpdatesList(request) => crate::updates::list(state, request).await.map(json),
        ClientRequest::UpdatesCheck(request) => crate::updates::check(state, session, request)
            .await
            .map(json),
    }
}

/// Who asks what of whom: the relay and the sender's session, which the request helpers below
/// all need.
#[derive(Clone, Copy)]
struct Ask<'a> {
    state: &'a AppState,
    session: &'a Session,
}

/// What an audited request records.
struct Audited {
    operation: &'static str,
    container: Option<String>,
    target: Option<String>,
    /// Template, version and variables (secrets masked), or the options; never a secret.
    detail: String,
    /// What the request is called in answers and logs: an `action` (start, stop, restart) or a
    /// `request`.
    noun: &'static str,
}

impl Audited {
    fn new(
        operation: &'static str,
        container: Option<&str>,
        target: Option<&str>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            operation,
            container: container.map(str::to_owned),
            target: target.map(str::to_owned),
            detail: detail.into(),
            noun: "request",
        }
    }

    /// Opens an audited streamed answer at the agent `request` names (pull, exec, attach, upload,
    /// update): `variant` makes it the agent's request.
    async fn stream<R: Addressed>(
        self,
        ask: Ask<'_>,
        request: R,
        kind: StreamKind,
        variant: fn(R) -> AgentRequest,
    ) -> Result<Answer, ErrorReply> {
        let Ask { state, session } = ask;
        let link = audited_agent(state, session, request.reference(), &self).await?;
        info!(agent = %link.name, operation = self.operation, container = ?self.container, target = ?self.target, by = %session.user, "opening an audited stream");
        let audit_id = audit_pending(state, session, &link, &self).await?;
        let request = variant(request.addressed_to(&link));
        open_stream(state, session, link, request, kind, Some(audit_id)).await
    }

    /// Forwards an audited request with one answer (an action, a removal, a line sent, a file
    /// change) to the agent it names: `pending` before it is sent, the entry completed with the
    /// outcome before answering.
    async fn once<R: Addressed>(
        self,
        ask: Ask<'_>,
        request: R,
        variant: impl FnOnce(R) -> AgentRequest,
    ) -> Result<Answer, ErrorReply> {
        let Ask { state, session } = ask;
        let link = audited_agent(state, session, request.reference(), &self).await?;
        let audit_id = audit_pending(state, session, &link, &self).await?;
        let outcome = link
            .request(
                &variant(request.addressed_to(&link)),
                state.timeouts.operation,
            )
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
            // It ran; its entry stays `pending`. The answer still goes to the user.
            tracing::error!(%e, audit_id, "could not record the outcome of an audited {} in the audit log", self.noun);
        }
        info!(agent = %link.name, operation = self.operation, container = ?self.container, target = ?self.target, error = ?error_code, "audited {}", self.noun);
        outcome.map(Answer::Raw).map_err(|e| e.to_reply(&link.name))
    }
}

/// The connected agent `reference` names; when there is none the refusal is audited.
async fn audited_agent(
    state: &AppState,
    session: &Session,
    reference: &str,
    what: &Audited,
) -> Result<std::sync::Arc<AgentLink>, ErrorReply> {
    match online_agent(state, reference).await {
        Ok(link) => Ok(link),
        Err(error) => {
            let agent_id = audited_agent_id(state, reference).await;
            let entry = AuditEntry {
                agent_id: Some(&agent_id),
                container: what.container.as_deref(),
                operation: what.operation,
                result: "failed",
                error_code: Some(error.error_code.as_str()),
                ..AuditEntry::by(session)
            };
            audit(state, entry).await?;
            Err(error)
        }
    }
}

/// Writes the `pending` entry of an audited request, before the agent is asked, so it is on
/// record even if the relay stops while it runs; a request whose entry cannot be written is
/// not sent.
async fn audit_pending(
    state: &AppState,
    session: &Session,
    link: &AgentLink,
    what: &Audited,
) -> Result<i64, ErrorReply> {
    let pending = AuditEntry {
        agent_id: Some(&link.id),
        container: what.container.as_deref(),
        operation: what.operation,
        result: "pending",
        target: what.target.as_deref(),
        detail: (!what.detail.is_empty()).then_some(what.detail.as_str()),
        ..AuditEntry::by(session)
    };
    state.store.audit_begin(pending).await.map_err(|e| {
        let noun = what.noun;
        tracing::error!(%e, "could not write the audit log; the {noun} was not sent");
        crate::failure::audit_failed(
            &e,
            &format!("the {noun} was not sent (its audit entry could not be written)"),
            &format!(
                "the relay could not write its audit log, so it did not send the {noun}; see the relay's log"
            ),
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
    let mut what = Audited::new("create", Some(&request.name), Some(&request.template), "");
    let link = audited_agent(state, session, &request.agent_id, &what).await?;
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
                ..AuditEntry::by(session)
            };
            audit(state, entry).await?;
            return Err(error);
        }
    };
    info!(agent = %link.name, container = %request.name, template = %request.template, by = %session.user, "deploying a template");
    what.detail = detail;
    let create = AgentRequest::ContainerCreate(Box::new(create));
    let audit_id = audit_pending(state, session, &link, &what).await?;
    open_stream(
        state,
        session,
        link,
        create,
        StreamKind::Deploy,
        Some(audit_id),
    )
    .await
}

/// `file.remove` and `file.mkdir`: forwarded with one answer, audited with the path.
async fn file_change(
    ask: Ask<'_>,
    operation: &'static str,
    request: FilePathRequest,
    variant: fn(FilePathRequest) -> AgentRequest,
) -> Result<Answer, ErrorReply> {
    let (container, path) = (
        Some(request.container_id.as_str()),
        Some(request.path.as_str()),
    );
    let audited = Audited::new(operation, container, path, "");
    audited.once(ask, request, variant).await
}

/// An exec's command for the audit log, with secrets withheld as `container.inspect` shows a
/// container's command (`DB_PASSWORD=…`, `--token …`, a URL's password: the audit log is read
/// by every admin and kept on disk), cut at 1,000 bytes (on a character boundary).
fn exec_detail(request: &ExecRequest) -> String {
    let cmd = zedops_protocol::mask_command(&request.cmd);
    let mut detail = format!("tty={} cmd={cmd:?}", request.tty);
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

/// Opens a streamed answer on `link`. The user and the agent each have a bounded number of
/// streams open at once, and exec and attach count against the user's console sessions too
/// (`--max-console-sessions`). An audited stream's entry (`audit_id`, `pending`) is completed
/// by the stream's last frame, or here as `failed` when it cannot open.
async fn open_stream(
    state: &AppState,
    session: &Session,
    link: std::sync::Arc<AgentLink>,
    request: AgentRequest,
    kind: StreamKind,
    audit_id: Option<i64>,
) -> Result<Answer, ErrorReply> {
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
            audit: audit_id.map(|id| (state.store.clone(), id)),
            console,
        })),
        Err(error) => {
            let code = error.error_code.as_str();
            let finished = match audit_id {
                Some(id) => state.store.audit_finish(id, "failed", Some(code)).await,
                None => Ok(()),
            };
            if let Err(e) = finished {
                tracing::error!(%e, ?audit_id, "could not record a refusal in the audit log");
            }
            Err(error)
        }
    }
}

/// Forwards start, stop or restart, audited (see [`audited_once`]); a failure answers in the
/// action's shape (see [`action_answer`]).
async fn action(ask: Ask<'_>, operation: Operation, request: ContainerActionRequest) -> Answer {
    let container = request.container_id.clone();
    let mut audited = Audited::new(operation.as_str(), Some(container.as_str()), None, "");
    audited.noun = "action";
    let variant = |r| AgentRequest::container_action(operation, r);
    let answer = audited.once(ask, request, variant).await;
    action_answer(answer, operation, container.as_str())
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
/// as an allowed one, `stop` rather than `container.stop`, with the agent and container when
/// the payload names them, whatever the subject) and refused with the role that would be
/// allowed.
async fn refuse(
    state: &AppState,
    session: &Session,
    kind: ClientRequestKind,
    need: policy::Need,
    frame: &Frame,
) -> Result<Answer, ErrorReply> {
    warn!(user = %session.user, role = %session.role, subject = %kind, "refused by policy");
    let operation = kind.operation();
    let (agent, container) = named_target(frame);
    let agent_id = match &agent {
        Some(agent) => Some(audited_agent_id(state, agent).await),
        None => None,
    };
    let entry = AuditEntry {
        operation: operation.map_or(kind.subject(), Operation::as_str),
        result: "forbidden",
        agent_id: agent_id.as_deref(),
        container: container.as_deref(),
        error_code: Some(ErrorCode::Forbidden.as_str()),
        ..AuditEntry::by(session)
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
    match (operation, agent, container) {
        (Some(operation), Some(_), Some(container)) => {
            Ok(action_answer(Err(refusal), operation, &container))
        }
        _ => Err(refusal),
    }
}

/// Forwards a request with one answer to the agent it names (`variant` makes it the agent's
/// request); the answer goes back as it came.
async fn forward<R: Addressed>(
    state: &AppState,
    request: R,
    variant: fn(R) -> AgentRequest,
) -> Result<Answer, ErrorReply> {
    let link = online_agent(state, request.reference()).await?;
    let raw = link
        .request(&variant(request.addressed_to(&link)), state.timeouts.list)
        .await
        .map_err(|e| e.to_reply(&link.name))?;
    Ok(Answer::Raw(raw))
}

/// Opens a streamed answer at the agent `request` names (`variant` makes it the agent's
/// request).
async fn stream<R: Addressed>(
    ask: Ask<'_>,
    request: R,
    kind: StreamKind,
    variant: fn(R) -> AgentRequest,
) -> Result<Answer, ErrorReply> {
    let link = online_agent(ask.state, request.reference()).await?;
    let request = variant(request.addressed_to(&link));
    open_stream(ask.state, ask.session, link, request, kind, None).await
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
