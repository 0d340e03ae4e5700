//! The live connection to a relay: requests with reply inboxes, pushes as events, and a
//! background reconnect when the WebSocket drops.
//!
//! One supervisor task per [`Client`](crate::Client) owns the reading half and dispatches answers
//! to the pending request that waits on that inbox; one writer task per connection owns the
//! writing half and drains an mpsc queue. Requests never wait for a reconnect: with no connection
//! they fail at once with `DISCONNECTED`, so the caller (a person, or the desktop app) decides
//! whether to retry.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use zedops_protocol::subject::{self, is_inbox};
use zedops_protocol::{
    AgentId, AgentStatus, ClientHello, ClientPush, ClientRequest, ClientWelcome, ContainerEvent,
    ContainerSync, Envelope, ErrorCode, ErrorReply, EventSubscribe, Frame, HEARTBEAT_TIMEOUT,
    PROTOCOL_VERSION, ProtocolError, Role, new_inbox_suffix,
};
use zedops_transport::{Backoff, FrameReader, FrameWriter, RelayUrl, TransportError};

use crate::error::{ClientError, from_transport};

/// The relay's WebSocket endpoint for apps and the CLI.
pub const CLIENT_WS_PATH: &str = "/ws/client";
/// Events buffered per subscriber; a subscriber that falls further behind loses the oldest.
pub const EVENT_BUFFER: usize = 1024;
/// Chunks of one stream buffered for its reader; a reader further behind loses the stream.
const STREAM_BUFFER: usize = 1024;
/// Frames queued for the writer before senders wait.
const OUTGOING_BUFFER: usize = 64;
/// How long closing waits for the writer to send the WebSocket close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Something that happened on the connection without being asked for. More kinds may come.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The relay pushed an agent's new status (came online, went offline).
    AgentStatus(AgentStatus),
    /// The connection is back after a drop (not sent for the first connection).
    Connected,
    /// The connection dropped (a reconnect follows), or reconnecting stopped for good because the
    /// relay refused the session, or [`Client::close`](crate::Client::close) was called;
    /// `reason` says which, for people. `fatal` is the relay's refusal (`UNAUTHORIZED`: sign in
    /// again; `UNSUPPORTED_VERSION`: update) when reconnecting stopped because of it; callers
    /// branch on it, never on the sentence.
    Disconnected {
        reason: String,
        fatal: Option<ErrorCode>,
    },
    /// The relay sent an `error` frame: it could not handle a frame that had no inbox to answer.
    Error(ErrorReply),
    /// A container changed on a subscribed agent (see
    /// [`Client::subscribe`](crate::Client::subscribe)).
    Container(Box<ContainerEvent>),
    /// A subscribed agent's full container list, after a gap in its events: it replaces what
    /// was known of that agent's containers.
    Sync(Box<ContainerSync>),
    /// The relay dropped events for this connection because it fell behind: list the
    /// subscribed agents' containers again.
    Resync { missed: u64 },
    /// A subscribed agent's containers with a newer image, after its check (or reconnect): it
    /// replaces what was known of that agent's updates.
    Updates(Box<zedops_protocol::UpdateState>),
    /// An agent's update moved on (admins only): downloading, verifying, restarting, online
    /// with the new version, or rolled back with the reason.
    AgentUpdate(Box<zedops_protocol::AgentUpdateProgress>),
}

/// What the tasks and the request paths share.
pub(crate) struct Shared {
    pub(crate) relay: RelayUrl,
    /// Every relay given (several relays of a cluster), tried in order.
    ws_urls: Vec<String>,
    /// The one connected last, so a reconnect tries the others first.
    current: std::sync::atomic::AtomicUsize,
    token: String,
    tls: Arc<rustls::ClientConfig>,
    state: Mutex<State>,
    events: broadcast::Sender<ClientEvent>,
    shutdown: watch::Sender<bool>,
}

type Answer = Result<Frame, ClientError>;

