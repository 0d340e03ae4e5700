//! `/ws/client`: authenticates an app or CLI with its device token, then serves its requests
//! concurrently and pushes agent status changes, and the container events it subscribed to.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use tokio::sync::{Semaphore, broadcast, mpsc};
use tracing::{Instrument, info, info_span, warn};
use zedops_protocol::{
    ClientHello, ClientPush, ClientWelcome, Envelope, ErrorCode, ErrorReply, EventResync,
    PROTOCOL_VERSION, subject,
};

use crate::connection::ClientConn;
use crate::hub::Kick;
use crate::rate_limit::{MessageLimiter, Verdict};
use crate::router::{self, Reply};
use crate::socket::{self, Incoming, Socket, check_version, rate_check};
use crate::state::AppState;
use crate::store::{Session, SessionCheck};
use crate::streams;

/// Requests one client may have in flight; more are answered `RATE_LIMITED`.
pub const MAX_IN_FLIGHT: usize = 256;

pub async fn upgrade(
    State(state): State<Arc<AppState>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    ws: WebSocketUpgrade,
) -> Response {
    let span = info_span!("client", %addr, user = tracing::field::Empty);
    socket::accept(state, addr, ws, span, serve)
}

async fn serve(state: Arc<AppState>, socket: Socket) {
    // Subscribe before the hello so no status change between welcome and the loop is missed.
    let mut status = state.hub.subscribe_status();
    // Container pushes are queued from the start too, as the connection's subscription
    // decides when each is pushed, so an event just after `event.subscribe` takes effect is
    // never missed.
    let conn = Arc::new(ClientConn::default());
    let mut events = state.hub.subscribe_events(conn.watching.subscribe());
    // Agent updates' live state, for admins only (kept after the hello only for them).
    let mut agent_updates = Some(state.agent_updates.subscribe());
    // The welcome says the version the client said (within what this relay speaks), so an
    // older client is answered in its own version.
    let Some((mut socket, hello)) = socket.hello("no client.hello within 10 s").await else {
        return;
    };
    let session = match authenticate(&state, &hello).await {
        Ok(session) => session,
        Err(reply) => {
            warn!(code = %reply.error_code, error = ?reply.error, "refused a client");
            return socket.refuse(reply.error_code, reply.error).await;
        }
    };
    let spoken = socket::hello_version(&hello).unwrap_or(PROTOCOL_VERSION);
    tracing::Span::current().record("user", session.user.as_str());
    let welcome = ClientWelcome {
        protocol_version: spoken,
        user: session.user.clone(),
        role: session.role,
    };
    if socket
        .send(&Envelope::new(subject::CLIENT_WELCOME, &welcome))
        .await
        .is_err()
    {
        return;
    }
    info!(role = %session.role, "client connected");
    if session.role != zedops_protocol::Role::Admin || spoken < zedops_protocol::AGENT_UPDATE_SINCE
    {
        agent_updates = None;
    }

    let (conn_id, mut kicked) = state.hub.connect_client(&session.id);
    // The user may have been changed between reading the session and registering it for kicks:
    // check once more, so no connection keeps a role (or a session) it no longer has.
    match state.store.session_role(&session.id).await {
        Ok(Some(role)) if role == session.role => {}
        Ok(_) => {
            info!("closing: the user changed while this connection authenticated");
            state.hub.disconnect_client(&session.id, conn_id);
            socket
                .close(
                    axum::extract::ws::close_code::POLICY,
                    "your account changed; reconnect",
                )
                .await;
            return;
        }
        Err(e) => warn!(%e, "could not re-check the session; continuing with the checked one"),
    }
    let session = Arc::new(session);
    let mut limiter = MessageLimiter::client(&state.limits);
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let (answers_tx, mut answers) = mpsc::channel::<streams::Outgoing>(MAX_IN_FLIGHT);
    let mut shutdown = state.shutdown.clone();
    let mut ping = tokio::time::interval(state.timeouts.heartbeat_interval);
    ping.reset();
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                // Input to one of this connection's own console sessions or transfers is bounded
                // by credit and the agent's queue, not by the message rate: dropping it would
                // corrupt the session's bytes, and a 100 MB paste is thousands of frames.
                let routed_input = matches!(&incoming, Incoming::Frame(f)
                    if f.subject == zedops_protocol::subject::STREAM_INPUT && f.reply.is_none()
                        && f.payload::<zedops_protocol::StreamInput>().is_ok_and(|i| conn.streams.has(&i.inbox)));
                if !routed_input && matches!(incoming, Incoming::Frame(_) | Incoming::Invalid(_)) {
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
                    // Session input is handled here, in order, not in a task of its own:
                    // stdin bytes must reach the agent in the order they were typed. Waiting
                    // for a full agent queue holds this connection, which credit bounds.
                    Incoming::Frame(frame) if frame.subject == zedops_protocol::subject::STREAM_INPUT && frame.reply.is_none() => {
                        match frame.payload::<zedops_protocol::StreamInput>() {
                            Ok(input) => {
                                if !conn.streams.input(input).await {
                                    tracing::debug!("stream.input for a stream this connection does not have");
                                }
                            }
                            Err(e) => {
                                warn!(error = %e, "unreadable stream.input from client");
                                let _ = socket.send_error(None, &e.to_reply()).await;
                            }
                        }
                    }
                    // A cancel is handled here too, in order: a client that cancels and hangs
                    // up at once (a console detach) has cancelled before its hang-up is seen.
                    // It only stops a stream of this connection's, so it is cheap and never
                    // refused while draining.
                    Incoming::Frame(frame) if frame.subject == zedops_protocol::subject::STREAM_CANCEL => {
                        if let Reply::Frame(answer) = router::handle(&state, &session, &conn, frame).await
                            && socket.send_text(answer).await.is_err()
                        {
                            break;
                        }
                    }
                    Incoming::Frame(frame) => {
                        // Refused while draining; counted while it runs, so a draining relay can
                        // wait for it.
                        if let Some(reply) = state.hub.drain.refusal() {
                            let _ = socket.send_error(frame.reply.as_deref(), &reply).await;
                            continue;
                        }
                        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                            let reply = ErrorReply::new(ErrorCode::RateLimited, format!("more than {MAX_IN_FLIGHT} requests in flight; wait for answers"));
                            let _ = socket.send_error(frame.reply.as_deref(), &reply).await;
                            continue;
                        };
                        let (state, session, answers_tx, conn) = (state.clone(), session.clone(), answers_tx.clone(), conn.clone());
                        tokio::spawn(async move {
                            let counted = state.hub.drain.count();
                            let reply = router::handle(&state, &session, &conn, frame).await;
                            match reply {
                                Reply::Frame(answer) => {
                                    let _ = answers_tx.send(answer.into()).await;
                                    // Counted until its answer is queued: the close at the end
                                    // of a drain writes what is queued first.
                                    drop(counted);
                                }
                                // Holds its in-flight permit while it runs, which bounds the streams
                                // one connection can have open.
                                Reply::Stream { inbox, stream } => {
                                    drop(counted);
                                    streams::pump(stream, &conn.streams, &inbox, &answers_tx, &state.shutdown).await;
                                }
                            }
                            drop(permit);
                        }.in_current_span());
                    }
                    other => match socket.not_a_frame(other, "client").await {
                        Some(kept) => socket = kept,
                        None => break,
                    },
                }
            }
            Some(answer) = answers.recv() => {
                if write_answers(&mut socket, answer, &mut answers).await.is_err() { break; }
            }
            push = status.recv() => match push {
                Ok(frame) => { if socket.send_text(frame.to_string()).await.is_err() { break; } }
                Err(broadcast::error::RecvError::Lagged(n)) => warn!(missed = n, "client too slow for status pushes"),
                Err(broadcast::error::RecvError::Closed) => {}
            },
            push = async {
                match agent_updates.as_mut() {
                    Some(updates) => updates.recv().await,
                    None => std::future::pending().await,
                }
            } => match push {
                Ok(frame) => { if socket.send_text(frame.to_string()).await.is_err() { break; } }
                Err(broadcast::error::RecvError::Lagged(n)) => warn!(missed = n, "client too slow for agent update pushes"),
                Err(broadcast::error::RecvError::Closed) => agent_updates = None,
            },
            push = events.recv() => match push {
                Ok(pushed) => {
                    let wanted = conn.watching.borrow().wants(&pushed.agent_id);
                    if wanted && socket.send_text(pushed.frame.to_string()).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    // The oldest pushes were dropped for this connection only; it lists again.
                    let on = conn.watching.borrow().is_on();
                    if on {
                        warn!(missed, "client too slow for container events; asking it to re-sync");
                        let resync = ClientPush::EventResync(EventResync { missed }).to_frame(None);
                        if socket.send_text(resync).await.is_err() { break; }
                    }
                }
                Err(broadcast::error::RecvError::Closed) => {}
            },
            _ = ping.tick() => {
                if socket.ping().await.is_err() { break; }
            }
            kick = &mut kicked => {
                match kick {
                    Ok(Kick::RoleChanged) => {
                        info!("closing: the user's role changed; the client reconnects with the new one");
                        socket.close(axum::extract::ws::close_code::POLICY, "your role changed; reconnect to continue with the new role").await;
                    }
                    _ => {
                        info!("closing: device session revoked");
                        let reply = ErrorReply::new(ErrorCode::Unauthorized, "this device session was revoked or its user disabled; log in again");
                        let _ = socket.send_error(None, &reply).await;
                        socket.close(axum::extract::ws::close_code::POLICY, "session revoked").await;
                    }
                }
                break;
            }
            _ = shutdown.changed() => {
                // Answers queued by requests that finished during the drain go out before the
                // close (one batch: a stream still running does not hold the close up).
                if let Ok(first) = answers.try_recv() {
                    let _ = write_answers(&mut socket, first, &mut answers).await;
                }
                // Streams still open (a log follow never ends by itself) end saying why.
                for end in conn.streams.relay_stopping_ends() {
                    let _ = socket.send_text(end).await;
                }
                socket.close(axum::extract::ws::close_code::AWAY, "relay shutting down").await;
                break;
            }
        }
    }
    state.hub.disconnect_client(&session.id, conn_id);
    info!("client disconnected");
}

