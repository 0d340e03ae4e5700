//! A container's output from Docker's log API, as raw pieces tagged stdout or stderr; turning
//! them into lines is the caller's job.

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use futures_util::{Stream, StreamExt};
use zedops_protocol::{ErrorCode, LogStream};

use super::{DockerClient, DockerError, bare};

/// One piece of output as Docker delivered it (often one line with its newline, but a long line
/// comes in pieces and a terminal container's output in arbitrary ones).
pub type LogPiece = (LogStream, Vec<u8>);

impl DockerClient {
    /// The last `tail` lines of a container's output and, with `follow`, what it prints from then
    /// on, until it stops. Fails at once for an unknown container.
    pub async fn logs(
        &self,
        id: &str,
        tail: u32,
        follow: bool,
        timestamps: bool,
    ) -> Result<impl Stream<Item = Result<LogPiece, DockerError>> + use<>, DockerError> {
        // Asked first, so an unknown container is a clear CONTAINER_NOT_FOUND rather than an
        // error in the middle of a stream.
        let name = bare(id).to_string();
        let inspected = self.inspect(id).await?;
        let docker = self.engine().await?;
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .follow(follow)
            .timestamps(timestamps)
            .tail(&tail.to_string())
            .build();
        let host = self.host.clone();
        tracing::debug!(container = %inspected.name, tail, follow, "streaming logs");
        Ok(docker.logs(&name, Some(options)).filter_map(move |item| {
            let piece = match item {
                Ok(LogOutput::StdErr { message }) => {
                    Some(Ok((LogStream::Stderr, message.to_vec())))
                }
                Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                    Some(Ok((LogStream::Stdout, message.to_vec())))
                }
                Ok(LogOutput::StdIn { .. }) => None,
                Err(err) => Some(Err(DockerError::new(
                    ErrorCode::DockerNotAvailable,
                    format!(
                        "reading the logs from Docker at {host} failed: {}",
                        super::chain(&err)
                    ),
                ))),
            };
            std::future::ready(piece)
        }))
    }
}
