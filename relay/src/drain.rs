//! Draining a relay before it stops (`SIGTERM`): it says it is not ready (`/readyz`), refuses
//! new connections and new requests (`UNAVAILABLE`, "reconnect to another relay"), lets the
//! requests in flight finish within a bound, then closes every connection with 1001 (going
//! away), which agents and clients answer by reconnecting — to another relay of the cluster.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use zedops_protocol::{ErrorCode, ErrorReply};

use crate::server::ShutdownHandle;
use crate::state::AppState;

/// How long a draining relay waits for requests in flight by default (`--drain-timeout`).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What an endpoint tells a peer that comes while the relay drains.
pub const DRAINING: &str =
    "this relay is shutting down; reconnect to another relay of the cluster (or retry in a moment)";

/// The relay's draining state and its client requests in flight (streams excluded: a log
/// follow never ends by itself, it is cut by the close).
#[derive(Default)]
pub struct Drain {
    draining: AtomicBool,
    in_flight: AtomicUsize,
    idle: Notify,
}

/// One client request in flight, counted until dropped.
pub struct InFlight<'a>(&'a Drain);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Drain {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// What a new request is answered while the relay drains.
    pub fn refusal(&self) -> Option<ErrorReply> {
        self.is_draining()
            .then(|| ErrorReply::new(ErrorCode::Unavailable, DRAINING))
    }

    /// Counts a request in flight until the returned guard drops.
    pub fn count(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }
}

/// The answer to a WebSocket upgrade while the relay drains: 503 with the reason.
pub fn refuse_upgrade() -> axum::response::Response {
    use axum::response::IntoResponse;
    let reply = ErrorReply::new(ErrorCode::Unavailable, DRAINING);
    (
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        [(axum::http::header::RETRY_AFTER, "1")],
        axum::Json(reply),
    )
        .into_response()
}

/// Drains the relay of `state` and then shuts it down through `handle`: returns once every
/// request in flight was answered or `timeout` passed (how many were left is logged).
pub async fn drain(state: &AppState, handle: &ShutdownHandle, timeout: Duration) {
    let drain = &state.hub.drain;
    drain.draining.store(true, Ordering::Release);
    tracing::info!(
        in_flight = drain.in_flight(),
        "draining: refusing new connections and requests, finishing those in flight"
    );
    let finished = tokio::time::timeout(timeout, async {
        loop {
            let idle = drain.idle.notified();
            if drain.in_flight() == 0 {
                return;
            }
            idle.await;
        }
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            left = drain.in_flight(),
            ?timeout,
            "requests still in flight at the end of the drain; closing anyway"
        );
    }
    handle.shutdown();
}
