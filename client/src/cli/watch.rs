//! Watching a stream from the command line (`zedops logs`, `zedops stats`): opened over a fresh
//! connection, read chunk by chunk, and cancelled once on Ctrl-C, after which the stream's
//! last chunk still comes.

use std::future::Future;

use zedops_client::{Client, ClientError, StreamChunk, StreamReader};

use super::{CliError, Global, connect};

pub struct Watch<T> {
    stream: StreamReader<T>,
    /// The watch was cancelled (Ctrl-C, or the output was closed): its end is no error.
    pub stopped: bool,
}

/// Connects and starts a watch with `start`; a refusal closes the connection and is the error.
/// The caller closes the connection once the watch is over.
pub async fn open<T, F, Fut>(global: &Global, start: F) -> Result<(Client, Watch<T>), CliError>
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = Result<StreamReader<T>, ClientError>>,
{
    let client = connect(global).await?;
    match start(client.clone()).await {
        Ok(stream) => Ok((
            client,
            Watch {
                stream,
                stopped: false,
            },
        )),
        Err(err) => {
            client.close().await;
            Err(err.into())
        }
    }
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
    /// Cancels the watch; the stream's last chunk still comes.
    pub fn stop(&mut self) {
        self.stopped = true;
        self.stream.cancel();
    }
}
