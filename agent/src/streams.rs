//! Streamed answers of one relay connection (container logs and stats). Each stream runs in its own task,
//! registered by its inbox so that `stream.cancel` stops it; all of them stop with the
//! connection. Output becomes bounded lines in bounded chunks at a bounded rate, so a 10 MB line
//! or a container printing binary at full speed never makes an oversize frame or starves the
//! connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::{FutureExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use zedops_protocol::{
    Envelope, ErrorCode, LogChunk, LogLine, LogStream, LogsRequest, MAX_LOG_BYTES_PER_SEC,
    MAX_LOG_CHUNK_BYTES, MAX_LOG_LINE_BYTES, MAX_STREAMS_PER_AGENT, StatsChunk, StatsRequest,
    StreamEnd,
};

use crate::docker::{DockerClient, DockerError, LogPiece};
use crate::outbox::send;

/// Lines sent when a request names no `tail`.
const DEFAULT_TAIL: u32 = 100;
/// Most lines in one chunk.
const MAX_CHUNK_LINES: usize = 1000;
/// How long a chunk waits for more lines after its first before it is sent.
const CHUNK_LINGER: std::time::Duration = std::time::Duration::from_millis(20);

/// The live streams of one relay connection, by inbox.
#[derive(Default)]
pub struct Streams {
    cancels: Mutex<HashMap<String, oneshot::Sender<()>>>,
}

impl Streams {
    /// Starts streaming the logs `request` asks for, answering on `inbox`.
    pub fn start_logs(
        self: &Arc<Self>,
        docker: Arc<DockerClient>,
        request: LogsRequest,
        inbox: String,
        tx: mpsc::Sender<String>,
    ) {
        self.start(inbox, tx, move |reply, out, cancel| async move {
            stream_logs(&docker, &request, &reply, &out, cancel).await
        });
    }

    /// Starts sending the stats `request` asks for, answering on `inbox`.
    pub fn start_stats(
        self: &Arc<Self>,
        docker: Arc<DockerClient>,
        request: StatsRequest,
        inbox: String,
        tx: mpsc::Sender<String>,
    ) {
        self.start(inbox, tx, move |reply, out, cancel| async move {
            stream_stats(&docker, &request, &reply, &out, cancel).await
        });
    }

    /// Starts `container.create` (policy gate, pull with progress, create, start), answering
    /// on `inbox`.
    pub fn start_create(
        self: &Arc<Self>,
        docker: Arc<DockerClient>,
        request: zedops_protocol::ContainerCreate,
        inbox: String,
        tx: mpsc::Sender<String>,
    ) {
        self.start(inbox, tx, move |reply, out, cancel| async move {
            let policy = docker.policy().clone();
            crate::deploy::create(&docker, &policy, request, &reply, &out, cancel).await
        });
    }

    /// Starts `image.pull` with progress, answering on `inbox`.
    pub fn start_pull(
        self: &Arc<Self>,
        docker: Arc<DockerClient>,
        request: zedops_protocol::ImagePullRequest,
        inbox: String,
        tx: mpsc::Sender<String>,
    ) {
        self.start(inbox, tx, move |reply, out, cancel| async move {
            crate::deploy::pull(&docker, request, &reply, &out, cancel).await
        });
    }

