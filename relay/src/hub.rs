//! The relay's live state: which agents are connected, the requests waiting for their answers,
//! and the stream of status pushes every client receives. Only in memory; the store keeps the rest.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, broadcast, mpsc, oneshot, watch};
use zedops_protocol::payload::Validate;
use zedops_protocol::{
    AgentRequest, AgentStatus, ClientPush, ConsoleOutput, DeployFrame, ErrorCode, ErrorReply,
    FileChunk, LogChunk, StatsChunk, subject,
};

use crate::failure::rate_limited;
use crate::store::now;
use crate::subscription::Subscription;

/// Frames queued to one agent before senders wait; bounds memory for a slow agent.
pub const AGENT_QUEUE: usize = 256;
/// Status pushes buffered per client before the slowest starts losing the oldest.
pub const STATUS_QUEUE: usize = 1024;
/// Container pushes queued per client before a slow one starts losing the oldest (and is
/// told to re-sync); see also [`EVENT_QUEUE_BYTES`]. An agent never waits for a client.
pub const EVENT_QUEUE: usize = 4096;

/// Frames of one streamed answer queued for its client before newer ones are dropped (and
/// counted), so a client that reads slowly never holds up its agent.
pub const STREAM_QUEUE: usize = 256;
/// Bytes of one stream's frames the relay holds at once, from the agent's answer until the
/// frame is written to the client's socket; over it frames are dropped (and counted). Two
/// seconds of a log stream at its full rate.
pub const STREAM_BYTES: usize = 2 * zedops_protocol::MAX_LOG_BYTES_PER_SEC;
/// Bytes of all the streams of one agent held at once; over it their frames are dropped (and
/// counted), so one agent cannot make the relay hold more whatever it sends.
pub const AGENT_STREAM_BYTES: usize = 32 * 1024 * 1024;
/// Container pushes held for one client connection at once, in bytes (as well as
/// [`EVENT_QUEUE`] frames); over it the oldest are dropped and the client told to re-sync.
pub const EVENT_QUEUE_BYTES: usize = 16 * 1024 * 1024;

/// One decoded frame of a streamed answer.
#[derive(Debug)]
pub enum StreamFrame {
    Logs(LogChunk),
    Stats(StatsChunk),
    /// Pull progress and the outcome of a create or pull.
    Deploy(DeployFrame),
    /// Output, grants and the end of a console session.
    Console(ConsoleOutput),
    /// A file's entry and bytes, or an upload's grants and outcome.
    File(FileChunk),
    /// Steps, pull progress and the outcome of a container update.
    Update(Box<zedops_protocol::ContainerUpdateFrame>),
}

impl StreamFrame {
    fn is_end(&self) -> bool {
        match self {
            StreamFrame::Logs(c) => c.end.is_some(),
            StreamFrame::Stats(c) => c.end.is_some(),
            StreamFrame::Deploy(c) => c.end.is_some(),
            StreamFrame::Console(c) => c.end.is_some(),
            StreamFrame::File(c) => c.end.is_some(),
            StreamFrame::Update(c) => c.end.is_some(),
        }
    }

    /// How the stream ended, when this is its last frame: `Some(None)` for success.
    fn end_code(&self) -> Option<Option<ErrorCode>> {
        let end = match self {
            StreamFrame::Logs(c) => c.end.as_ref(),
            StreamFrame::Stats(c) => c.end.as_ref(),
            StreamFrame::Deploy(c) => c.end.as_ref(),
            StreamFrame::Console(c) => c.end.as_ref(),
            StreamFrame::File(c) => c.end.as_ref(),
            StreamFrame::Update(c) => c.end.as_ref(),
        };
        end.map(|e| e.error_code)
    }

    /// Lines a dropped frame takes with it (a stats sample counts as one).
    fn lines(&self) -> u64 {
        match self {
            StreamFrame::Logs(c) => c.lines.len().max(1) as u64,
            StreamFrame::Stats(_)
            | StreamFrame::Deploy(_)
            | StreamFrame::Console(_)
            | StreamFrame::File(_)
            | StreamFrame::Update(_) => 1,
        }
    }
}

/// Bytes held on behalf of one stream (and its agent), given back when dropped: a queued frame
/// carries its charge until it has been written to the client's socket.
#[derive(Debug)]
pub struct Charge {
    bytes: usize,
    stream: Arc<AtomicUsize>,
    agent: Arc<AtomicUsize>,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.stream.fetch_sub(self.bytes, Ordering::Relaxed);
        self.agent.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// What the pump of one stream shares with the agent side: the count of frames dropped, the
/// reserved slot for the last frame, and the bytes held.
#[derive(Default)]
pub struct StreamShared {
    /// Lines dropped because a budget or the queue was full, reported with the next frame.
    pub dropped: AtomicU64,
    /// The stream's last frame (or why it is unreadable): one slot, never refused, so a slow
    /// client always learns how its stream ended.
    last: Mutex<Option<Result<(StreamFrame, Charge), String>>>,
    /// Set once the last frame (or an unreadable one) has come: later frames are ignored.
    finished: std::sync::atomic::AtomicBool,
    /// Fires when `last` is filled.
    pub ended: Notify,
    bytes: Arc<AtomicUsize>,
    /// How the agent ended the stream (`Some(None)`: without error), for the audit of deploys.
    end_code: Mutex<Option<Option<ErrorCode>>>,
}

impl StreamShared {
    /// The last frame, once it has come: `Err` with a reason when the agent sent something
    /// unreadable.
    pub fn take_last(&self) -> Option<Result<(StreamFrame, Charge), String>> {
        self.last.lock().expect("last lock").take()
    }