struct State {
    /// The writer's queue while connected; `None` while disconnected.
    outgoing: Option<mpsc::Sender<String>>,
    /// Why `outgoing` is `None`, for the errors of requests made meanwhile.
    down_reason: String,
    /// Requests waiting for an answer, by inbox.
    pending: HashMap<String, oneshot::Sender<Answer>>,
    /// The role from the latest welcome (an admin may change it between connections).
    role: Role,
    /// Set by `close` (or drop): no more reconnects.
    closed: bool,
    /// The live-state subscription to renew after a reconnect.
    subscription: Option<EventSubscribe>,
    /// Streamed answers (logs) in progress, by inbox.
    streams: HashMap<String, mpsc::Sender<Frame>>,
    /// Parts of a `container.sync` gathered so far, by agent id.
    sync_parts: HashMap<AgentId, Option<ContainerSync>>,
}

/// Dials the first relay of `given` (one URL or a comma-separated list) that answers,
/// authenticates with the device token and starts the supervisor; the welcome says who the
/// session belongs to.
pub(crate) async fn connect(
    given: &str,
    token: String,
    ca_file: Option<&Path>,
    insecure: bool,
) -> Result<(Arc<Shared>, JoinHandle<()>, ClientWelcome), ClientError> {
    // Several relays of a cluster, comma-separated: the first that answers; the first names
    // the relay (its device token is stored under it).
    let mut urls: Vec<&str> = relay_list(given).collect();
    if urls.is_empty() {
        // Parsed as given, for the parser's own error.
        urls.push(given);
    }
    let relays = urls
        .iter()
        .map(|url| RelayUrl::parse(url, insecure).map_err(|e| from_transport(e, url)))
        .collect::<Result<Vec<_>, _>>()?;
    let relay = relays[0].clone();
    let tls = zedops_transport::client_config(ca_file).map_err(|e| from_transport(e, given))?;
    let ws_urls: Vec<String> = relays.iter().map(|r| r.ws(CLIENT_WS_PATH)).collect();
    let mut dialled = None;
    let mut failure = None;
    for (index, url) in ws_urls.iter().enumerate() {
        match dial(url, &tls, &token).await.map_err(|f| f.error) {
            Ok(connected) => {
                dialled = Some((index, connected));
                break;
            }
            // The relays share one database: another would refuse the token the same way.
            Err(ClientError::Remote(reply))
                if matches!(
                    reply.error_code,
                    ErrorCode::Unauthorized | ErrorCode::UnsupportedVersion
                ) =>
            {
                return Err(ClientError::Remote(reply));
            }
            Err(err) => failure = Some(err),
        }
    }
    let Some((current, (writer, reader, welcome))) = dialled else {
        return Err(failure.expect("at least one relay was tried"));
    };
    let (events, _) = broadcast::channel(EVENT_BUFFER);
    let shared = Arc::new(Shared {
        relay,
        ws_urls,
        current: current.into(),
        token,
        tls,
        state: Mutex::new(State {
            outgoing: None,
            down_reason: String::new(),
            pending: HashMap::new(),
            role: welcome.role,
            closed: false,
            subscription: None,
            streams: HashMap::new(),
            sync_parts: HashMap::new(),
        }),
        events,
        shutdown: watch::channel(false).0,
    });
    // Installed before returning, so a request made right after `connect` finds the writer.
    let writer_task = shared.install(writer).expect("a new client is not closed");
    let supervisor = tokio::spawn(supervise(shared.clone(), reader, writer_task));
    info!(relay = %shared.relay.canonical(), user = %welcome.user, role = %welcome.role, "connected to the relay");
    Ok((shared, supervisor, welcome))
}

