//! What relays say to each other over NATS: subjects, headers, the announcement payloads, and
//! the bounded outbox every relay publishes through (one task, so each stream stays in order).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_nats::HeaderMap;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

pub const PRESENCE: &str = "zedops.cluster.presence";
pub const SYNC: &str = "zedops.cluster.sync";
pub const ALIVE: &str = "zedops.cluster.alive";
pub const EVENT: &str = "zedops.cluster.event";
pub const KICK: &str = "zedops.cluster.kick";

/// Header naming the relay a frame comes from (its answers go to [`relay_subject`]).
pub const FROM: &str = "Zedops-Relay";
/// Header naming the agent an answer or event is about.
pub const AGENT: &str = "Zedops-Agent";
/// Header naming the relay inbox an answer is for.
pub const INBOX: &str = "Zedops-Inbox";
/// Header on an answer: the agent left before answering.
pub const GONE: &str = "Zedops-Gone";
/// Header on a frame to an agent: forget the stream on this inbox (no frame to send).
pub const CLOSE: &str = "Zedops-Close";

/// Acknowledgements of a frame to an agent.
pub const ACK_QUEUED: &[u8] = b"queued";
/// The relay that got the frame no longer holds the agent (it moved or left): not sent.
pub const ACK_NOT_HERE: &[u8] = b"not-here";

/// Frames queued for NATS before newer ones are dropped (and logged).
pub const OUTBOX: usize = 16 * 1024;

pub fn agent_subject(agent_id: &str) -> String {
    format!("zedops.agent.{agent_id}")
}

pub fn relay_subject(relay_id: &str) -> String {
    format!("zedops.relay.{relay_id}")
}

/// "This relay holds (or no longer holds) this agent".
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Presence {
    pub relay: String,
    pub agent: String,
    pub name: String,
    pub online: bool,
    /// When the relay accepted this connection (ms): the later connection of an agent wins.
    pub since_ms: i64,
    pub version: u32,
    pub last_seen: i64,
}

/// A relay's heartbeat and its request for everyone's agents.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RelayHello {
    pub relay: String,
}

/// Close the live connections of an agent or a device session.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Kick {
    pub relay: String,
    #[serde(default)]
    pub agent: Option<String>,
    #[serde(default)]
    pub session: Option<String>,
    /// For a session: its user's role changed (reconnect), rather than revoked.
    #[serde(default)]
    pub role_changed: bool,
}

/// One message to publish.
pub struct Outgoing {
    pub subject: String,
    pub headers: HeaderMap,
    pub payload: bytes::Bytes,
}

/// The queue to the publishing task; never waits (over [`OUTBOX`] the message is dropped).
#[derive(Clone)]
pub struct Outbox {
    pub(super) tx: mpsc::Sender<Outgoing>,
    pub(super) dropped: Arc<AtomicU64>,
}

impl Outbox {
    pub fn new() -> (Self, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(OUTBOX);
        (
            Self {
                tx,
                dropped: Arc::default(),
            },
            rx,
        )
    }

    pub fn send(&self, subject: String, headers: HeaderMap, payload: impl Into<bytes::Bytes>) {
        let message = Outgoing {
            subject,
            headers,
            payload: payload.into(),
        };
        if self.tx.try_send(message).is_err() {
            // Logged on the first drop and every 1,000th after, so a flood does not flood the log.
            let n = self.dropped.fetch_add(1, Ordering::Relaxed);
            if n.is_multiple_of(1000) {
                tracing::warn!(
                    dropped = n + 1,
                    "the cluster outbox is full (NATS slow or unreachable); messages dropped"
                );
            }
        }
    }

    pub fn json(&self, subject: &str, value: &impl Serialize) {
        let payload = serde_json::to_vec(value).expect("cluster messages serialise");
        self.send(subject.to_string(), HeaderMap::new(), payload);
    }

    /// An agent's answer for `inbox` to the relay that asked.
    pub fn answer(&self, relay: &str, agent_id: &str, inbox: &str, data: &str, gone: bool) {
        let mut headers = HeaderMap::new();
        headers.insert(AGENT, agent_id);
        headers.insert(INBOX, inbox);
        if gone {
            headers.insert(GONE, "1");
        }
        self.send(
            relay_subject(relay),
            headers,
            bytes::Bytes::copy_from_slice(data.as_bytes()),
        );
    }
}

/// The value of header `name`, if any.
pub fn header<'a>(headers: Option<&'a HeaderMap>, name: &str) -> Option<&'a str> {
    headers?.get(name).map(|v| v.as_str())
}
