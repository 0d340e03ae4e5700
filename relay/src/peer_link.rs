//! What the hub shares with the cluster below it: where an answer for another relay goes, the
//! mark of a stand-in's close, and the clock that orders two connections of one agent.
//!
//! A leaf on purpose: the hub keeps these on its agent links, and the cluster (which sits above
//! the hub, since it needs the relay's state) fills them in. It imports only the drain's
//! counter, another leaf.

use std::sync::Arc;

/// Marks a frame on a stand-in's queue that is not for the agent: the stream on the inbox
/// after it ended, so the holding relay forgets it.
pub(crate) const CLOSE_MARK: &str = "\u{1}close:";

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Sends an agent's answer to the relay that asked for it. The cluster's outbox is the one
/// implementation; a trait so the hub can hold it without depending on the cluster.
pub(crate) trait AnswerOut: Send + Sync {
    /// An answer `data` for `inbox` on `relay`; `gone`: the agent left before answering.
    fn answer(&self, relay: &Arc<str>, agent_id: &str, inbox: &str, data: &str, gone: bool);
}

/// Where the answers to one request from another relay go.
pub(crate) struct Forward {
    /// The asking relay's id.
    pub relay: Arc<str>,
    /// A request with one answer (forgotten after it); a stream stays until closed.
    pub once: bool,
    pub(crate) out: Arc<dyn AnswerOut>,
    /// A request with one answer is in flight on this relay until answered: a draining relay
    /// waits for it (bounded) before it closes the agent's connection.
    pub(crate) _counted: Option<crate::draining::InFlight>,
}

impl Forward {
    pub fn answer(&self, agent_id: &str, inbox: &str, data: &str) {
        self.out.answer(&self.relay, agent_id, inbox, data, false);
    }

    /// The agent left before answering: the asking relay fails the request at once.
    pub fn gone(&self, agent_id: &str, inbox: &str) {
        self.out.answer(&self.relay, agent_id, inbox, "null", true);
    }
}
