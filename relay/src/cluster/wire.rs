//! What relays say to each other over NATS: subjects, headers, the announcement payloads, and
//! the bounded outbox every relay publishes through (one task, so each stream stays in order).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_nats::HeaderMap;
use bytes::BytesMut;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

pub const PRESENCE: &str = "zedops.cluster.presence";
pub const SYNC: &str = "zedops.cluster.sync";
pub const ALIVE: &str = "zedops.cluster.alive";
pub const EVENT: &str = "zedops.cluster.event";
pub const KICK: &str = "zedops.cluster.kick";
pub const LOGIN: &str = "zedops.cluster.login";

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
/// Header on a batch of frames for an agent (the payload is [`Batch`]-encoded): the batch's
/// number in the asking relay's sequence for that agent.
pub const BATCH: &str = "Zedops-Batch";
/// Header on a batch: take it only if the same relay connection took batch N of this sequence
/// whole (batches are pipelined; one that reached another relay, or was refused, must not be
/// overtaken by the next).
pub const AFTER: &str = "Zedops-After";
/// Header on a message to a relay carrying several answers ([`Batch`]-encoded, four parts
/// each: agent id, inbox, gone flag, data).
pub const ANSWERS: &str = "Zedops-Answers";
/// Header on a request to a relay's own subject: "are you there?" (no responders: it is gone).
pub const PROBE: &str = "Zedops-Probe";

/// Acknowledgements of a frame to an agent.
pub const ACK_QUEUED: &[u8] = b"queued";
/// The relay that got the frame no longer holds the agent (it moved or left): not sent.
pub const ACK_NOT_HERE: &[u8] = b"not-here";

/// Frames queued for NATS before newer ones are dropped (and logged).
pub const OUTBOX: usize = 16 * 1024;
/// Entries in one batch (frames for an agent, or answers for a relay).
pub const BATCH_ENTRIES: usize = 256;
/// Bytes in one batch, below NATS's 1 MiB default payload limit (one larger frame goes alone,
/// as it did before batches).
pub const BATCH_BYTES: usize = 256 * 1024;

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
    /// The relay reads batches ([`BATCH`], [`ANSWERS`]); one of an older version does not, and
    /// is sent one frame per request as before.
    #[serde(default)]
    pub batches: bool,
    /// Offline because its relay is draining before it stops: the agent is expected on another
    /// relay in a moment (absent, false, from a relay of an older version).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub moving: bool,
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

/// A login's outcome on one relay, so every relay's brute-force limits count it
/// ([`crate::login_limit`]): guesses spread over the relays meet the limits of one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Login {
    pub relay: String,
    pub user: String,
    pub address: std::net::IpAddr,
    /// The password was right (the pair's failures are forgotten), else a failure.
    pub ok: bool,
}

/// One message to publish.
pub enum Outgoing {
    /// Sent as it is.
    Message {
        subject: String,
        headers: HeaderMap,
        payload: bytes::Bytes,
    },
    /// An agent's answer for the relay that asked: sent together with the answers queued
    /// after it for the same relay, when that relay reads batches.
    Answer(Answer),
    /// Everything queued before it is published and flushed to NATS: then this is told.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// An agent's answer (or its departure) for a request another relay sent.
pub struct Answer {
    pub relay: Arc<str>,
    pub agent: String,
    pub inbox: String,
    pub data: bytes::Bytes,
    pub gone: bool,
}

impl Answer {
    /// As a message of its own (for a relay that does not read batches).
    pub fn single(self) -> (String, HeaderMap, bytes::Bytes) {
        let mut headers = HeaderMap::new();
        headers.insert(AGENT, self.agent.as_str());
        headers.insert(INBOX, self.inbox.as_str());
        if self.gone {
            headers.insert(GONE, "1");
        }
        (relay_subject(&self.relay), headers, self.data)
    }

    /// Appends it to an [`ANSWERS`] batch.
    pub fn put(&self, batch: &mut BytesMut) {
        put(batch, self.agent.as_bytes());
        put(batch, self.inbox.as_bytes());
        put(batch, if self.gone { b"1" } else { b"0" });
        put(batch, &self.data);
    }