    /// Runs one stream in its own task; `run` (given the inbox, the sender and the cancel
    /// signal) sends its frames and says how it ended, which becomes the last frame.
    fn start<F>(
        self: &Arc<Self>,
        inbox: String,
        tx: mpsc::Sender<String>,
        run: impl FnOnce(String, mpsc::Sender<String>, oneshot::Receiver<()>) -> F + Send + 'static,
    ) where
        F: std::future::Future<Output = StreamEnd> + Send + 'static,
    {
        let (cancel_tx, cancel_rx) = oneshot::channel();
        {
            let mut cancels = self.cancels.lock().expect("streams lock");
            // The relay caps streams per agent too; this holds whatever relay (or relays)
            // the agent serves, so Docker never has more than this many log or stats readers
            // open for ZedOps.
            if cancels.len() >= MAX_STREAMS_PER_AGENT {
                drop(cancels);
                tracing::warn!(
                    limit = MAX_STREAMS_PER_AGENT,
                    "refused a stream: at the agent's limit of open streams"
                );
                let end = StreamEnd {
                    error_code: Some(ErrorCode::RateLimited),
                    reason: format!(
                        "this agent already serves {MAX_STREAMS_PER_AGENT} logs or stats streams; close one and retry"
                    ),
                };
                let last = Envelope::new(&inbox, serde_json::json!({ "end": end })).to_json();
                tokio::spawn(async move {
                    let _ = tx.send(last).await;
                });
                return;
            }
            cancels.insert(inbox.clone(), cancel_tx);
        }
        // Weak, so that the connection's end (dropping `Streams`) cancels the running tasks.
        let streams = Arc::downgrade(self);
        tokio::spawn(async move {
            let end = run(inbox.clone(), tx.clone(), cancel_rx).await;
            if let Some(streams) = streams.upgrade() {
                streams.cancels.lock().expect("streams lock").remove(&inbox);
            }
            // `{"end": …}` is a valid last frame of every kind of stream.
            let last = Envelope::new(&inbox, serde_json::json!({ "end": end }));
            let _ = tx.send(last.to_json()).await;
        });
    }

    /// Stops the stream answering on `inbox`; its last chunk says it was cancelled.
    pub fn cancel(&self, inbox: &str) {
        match self.cancels.lock().expect("streams lock").remove(inbox) {
            Some(cancel) => {
                let _ = cancel.send(());
            }
            None => tracing::debug!(inbox = ?inbox, "cancel for a stream that already ended"),
        }
    }
}

impl Drop for Streams {
    fn drop(&mut self) {
        // The connection is gone: every stream stops (their last chunks go nowhere).
        for (_, cancel) in self.cancels.lock().expect("streams lock").drain() {
            let _ = cancel.send(());
        }
    }
}

/// Sends samples until the container stops, Docker fails, the connection closes or the stream is
/// cancelled (or after one sample, without `stream`).
async fn stream_stats(
    docker: &DockerClient,
    request: &StatsRequest,
    inbox: &str,
    tx: &mpsc::Sender<String>,
    mut cancel: oneshot::Receiver<()>,
) -> StreamEnd {
    let samples = match docker.stats(&request.container_id, request.stream).await {
        Ok(samples) => samples,
        Err(err) => return failed(err),
    };
    let mut samples = Box::pin(samples);
    loop {
        let next = tokio::select! {
            _ = &mut cancel => return StreamEnd::ended("cancelled"),
            next = samples.next() => next,
        };
        match next {
            None if request.stream => return StreamEnd::ended("the container stopped"),
            None => return StreamEnd::ended("done"),
            Some(Err(err)) => return failed(err),
            Some(Ok(stats)) => {
                let chunk = StatsChunk {
                    stats: Some(stats),
                    end: None,
                };
                if tx
                    .send(Envelope::new(inbox, chunk).to_json())
                    .await
                    .is_err()
                {
                    return StreamEnd::ended("the relay connection closed");
                }
                if !request.stream {
                    return StreamEnd::ended("done");
                }
            }
        }
    }
}

