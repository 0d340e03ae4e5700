//! Streamed answers on the client side of the relay: which streams one client connection has
//! open (so `stream.cancel` and a disconnect can stop them), and the pump that carries one
//! stream's frames from its agent to its client, until it ends.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};
use zedops_protocol::{AgentRequest, Envelope, ErrorCode, StreamEnd};

use crate::console_limits::{Activity, ConsoleSlot};
pub use crate::hub::StreamKind;
use crate::hub::{AgentLink, Charge, StreamFrame, StreamShared, UserStreamSlot};

/// How long a cancelled stream waits for the agent's last frame before ending it itself.
const CANCEL_GRACE: Duration = Duration::from_secs(5);

/// A frame on its way to a client's socket. A stream's frame carries the bytes it holds
/// against its stream's and agent's budgets until it has been written.
pub struct Outgoing {
    pub text: String,
    _charge: Option<Charge>,
}

impl From<String> for Outgoing {
    fn from(text: String) -> Self {
        Self {
            text,
            _charge: None,
        }
    }
}

/// The open streams of one client connection, by the client's inbox.
#[derive(Default)]
pub struct ClientStreams {
    cancels: Mutex<HashMap<String, oneshot::Sender<()>>>,
    /// Where `stream.input` for each stream goes: its agent and the agent-side inbox (and, for
    /// a console session, where its input counts as activity).
    routes: Mutex<HashMap<String, Route>>,
}

type Route = (Arc<AgentLink>, String, Option<Arc<Activity>>);

impl ClientStreams {
    fn register(
        &self,
        inbox: &str,
        link: &Arc<AgentLink>,
        agent_inbox: &str,
        activity: Option<Arc<Activity>>,
    ) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.cancels
            .lock()
            .expect("streams lock")
            .insert(inbox.to_string(), tx);
        self.routes.lock().expect("streams lock").insert(
            inbox.to_string(),
            (link.clone(), agent_inbox.to_string(), activity),
        );
        rx
    }

    fn forget(&self, inbox: &str) {
        self.cancels.lock().expect("streams lock").remove(inbox);
        self.routes.lock().expect("streams lock").remove(inbox);
    }

    /// Forwards `input` to the agent of this connection's stream on `input.inbox`, with the
    /// agent-side inbox; false when this connection has no such stream (input for a stream
    /// of another connection or user is never forwarded).
    pub async fn input(&self, mut input: zedops_protocol::StreamInput) -> bool {
        let route = self
            .routes
            .lock()
            .expect("streams lock")
            .get(&input.inbox)
            .cloned();
        let Some((link, agent_inbox, activity)) = route else {
            return false;
        };
        if let Some(activity) = activity {
            activity.touch();
        }
        input.inbox = agent_inbox;
        link.send_input(AgentRequest::StreamInput(input).to_frame(None))
            .await
    }

    /// The last frame of every stream still open on this connection, for a relay that is
    /// stopping: each says so (`UNAVAILABLE`), so a reader learns the relay, not its agent,
    /// went away.
    pub fn relay_stopping_ends(&self) -> Vec<String> {
        let end = StreamEnd {
            error_code: Some(ErrorCode::Unavailable),
            reason: RELAY_STOPPING.to_string(),
        };
        self.routes
            .lock()
            .expect("streams lock")
            .keys()
            .map(|inbox| Envelope::new(inbox, serde_json::json!({ "end": &end })).to_json())
            .collect()
    }

    /// Whether this connection has a stream answering on the client's `inbox`.
    pub fn has(&self, inbox: &str) -> bool {
        self.routes
            .lock()
            .expect("streams lock")
            .contains_key(inbox)
    }

    /// Cancels the stream answering on the client's `inbox`; false when there is none.
    pub fn cancel(&self, inbox: &str) -> bool {
        match self.cancels.lock().expect("streams lock").remove(inbox) {
            Some(cancel) => cancel.send(()).is_ok(),
            None => false,
        }
    }
}

