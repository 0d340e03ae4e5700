//! The relay's live state: which agents are connected, the requests waiting for their answers,
//! and the stream of status pushes every client receives. Only in memory; the store keeps the rest.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{Semaphore, broadcast, mpsc, oneshot};
use zedops_protocol::{AgentStatus, Envelope, ErrorCode, ErrorReply, subject};

use crate::store::now;

/// Frames queued to one agent before senders wait; bounds memory for a slow agent.
pub const AGENT_QUEUE: usize = 256;
/// Status pushes buffered per client before the slowest starts losing the oldest.
pub const STATUS_QUEUE: usize = 1024;
/// Container events buffered per client before a slow one starts losing the oldest (and is
/// told to re-sync). An agent never waits for a client.
pub const EVENT_QUEUE: usize = 4096;

/// Frames of one streamed answer queued for its client before newer ones are dropped (and
/// counted), so a client that reads slowly never holds up its agent.
pub const STREAM_QUEUE: usize = 256;

/// Where an agent's frames for one streamed answer go.
pub struct StreamSink {
    tx: mpsc::Sender<String>,
    /// Lines dropped because the queue was full, reported to the client with the next frame.
    pub dropped: AtomicU64,
}

impl StreamSink {
    fn deliver(&self, data: String) {
        match self.tx.try_send(data) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(data)) => {
                // The last frame must arrive even when the client is slow; anything else is
                // dropped and counted.
                if data.contains(r#""end":"#) {
                    let tx = self.tx.clone();
                    tokio::spawn(async move {
                        let _ = tx.send(data).await;
                    });
                } else {
                    #[derive(serde::Deserialize)]
                    struct Lines {
                        #[serde(default)]
                        lines: Vec<serde::de::IgnoredAny>,
                    }
                    let lines = serde_json::from_str::<Lines>(&data).map_or(1, |l| l.lines.len());
                    self.dropped.fetch_add(lines as u64, Ordering::Relaxed);
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
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
    /// Streamed answers (logs) in progress, by relay inbox.
    pub streams: Mutex<HashMap<String, Arc<StreamSink>>>,
    /// Unix seconds of the last frame from the agent.
    pub last_seen: AtomicI64,
    /// Closes the connection when sent (a newer connection of the same agent replaced it).
    pub close: Mutex<Option<oneshot::Sender<()>>>,
    /// Requests in flight to this agent, from all clients together.
    in_flight: Arc<Semaphore>,
    in_flight_limit: usize,
}

/// Why a routed request got no answer from the agent.
#[derive(Debug)]
pub enum RouteError {
    Offline,
    Timeout(Duration),
    /// The agent already has this many requests in flight.
    Busy(usize),
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
            RouteError::Busy(limit) => {
                let mut reply = ErrorReply::new(
                    ErrorCode::RateLimited,
                    format!(
                        "agent {agent_name} already has {limit} requests in flight; retry when some have been answered"
                    ),
                );
                reply.retry_after_secs = Some(1);
                reply
            }
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
    events: broadcast::Sender<Pushed>,
    /// Requests each agent may have in flight.
    agent_in_flight: usize,
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
            events: broadcast::channel(EVENT_QUEUE).0,
            agent_in_flight: agent_in_flight.max(1),
        }
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
            id: id.to_string(),
            name: name.to_string(),
            tx,
            pending: Mutex::default(),
            streams: Mutex::default(),
            last_seen: AtomicI64::new(now()),
            close: Mutex::new(Some(close_tx)),
            in_flight: Arc::new(Semaphore::new(self.agent_in_flight)),
            in_flight_limit: self.agent_in_flight,
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
        if current {
            self.push_status(link, false);
        }
    }

