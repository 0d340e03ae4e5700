//! Draining a relay before it stops (`SIGTERM`): it says it is not ready (`/readyz`), refuses
//! new connections and new requests (`UNAVAILABLE`, "reconnect to another relay"), lets the
//! requests in flight finish within a bound, then closes every connection with 1001 (going
//! away), which agents and clients answer by reconnecting — to another relay of the cluster.
//! The draining state the hub holds and the endpoints ask is in draining.rs (re-exported here).

use std::time::Duration;

pub use crate::draining::{DRAIN_TIMEOUT, DRAINING, Drain, InFlight, refuse_upgrade};
use crate::shutdown::ShutdownHandle;
use crate::state::AppState;

/// Drains the relay of `state` and then shuts it down through `handle`: returns once every
/// request in flight was answered or `timeout` passed (how many were left is logged).
pub async fn drain(state: &AppState, handle: &ShutdownHandle, timeout: Duration) {
    let drain = &state.hub.drain;
    drain.begin();
    tracing::info!(
        in_flight = drain.in_flight(),
        "draining: refusing new connections and requests, finishing those in flight"
    );
    if !drain.finished(timeout).await {
        tracing::warn!(
            left = drain.in_flight(),
            ?timeout,
            "requests still in flight at the end of the drain; closing anyway"
        );
    }
    handle.shutdown();
}