/// A stream opened at an agent, ready to be pumped to the client.
pub struct OpenStream {
    pub link: Arc<AgentLink>,
    pub agent_inbox: String,
    pub rx: mpsc::Receiver<(StreamFrame, Charge)>,
    pub shared: Arc<StreamShared>,
    /// Held while the stream is open: one of the streams its user may have.
    pub user_slot: UserStreamSlot,
    /// The audit entry (written `pending`) that gets the stream's outcome when it ends:
    /// deploys and pulls.
    pub audit: Option<(crate::store::Store, i64)>,
    /// Exec and attach: the user's console slot, the session's idle clock and exit code.
    pub console: Option<ConsoleSlot>,
}

/// Carries `stream` to the client on `client_inbox` through `answers` (the connection's
/// outgoing queue) until the agent ends it, the agent goes away, the client cancels it or the
/// client disconnects. The client always gets a last frame with `end`, unless it is gone.
/// `relay_stopping` tells an agent cut off by this relay's own shutdown from one that left.
pub async fn pump(
    mut stream: OpenStream,
    streams: &ClientStreams,
    client_inbox: &str,
    answers: &mpsc::Sender<Outgoing>,
    relay_stopping: &tokio::sync::watch::Receiver<bool>,
) {
    let activity = stream.console.as_ref().map(|c| c.activity.clone());
    let mut cancel = streams.register(client_inbox, &stream.link, &stream.agent_inbox, activity);
    let mut cancelled_at = None;
    let last = loop {
        let grace = async {
            match cancelled_at {
                Some(at) => tokio::time::sleep_until(at + CANCEL_GRACE).await,
                None => std::future::pending().await,
            }
        };
        // A console session with no byte either way for its idle timeout is ended here.
        let idle = async {
            match (&stream.console, cancelled_at) {
                (Some(console), None) => tokio::time::sleep_until(console.idle_deadline()).await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            // Frames before the last one, in order, first.
            biased;
            data = stream.rx.recv() => match data {
                Some((frame, charge)) => {
                    if !forward(&stream, client_inbox, answers, frame, charge).await {
                        stream.link.cancel_stream(&stream.agent_inbox);
                        break None;
                    }
                }
                // The agent left; a last frame it sent before still counts.
                None => match finish(&mut stream, client_inbox, answers).await {
                    Finished::Done => break None,
                    Finished::Unreadable => break Some(unreadable(&stream)),
                    // The relay closed the agent's connection because it is stopping: the
                    // agent is fine, and the command works again once the relay is back.
                    Finished::NotYet if *relay_stopping.borrow() => break Some(end(
                        ErrorCode::Unavailable,
                        RELAY_STOPPING.to_string(),
                    )),
                    Finished::NotYet => break Some(end(
                        ErrorCode::AgentOffline,
                        format!("agent {} disconnected; the stream ended", stream.link.name),
                    )),
                },
            },
            () = stream.shared.ended.notified() => {
                match finish(&mut stream, client_inbox, answers).await {
                    Finished::Done | Finished::NotYet => break None,
                    Finished::Unreadable => {
                        stream.link.cancel_stream(&stream.agent_inbox);
                        break Some(unreadable(&stream));
                    }
                }
            }
            _ = &mut cancel, if cancelled_at.is_none() => {
                debug!(inbox = ?client_inbox, "stream cancelled by the client");
                stream.link.cancel_stream(&stream.agent_inbox);
                cancelled_at = Some(tokio::time::Instant::now());
            }
            () = grace => break Some(StreamEnd { error_code: None, reason: "cancelled".into() }),
            () = idle => {
                let console = stream.console.as_ref().expect("idle only with a console");
                // Input may have come in between: only a deadline still in the past ends it.
                if console.idle_deadline() <= tokio::time::Instant::now() {
                    warn!(inbox = ?client_inbox, timeout = ?console.idle_timeout, "console session idle; ending it");
                    stream.link.cancel_stream(&stream.agent_inbox);
                    break Some(end(ErrorCode::Timeout, console.idle_reason()));
                }
            }
            () = answers.closed() => {
                stream.link.cancel_stream(&stream.agent_inbox);
                break None;
            }
        }
    };
    stream.link.close_stream(&stream.agent_inbox);
    streams.forget(client_inbox);
    if let Some(console) = &stream.console {
        console.release();
    }
    if let Some((store, id)) = stream.audit.take() {
        // The relay's own ending (agent gone, cancelled) or the agent's last frame; a client
        // that cancelled (a console detach) and left before the agent's last frame ended it
        // as it meant to, not by being cut off.
        let outcome = match &last {
            Some(end) => Some(end.error_code),
            None => stream.shared.end_code().or(cancelled_at.map(|_| None)),
        };
        let (result, code) = match outcome {
            Some(None) => ("ok", None),
            Some(Some(code)) => ("failed", Some(code.as_str())),
            // The client left before the agent finished: what happened is in the agent's log.
            None => ("interrupted", None),
        };
        if let Err(e) = store.audit_finish(id, result, code).await {
            tracing::error!(%e, id, "could not record a deploy's outcome in the audit log");
        }
        if let Some(code) = stream.console.as_ref().and_then(ConsoleSlot::exit_code) {
            crate::console_limits::audit_exit_code(&store, id, code).await;
        }
    }
    if let Some(last) = last {
        // `{"end": …}` is a valid last frame of every kind of stream.
        let chunk = serde_json::json!({ "end": last });
        let _ = answers
            .send(Envelope::new(client_inbox, chunk).to_json().into())
            .await;
    }
}

/// How a stream ends when the relay stops under it (a restart or an upgrade).
const RELAY_STOPPING: &str = "the relay is shutting down (a restart or an upgrade) and ended the stream; run the command again once it is back";

enum Finished {
    /// The last frame went to the client (or the client is gone).
    Done,
    /// The agent sent something unreadable.
    Unreadable,
    /// No last frame has come.
    NotYet,
}

/// Sends what is still queued, then the last frame from its reserved slot.
async fn finish(
    stream: &mut OpenStream,
    client_inbox: &str,
    answers: &mpsc::Sender<Outgoing>,
) -> Finished {
    while let Ok((frame, charge)) = stream.rx.try_recv() {
        if !forward(stream, client_inbox, answers, frame, charge).await {
            return Finished::Done;
        }
    }
    match stream.shared.take_last() {
        Some(Ok((frame, charge))) => {
            // The session is over once its last frame is here: its console slot is free
            // before the client hears so.
            if let Some(console) = &stream.console {
                console.release();
            }
            forward(stream, client_inbox, answers, frame, charge).await;
            Finished::Done
        }
        Some(Err(err)) => {
            warn!(error = ?err, "agent sent an unreadable stream frame; ending the stream");
            Finished::Unreadable
        }
        None => Finished::NotYet,
    }
}

fn unreadable(stream: &OpenStream) -> StreamEnd {
    end(
        ErrorCode::InvalidRequest,
        format!("agent {} sent an unreadable stream frame", stream.link.name),
    )
}

/// Re-encodes one decoded frame for the client's inbox (with the lines the relay dropped
/// counted in) and queues it; false when the client is gone.
async fn forward(
    stream: &OpenStream,
    client_inbox: &str,
    answers: &mpsc::Sender<Outgoing>,
    frame: StreamFrame,
    charge: Charge,
) -> bool {
    let text = match frame {
        StreamFrame::Logs(mut chunk) => {
            chunk.dropped += stream.shared.dropped.swap(0, Ordering::Relaxed);
            Envelope::new(client_inbox, &chunk).to_json()
        }
        StreamFrame::Stats(chunk) => Envelope::new(client_inbox, &chunk).to_json(),
        StreamFrame::Deploy(chunk) => Envelope::new(client_inbox, &chunk).to_json(),
        StreamFrame::Console(chunk) => {
            if let Some(console) = &stream.console {
                console.activity.touch();
                if let Some(code) = chunk.exit.and_then(|e| e.code) {
                    console.set_exit_code(code);
                }
            }
            Envelope::new(client_inbox, &chunk).to_json()
        }
        StreamFrame::File(chunk) => Envelope::new(client_inbox, &chunk).to_json(),
        StreamFrame::Update(chunk) => Envelope::new(client_inbox, &chunk).to_json(),
    };
    answers
        .send(Outgoing {
            text,
            _charge: Some(charge),
        })
        .await
        .is_ok()
}

fn end(code: ErrorCode, reason: String) -> StreamEnd {
    StreamEnd {
        error_code: Some(code),
        reason,
    }
}