struct PendingGuard<'a> {
    shared: &'a Shared,
    inbox: &'a str,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.shared.state().pending.remove(self.inbox);
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock, but a poisoned map is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.state().outgoing.is_some()
    }

    /// True once the client stopped for good: closed, dropped, or refused by the relay.
    pub(crate) fn is_closed(&self) -> bool {
        self.state().closed
    }

    /// True while connected with a live-state subscription in force.
    pub(crate) fn is_subscribed(&self) -> bool {
        let state = self.state();
        state.outgoing.is_some() && state.subscription.is_some()
    }

    /// The user's role, as of the latest (re)connection.
    pub(crate) fn role(&self) -> Role {
        self.state().role
    }

    /// The live-state subscription to renew after every reconnect.
    pub(crate) fn set_subscription(&self, subscription: EventSubscribe) {
        self.state().subscription = Some(subscription);
    }

    /// A new receiver of [`ClientEvent`]s from now on.
    pub(crate) fn subscribe_events(&self) -> broadcast::Receiver<ClientEvent> {
        self.events.subscribe()
    }

    /// Sends one request and waits for the frame that arrives on its inbox.
    pub(crate) async fn request_frame(&self, request: &ClientRequest, timeout: Duration) -> Answer {
        self.request_text(|inbox| request.to_frame(Some(inbox)), timeout)
            .await
    }

    /// [`Shared::request_frame`] for any subject and JSON data (tools and tests that send what
    /// the typed API would not).
    pub(crate) async fn request_frame_raw(
        &self,
        subject: &str,
        data: &serde_json::Value,
        timeout: Duration,
    ) -> Answer {
        self.request_text(
            |inbox| Envelope::request(subject, inbox, data).to_json(),
            timeout,
        )
        .await
    }

    /// Sends the frame `encode` writes for a new reply inbox and waits for the frame that
    /// arrives on that inbox.
    async fn request_text(&self, encode: impl FnOnce(&str) -> String, timeout: Duration) -> Answer {
        let inbox = new_inbox_suffix(uuid::Uuid::new_v4());
        let text = encode(&inbox);
        let (answer_tx, answer_rx) = oneshot::channel();
        let outgoing = {
            let mut state = self.state();
            let Some(outgoing) = state.outgoing.clone() else {
                return Err(ClientError::disconnected(state.down_reason.clone()));
            };
            state.pending.insert(inbox.clone(), answer_tx);
            outgoing
        };
        // Removes the entry however this ends: answered, timed out, or the caller gave up.
        let _pending = PendingGuard {
            shared: self,
            inbox: &inbox,
        };
        let answered = async {
            if outgoing.send(text).await.is_err() {
                // The writer is gone; the supervisor fails every pending request with the reason.
                return match answer_rx.await {
                    Ok(answer) => answer,
                    Err(_) => Err(ClientError::disconnected(
                        "the connection to the relay broke",
                    )),
                };
            }
            answer_rx.await.unwrap_or_else(|_| {
                Err(ClientError::disconnected(
                    "the connection to the relay broke",
                ))
            })
        };
        tokio::time::timeout(timeout, answered)
            .await
            .unwrap_or(Err(ClientError::Timeout { after: timeout }))
    }

    /// Registers a streamed answer's inbox: the writer's queue to send its request to, and the
    /// receiver its frames arrive on.
    pub(crate) fn start_stream(
        &self,
        inbox: &str,
    ) -> Result<(mpsc::Sender<String>, mpsc::Receiver<Frame>), ClientError> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let mut state = self.state();
        let Some(outgoing) = state.outgoing.clone() else {
            return Err(ClientError::disconnected(state.down_reason.clone()));
        };
        state.streams.insert(inbox.to_string(), tx);
        Ok((outgoing, rx))
    }

    /// Why the connection is down (for errors of requests made meanwhile).
    pub(crate) fn down_reason(&self) -> String {
        self.state().down_reason.clone()
    }

    /// Queues a request whose answer nobody waits for.
    pub(crate) fn fire_and_forget(&self, request: &ClientRequest) {
        let inbox = new_inbox_suffix(uuid::Uuid::new_v4());
        let text = request.to_frame(Some(&inbox));
        if let Some(outgoing) = self.state().outgoing.clone() {
            let _ = outgoing.try_send(text);
        }
    }

    /// Queues a frame without a reply inbox, waiting for room: frames sent this way reach the
    /// relay in the order they were sent (stream input).
    pub(crate) async fn send_ordered(&self, message: &ClientRequest) -> Result<(), ClientError> {
        let text = message.to_frame(None);
        let outgoing = self.state().outgoing.clone();
        match outgoing {
            Some(outgoing) if outgoing.send(text).await.is_ok() => Ok(()),
            _ => Err(ClientError::disconnected(self.down_reason())),
        }
    }

    pub(crate) fn forget_stream(&self, inbox: &str) {
        self.state().streams.remove(inbox);
    }

    fn emit(&self, event: ClientEvent) {
        // No subscribers is fine: events are optional for callers.
        let _ = self.events.send(event);
    }

    /// Starts the writer task for a new connection and makes it available to requests.
    /// `None` when the client was closed meanwhile.
    fn install(&self, writer: FrameWriter) -> Option<JoinHandle<String>> {
        let (tx, rx) = mpsc::channel(OUTGOING_BUFFER);
        let mut state = self.state();
        if state.closed {
            return None;
        }
        // The subscription is renewed first, so it is in force before any request made after
        // `Connected`; its answer is not awaited (the supervisor is not reading yet).
        if let Some(subscription) = &state.subscription {
            let inbox = new_inbox_suffix(uuid::Uuid::new_v4());
            let text = ClientRequest::EventSubscribe(subscription.clone()).to_frame(Some(&inbox));
            let _ = tx.try_send(text);
        }
        state.outgoing = Some(tx);
        Some(tokio::spawn(write_loop(writer, rx)))
    }

    /// The connection is gone: later requests fail at once and the ones in flight fail now, so
    /// nobody waits for a timeout on a connection that no longer exists.
    fn connection_lost(&self, reason: &str) {
        let pending = {
            let mut state = self.state();
            state.outgoing = None;
            if !state.closed {
                state.down_reason = reason.to_string();
            }
            // Their receivers end, which the readers report as a lost connection.
            state.streams.clear();
            std::mem::take(&mut state.pending)
        };
        let reason = self.state().down_reason.clone();
        for (_, answer) in pending {
            let _ = answer.send(Err(ClientError::disconnected(reason.clone())));
        }
    }

    /// Stops for good: by `close`, by dropping the client, or because the relay refused the session.
    pub(crate) fn shut_down(&self, reason: &str) {
        {
            let mut state = self.state();
            if !state.closed {
                state.closed = true;
                state.down_reason = reason.to_string();
            }
        }
        self.connection_lost(reason);
        self.shutdown.send_replace(true);
    }

    fn dispatch(&self, frame: Frame) {
        if is_inbox(&frame.subject) {
            let waiting = self.state().pending.remove(&frame.subject);
            if let Some(answer) = waiting {
                let _ = answer.send(Ok(frame));
                return;
            }
            let stream = self.state().streams.get(&frame.subject).cloned();
            match stream {
                // Never blocks the reader: a caller that stops reading its stream loses it.
                Some(stream) => {
                    let inbox = frame.subject.clone();
                    if stream.try_send(frame).is_err() {
                        warn!("a log stream's reader fell behind; stopping that stream");
                        self.forget_stream(&inbox);
                        self.send_cancel(&inbox);
                    }
                }
                // The request timed out or its caller gave up.
                None => debug!(inbox = %frame.subject, "dropping an answer nobody waits for"),
            }
            return;
        }
        let push = match ClientPush::decode(&frame) {
            Ok(push) => push,
            Err(ProtocolError::UnknownSubject(subject)) => {
                return debug!(?subject, "ignoring a push this version does not know");
            }
            Err(err) => {
                return warn!(subject = ?frame.subject, %err, "ignoring a push that does not decode");
            }
        };
        match push {
            ClientPush::AgentStatus(status) => self.emit(ClientEvent::AgentStatus(status)),
            ClientPush::ContainerEvent(event) => self.emit(ClientEvent::Container(event)),
            ClientPush::ContainerSync(part) => {
                // A big snapshot comes in parts: only a whole one is handed out.
                let whole = {
                    let mut state = self.state();
                    let gathered = state.sync_parts.entry(part.agent_id.clone()).or_default();
                    ContainerSync::reassemble(gathered, part)
                };
                if let Some(sync) = whole {
                    self.emit(ClientEvent::Sync(Box::new(sync)));
                }
            }
            ClientPush::EventResync(resync) => {
                warn!(
                    missed = resync.missed,
                    "the relay dropped events for this slow connection"
                );
                self.emit(ClientEvent::Resync {
                    missed: resync.missed,
                })
            }
            ClientPush::UpdatesState(state) => self.emit(ClientEvent::Updates(Box::new(state))),
            ClientPush::AgentUpdateProgress(progress) => {
                self.emit(ClientEvent::AgentUpdate(Box::new(progress)))
            }
            ClientPush::Error(reply) => {
                warn!(%reply, "the relay reported an error");
                self.emit(ClientEvent::Error(reply));
            }
        }
    }
}