/// Streams until the log ends, Docker fails, the connection closes or the stream is cancelled,
/// and says which.
async fn stream_logs(
    docker: &DockerClient,
    request: &LogsRequest,
    inbox: &str,
    tx: &mpsc::Sender<String>,
    mut cancel: oneshot::Receiver<()>,
) -> StreamEnd {
    let tail = request.tail.unwrap_or(DEFAULT_TAIL);
    let pieces = match docker
        .logs(
            &request.container_id,
            tail,
            request.follow,
            request.timestamps,
        )
        .await
    {
        Ok(pieces) => pieces,
        Err(err) => return failed(err),
    };
    let mut pieces = Box::pin(pieces);
    let mut lines = LineSplitter::default();
    let mut budget = RateBudget::new(MAX_LOG_BYTES_PER_SEC);
    loop {
        let next = tokio::select! {
            _ = &mut cancel => return StreamEnd::ended("cancelled"),
            next = pieces.next() => next,
        };
        let mut chunk = Chunk::default();
        let mut finished = match next {
            None => Some(StreamEnd::ended(if request.follow {
                "the container stopped"
            } else {
                "end of the log"
            })),
            Some(Err(err)) => Some(failed(err)),
            Some(Ok(piece)) => {
                chunk.add(lines.push(piece), &mut budget);
                None
            }
        };
        // What else comes within a moment joins this chunk: Docker hands over a tail one line
        // at a time, and one frame per line would fill every queue on the way with tiny frames.
        // A chunk goes out when full or when the moment has passed, so a follow stays live.
        let linger = tokio::time::sleep(CHUNK_LINGER);
        tokio::pin!(linger);
        while finished.is_none() && !chunk.is_full() {
            let next = match pieces.next().now_or_never() {
                Some(next) => next,
                None => tokio::select! {
                    biased;
                    next = pieces.next() => next,
                    () = &mut linger => break,
                },
            };
            match next {
                Some(Ok(piece)) => chunk.add(lines.push(piece), &mut budget),
                Some(Err(err)) => finished = Some(failed(err)),
                None => {
                    finished = Some(StreamEnd::ended(if request.follow {
                        "the container stopped"
                    } else {
                        "end of the log"
                    }))
                }
            }
        }
        if finished.is_some() {
            chunk.add(lines.finish(), &mut budget);
        }
        if !chunk.is_empty() && !send(tx, inbox, &chunk.into_log_chunk()).await {
            return StreamEnd::ended("the relay connection closed");
        }
        if let Some(end) = finished {
            return end;
        }
    }
}

fn failed(err: DockerError) -> StreamEnd {
    tracing::debug!(%err, "stream failed");
    StreamEnd {
        error_code: Some(match err.code() {
            ErrorCode::ContainerNotFound => ErrorCode::ContainerNotFound,
            ErrorCode::DockerNotAvailable => ErrorCode::DockerNotAvailable,
            // Stats of a container that is not running.
            ErrorCode::InvalidRequest => ErrorCode::InvalidRequest,
            _ => ErrorCode::DockerListFailed,
        }),
        reason: err.to_string(),
    }
}

/// Lines being gathered into one frame.
#[derive(Default)]
struct Chunk {
    lines: Vec<LogLine>,
    bytes: usize,
    dropped: u64,
}

impl Chunk {
    fn add(&mut self, lines: Vec<LogLine>, budget: &mut RateBudget) {
        for line in lines {
            if budget.take(line.text.len() + 1) {
                self.bytes += line.text.len();
                self.lines.push(line);
            } else {
                self.dropped += 1;
            }
        }
    }

    fn is_full(&self) -> bool {
        self.bytes >= MAX_LOG_CHUNK_BYTES - MAX_LOG_LINE_BYTES
            || self.lines.len() >= MAX_CHUNK_LINES
    }

    fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.dropped == 0
    }

    fn into_log_chunk(self) -> LogChunk {
        LogChunk {
            lines: self.lines,
            dropped: self.dropped,
            end: None,
        }
    }
}

/// A token bucket of bytes per second with one second of burst.
struct RateBudget {
    per_sec: usize,
    tokens: f64,
    at: Instant,
}

impl RateBudget {
    fn new(per_sec: usize) -> Self {
        Self {
            per_sec,
            tokens: per_sec as f64,
            at: Instant::now(),
        }
    }

    fn take(&mut self, bytes: usize) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * self.per_sec as f64;
        self.tokens = (self.tokens + refill).min(self.per_sec as f64);
        self.at = now;
        if self.tokens >= bytes as f64 {
            self.tokens -= bytes as f64;
            true
        } else {
            false
        }
    }
}

/// Reassembles lines from Docker's pieces, per output, cutting any line at
/// [`MAX_LOG_LINE_BYTES`] (the rest of that line is skipped, not kept in memory).
#[derive(Default)]
struct LineSplitter {
    stdout: Partial,
    stderr: Partial,
}

#[derive(Default)]
struct Partial {
    buf: Vec<u8>,
    /// The current line was cut; bytes up to its newline are skipped.
    cut: bool,
}

