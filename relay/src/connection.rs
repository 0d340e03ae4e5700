//! What one client connection carries from request to request: its live-state subscription and
//! its open streams.

use tokio::sync::watch;

use crate::streams::ClientStreams;
use crate::subscription::Subscription;

pub struct ClientConn {
    /// Which agents' container events reach this connection.
    pub watching: watch::Sender<Subscription>,
    pub streams: ClientStreams,
}

impl Default for ClientConn {
    fn default() -> Self {
        Self {
            watching: watch::Sender::new(Subscription::Off),
            streams: ClientStreams::default(),
        }
    }
}
