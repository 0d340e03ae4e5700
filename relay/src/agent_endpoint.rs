//! `/ws/agent`: authenticates an agent (enrolment or permanent token), then relays requests to
//! it and its answers back, until it disconnects, goes silent, is replaced or the relay stops.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use tracing::{debug, info, info_span, warn};
use zedops_protocol::{
    AgentForgotten, AgentHello, AgentHelloKind, AgentPush, AgentPushKind, AgentWelcome, ClientPush,
    Envelope, ErrorCode, ErrorReply, Frame, PROTOCOL_VERSION, ProtocolError, subject,
};

use crate::rate_limit::{MessageLimiter, Verdict};
use crate::socket::{self, Incoming, Socket, check_version, rate_check};
use crate::state::AppState;
use crate::store::{AgentRecord, AuditEntry, StoreError};

pub async fn upgrade(
    State(state): State<Arc<AppState>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    ws: WebSocketUpgrade,
) -> Response {
    let span = info_span!("agent", %addr, agent = tracing::field::Empty);
    socket::accept(state, addr, ws, span, serve)
}

async fn serve(state: Arc<AppState>, socket: Socket) {
    let missing = "no agent.register or agent.auth within 10 s";
    let Some((mut socket, hello)) = socket.hello(missing).await else {
        return;
    };
    let (record, token) = match authenticate(&state, &hello).await {
        Ok(ok) => ok,
        Err(reply) => {
            warn!(code = %reply.error_code, error = ?reply.error, "refused an agent");
            return socket.refuse(reply.error_code, reply.error).await;
        }
    };
    tracing::Span::current().record("agent", record.name.as_str());

    let (link, mut outbound, mut replaced) = state.hub.connect_agent(&record.id, &record.name);
    if let Some(version) = socket::hello_version(&hello) {
        link.protocol_version
            .store(version, std::sync::atomic::Ordering::Relaxed);
    }
    let welcome = AgentWelcome {
        // The agent's own version (within what this relay speaks): older agents get theirs.
        protocol_version: socket::hello_version(&hello).unwrap_or(PROTOCOL_VERSION),
        agent_id: record.id.clone().into(),
        name: record.name.clone(),
        token,
    };
    if socket
        .send(&Envelope::new(subject::AGENT_WELCOME, &welcome))
        .await
        .is_ok()
    {
        info!("agent connected");
        crate::registry::on_connect(&state, &link);
        if let Some(info) = &record.info {
            state.agent_updates.connected(&link.id, &info.version);
        }
        let mut ping = tokio::time::interval(state.timeouts.heartbeat_interval);
        ping.reset();
        let mut shutdown = state.shutdown.clone();
        let mut deadline = tokio::time::Instant::now() + state.timeouts.heartbeat_timeout;
        let mut limiter = MessageLimiter::agent(&state.limits);
        loop {
            tokio::select! {
                incoming = socket.recv() => {
                    deadline = tokio::time::Instant::now() + state.timeouts.heartbeat_timeout;
                    link.touch();
                    // Answers to the relay's own requests are paid for by those requests (bounded
                    // per agent); everything else the agent sends counts against its rate limit.
                    let incoming = match incoming {
                        Incoming::Frame(frame) if subject::is_inbox(&frame.subject) => {
                            if answer(&link, &frame) {
                                continue;
                            }
                            Incoming::Frame(frame)
                        }
                        other => other,
                    };
                    if matches!(incoming, Incoming::Frame(_) | Incoming::Invalid(_)) {
                        match rate_check(&mut limiter, &mut socket, &incoming).await {
                            Verdict::Allow => {}
                            Verdict::Refuse => continue,
                            Verdict::Close => {
                                socket.close(axum::extract::ws::close_code::POLICY, "message rate limit exceeded").await;
                                break;
                            }
                        }
                    }
                    match incoming {
                        Incoming::Frame(frame) => handle_frame(&state, &link, &mut socket, frame).await,
                        other => match socket.not_a_frame(other, "agent").await {
                            Some(kept) => socket = kept,
                            None => break,
                        },
                    }
                }
                Some(frame) = outbound.recv() => {
                    if write_requests(&mut socket, frame, &mut outbound).await.is_err() { break; }
                }
                _ = ping.tick() => {
                    if socket.ping().await.is_err() { break; }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    warn!("agent silent for too long; closing");
                    break;
                }
                _ = &mut replaced => {
                    info!("closing: replaced by a newer connection or revoked");
                    socket.close(axum::extract::ws::close_code::POLICY, "connection replaced or agent revoked").await;
                    break;
                }
                _ = shutdown.changed() => {
                    socket.close(axum::extract::ws::close_code::AWAY, "relay shutting down").await;
                    break;
                }
            }
        }
    }
    // Stop accepting frames for this agent before failing what waits on it, so nothing
    // queued after this point can wait for a timeout.
    drop(outbound);
    state.hub.disconnect_agent(&link);
    let last_seen = link.last_seen.load(std::sync::atomic::Ordering::Relaxed);
    if let Err(e) = state.store.touch_agent(&link.id, last_seen).await {
        warn!(%e, "could not record last-seen time");
    }
    info!("agent disconnected");
}

