//! The one way frames for the relay are queued: answers, stream frames and pushes alike.

use serde::Serialize;
use tokio::sync::mpsc;
use zedops_protocol::Envelope;

/// Queues `data` for the relay under `subject` (a reply inbox or a push subject), waiting while
/// the queue is full (the relay reads slowly) rather than dropping it. False when the
/// connection is gone.
pub(crate) async fn send(tx: &mpsc::Sender<String>, subject: &str, data: &impl Serialize) -> bool {
    tx.send(Envelope::new(subject, data).to_json())
        .await
        .is_ok()
}