/// The relays of a comma-separated list (one URL is a list of one).
pub fn relay_list(relays: &str) -> impl Iterator<Item = &str> {
    relays
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
}

/// The relay HTTP requests (login, logout) and the stored token use: the first of a list (the
/// relays of a cluster share one database).
pub fn first_relay(relays: &str) -> &str {
    relay_list(relays).next().unwrap_or(relays)
}

/// A dial that failed: why, and how long the relay asked to wait before the next attempt
/// (a draining relay's `Retry-After`, see `TransportError::retry_after`).
struct DialFailure {
    error: ClientError,
    retry_after: Option<Duration>,
}

impl From<ClientError> for DialFailure {
    fn from(error: ClientError) -> Self {
        Self {
            error,
            retry_after: None,
        }
    }
}

/// Dials and authenticates one connection.
async fn dial(
    ws_url: &str,
    tls: &Arc<rustls::ClientConfig>,
    token: &str,
) -> Result<(FrameWriter, FrameReader, ClientWelcome), DialFailure> {
    let (mut writer, mut reader) = zedops_transport::connect(ws_url, tls.clone())
        .await
        .map_err(|e| DialFailure {
            retry_after: e.retry_after(),
            error: from_transport(e, ws_url),
        })?;
    let hello = ClientHello {
        protocol_version: PROTOCOL_VERSION,
        token: token.to_string(),
    };
    let welcome = zedops_transport::hello::<_, ClientWelcome>(
        &mut writer,
        &mut reader,
        subject::CLIENT_HELLO,
        &hello,
        subject::CLIENT_WELCOME,
    )
    .await;
    match welcome {
        // A relay one version older answers in its version, and is spoken to in it.
        Ok(welcome)
            if (zedops_protocol::MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION)
                .contains(&welcome.protocol_version) =>
        {
            Ok((writer, reader, welcome))
        }
        Ok(welcome) => {
            writer.close().await;
            Err(ClientError::Remote(ErrorReply::new(
                ErrorCode::UnsupportedVersion,
                format!(
                    "the relay speaks protocol version {}, this zedops speaks {PROTOCOL_VERSION}",
                    welcome.protocol_version
                ),
            ))
            .into())
        }
        Err(err) => {
            writer.close().await;
            Err(from_transport(err, ws_url).into())
        }
    }
}

