//! Streamed answers on the client side of the relay: which streams one client connection has
//! open (so `stream.cancel` and a disconnect can stop them), and the pump that carries one
//! stream's frames from its agent to its client, checking each, until it ends.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};
use zedops_protocol::{Envelope, ErrorCode, LogChunk, StatsChunk, StreamEnd};

use crate::hub::{AgentLink, StreamSink};

/// How long a cancelled stream waits for the agent's last frame before ending it itself.
const CANCEL_GRACE: Duration = Duration::from_secs(5);

/// The open streams of one client connection, by the client's inbox.
#[derive(Default)]
pub struct ClientStreams {
    cancels: Mutex<HashMap<String, oneshot::Sender<()>>>,
}

impl ClientStreams {
    fn register(&self, inbox: &str) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.cancels
            .lock()
            .expect("streams lock")
            .insert(inbox.to_string(), tx);
        rx
    }

    fn forget(&self, inbox: &str) {
        self.cancels.lock().expect("streams lock").remove(inbox);
    }

    /// Cancels the stream answering on the client's `inbox`; false when there is none.
    pub fn cancel(&self, inbox: &str) -> bool {
        match self.cancels.lock().expect("streams lock").remove(inbox) {
            Some(cancel) => cancel.send(()).is_ok(),
            None => false,
        }
    }
}

/// What a stream carries, which decides how each frame is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Logs,
    Stats,
}

/// A stream opened at an agent, ready to be pumped to the client.
pub struct OpenStream {
    pub kind: StreamKind,
    pub link: Arc<AgentLink>,
    pub agent_inbox: String,
    pub rx: mpsc::Receiver<String>,
    pub sink: Arc<StreamSink>,
}

/// Carries `stream` to the client on `client_inbox` through `answers` (the connection's
/// outgoing queue) until the agent ends it, the agent goes away, the client cancels it or the
/// client disconnects. The client always gets a last frame with `end`, unless it is gone.
pub async fn pump(
    mut stream: OpenStream,
    streams: &ClientStreams,
    client_inbox: &str,
    answers: &mpsc::Sender<String>,
) {
    let mut cancel = streams.register(client_inbox);
    let mut cancelled_at = None;
    let last = loop {
        let grace = async {
            match cancelled_at {
                Some(at) => tokio::time::sleep_until(at + CANCEL_GRACE).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            data = stream.rx.recv() => match data {
                Some(raw) => {
                    let (text, done) = match checked(&stream, client_inbox, &raw) {
                        Ok(checked) => checked,
                        Err(err) => {
                            warn!(%err, "agent sent an unreadable stream frame; ending the stream");
                            stream.link.cancel_stream(&stream.agent_inbox);
                            break Some(end(ErrorCode::InvalidRequest, format!("agent {} sent an unreadable stream frame", stream.link.name)));
                        }
                    };
                    if answers.send(text).await.is_err() {
                        stream.link.cancel_stream(&stream.agent_inbox);
                        break None;
                    }
                    if done {
                        break None;
                    }
                }
                None => break Some(end(
                    ErrorCode::AgentOffline,
                    format!("agent {} disconnected; the stream ended", stream.link.name),
                )),
            },
            _ = &mut cancel, if cancelled_at.is_none() => {
                debug!(inbox = %client_inbox, "stream cancelled by the client");
                stream.link.cancel_stream(&stream.agent_inbox);
                cancelled_at = Some(tokio::time::Instant::now());
            }
            () = grace => break Some(StreamEnd { error_code: None, reason: "cancelled".into() }),
            () = answers.closed() => {
                stream.link.cancel_stream(&stream.agent_inbox);
                break None;
            }
        }
    };
    stream.link.close_stream(&stream.agent_inbox);
    streams.forget(client_inbox);
    if let Some(last) = last {
        // `{"end": …}` is a valid last frame of every kind of stream.
        let chunk = serde_json::json!({ "end": last });
        let _ = answers
            .send(Envelope::new(client_inbox, chunk).to_json())
            .await;
    }
}

/// An agent's stream frame, decoded strictly for its kind and re-encoded for the client's
/// inbox (with the lines the relay dropped for a slow client counted in), and whether it is the
/// last.
fn checked(
    stream: &OpenStream,
    client_inbox: &str,
    raw: &str,
) -> Result<(String, bool), serde_json::Error> {
    Ok(match stream.kind {
        StreamKind::Logs => {
            let mut chunk: LogChunk = serde_json::from_str(raw)?;
            chunk.dropped += stream.sink.dropped.swap(0, Ordering::Relaxed);
            let done = chunk.end.is_some();
            (Envelope::new(client_inbox, &chunk).to_json(), done)
        }
        StreamKind::Stats => {
            let chunk: StatsChunk = serde_json::from_str(raw)?;
            let done = chunk.end.is_some();
            (Envelope::new(client_inbox, &chunk).to_json(), done)
        }
    })
}

fn end(code: ErrorCode, reason: String) -> StreamEnd {
    StreamEnd {
        error_code: Some(code),
        reason,
    }
}