    /// How the agent ended the stream, once it has: `Some(None)` without an error.
    pub fn end_code(&self) -> Option<Option<ErrorCode>> {
        *self.end_code.lock().expect("end code lock")
    }
}

/// What a stream carries, which decides how each frame is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Logs,
    Stats,
    /// `container.create` and `image.pull`: [`DeployFrame`]s.
    Deploy,
    /// `container.exec`, `container.attach`: [`ConsoleOutput`]s under the client's credit.
    Console,
    /// `file.get`, `file.put`: [`FileChunk`]s under the client's credit.
    File,
    /// `container.update`: [`zedops_protocol::ContainerUpdateFrame`]s.
    Update,
}

impl StreamKind {
    /// Streams whose bytes are flow-controlled end to end: a frame may never be dropped (that
    /// would corrupt the bytes), so one over the budgets ends the stream instead.
    fn lossless(self) -> bool {
        matches!(self, StreamKind::Console | StreamKind::File)
    }
}

/// Where an agent's frames for one streamed answer go.
pub struct StreamSink {
    kind: StreamKind,
    tx: mpsc::Sender<(StreamFrame, Charge)>,
    shared: Arc<StreamShared>,
    agent_bytes: Arc<AtomicUsize>,
}

impl StreamSink {
    /// Decodes one frame of the agent's answer and queues it for the client, within the
    /// stream's and the agent's byte budgets. Whether it is the last frame is decided from the
    /// decoded value; the last has its own slot and is never dropped.
    fn deliver(&self, data: &str) {
        if self.shared.finished.load(Ordering::Relaxed) {
            return;
        }
        let decoded = match self.kind {
            StreamKind::Logs => serde_json::from_str::<LogChunk>(data)
                .map_err(|e| e.to_string())
                .and_then(|c| c.validate().map(|()| c).map_err(|e| e.to_string()))
                .map(StreamFrame::Logs),
            StreamKind::Stats => serde_json::from_str::<StatsChunk>(data)
                .map(StreamFrame::Stats)
                .map_err(|e| e.to_string()),
            // An agent that refuses the request outright answers with an error reply: the
            // stream's end, with its code.
            StreamKind::Deploy => serde_json::from_str::<DeployFrame>(data)
                .or_else(|e| {
                    serde_json::from_str::<ErrorReply>(data)
                        .map(|r| DeployFrame {
                            end: Some(zedops_protocol::StreamEnd {
                                error_code: Some(r.error_code),
                                reason: r.error,
                            }),
                            ..DeployFrame::default()
                        })
                        .map_err(|_| e)
                })
                .map(StreamFrame::Deploy)
                .map_err(|e| e.to_string()),
            StreamKind::Console => serde_json::from_str::<ConsoleOutput>(data)
                .map_err(|e| e.to_string())
                .and_then(|c| c.validate().map(|()| c).map_err(|e| e.to_string()))
                .map(StreamFrame::Console),
            StreamKind::File => serde_json::from_str::<FileChunk>(data)
                .map_err(|e| e.to_string())
                .and_then(|c| c.validate().map(|()| c).map_err(|e| e.to_string()))
                .map(StreamFrame::File),
            // Refused outright (unknown container, RATE_LIMITED) the agent answers with an error
            // reply, as for a deploy: the stream's end, with its code.
            StreamKind::Update => {
                serde_json::from_str::<zedops_protocol::ContainerUpdateFrame>(data)
                    .or_else(|e| {
                        serde_json::from_str::<ErrorReply>(data)
                            .map(|r| zedops_protocol::ContainerUpdateFrame {
                                end: Some(zedops_protocol::StreamEnd {
                                    error_code: Some(r.error_code),
                                    reason: r.error,
                                }),
                                ..Default::default()
                            })
                            .map_err(|_| e)
                    })
                    .map_err(|e| e.to_string())
                    .and_then(|c| c.validate().map(|()| c).map_err(|e| e.to_string()))
                    .map(|c| StreamFrame::Update(Box::new(c)))
            }
        };
        let charge = |bytes: usize| {
            self.shared.bytes.fetch_add(bytes, Ordering::Relaxed);
            self.agent_bytes.fetch_add(bytes, Ordering::Relaxed);
            Charge {
                bytes,
                stream: self.shared.bytes.clone(),
                agent: self.agent_bytes.clone(),
            }
        };
        let frame = match decoded {
            Ok(frame) if frame.is_end() => {
                self.finish(Ok((frame, charge(data.len()))));
                return;
            }
            Ok(frame) => frame,
            Err(err) => {
                self.finish(Err(err));
                return;
            }
        };
        let over_budget = self.shared.bytes.load(Ordering::Relaxed) + data.len() > STREAM_BYTES
            || self.agent_bytes.load(Ordering::Relaxed) + data.len() > AGENT_STREAM_BYTES;
        if over_budget && self.kind.lossless() {
            // Within its credit an agent never gets here (a window is at most 1 MiB).
            self.finish(Err("the agent sent beyond the client's window".into()));
            return;
        }
        if over_budget {
            self.shared
                .dropped
                .fetch_add(frame.lines(), Ordering::Relaxed);
            return;
        }
        let charged = charge(data.len());
        if let Err(
            mpsc::error::TrySendError::Full((frame, _))
            | mpsc::error::TrySendError::Closed((frame, _)),
        ) = self.tx.try_send((frame, charged))
        {
            if self.kind.lossless() {
                self.finish(Err("the agent sent beyond the client's window".into()));
                return;
            }
            self.shared
                .dropped
                .fetch_add(frame.lines(), Ordering::Relaxed);
        }
    }

    fn finish(&self, last: Result<(StreamFrame, Charge), String>) {
        if self.shared.finished.swap(true, Ordering::Relaxed) {
            return;
        }
        if let Ok((frame, _)) = &last {
            *self.shared.end_code.lock().expect("end code lock") = frame.end_code();
        }
        *self.shared.last.lock().expect("last lock") = Some(last);
        self.shared.ended.notify_one();
    }
}