    /// Bytes it adds to a batch (about).
    pub fn size(&self) -> usize {
        self.agent.len() + self.inbox.len() + self.data.len() + 32
    }
}

/// Relays known to read batches (they sent this relay one): their answers may be batched.
pub type Readers = Arc<Mutex<HashSet<Arc<str>>>>;

/// The queue to the publishing task; never waits (over [`OUTBOX`] the message is dropped).
#[derive(Clone)]
pub struct Outbox {
    pub(super) tx: mpsc::Sender<Outgoing>,
    pub(super) dropped: Arc<AtomicU64>,
    readers: Readers,
}

impl Outbox {
    pub fn new() -> (Self, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(OUTBOX);
        (
            Self {
                tx,
                dropped: Arc::default(),
                readers: Arc::default(),
            },
            rx,
        )
    }

    /// The relays known to read batches, shared with the publishing task.
    pub fn readers(&self) -> Readers {
        self.readers.clone()
    }

    /// `relay` sent a batch, so it reads them.
    pub fn reads_batches(&self, relay: &str) {
        let mut readers = self.readers.lock().expect("readers lock");
        if !readers.contains(relay) {
            // Relays are few (trusted peers of the cluster); bounded all the same.
            if readers.len() >= 1024 {
                readers.clear();
            }
            readers.insert(relay.into());
        }
    }

    fn queue(&self, message: Outgoing) {
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

    pub fn send(&self, subject: String, headers: HeaderMap, payload: impl Into<bytes::Bytes>) {
        self.queue(Outgoing::Message {
            subject,
            headers,
            payload: payload.into(),
        });
    }

    pub fn json(&self, subject: &str, value: &impl Serialize) {
        let payload = serde_json::to_vec(value).expect("cluster messages serialise");
        self.send(subject.to_string(), HeaderMap::new(), payload);
    }

    /// Resolves once everything queued so far reached NATS (a relay stopping sends its last
    /// answers and its agents' departures before it exits); at once when the queue is full.
    pub fn flushed(&self) -> tokio::sync::oneshot::Receiver<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.queue(Outgoing::Flush(tx));
        rx
    }

    /// An agent's answer for `inbox` to the relay that asked.
    pub fn answer(&self, relay: &str, agent_id: &str, inbox: &str, data: &str, gone: bool) {
        self.queue(Outgoing::Answer(Answer {
            relay: relay.into(),
            agent: agent_id.to_string(),
            inbox: inbox.to_string(),
            data: bytes::Bytes::copy_from_slice(data.as_bytes()),
            gone,
        }));
    }
}

/// Appends one part to a batch: its length in decimal, `:`, its bytes.
pub fn put(batch: &mut BytesMut, part: &[u8]) {
    use std::fmt::Write;
    let _ = write!(batch, "{}:", part.len());
    batch.extend_from_slice(part);
}

/// The parts of a batch, or `None` when it is malformed.
pub fn parts(mut batch: &[u8]) -> Option<Vec<&[u8]>> {
    let mut parts = Vec::new();
    while !batch.is_empty() {
        let colon = batch.iter().take(8).position(|b| *b == b':')?;
        let len: usize = std::str::from_utf8(&batch[..colon]).ok()?.parse().ok()?;
        let rest = &batch[colon + 1..];
        if rest.len() < len {
            return None;
        }
        parts.push(&rest[..len]);
        batch = &rest[len..];
    }
    Some(parts)
}

/// The value of header `name`, if any.
pub fn header<'a>(headers: Option<&'a HeaderMap>, name: &str) -> Option<&'a str> {
    headers?.get(name).map(|v| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_keep_their_parts_and_refuse_malformed_ones() {
        let mut batch = BytesMut::new();
        for part in [
            &b"{\"subject\":\"a\"}"[..],
            b"",
            b"with:colon\nand newline",
            &[0xff; 300],
        ] {
            put(&mut batch, part);
        }
        let parts = parts(&batch).expect("well-formed");
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[2], b"with:colon\nand newline");
        assert_eq!(parts[3], &[0xff; 300][..]);
        // Cut short, a length that is not a number, no colon within 8 bytes.
        assert!(super::parts(&batch[..batch.len() - 1]).is_none());
        assert!(super::parts(b"x:abc").is_none());
        assert!(super::parts(b"123456789:a").is_none());
        assert_eq!(super::parts(b"").map(|p| p.len()), Some(0));
    }
}
