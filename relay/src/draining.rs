//! Whether the relay is draining, and the requests still in flight: the state the hub
//! holds and the endpoints ask. A leaf, so the hub needs nothing above it; the drain itself
//! (which also stops the server) is the `drain` module, above the relay's state.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use zedops_protocol::{ErrorCode, ErrorReply};

/// How long a draining relay waits for requests in flight by default (`--drain-timeout`).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What an endpoint tells a peer that comes while the relay drains.
pub const DRAINING: &str =
    "this relay is shutting down; reconnect to another relay of the cluster (or retry in a moment)";

/// The relay's draining state and the requests in flight: its clients' and those other relays
/// of a cluster sent to its agents (streams excluded: a log follow never ends by itself, it is
/// cut by the close).
#[derive(Default)]
pub struct Drain {
    draining: AtomicBool,
    counter: Arc<Counter>,
}

#[derive(Default)]
struct Counter {
    in_flight: AtomicUsize,
    idle: Notify,
}

/// One request in flight, counted until dropped. Owned, so that a request another relay sent
/// can hold it until its agent answers.
pub struct InFlight(Arc<Counter>);

impl Drop for InFlight {
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
    pub fn count(&self) -> InFlight {
        self.counter.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.counter.clone())
    }

    pub fn in_flight(&self) -> usize {
        self.counter.in_flight.load(Ordering::Acquire)
    }

    /// From now on, new connections and requests are refused.
    pub fn begin(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Waits until no request is in flight, or `timeout` passed: true when they all finished.
    pub async fn finished(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, async {
            loop {
                let idle = self.counter.idle.notified();
                if self.in_flight() == 0 {
                    return;
                }
                idle.await;
            }
        })
        .await
        .is_ok()
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