async fn authenticate(
    state: &AppState,
    hello: &zedops_protocol::Frame,
) -> Result<Session, ErrorReply> {
    if hello.subject != subject::CLIENT_HELLO {
        return Err(ErrorReply::new(
            ErrorCode::Unauthorized,
            format!(
                "the first frame must be client.hello with a device token, not {:?}",
                hello.subject
            ),
        ));
    }
    check_version(hello)?;
    let hello: ClientHello = hello.payload().map_err(|e| e.to_reply())?;
    match state
        .store
        .check_session(&hello.token, &state.sessions)
        .await
    {
        Ok(SessionCheck::Live(session)) => Ok(session),
        Ok(SessionCheck::Expired) => Err(ErrorReply::new(
            ErrorCode::Unauthorized,
            "your session expired; log in again",
        )),
        Ok(SessionCheck::Unknown) => Err(ErrorReply::new(
            ErrorCode::Unauthorized,
            "the device token is unknown or was revoked; log in again",
        )),
        Err(e) => Err(e.into()),
    }
}

/// Answers written in one go at most: enough to fill a write under load, few enough that pings
/// and kicks are not held back behind a long stream.
const WRITE_BATCH: usize = 64;

/// Writes `first` and whatever other answers are already waiting (up to [`WRITE_BATCH`]) with
/// one flush. Under load many answers are ready at once; one write each would cost a system
/// call and a TCP segment per answer.
async fn write_answers(
    socket: &mut Socket,
    first: streams::Outgoing,
    answers: &mut mpsc::Receiver<streams::Outgoing>,
) -> Result<(), axum::Error> {
    // A stream frame's bytes count against its budgets until written: each answer is kept
    // (its text taken out, its charge still held) until the flush.
    let mut written = Vec::with_capacity(WRITE_BATCH);
    let mut next = Some(first);
    let mut yielded = false;
    while let Some(mut answer) = next.take() {
        socket.feed_text(std::mem::take(&mut answer.text)).await?;
        written.push(answer);
        if written.len() < WRITE_BATCH {
            next = answers.try_recv().ok();
            if next.is_none() && !yielded {
                // Step aside once before writing: the request tasks that are ready finish their
                // answers meanwhile and go out in this write (see [`socket::step_aside`]).
                yielded = true;
                socket::step_aside().await;
                next = answers.try_recv().ok();
            }
        }
    }
    socket.flush().await
}
