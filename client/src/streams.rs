//! Streamed answers as the client library hands them out (a container's logs, its stats):
//! chunks in order until the stream ends, with cancel on request and on drop.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use zedops_protocol::payload::Validate;
use zedops_protocol::{ClientRequest, LogChunk, StatsChunk, StreamCancel};

use crate::connection::Shared;
use crate::error::{ClientError, decode_error_answer, is_error_answer};

/// What to read: the last `tail` lines (the relay's default is 100), then with `follow` new
/// ones as they come, optionally with Docker's timestamps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogsOptions {
    pub tail: Option<u32>,
    pub follow: bool,
    pub timestamps: bool,
}

/// One frame of a streamed answer.
pub trait StreamChunk: DeserializeOwned + Validate {
    /// True on the stream's last frame.
    fn is_last(&self) -> bool;
}

/// [`StreamChunk`] for each kind of frame the relay streams: the last one is the one that
/// carries `end` (why the stream ended) for every one of them.
macro_rules! last_carries_end {
    ($($frame:ty),+) => {
        $(impl StreamChunk for $frame {
            fn is_last(&self) -> bool {
                self.end.is_some()
            }
        })+
    };
}

last_carries_end!(
    LogChunk,
    StatsChunk,
    zedops_protocol::DeployFrame,
    zedops_protocol::ContainerUpdateFrame,
    zedops_protocol::ConsoleOutput,
    zedops_protocol::FileChunk
);

/// An open streamed answer. Dropping it cancels the stream at the agent.
pub struct StreamReader<T> {
    pub(crate) shared: Arc<Shared>,
    pub(crate) inbox: String,
    pub(crate) rx: mpsc::Receiver<zedops_protocol::Frame>,
    pub(crate) finished: bool,
    pub(crate) kind: PhantomData<fn() -> T>,
}

/// A container's output: chunks of lines.
pub type Logs = StreamReader<LogChunk>;
/// A container's resource usage: one sample per chunk.
pub type Stats = StreamReader<StatsChunk>;

impl<T: StreamChunk> StreamReader<T> {
    /// The next chunk, in order. `Some(Ok(chunk))` with `chunk.end` set is the last one; after
    /// it, and after an error, this returns `None`.
    pub async fn next(&mut self) -> Option<Result<T, ClientError>> {
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
        let chunk = frame.payload::<T>().map_err(ClientError::protocol);
        if chunk.as_ref().map_or(true, |c| c.is_last()) {
            self.finished = true;
        }
        Some(chunk)
    }
}

impl<T> StreamReader<T> {
    /// Asks the relay to stop the stream; its last chunk (with `end`) still arrives on
    /// [`next`](StreamReader::next).
    pub fn cancel(&self) {
        self.shared.send_cancel(&self.inbox);
    }
}

impl<T> Drop for StreamReader<T> {
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
        self.fire_and_forget(&ClientRequest::StreamCancel(cancel));
    }
}
