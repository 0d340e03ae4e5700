//! Joins this relay to a cluster of relays over NATS (`--nats`): an agent held by another relay
//! is reached through a stand-in [`crate::hub::AgentLink`] whose frames go over NATS to that relay, and
//! agent status, container events and revocations are announced to every relay.
//!
//! Subjects (all under `zedops.`):
//! - `zedops.agent.<agent id>`: frames for an agent, in batches sent as NATS requests to the
//!   relay holding it (a queue group, so one relay takes each), several in flight, each taken
//!   only after the one before it and acknowledged with how many frames were queued to the
//!   agent; "no responders" means no relay holds it: `AGENT_OFFLINE` at once.
//! - `zedops.relay.<relay id>`: the agents' answers to the relay that asked, by relay inbox
//!   (several in one message when they wait together); also "are you there?" probes.
//! - `zedops.cluster.presence` / `.sync` / `.alive`: which relay holds which agent, a new
//!   relay's request for everyone's agents, and each relay's heartbeat.
//! - `zedops.cluster.event`, `zedops.cluster.kick`, `zedops.cluster.login`: container pushes,
//!   revocations, and logins' outcomes (for every relay's brute-force limits).

mod moving;
mod options;
mod peers;
mod wire;

use std::sync::Arc;

pub use options::ClusterOptions;
// Defined below the hub (which holds them) so the hub needs nothing from the cluster; named
// here too, where the cluster's code and readers look for them.
pub use crate::peer_link::now_ms;
pub(crate) use crate::peer_link::{CLOSE_MARK, Forward};

/// The cluster's outbox carries a forwarded request's answers back to the asking relay.
impl crate::peer_link::AnswerOut for wire::Outbox {
    fn answer(&self, relay: &Arc<str>, agent_id: &str, inbox: &str, data: &str, gone: bool) {
        wire::Outbox::answer(self, relay, agent_id, inbox, data, gone);
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