/// A slot among the streams one user may have open at once, given back when dropped.
pub struct UserStreamSlot {
    user: String,
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for UserStreamSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().expect("user streams lock");
        if let Some(n) = counts.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.user);
            }
        }
    }
}

/// One client connection's queue of container pushes, filled by [`Hub::push_event`] with what
/// its subscription wants and bounded in frames and bytes: a client that does not read loses
/// its oldest pushes (and is told), never holding more than [`EVENT_QUEUE_BYTES`].
struct EventQueue {
    watching: watch::Receiver<Subscription>,
    state: Mutex<EventQueueState>,
    ready: Notify,
}

#[derive(Default)]
struct EventQueueState {
    frames: VecDeque<Pushed>,
    bytes: usize,
    missed: u64,
}

/// Receives the container pushes of one client connection; unregisters when dropped.
pub struct EventReceiver {
    id: u64,
    queue: Arc<EventQueue>,
    registry: Arc<Mutex<HashMap<u64, Arc<EventQueue>>>>,
}

impl EventReceiver {
    /// The next push, or `Lagged(n)` once when `n` pushes were dropped because this connection
    /// fell behind (as a broadcast receiver reports it).
    pub async fn recv(&mut self) -> Result<Pushed, broadcast::error::RecvError> {
        loop {
            let ready = self.queue.ready.notified();
            {
                let mut state = self.queue.state.lock().expect("event queue lock");
                if state.missed > 0 {
                    let missed = std::mem::take(&mut state.missed);
                    return Err(broadcast::error::RecvError::Lagged(missed));
                }
                if let Some(pushed) = state.frames.pop_front() {
                    state.bytes -= pushed.frame.len();
                    return Ok(pushed);
                }
            }
            ready.await;
        }
    }
}

impl Drop for EventReceiver {
    fn drop(&mut self) {
        self.registry
            .lock()
            .expect("event registry lock")
            .remove(&self.id);
    }
}

/// A pre-encoded `container.event` or `container.sync` frame and the agent it is about.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub agent_id: Arc<str>,
    pub frame: Arc<str>,
}

/// A connected agent, as the routing side sees it.
pub struct AgentLink {
    /// Distinguishes this connection from a newer one of the same agent.
    pub conn_id: u64,
    pub id: String,
    pub name: String,
    /// Frames to write to the agent's socket.
    pub tx: mpsc::Sender<String>,
    /// Requests sent to this agent, by relay inbox, waiting for the agent's answer (its raw data).
    pub pending: Mutex<HashMap<String, oneshot::Sender<String>>>,
    /// Streamed answers (logs, stats) in progress, by relay inbox.
    pub streams: Mutex<HashMap<String, Arc<StreamSink>>>,
    /// Bytes of this agent's stream frames the relay holds (see [`AGENT_STREAM_BYTES`]).
    stream_bytes: Arc<AtomicUsize>,
    /// Streams this agent may have open at once.
    stream_limit: usize,
    /// Unix seconds of the last frame from the agent.
    pub last_seen: AtomicI64,
    /// The protocol version the agent said in its hello: subjects newer than it are refused
    /// at the relay (`UNSUPPORTED`) instead of being sent.
    pub protocol_version: std::sync::atomic::AtomicU32,
    /// Closes the connection when sent (a newer connection of the same agent replaced it).
    pub close: Mutex<Option<oneshot::Sender<()>>>,
    /// Requests in flight to this agent, from all clients together.
    in_flight: Arc<Semaphore>,
    in_flight_limit: usize,
    /// Wall-clock milliseconds when this connection was accepted: of two relays holding the
    /// same agent, the later connection wins (see [`crate::cluster`]).
    pub connected_ms: i64,
    /// A stand-in for an agent held by another relay of the cluster: its frames go over NATS.
    pub(crate) remote: bool,
    /// Answers this agent owes to requests that came from other relays, by relay inbox.
    pub(crate) forwards: Mutex<HashMap<String, crate::peer_link::Forward>>,
}

