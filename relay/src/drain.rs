//! Draining a relay before it stops (`SIGTERM`): it says it is not ready (`/readyz`), refuses
//! new connections and new requests (`UNAVAILABLE`, "reconnect to another relay"), lets the
//! requests in flight finish within a bound, then closes every connection with 1001 (going
//! away), which agents and clients answer by reconnecting — to another relay of the cluster.
//! In a cluster it first tells the other relays its agents are moving, so their requests wait
//! for the agents to come back elsewhere instead of failing.
//! The draining state the hub holds and the endpoints ask is in draining.rs (re-exported here).

use std::time::Duration;

pub use crate::draining::{DRAIN_TIMEOUT, DRAINING, Drain, InFlight, refuse_upgrade};
use crate::shutdown::ShutdownHandle;
use crate::state::AppState;

/// How long a draining relay waits for NATS to take its notice that its agents are moving.
const MOVING_NOTICE: Duration = Duration::from_secs(2);

/// Drains the relay of `state` and then shuts it down through `handle`: returns once every
/// request in flight was answered or `timeout` passed (how many were left is logged).
pub async fn drain(state: &AppState, handle: &ShutdownHandle, timeout: Duration) {
    let drain = &state.hub.drain;
    drain.begin();
    tracing::info!(
        in_flight = drain.in_flight(),
        "draining: refusing new connections and requests, finishing those in flight"
    );
    let deadline = tokio::time::Instant::now() + timeout;
    let mut finished = drain.finished(timeout).await;
    if state.hub.cluster().is_some() {
        // The other relays stop sending requests to this relay's agents and wait for them
        // to connect elsewhere (also when the bound is spent: their requests then wait rather
        // than fail); what they sent before that is finished too, within what is left.
        state.hub.agents_moving(MOVING_NOTICE).await;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        finished = drain.finished(left).await;
    }
    if !finished {
        tracing::warn!(
            left = drain.in_flight(),
            ?timeout,
            "requests still in flight at the end of the drain; closing anyway"
        );
    }
    handle.shutdown();
}