/// Owns the writing half of one connection until its queue closes or a write fails.
async fn write_loop(mut writer: FrameWriter, mut queue: mpsc::Receiver<String>) -> String {
    while let Some(text) = queue.recv().await {
        if let Err(err) = writer.send_text(text).await {
            return format!("sending to the relay failed: {err}");
        }
    }
    writer.close().await;
    "the connection was closed".to_string()
}

/// Reads frames until the connection ends; returns why it ended. The relay pings every
/// `HEARTBEAT_INTERVAL`, so silence for `HEARTBEAT_TIMEOUT` means the relay or the path to it is
/// dead even though no TCP error arrived (a sleeping laptop, a dropped NAT mapping).
async fn read_loop(shared: &Shared, reader: &mut FrameReader) -> String {
    loop {
        match reader.recv_idle(HEARTBEAT_TIMEOUT).await {
            Ok(Some(frame)) => shared.dispatch(frame),
            Ok(None) => return "the relay closed the connection".to_string(),
            // One unreadable frame does not make the connection unusable.
            Err(TransportError::Protocol(err)) => {
                warn!(%err, "ignoring a frame from the relay that does not decode")
            }
            Err(TransportError::Timeout(idle)) => {
                return format!("nothing heard from the relay for {} s", idle.as_secs());
            }
            Err(err) => return err.to_string(),
        }
    }
}

