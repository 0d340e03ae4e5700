//! Watching a stream from the command line (`zedops logs`, `zedops stats`): read chunk by
//! chunk, and cancelled once on Ctrl-C, after which the stream's last chunk still comes.

use zedops_client::{ClientError, StreamChunk, StreamReader};

pub struct Watch<T> {
    stream: StreamReader<T>,
    /// The watch was cancelled (Ctrl-C, or the output was closed): its end is no error.
    pub stopped: bool,
}

impl<T: StreamChunk> Watch<T> {
    /// The next chunk, as [`StreamReader::next`]; Ctrl-C meanwhile stops the watch and this
    /// keeps waiting for the last chunk.
    pub async fn next(&mut self) -> Option<Result<T, ClientError>> {
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c(), if !self.stopped => self.stop(),
                next = self.stream.next() => return next,
            }
        }
    }
}

impl<T> Watch<T> {
    pub fn new(stream: StreamReader<T>) -> Self {
        Self {
            stream,
            stopped: false,
        }
    }

    /// Cancels the watch; the stream's last chunk still comes.
    pub fn stop(&mut self) {
        self.stopped = true;
        self.stream.cancel();
    }
}
