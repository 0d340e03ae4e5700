//! A container's log stream as the client library hands it out: chunks of lines in order until
//! the stream ends, with cancel on request and on drop.

use std::sync::Arc;

use tokio::sync::mpsc;
use zedops_protocol::{LogChunk, StreamCancel, subject};

use crate::client::Shared;
use crate::error::{ClientError, decode_error_answer, is_error_answer};

/// What to read: the last `tail` lines (the relay's default is 100), then with `follow` new
/// ones as they come, optionally with Docker's timestamps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogsOptions {
    pub tail: Option<u32>,
    pub follow: bool,
    pub timestamps: bool,
}

/// An open log stream. Dropping it cancels the stream at the agent.
pub struct Logs {
    pub(crate) shared: Arc<Shared>,
    pub(crate) inbox: String,
    pub(crate) rx: mpsc::Receiver<zedops_protocol::Frame>,
    pub(crate) finished: bool,
}

impl Logs {
    /// The next chunk, in order. `Some(Ok(chunk))` with `chunk.end` set is the last one; after
    /// it, and after an error, this returns `None`.
    pub async fn next(&mut self) -> Option<Result<LogChunk, ClientError>> {
        if self.finished {
            return None;
        }
        let Some(frame) = self.rx.recv().await else {
            self.finished = true;
            let reason = match self.shared.is_connected() {
                true => "this reader fell behind the log stream, which was stopped".to_string(),
                false => self.shared.down_reason(),
            };
            return Some(Err(ClientError::disconnected(reason)));
        };
        let raw = frame.raw_data();
        if is_error_answer(raw) {
            self.finished = true;
            return Some(Err(decode_error_answer(raw)));
        }
        let chunk = frame.payload::<LogChunk>().map_err(ClientError::protocol);
        if chunk.as_ref().map_or(true, |c| c.end.is_some()) {
            self.finished = true;
        }
        Some(chunk)
    }

    /// Asks the relay to stop the stream; its last chunk (with `end`) still arrives on
    /// [`next`](Self::next).
    pub fn cancel(&self) {
        self.shared.send_cancel(&self.inbox);
    }
}

impl Drop for Logs {
    fn drop(&mut self) {
        self.shared.forget_stream(&self.inbox);
        if !self.finished {
            self.shared.send_cancel(&self.inbox);
        }
    }
}

impl Shared {
    pub(crate) fn send_cancel(&self, inbox: &str) {
        let cancel = StreamCancel {
            inbox: inbox.to_string(),
        };
        // The answer (whether a stream was cancelled) matters to nobody.
        self.fire_and_forget(subject::STREAM_CANCEL, &cancel);
    }
}