/// Checks the hello: protocol version, then enrolment or permanent token.
async fn authenticate(
    state: &AppState,
    hello: &Frame,
) -> Result<(AgentRecord, Option<String>), ErrorReply> {
    check_version(hello)?;
    let Some(kind) = AgentHelloKind::from_subject(&hello.subject) else {
        return Err(ErrorReply::new(
            ErrorCode::Unauthorized,
            format!(
                "the first frame must be agent.register or agent.auth, not {:?}",
                hello.subject
            ),
        ));
    };
    match kind.decode(hello).map_err(|e| e.to_reply())? {
        AgentHello::Register(register) => {
            match state
                .store
                .enrol_agent(&register.registration_token, &register.name, &register.info)
                .await
            {
                Ok((record, token)) => {
                    info!(agent = %record.name, id = %record.id, "agent enrolled");
                    Ok((record, Some(token)))
                }
                Err(StoreError::BadRegistrationToken) => Err(ErrorReply::new(
                    ErrorCode::Unauthorized,
                    "the registration token is unknown, already used or expired; create a new one with `zedops-relay token create`",
                )),
                Err(StoreError::NameTaken(name)) => Err(ErrorReply::new(
                    ErrorCode::NameTaken,
                    format!(
                        "an agent named {name} is already enrolled; choose another --name or revoke the old agent first"
                    ),
                )),
                Err(e) => Err(e.into()),
            }
        }
        AgentHello::Auth(auth) => {
            match state
                .store
                .authenticate_agent(&auth.agent_id, &auth.token, &auth.info)
                .await
            {
                Ok(Some(record)) => Ok((record, None)),
                Ok(None) => Err(ErrorReply::new(
                    ErrorCode::Unauthorized,
                    "unknown or revoked agent credentials; enrol again with a new registration token",
                )),
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// An agent's answer to one of the relay's requests: true when a request was waiting for it.
fn answer(link: &crate::hub::AgentLink, frame: &Frame) -> bool {
    link.answer(&frame.subject, frame.raw_data())
}

/// Any other frame from an authenticated agent (counted against its rate limit): a late
/// answer, a live-state push, a heartbeat, or junk.
async fn handle_frame(
    state: &AppState,
    link: &crate::hub::AgentLink,
    socket: &mut Socket,
    frame: Frame,
) {
    if subject::is_inbox(&frame.subject) {
        debug!(inbox = ?frame.subject, "answer for an expired request dropped");
        return;
    }
    let Some(kind) = AgentPushKind::from_subject(&frame.subject) else {
        warn!(subject = ?frame.subject, "unknown subject from agent");
        let reply = ProtocolError::UnknownSubject(frame.subject.clone()).to_reply();
        let _ = socket.send_error(frame.reply.as_deref(), &reply).await;
        return;
    };
    let is_push = matches!(
        kind,
        AgentPushKind::ContainerEvent | AgentPushKind::ContainerSync
    );
    if is_push && frame.raw_data().len() > zedops_protocol::MAX_PUSH_BYTES {
        // Every client queue holds pushes; a bigger one would let an agent fill them fast.
        warn!(subject = %kind, bytes = frame.raw_data().len(), "refused an oversize push from the agent");
        let reply = ErrorReply::new(
            ErrorCode::InvalidRequest,
            format!(
                "{kind} over {} KiB refused; send a big snapshot in parts (part, parts)",
                zedops_protocol::MAX_PUSH_BYTES / 1024
            ),
        );
        let _ = socket.send_error(frame.reply.as_deref(), &reply).await;
        return;
    }
    // `agent.forget` is a request: without an inbox there is nowhere to answer.
    if kind == AgentPushKind::AgentForget && frame.reply.is_none() {
        let reply = ErrorReply::new(
            ErrorCode::InvalidRequest,
            "agent.forget needs a reply inbox",
        );
        let _ = socket.send_error(None, &reply).await;
        return;
    }
    let push = match kind.decode(&frame) {
        Ok(push) => push,
        Err(err) => {
            warn!(subject = %kind, error = ?err, "refused a frame from the agent");
            let _ = socket
                .send_error(frame.reply.as_deref(), &err.to_reply())
                .await;
            return;
        }
    };
    // The agent id in a push is always the connection's own: an agent cannot speak for another.
    match push {
        AgentPush::Heartbeat(_) => {}
        AgentPush::AgentForget(_) => {
            let inbox = frame.reply.as_deref().unwrap_or_default();
            forget(state, link, socket, inbox).await
        }
        AgentPush::ContainerEvent(mut event) => {
            event.agent_id = link.id.clone().into();
            let pushed = ClientPush::ContainerEvent(event).to_frame(None);
            state.hub.push_event(&link.id, pushed);
        }
        AgentPush::ContainerSync(mut sync) => {
            sync.agent_id = link.id.clone().into();
            let pushed = ClientPush::ContainerSync(sync).to_frame(None);
            state.hub.push_event(&link.id, pushed);
        }
        AgentPush::UpdatesState(pushed) => crate::updates::received(state, link, pushed),
        AgentPush::AgentUpdateProgress(progress) => {
            state.agent_updates.agent_said(&link.id, progress)
        }
    }
}

/// `agent.forget`: the connection's own agent is revoked (its name free for a new enrolment),
/// audited, answered, and then its connection closes. An agent can only ever forget itself:
/// the id is the connection's, never read from the frame.
async fn forget(state: &AppState, link: &crate::hub::AgentLink, socket: &mut Socket, inbox: &str) {
    let name = match state.store.revoke_agent_id(&link.id).await {
        Ok(name) => name.unwrap_or_else(|| link.name.clone()),
        Err(e) => {
            let _ = socket.send_error(Some(inbox), &e.into()).await;
            return;
        }
    };
    let entry = AuditEntry {
        agent_id: Some(&link.id),
        operation: subject::AGENT_FORGET,
        result: "ok",
        target: Some(&name),
        detail: Some("uninstalled with --purge"),
        ..Default::default()
    };
    if let Err(e) = state.store.audit(entry).await {
        tracing::error!(%e, "could not audit an agent.forget");
    }
    info!(agent = %name, id = %link.id, "agent forgot itself (uninstalled); revoked");
    let answer = AgentForgotten {
        agent_id: link.id.clone().into(),
        name,
    };
    let _ = socket.send(&Envelope::new(inbox, &answer)).await;
    // Closes this connection through the usual revocation path.
    state.hub.kick_agent(&link.id);
}

/// Requests written to an agent in one go at most (see [`write_requests`]).
const WRITE_BATCH: usize = 64;

/// Writes `first` and the requests already queued behind it (up to [`WRITE_BATCH`]) with one
/// flush, so a burst of requests to one agent costs a few writes instead of one each.
async fn write_requests(
    socket: &mut Socket,
    first: String,
    outbound: &mut tokio::sync::mpsc::Receiver<String>,
) -> Result<(), axum::Error> {
    socket.feed_text(first).await?;
    let mut yielded = false;
    let mut fed = 1;
    while fed < WRITE_BATCH {
        let frame = match outbound.try_recv() {
            Ok(frame) => frame,
            // Once, let the requests being routed reach the queue (see `socket::step_aside`).
            Err(_) if !yielded => {
                yielded = true;
                crate::socket::step_aside().await;
                continue;
            }
            Err(_) => break,
        };
        socket.feed_text(frame).await?;
        fed += 1;
    }
    socket.flush().await
}
