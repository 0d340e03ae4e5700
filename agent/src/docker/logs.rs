//! A container's output from Docker's log API, as raw pieces tagged stdout or stderr; turning
//! them into lines is the caller's job. The tagging ([`tag_pieces`]) serves the console's exec
//! and attach streams too.

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use futures_util::{Stream, StreamExt};
use zedops_protocol::{ConsoleStream, ErrorCode, LogStream};

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
        let output = docker.logs(&name, Some(options));
        Ok(tag_pieces(output, "reading the logs from Docker", host))
    }
}

/// Docker's output as pieces tagged with their stream ([`tagged`]); a stream that breaks ends
/// in DOCKER_NOT_AVAILABLE, "`reading` at `host` failed: why".
pub(super) fn tag_pieces<S: OutputStream>(
    output: impl Stream<Item = Result<LogOutput, bollard::errors::Error>>,
    reading: &'static str,
    host: String,
) -> impl Stream<Item = Result<(S, Vec<u8>), DockerError>> {
    output.filter_map(move |item| {
        let piece = match item {
            Ok(output) => tagged(output).map(Ok),
            Err(err) => Some(Err(DockerError::new(
                ErrorCode::DockerNotAvailable,
                format!("{reading} at {host} failed: {}", super::chain(&err)),
            ))),
        };
        std::future::ready(piece)
    })
}

/// A container's two output streams, as the logs and the console each name them.
pub(super) trait OutputStream {
    const STDOUT: Self;
    const STDERR: Self;
}

impl OutputStream for LogStream {
    const STDOUT: Self = LogStream::Stdout;
    const STDERR: Self = LogStream::Stderr;
}

impl OutputStream for ConsoleStream {
    const STDOUT: Self = ConsoleStream::Stdout;
    const STDERR: Self = ConsoleStream::Stderr;
}

/// One piece of Docker's output tagged with its stream (a terminal's counts as stdout);
/// `None` for stdin echoes, which are dropped.
fn tagged<S: OutputStream>(output: LogOutput) -> Option<(S, Vec<u8>)> {
    match output {
        LogOutput::StdErr { message } => Some((S::STDERR, message.to_vec())),
        LogOutput::StdOut { message } | LogOutput::Console { message } => {
            Some((S::STDOUT, message.to_vec()))
        }
        LogOutput::StdIn { .. } => None,
    }
}