/// A fresh relay inbox for a request to an agent: this process's random prefix and a counter.
/// The prefix keeps inboxes apart across the relays of a cluster (a stand-in's requests meet the
/// holder's own in its maps); the counter spares the routing path a random number, a system call
/// per request (`getrandom`, 3 % of the relay's time routing `container.list`: BENCHMARKS.md).
fn new_inbox() -> String {
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX
        .get_or_init(|| format!("{}{}", subject::INBOX_PREFIX, uuid::Uuid::new_v4().simple()));
    format!("{prefix}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Why a routed request got no answer from the agent.
#[derive(Debug)]
pub enum RouteError {
    Offline,
    Timeout(Duration),
    /// The agent already has this many requests in flight.
    Busy(usize),
    /// The agent already has this many streams open.
    StreamsBusy(usize),
}

impl RouteError {
    pub fn to_reply(&self, agent_name: &str) -> ErrorReply {
        match self {
            RouteError::Offline => ErrorReply::new(
                ErrorCode::AgentOffline,
                format!(
                    "agent {agent_name} is not connected to the relay; check that zedops-agent runs on that server"
                ),
            ),
            RouteError::Timeout(after) => ErrorReply::new(
                ErrorCode::Timeout,
                format!(
                    "agent {agent_name} did not answer within {} s; it may be overloaded or its Docker engine hung",
                    after.as_secs()
                ),
            ),
            RouteError::Busy(limit) => rate_limited(
                format!(
                    "agent {agent_name} already has {limit} requests in flight; retry when some have been answered"
                ),
                1,
            ),
            RouteError::StreamsBusy(limit) => rate_limited(
                format!(
                    "agent {agent_name} already streams {limit} logs or stats at once; close one (or wait for one to end) and retry"
                ),
                5,
            ),
        }
    }
}

/// Why a client connection is being closed by the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kick {
    /// The device session was revoked (or its user disabled): it may not reconnect.
    Revoked,
    /// The user's role changed: reconnect to authenticate with the new one.
    RoleChanged,
}

/// Closers of one device session's live connections, by connection id.
type SessionConnections = HashMap<u64, oneshot::Sender<Kick>>;

/// Shared live state.
pub struct Hub {
    agents: RwLock<HashMap<String, Arc<AgentLink>>>,
    /// Live client connections by device session id, so revoking a session closes them.
    clients: Mutex<HashMap<String, SessionConnections>>,
    next_conn: AtomicU64,
    status: broadcast::Sender<Arc<str>>,
    /// Each client connection's queue of container pushes, by an id of its own.
    event_queues: Arc<Mutex<HashMap<u64, Arc<EventQueue>>>>,
    /// Requests each agent may have in flight.
    agent_in_flight: usize,
    /// Streams each agent, and each user, may have open at once.
    agent_streams: usize,
    user_streams: usize,
    /// Open streams by user name.
    streams_by_user: Arc<Mutex<HashMap<String, usize>>>,
    /// Open console sessions (exec, attach) by user name.
    pub consoles: crate::console_limits::ConsoleCounts,
    /// Each agent's latest `updates.state` (see [`crate::updates`], which serves them).
    pub(crate) updates: crate::update_states::UpdateStates,
    /// The other relays of a cluster, when this relay joined one (`--nats`).
    cluster: std::sync::OnceLock<Arc<dyn Peers>>,
    /// Whether the relay is draining before it stops, and the client requests in flight.
    pub drain: crate::draining::Drain,
}

/// What the hub tells the cluster and asks of it. Defined here, by the side that calls it, so
/// the hub stays below the cluster: the cluster implements it and registers with
/// [`Hub::set_cluster`].
pub(crate) trait Peers: Send + Sync {
    /// An agent connected to this relay.
    fn connected(&self, link: &Arc<AgentLink>);
    /// An agent's connection to this relay ended; true when another relay holds it now (so
    /// nobody is told it is offline).
    fn disconnected(&self, link: &Arc<AgentLink>, current: bool) -> bool;
    fn kicked_agent(&self, id: &str);
    fn kicked_session(&self, id: &str, why: Kick);
    /// A login on this relay succeeded (`ok`) or failed, for the other relays' login limits.
    fn login(&self, user: &str, address: std::net::IpAddr, ok: bool);
    fn event(&self, agent_id: &str, frame: &str);
    /// A stand-in for an agent another relay holds.
    fn remote_agent(&self, id_or_name: &str) -> Option<Arc<AgentLink>>;
    /// Agents other relays hold, with their last-seen times.
    fn remote_online(&self) -> HashMap<String, i64>;
    /// Whether the connection to NATS is up (for `/readyz`).
    fn nats_connected(&self) -> bool;
    /// Resolves once what this relay queued for the others reached NATS.
    fn flushed(&self) -> tokio::sync::oneshot::Receiver<()>;
    /// The agent left a relay that is draining (a rolling upgrade) moments ago, so it is on its
    /// way to another relay.
    fn moving(&self, agent_id: &str) -> bool;
    /// This relay drains: tells the others its agents are moving (see [`Peers::moving`]);
    /// resolves once that reached NATS.
    fn leaving(&self) -> tokio::sync::oneshot::Receiver<()>;
}

impl Default for Hub {
    fn default() -> Self {
        Self::new(crate::rate_limit::AGENT_IN_FLIGHT)
    }
}

impl Hub {
    /// A hub whose agents each take at most `agent_in_flight` requests at once.
    pub fn new(agent_in_flight: usize) -> Self {
        Self {
            agents: RwLock::default(),
            clients: Mutex::default(),
            next_conn: AtomicU64::new(1),
            status: broadcast::channel(STATUS_QUEUE).0,
            event_queues: Arc::default(),
            agent_in_flight: agent_in_flight.max(1),
            agent_streams: zedops_protocol::MAX_STREAMS_PER_AGENT,
            user_streams: zedops_protocol::MAX_STREAMS_PER_USER,
            streams_by_user: Arc::default(),
            consoles: Default::default(),
            updates: Default::default(),
            cluster: Default::default(),
            drain: Default::default(),
        }
    }

    /// Joins this hub to a cluster: agents held by other relays become reachable through it,
    /// and this relay's agents, events and revocations are announced to the others.
    pub(crate) fn set_cluster(&self, peers: Arc<dyn Peers>) {
        let _ = self.cluster.set(peers);
    }

    /// Waits, at most `within`, until what this relay queued for the other relays of its
    /// cluster (answers, agents that left) reached NATS: a stopping relay's last words.
    pub(crate) async fn flush_cluster(&self, within: Duration) {
        if let Some(peers) = self.cluster.get() {
            let _ = tokio::time::timeout(within, peers.flushed()).await;
        }
    }

    /// Tells the other relays of the cluster that this relay's agents are moving (it drains),
    /// waiting at most `within` for NATS to take it.
    pub(crate) async fn agents_moving(&self, within: Duration) {
        if let Some(peers) = self.cluster.get() {
            let _ = tokio::time::timeout(within, peers.leaving()).await;
        }
    }

    /// Whether agent `id` is moving between relays of the cluster (see [`Peers::moving`]).
    pub(crate) fn agent_moving(&self, id: &str) -> bool {
        self.cluster.get().is_some_and(|peers| peers.moving(id))
    }

    pub(crate) fn cluster(&self) -> Option<&Arc<dyn Peers>> {
        self.cluster.get()
    }

    /// False while this relay is in a cluster and cut off from NATS (as `/readyz` says).
    pub fn cluster_ready(&self) -> bool {
        self.cluster().is_none_or(|c| c.nats_connected())
    }

    /// Limits a stand-in for a remote agent gets (see [`AgentLink::remote`]).
    pub(crate) fn link_limits(&self) -> (usize, usize) {
        (self.agent_in_flight, self.agent_streams)
    }

    /// Sets how many streams (logs, stats) one agent and one user may have open at once.
    pub fn with_stream_limits(mut self, per_agent: usize, per_user: usize) -> Self {
        self.agent_streams = per_agent.max(1);
        self.user_streams = per_user.max(1);
        self
    }

    /// Takes one of the streams `user` may have open, or says how many that is.
    pub fn user_stream_slot(&self, user: &str) -> Result<UserStreamSlot, ErrorReply> {
        let mut counts = self.streams_by_user.lock().expect("user streams lock");
        let open = counts.entry(user.to_string()).or_default();
        if *open >= self.user_streams {
            let open = self.user_streams;
            return Err(rate_limited(
                format!("you already have {open} logs or stats streams open; close one and retry"),
                5,
            ));
        }
        *open += 1;
        Ok(UserStreamSlot {
            user: user.to_string(),
            counts: self.streams_by_user.clone(),
        })
    }

    /// Registers a newly authenticated agent connection, replacing (and closing) an older
    /// connection of the same agent. Returns the link and the receiver of its outgoing frames.
    pub fn connect_agent(
        &self,
        id: &str,
        name: &str,
    ) -> (
        Arc<AgentLink>,
        mpsc::Receiver<String>,
        oneshot::Receiver<()>,
    ) {
        let (tx, rx) = mpsc::channel(AGENT_QUEUE);
        let (close_tx, close_rx) = oneshot::channel();
        let link = Arc::new(AgentLink {
            conn_id: self.next_conn.fetch_add(1, Ordering::Relaxed),
            close: Mutex::new(Some(close_tx)),
            connected_ms: crate::peer_link::now_ms(),
            ..AgentLink::new(id, name, tx, self.agent_in_flight, self.agent_streams)
        });
        let old = self
            .agents
            .write()
            .expect("hub lock")
            .insert(id.to_string(), link.clone());
        if let Some(old) = old
            && let Some(close) = old.close.lock().expect("close lock").take()
        {
            let _ = close.send(());
        }
        self.push_status(&link, true);
        if let Some(cluster) = self.cluster() {
            cluster.connected(&link);
        }
        (link, rx, close_rx)
    }

    /// Removes an agent connection that ended. Requests still waiting on it are answered
    /// `AGENT_OFFLINE` at once (their senders are dropped).
    pub fn disconnect_agent(&self, link: &Arc<AgentLink>) {
        let mut agents = self.agents.write().expect("hub lock");
        let current = agents
            .get(&link.id)
            .is_some_and(|l| l.conn_id == link.conn_id);
        if current {
            agents.remove(&link.id);
        }
        drop(agents);
        link.pending.lock().expect("pending lock").clear();
        // Dropping the sinks ends the streams; their readers tell the clients the agent left.
        link.streams.lock().expect("streams lock").clear();
        // Relays waiting on this connection's answers learn at once that it is gone.
        let forwards = std::mem::take(&mut *link.forwards.lock().expect("forwards lock"));
        for (inbox, forward) in forwards {
            forward.gone(&link.id, &inbox);
        }
        // An agent that moved to another relay is not offline: that relay announced it.
        let held_elsewhere = self
            .cluster()
            .is_some_and(|cluster| cluster.disconnected(link, current));
        if current && !held_elsewhere {
            self.push_status(link, false);
        }
    }

    /// Closes this relay's connection of agent `id` when it is older than `newer_ms`: the
    /// agent connected to another relay since (the old socket may not have noticed yet).
    pub(crate) fn close_replaced(&self, id: &str, newer_ms: i64) -> bool {
        if let Some(link) = self.agents.read().expect("hub lock").get(id)
            && link.connected_ms <= newer_ms
            && let Some(close) = link.close.lock().expect("close lock").take()
        {
            let _ = close.send(());
            return true;
        }
        false
    }

    /// The connected agent by exact id on this relay only (never a stand-in for a remote one).
    pub(crate) fn local_agent(&self, id: &str) -> Option<Arc<AgentLink>> {
        self.agents.read().expect("hub lock").get(id).cloned()
    }

    /// Ids of the agents connected to this relay.
    pub(crate) fn local_agent_ids(&self) -> Vec<(String, String, i64)> {
        self.agents
            .read()
            .expect("hub lock")
            .values()
            .map(|l| (l.id.clone(), l.name.clone(), l.connected_ms))
            .collect()
    }

    /// Closes the live connection of an agent, if any (after revocation), on whichever relay
    /// of the cluster holds it.
    pub fn kick_agent(&self, id: &str) {
        if let Some(cluster) = self.cluster() {
            cluster.kicked_agent(id);
        }
        self.kick_agent_here(id);
    }

    /// [`kick_agent`](Self::kick_agent) on this relay only (told by another relay).
    pub(crate) fn kick_agent_here(&self, id: &str) {
        // A revoked agent's update state goes with it.
        self.updates.forget(id);
        if let Some(link) = self.agents.read().expect("hub lock").get(id)
            && let Some(close) = link.close.lock().expect("close lock").take()
        {
            let _ = close.send(());
        }
    }

    /// Registers a client connection of a device session. The receiver fires when the session
    /// is revoked or its user's role changes.
    pub fn connect_client(&self, session_id: &str) -> (u64, oneshot::Receiver<Kick>) {
        let conn_id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.clients
            .lock()
            .expect("clients lock")
            .entry(session_id.to_string())
            .or_default()
            .insert(conn_id, tx);
        (conn_id, rx)
    }

    /// Device sessions with at least one live connection.
    pub fn live_sessions(&self) -> Vec<String> {
        self.clients
            .lock()
            .expect("clients lock")
            .keys()
            .cloned()
            .collect()
    }

    /// Forgets a client connection that ended.
    pub fn disconnect_client(&self, session_id: &str, conn_id: u64) {
        let mut clients = self.clients.lock().expect("clients lock");
        if let Some(conns) = clients.get_mut(session_id) {
            conns.remove(&conn_id);
            if conns.is_empty() {
                clients.remove(session_id);
            }
        }
    }

    /// Closes every live connection of a device session (after revocation).
    pub fn kick_session(&self, session_id: &str) {
        self.kick_session_because(session_id, Kick::Revoked);
    }

    /// Closes every live connection of a device session, telling each why, on every relay of
    /// the cluster. Returns how many were on this relay.
    pub fn kick_session_because(&self, session_id: &str, why: Kick) -> usize {
        if let Some(cluster) = self.cluster() {
            cluster.kicked_session(session_id, why);
        }
        self.kick_session_here(session_id, why)
    }

    /// Tells the other relays of the cluster how a login here ended, so their brute-force limits
    /// count it too (without a cluster, nothing to do).
    pub fn login_outcome(&self, user: &str, address: std::net::IpAddr, ok: bool) {
        if let Some(cluster) = self.cluster() {
            cluster.login(user, address, ok);
        }
    }

    /// [`kick_session_because`](Self::kick_session_because) on this relay only.
    pub(crate) fn kick_session_here(&self, session_id: &str, why: Kick) -> usize {
        let conns = self
            .clients
            .lock()
            .expect("clients lock")
            .remove(session_id)
            .unwrap_or_default();
        let count = conns.len();
        for (_, close) in conns {
            let _ = close.send(why);
        }
        count
    }

    /// The link of a connected agent, by id or name. Ids resolve exactly first; a reference
    /// shaped like an id is never matched against names, so an agent named like another's id
    /// (refused at enrolment, but possibly left in an old database) cannot take its requests
    /// while that agent is offline.
    /// In a cluster, an agent held by another relay is found too (a stand-in whose requests go
    /// over NATS to that relay).
    pub fn agent(&self, id_or_name: &str) -> Option<Arc<AgentLink>> {
        {
            let agents = self.agents.read().expect("hub lock");
            if let Some(link) = agents.get(id_or_name) {
                return Some(link.clone());
            }
            if !zedops_protocol::looks_like_agent_id(id_or_name)
                && let Some(link) = agents.values().find(|l| l.name == id_or_name)
            {
                return Some(link.clone());
            }
        }
        self.cluster()?.remote_agent(id_or_name)
    }

    /// Ids of connected agents with their last-seen times (in a cluster, on any relay).
    pub fn online(&self) -> HashMap<String, i64> {
        let mut online = self
            .cluster()
            .map(|c| c.remote_online())
            .unwrap_or_default();
        let agents = self.agents.read().expect("hub lock");
        online.extend(
            agents
                .iter()
                .map(|(id, l)| (id.clone(), l.last_seen.load(Ordering::Relaxed))),
        );
        online
    }

    /// Number of connected agents.
    pub fn online_count(&self) -> usize {
        self.agents.read().expect("hub lock").len()
    }

    /// Subscribes to status pushes (pre-encoded `agent.status` frames).
    pub fn subscribe_status(&self) -> broadcast::Receiver<Arc<str>> {
        self.status.subscribe()
    }

    /// Registers a client connection for container pushes; `watching` (its subscription)
    /// decides, when each push is made, whether it is queued for this connection.
    pub fn subscribe_events(&self, watching: watch::Receiver<Subscription>) -> EventReceiver {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let queue = Arc::new(EventQueue {
            watching,
            state: Mutex::default(),
            ready: Notify::new(),
        });
        self.event_queues
            .lock()
            .expect("event registry lock")
            .insert(id, queue.clone());
        EventReceiver {
            id,
            queue,
            registry: self.event_queues.clone(),
        }
    }

    /// Queues a container push for every connection that watches its agent; never waits for
    /// any of them. A connection over its frame or byte bound loses its oldest pushes.
    pub fn push_event(&self, agent_id: &str, frame: String) {
        if let Some(cluster) = self.cluster() {
            cluster.event(agent_id, &frame);
        }
        self.push_event_here(agent_id, frame);
    }

    /// [`push_event`](Self::push_event) to this relay's connections only (from another relay).
    pub(crate) fn push_event_here(&self, agent_id: &str, frame: String) {
        let pushed = Pushed {
            agent_id: agent_id.into(),
            frame: frame.into(),
        };
        let queues = self.event_queues.lock().expect("event registry lock");
        for queue in queues.values() {
            if !queue.watching.borrow().wants(agent_id) {
                continue;
            }
            let mut state = queue.state.lock().expect("event queue lock");
            state.bytes += pushed.frame.len();
            state.frames.push_back(pushed.clone());
            while state.frames.len() > EVENT_QUEUE
                || (state.bytes > EVENT_QUEUE_BYTES && state.frames.len() > 1)
            {
                let old = state.frames.pop_front().expect("not empty");
                state.bytes -= old.frame.len();
                state.missed += 1;
            }
            drop(state);
            queue.ready.notify_one();
        }
    }

    fn push_status(&self, link: &AgentLink, online: bool) {
        let status = AgentStatus {
            agent_id: link.id.clone().into(),
            name: link.name.clone(),
            online,
            last_seen: Some(crate::time::rfc3339(link.last_seen.load(Ordering::Relaxed))),
        };
        self.push_status_here(status);
    }

    /// Tells this relay's clients an agent's status (also one held by another relay).
    pub(crate) fn push_status_here(&self, status: AgentStatus) {
        // No subscribers is fine: nobody is watching.
        let _ = self
            .status
            .send(ClientPush::AgentStatus(status).to_frame(None).into());
    }
}

impl AgentLink {
    /// A stand-in for agent `id` held by another relay: frames queued on it are read from the
    /// returned receiver and sent over NATS (see [`crate::cluster`]); answers come back through
    /// [`answer`](Self::answer) as for a local agent, so routing, limits and streams are the same.
    pub(crate) fn remote(
        id: &str,
        name: &str,
        in_flight: usize,
        stream_limit: usize,
    ) -> (Arc<Self>, mpsc::Receiver<String>) {
        let (tx, rx) = mpsc::channel(AGENT_QUEUE);
        let link = Arc::new(AgentLink {
            remote: true,
            ..AgentLink::new(id, name, tx, in_flight, stream_limit)
        });
        (link, rx)
    }

    /// A link to agent `id` whose frames go to `tx`, nothing in flight yet, and no connection
    /// here (no close signal, connected at 0): [`remote`](Self::remote) marks it another
    /// relay's, [`Hub::connect_agent`] gives a local one its connection.
    fn new(
        id: &str,
        name: &str,
        tx: mpsc::Sender<String>,
        in_flight: usize,
        stream_limit: usize,
    ) -> Self {
        AgentLink {
            conn_id: 0,
            id: id.to_string(),
            name: name.to_string(),
            tx,
            pending: Mutex::default(),
            streams: Mutex::default(),
            stream_bytes: Arc::default(),
            stream_limit,
            last_seen: AtomicI64::new(now()),
            protocol_version: std::sync::atomic::AtomicU32::new(zedops_protocol::PROTOCOL_VERSION),
            close: Mutex::new(None),
            in_flight: Arc::new(Semaphore::new(in_flight)),
            in_flight_limit: in_flight,
            connected_ms: 0,
            remote: false,
            forwards: Mutex::default(),
        }
    }

    /// Gives up on whatever waits on `inbox` (the agent is not reachable): a request is
    /// answered `AGENT_OFFLINE`, a stream ends as when its agent leaves.
    pub(crate) fn fail_inbox(&self, inbox: &str) {
        self.pending.lock().expect("pending lock").remove(inbox);
        self.streams.lock().expect("streams lock").remove(inbox);
    }

    /// Sends a request to this agent and waits for its answer (the raw `data` JSON).
    pub async fn request(
        &self,
        request: &AgentRequest,
        timeout: Duration,
    ) -> Result<String, RouteError> {
        // Held until the answer arrives or the request gives up.
        let _slot = self
            .in_flight
            .clone()
            .try_acquire_owned()
            .map_err(|_| RouteError::Busy(self.in_flight_limit))?;
        let inbox = new_inbox();
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .expect("pending lock")
            .insert(inbox.clone(), tx);
        let frame = request.to_frame(Some(&inbox));
        let outcome = tokio::time::timeout(timeout, async {
            self.tx.send(frame).await.map_err(|_| RouteError::Offline)?;
            rx.await.map_err(|_| RouteError::Offline)
        })
        .await;
        match outcome {
            Ok(answer) => answer,
            Err(_) => {
                self.pending.lock().expect("pending lock").remove(&inbox);
                Err(RouteError::Timeout(timeout))
            }
        }
    }

    /// Delivers an agent's answer to whoever waits on `inbox`. Returns false for an unknown or
    /// expired inbox.
    pub fn answer(&self, inbox: &str, data: &str) -> bool {
        if let Some(waiter) = self.pending.lock().expect("pending lock").remove(inbox) {
            return waiter.send(data.to_string()).is_ok();
        }
        let sink = self
            .streams
            .lock()
            .expect("streams lock")
            .get(inbox)
            .cloned();
        match sink {
            Some(sink) => {
                sink.deliver(data);
                true
            }
            None => self.forward_answer(inbox, data),
        }
    }

    /// An answer to a request another relay sent: passed on to that relay.
    fn forward_answer(&self, inbox: &str, data: &str) -> bool {
        let mut forwards = self.forwards.lock().expect("forwards lock");
        let Some(forward) = forwards.get(inbox) else {
            return false;
        };
        forward.answer(&self.id, inbox, data);
        if forward.once {
            forwards.remove(inbox);
        }
        true
    }

    /// Sends a request whose answer is a stream; its frames arrive decoded on the receiver,
    /// which ends when the agent disconnects, and its last frame in the shared slot. Returns
    /// the relay inbox, to cancel or close it.
    pub async fn open_stream(
        &self,
        request: &AgentRequest,
        kind: StreamKind,
    ) -> Result<
        (
            String,
            mpsc::Receiver<(StreamFrame, Charge)>,
            Arc<StreamShared>,
        ),
        RouteError,
    > {
        let inbox = new_inbox();
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let shared = Arc::new(StreamShared::default());
        let sink = Arc::new(StreamSink {
            kind,
            tx,
            shared: shared.clone(),
            agent_bytes: self.stream_bytes.clone(),
        });
        {
            let mut streams = self.streams.lock().expect("streams lock");
            if streams.len() >= self.stream_limit {
                return Err(RouteError::StreamsBusy(self.stream_limit));
            }
            streams.insert(inbox.clone(), sink);
        }
        let frame = request.to_frame(Some(&inbox));
        if self.tx.send(frame).await.is_err() {
            self.close_stream(&inbox);
            return Err(RouteError::Offline);
        }
        Ok((inbox, rx, shared))
    }

    /// Asks the agent to stop the stream on `inbox` (its last frame still comes).
    pub fn cancel_stream(&self, inbox: &str) {
        let frame = AgentRequest::StreamCancel(zedops_protocol::StreamCancel {
            inbox: inbox.to_string(),
        })
        .to_frame(None);
        if self.tx.try_send(frame).is_err() {
            tracing::debug!(inbox = ?inbox, "could not queue a stream cancel for the agent");
        }
    }

    /// Hands `frame` (a `stream.input`) to the agent, waiting while its queue is full: input
    /// bytes may not be dropped, and their credit bounds how much can wait.
    pub async fn send_input(&self, frame: String) -> bool {
        self.tx.send(frame).await.is_ok()
    }

    /// Forgets a stream that ended.
    pub fn close_stream(&self, inbox: &str) {
        self.streams.lock().expect("streams lock").remove(inbox);
        if self.remote {
            // The relay holding the agent forgets where to send this stream's frames.
            let _ = self
                .tx
                .try_send(format!("{}{inbox}", crate::peer_link::CLOSE_MARK));
        }
    }

    /// Marks the agent as just heard from.
    pub fn touch(&self) {
        self.last_seen.store(now(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logs() -> AgentRequest {
        AgentRequest::ContainerLogs(zedops_protocol::LogsRequest {
            agent_id: "a".into(),
            container_id: "web".into(),
            tail: None,
            follow: true,
            timestamps: false,
        })
    }

    fn chunk(lines: usize, line_bytes: usize) -> String {
        let line = serde_json::json!({"stream": "stdout", "text": "z".repeat(line_bytes)});
        serde_json::json!({ "lines": vec![line; lines] }).to_string()
    }

    #[tokio::test]
    async fn a_stream_holds_its_byte_budget_and_always_its_last_frame() {
        let hub = Hub::default();
        let (link, _outbound, _closed) = hub.connect_agent("a", "agent");
        let (inbox, mut rx, shared) = link.open_stream(&logs(), StreamKind::Logs).await.unwrap();
        // Nobody reads: 100 chunks of 57 lines of 16 KiB (about 91 MB).
        let big = chunk(57, 16 * 1024);
        for _ in 0..100 {
            assert!(link.answer(&inbox, &big));
        }
        let held = shared.bytes.load(Ordering::Relaxed);
        assert!(held <= STREAM_BYTES, "{held} bytes held");
        assert!(held > STREAM_BYTES - big.len());
        let queued = held / big.len();
        assert_eq!(
            shared.dropped.load(Ordering::Relaxed),
            ((100 - queued) * 57) as u64
        );
        // The last frame is decided on the decoded chunk (a line's text saying `"end":` is
        // not one), and it has its own slot however full the queue is.
        let tricky = serde_json::json!({"lines": [{"stream": "stdout", "text": "\"end\":"}]});
        assert!(link.answer(&inbox, &tricky.to_string()));
        assert!(shared.take_last().is_none());
        link.answer(&inbox, r#"{"end": {"errorCode": null, "reason": "done"}}"#);
        let (last, _charge) = shared.take_last().expect("the end").expect("readable");
        assert!(last.is_end());
        // Frames after the end are ignored; unread frames give their bytes back when dropped.
        assert!(link.answer(&inbox, &big));
        while rx.try_recv().is_ok() {}
        drop(_charge);
        assert_eq!(shared.bytes.load(Ordering::Relaxed), 0);
        assert_eq!(link.stream_bytes.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn an_agent_holds_its_byte_budget_over_all_its_streams_and_its_stream_cap() {
        let hub = Hub::default().with_stream_limits(6, 16);
        let (link, _outbound, _closed) = hub.connect_agent("a", "agent");
        let big = chunk(57, 16 * 1024);
        let mut streams = Vec::new();
        for _ in 0..6 {
            let opened = link.open_stream(&logs(), StreamKind::Logs).await.unwrap();
            for _ in 0..20 {
                link.answer(&opened.0, &big);
            }
            streams.push(opened);
        }
        assert!(link.stream_bytes.load(Ordering::Relaxed) <= AGENT_STREAM_BYTES);
        let Err(err) = link.open_stream(&logs(), StreamKind::Logs).await else {
            panic!("a 7th stream was opened");
        };
        assert!(matches!(err, RouteError::StreamsBusy(6)), "{err:?}");
        let reply = err.to_reply("agent");
        assert_eq!(reply.error_code, ErrorCode::RateLimited);
        link.close_stream(&streams[0].0);
        assert!(link.open_stream(&logs(), StreamKind::Logs).await.is_ok());
    }

    #[tokio::test]
    async fn a_stalled_client_holds_a_bounded_number_of_push_bytes() {
        let hub = Hub::default();
        let (watch_tx, watch_rx) = watch::channel(Subscription::Fleet);
        let mut stalled = hub.subscribe_events(watch_rx);
        let (_off_tx, off_rx) = watch::channel(Subscription::Off);
        let off = hub.subscribe_events(off_rx);
        let frame = "p".repeat(250 * 1024);
        for _ in 0..200 {
            hub.push_event("a", frame.clone());
        }
        let bytes = stalled.queue.state.lock().unwrap().bytes;
        assert!(bytes <= EVENT_QUEUE_BYTES, "{bytes}");
        assert_eq!(off.queue.state.lock().unwrap().frames.len(), 0);
        let kept = EVENT_QUEUE_BYTES / frame.len();
        match stalled.recv().await {
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                assert_eq!(missed as usize, 200 - kept)
            }
            other => panic!("{other:?}"),
        }
        for _ in 0..kept {
            assert!(stalled.recv().await.is_ok());
        }
        // Unregistered when dropped.
        drop(stalled);
        drop(watch_tx);
        assert_eq!(hub.event_queues.lock().unwrap().len(), 1);
    }
}