impl LineSplitter {
    fn push(&mut self, (stream, bytes): LogPiece) -> Vec<LogLine> {
        let partial = match stream {
            LogStream::Stdout => &mut self.stdout,
            LogStream::Stderr => &mut self.stderr,
        };
        let mut lines = Vec::new();
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            let (piece, newline) = match rest.iter().position(|b| *b == b'\n') {
                Some(i) => (&rest[..i], true),
                None => (rest, false),
            };
            rest = &rest[piece.len() + usize::from(newline)..];
            if !partial.cut {
                let room = MAX_LOG_LINE_BYTES - partial.buf.len();
                if piece.len() > room {
                    partial.buf.extend_from_slice(&piece[..room]);
                    lines.push(line(stream, std::mem::take(&mut partial.buf), true));
                    partial.cut = true;
                } else {
                    partial.buf.extend_from_slice(piece);
                }
            }
            if newline {
                if !partial.cut {
                    lines.push(line(stream, std::mem::take(&mut partial.buf), false));
                }
                partial.cut = false;
            }
        }
        lines
    }

    /// The unfinished lines at the end of the stream.
    fn finish(&mut self) -> Vec<LogLine> {
        let mut lines = Vec::new();
        for (stream, partial) in [
            (LogStream::Stdout, &mut self.stdout),
            (LogStream::Stderr, &mut self.stderr),
        ] {
            if !partial.buf.is_empty() && !partial.cut {
                lines.push(line(stream, std::mem::take(&mut partial.buf), false));
            }
        }
        lines
    }
}

fn line(stream: LogStream, bytes: Vec<u8>, truncated: bool) -> LogLine {
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if text.ends_with('\r') {
        text.pop();
    }
    LogLine {
        stream,
        text,
        truncated,
    }
}

/// For tests: the lines a sequence of pieces becomes.
#[cfg(test)]
fn split_all(pieces: impl IntoIterator<Item = LogPiece>) -> Vec<LogLine> {
    let mut splitter = LineSplitter::default();
    let mut lines: Vec<LogLine> = pieces.into_iter().flat_map(|p| splitter.push(p)).collect();
    lines.extend(splitter.finish());
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(text: &[u8]) -> LogPiece {
        (LogStream::Stdout, text.to_vec())
    }

    #[test]
    fn pieces_become_lines_per_output() {
        let lines = split_all([
            out(b"one\ntw"),
            (LogStream::Stderr, b"oops\n".to_vec()),
            out(b"o\r\nthree"),
        ]);
        let texts: Vec<(LogStream, &str)> =
            lines.iter().map(|l| (l.stream, l.text.as_str())).collect();
        assert_eq!(
            texts,
            [
                (LogStream::Stdout, "one"),
                (LogStream::Stderr, "oops"),
                (LogStream::Stdout, "two"),
                (LogStream::Stdout, "three"),
            ]
        );
    }

    #[test]
    fn a_huge_line_is_cut_and_the_next_one_is_whole() {
        let mut huge = vec![b'x'; 10 * 1024 * 1024];
        huge.extend_from_slice(b"\nafter\n");
        // Delivered in Docker-sized pieces.
        let lines = split_all(huge.chunks(16 * 1024).map(out).collect::<Vec<_>>());
        assert_eq!(lines.len(), 2);
        assert!(lines[0].truncated);
        assert_eq!(lines[0].text.len(), MAX_LOG_LINE_BYTES);
        assert_eq!(
            (lines[1].text.as_str(), lines[1].truncated),
            ("after", false)
        );
    }

    #[test]
    fn binary_output_is_readable_text() {
        let lines = split_all([out(&[0xff, 0xfe, b'a', 0, b'\n'])]);
        assert_eq!(lines[0].text, "\u{fffd}\u{fffd}a\u{0}");
    }

    #[test]
    fn the_rate_budget_drops_what_is_over() {
        let mut budget = RateBudget::new(100);
        let mut chunk = Chunk::default();
        let lines = (0..20)
            .map(|i| {
                line(
                    LogStream::Stdout,
                    format!("line {i:03}").into_bytes(),
                    false,
                )
            })
            .collect();
        chunk.add(lines, &mut budget);
        // 9 bytes a line (with its newline): 11 fit in 100.
        assert_eq!((chunk.lines.len(), chunk.dropped), (11, 9));
    }
}