async fn shutdown_requested(shutdown: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which also means stop.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Runs for the life of the client: reads the current connection, and when it drops, reconnects.
async fn supervise(
    shared: Arc<Shared>,
    mut reader: FrameReader,
    mut writer_task: JoinHandle<String>,
) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let mut writer_done = false;
        let reason = tokio::select! {
            reason = read_loop(&shared, &mut reader) => reason,
            reason = &mut writer_task => {
                writer_done = true;
                reason.unwrap_or_else(|err| format!("the writer task failed: {err}"))
            }
            () = shutdown_requested(&mut shutdown) => "the connection was closed by this client".to_string(),
        };
        shared.connection_lost(&reason);
        if !writer_done {
            // The writer's queue is closed now; give it a moment to send the close frame.
            if tokio::time::timeout(CLOSE_TIMEOUT, &mut writer_task)
                .await
                .is_err()
            {
                writer_task.abort();
            }
        }
        drop(reader);
        let closed = shared.state().closed;
        let down_reason = shared.state().down_reason.clone();
        shared.emit(ClientEvent::Disconnected {
            reason: down_reason,
            fatal: None,
        });
        if closed {
            return;
        }
        // Info, not a warning: callers hear it as `ClientEvent::Disconnected` and say it in
        // their own words (a CLI command that ends with it would print it twice).
        info!(%reason, "lost the connection to the relay; reconnecting");
        match reconnect(&shared, &mut shutdown).await {
            Some((new_reader, new_writer_task)) => {
                reader = new_reader;
                writer_task = new_writer_task;
                info!("reconnected to the relay");
                shared.emit(ClientEvent::Connected);
            }
            None => return,
        }
    }
}

/// Dials with backoff until a connection is up (`Some`), the client is closed, or the relay
/// refuses the session for good (`None`).
async fn reconnect(
    shared: &Shared,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<(FrameReader, JoinHandle<String>)> {
    let mut backoff = Backoff::default();
    use std::sync::atomic::Ordering;
    // The relay that dropped the connection is tried last.
    let mut index = shared.current.load(Ordering::Relaxed);
    // The pace a draining relay asked for at the last attempt, if it named one.
    let mut asked = None;
    loop {
        let delay = backoff.delay_after(asked.take());
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown_requested(shutdown) => return None,
        }
        index = (index + 1) % shared.ws_urls.len();
        let dialled = tokio::select! {
            dialled = dial(&shared.ws_urls[index], &shared.tls, &shared.token) => dialled,
            () = shutdown_requested(shutdown) => return None,
        };
        let dialled = dialled.map_err(|failure| {
            asked = failure.retry_after;
            failure.error
        });
        match dialled {
            Ok((writer, reader, welcome)) => {
                shared.current.store(index, Ordering::Relaxed);
                shared.state().role = welcome.role;
                let writer_task = shared.install(writer)?;
                return Some((reader, writer_task));
            }
            // Retrying cannot help: the session was revoked or expired, or versions differ.
            Err(ClientError::Remote(reply))
                if matches!(
                    reply.error_code,
                    ErrorCode::Unauthorized | ErrorCode::UnsupportedVersion
                ) =>
            {
                let fatal = Some(reply.error_code);
                let reason = format!(
                    "the relay refused to reconnect: {}",
                    ClientError::Remote(reply)
                );
                warn!(%reason, "stopped reconnecting");
                shared.shut_down(&reason);
                shared.emit(ClientEvent::Disconnected { reason, fatal });
                return None;
            }
            // Logged once per outage, not on every attempt.
            Err(err) if backoff.failures() == 1 => {
                warn!(%err, "cannot reach the relay; retrying with backoff")
            }
            Err(err) => debug!(%err, attempt = backoff.failures(), "reconnect failed"),
        }
    }
}
