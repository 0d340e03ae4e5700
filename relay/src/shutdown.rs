//! The handle that stops a running relay from elsewhere (a signal, the drain, a test). Its own
//! module so the drain can hold one without depending on the server that makes it.

use std::sync::Arc;

use tokio::sync::watch;

/// Stops a running relay from elsewhere.
#[derive(Clone)]
pub struct ShutdownHandle {
    tx: Arc<watch::Sender<bool>>,
}

impl ShutdownHandle {
    /// A handle that sends `true` on `tx` (which the server watches) to stop.
    pub(crate) fn new(tx: watch::Sender<bool>) -> Self {
        Self { tx: Arc::new(tx) }
    }

    /// Closes every connection and stops accepting new ones.
    pub fn shutdown(&self) {
        let _ = self.tx.send(true);
    }
}