    /// Closes the live connection of an agent, if any (after revocation).
    pub fn kick_agent(&self, id: &str) {
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

    /// Closes every live connection of a device session, telling each why. Returns how many.
    pub fn kick_session_because(&self, session_id: &str, why: Kick) -> usize {
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

    /// The link of a connected agent, by id or name.
    pub fn agent(&self, id_or_name: &str) -> Option<Arc<AgentLink>> {
        let agents = self.agents.read().expect("hub lock");
        if let Some(link) = agents.get(id_or_name) {
            return Some(link.clone());
        }
        agents.values().find(|l| l.name == id_or_name).cloned()
    }

    /// Ids of connected agents with their last-seen times.
    pub fn online(&self) -> HashMap<String, i64> {
        let agents = self.agents.read().expect("hub lock");
        agents
            .iter()
            .map(|(id, l)| (id.clone(), l.last_seen.load(Ordering::Relaxed)))
            .collect()
    }

    /// Number of connected agents.
    pub fn online_count(&self) -> usize {
        self.agents.read().expect("hub lock").len()
    }

    /// Subscribes to status pushes (pre-encoded `agent.status` frames).
    pub fn subscribe_status(&self) -> broadcast::Receiver<Arc<str>> {
        self.status.subscribe()
    }

    /// Subscribes to container pushes of every agent; each client filters by its subscription.
    pub fn subscribe_events(&self) -> broadcast::Receiver<Pushed> {
        self.events.subscribe()
    }

    /// Fans a container push out to the clients; never waits for any of them.
    pub fn push_event(&self, agent_id: &str, frame: String) {
        let _ = self.events.send(Pushed {
            agent_id: agent_id.into(),
            frame: frame.into(),
        });
    }

    fn push_status(&self, link: &AgentLink, online: bool) {
        let status = AgentStatus {
            agent_id: link.id.clone(),
            name: link.name.clone(),
            online,
            last_seen: Some(crate::time::rfc3339(link.last_seen.load(Ordering::Relaxed))),
        };
        // No subscribers is fine: nobody is watching.
        let _ = self.status.send(
            Envelope::new(subject::AGENT_STATUS, &status)
                .to_json()
                .into(),
        );
    }
}

impl AgentLink {
    /// Sends a request to this agent and waits for its answer (the raw `data` JSON).
    pub async fn request(
        &self,
        subject: &str,
        data: &str,
        timeout: Duration,
    ) -> Result<String, RouteError> {
        // Held until the answer arrives or the request gives up.
        let _slot = self
            .in_flight
            .clone()
            .try_acquire_owned()
            .map_err(|_| RouteError::Busy(self.in_flight_limit))?;
        let inbox = format!("{}{}", subject::INBOX_PREFIX, uuid::Uuid::new_v4().simple());
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .expect("pending lock")
            .insert(inbox.clone(), tx);
        let frame = format!(
            r#"{{"subject":{},"reply":"{inbox}","data":{data}}}"#,
            serde_json::to_string(subject).expect("strings serialise")
        );
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
    pub fn answer(&self, inbox: &str, data: String) -> bool {
        if let Some(waiter) = self.pending.lock().expect("pending lock").remove(inbox) {
            return waiter.send(data).is_ok();
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
            None => false,
        }
    }

    /// Sends a request whose answer is a stream; its frames arrive on the receiver, which ends
    /// when the agent disconnects. Returns the relay inbox, to cancel or close it.
    pub async fn open_stream(
        &self,
        subject: &str,
        data: &str,
    ) -> Result<(String, mpsc::Receiver<String>, Arc<StreamSink>), RouteError> {
        let inbox = format!("{}{}", subject::INBOX_PREFIX, uuid::Uuid::new_v4().simple());
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let sink = Arc::new(StreamSink {
            tx,
            dropped: AtomicU64::new(0),
        });
        self.streams
            .lock()
            .expect("streams lock")
            .insert(inbox.clone(), sink.clone());
        let frame = format!(
            r#"{{"subject":{},"reply":"{inbox}","data":{data}}}"#,
            serde_json::to_string(subject).expect("strings serialise")
        );
        if self.tx.send(frame).await.is_err() {
            self.close_stream(&inbox);
            return Err(RouteError::Offline);
        }
        Ok((inbox, rx, sink))
    }

    /// Asks the agent to stop the stream on `inbox` (its last frame still comes).
    pub fn cancel_stream(&self, inbox: &str) {
        let frame = Envelope::new(
            subject::STREAM_CANCEL,
            zedops_protocol::StreamCancel {
                inbox: inbox.to_string(),
            },
        )
        .to_json();
        if self.tx.try_send(frame).is_err() {
            tracing::debug!(%inbox, "could not queue a stream cancel for the agent");
        }
    }

    /// Forgets a stream that ended.
    pub fn close_stream(&self, inbox: &str) {
        self.streams.lock().expect("streams lock").remove(inbox);
    }

    /// Marks the agent as just heard from.
    pub fn touch(&self) {
        self.last_seen.store(now(), Ordering::Relaxed);
    }
}
