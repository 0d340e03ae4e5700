//! Joins this relay to a cluster of relays over NATS (`--nats`): an agent held by another relay
//! is reached through a stand-in [`crate::hub::AgentLink`] whose frames go over NATS to that relay, and
//! agent status, container events and revocations are announced to every relay.
//!
//! Subjects (all under `zedops.`):
//! - `zedops.agent.<agent id>`: frames for an agent, sent as NATS requests to the relay holding
//!   it (a queue group, so one relay takes each), acknowledged once queued to the agent; "no
//!   responders" means no relay holds it: `AGENT_OFFLINE` at once.
//! - `zedops.relay.<relay id>`: the agent's answers to the relay that asked, by relay inbox.
//! - `zedops.cluster.presence` / `.sync` / `.alive`: which relay holds which agent, a new
//!   relay's request for everyone's agents, and each relay's heartbeat.
//! - `zedops.cluster.event`, `zedops.cluster.kick`: container pushes and revocations.

mod options;
mod peers;
mod wire;

use std::sync::Arc;

pub use options::ClusterOptions;
pub(crate) use peers::Peers;

/// Marks a frame on a stand-in's queue that is not for the agent: the stream on the inbox
/// after it ended, so the holding relay forgets it.
pub(crate) const CLOSE_MARK: &str = "\u{1}close:";

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Where the answers to one request from another relay go.
pub(crate) struct Forward {
    /// The asking relay's id.
    pub relay: Arc<str>,
    /// A request with one answer (forgotten after it); a stream stays until closed.
    pub once: bool,
    pub(crate) out: wire::Outbox,
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

/// Joins `state`'s relay to the cluster: connects to NATS (retrying in the background when it
/// is not reachable yet) and starts the tasks that serve the other relays.
pub async fn join(
    state: &Arc<crate::state::AppState>,
    options: &ClusterOptions,
) -> anyhow::Result<()> {
    let cluster = peers::Cluster::connect(state, options).await?;
    state.hub.set_cluster(cluster);
    Ok(())
}

/// Whether answers to a request of `kind` keep coming until the stream ends (the asking relay
/// then closes it); any other request's forward is forgotten after its first answer.
pub(crate) fn is_stream(kind: zedops_protocol::AgentRequestKind) -> bool {
    use zedops_protocol::AgentRequestKind as K;
    // Not exhaustive on purpose: other helpers add subjects; a new streamed subject must be
    // added here (its forward would otherwise end after the first frame).
    matches!(
        kind,
        K::ContainerLogs
            | K::ContainerStats
            | K::ContainerCreate
            | K::ImagePull
            | K::ContainerExec
            | K::ContainerAttach
            | K::FileGet
            | K::FilePut
            | K::ContainerUpdate
    )
}
