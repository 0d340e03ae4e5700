//! Console sessions of one relay connection: `container.exec` and `container.attach`, each a task
//! that moves bytes between the relay and a process under credit-based flow control, and the
//! registry `stream.input` frames (and file uploads) are routed through by inbox.
//!
//! Bounds: output is read from Docker only while the client has granted credit, so at most one
//! Docker piece (32 KiB) waits here; input is accepted only within the agent's grants, and
//! granted again only once written to the process, so at most one window (≤ 1 MiB) waits here.
//! A process that stops reading stdin or a client that stops reading output stops the flow, it
//! never grows a buffer.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};
use zedops_protocol::{
    AttachRequest, ConsoleOutput, ConsoleStarted, ConsoleStream, ContainerRef, Credit,
    DEFAULT_CONSOLE_WINDOW, Envelope, ErrorCode, ErrorReply, ExecRequest, ExitStatus,
    MAX_CONSOLE_CHUNK_BYTES, MAX_CONSOLES_PER_AGENT, StreamEnd, StreamInput,
};

use crate::docker::exec::{ConsoleInput, ConsoleIo};
use crate::docker::{DockerClient, DockerError};
use crate::outbox::send;

/// `stream.input` frames queued for one session before it handles them. Data frames are bounded
/// by credit; this bounds the frames without data (grants, resizes) a client may pile up.
const INPUT_QUEUE: usize = 64;

/// The sessions (console and file transfers) of one relay connection, by the agent-side inbox.
#[derive(Default)]
pub struct Sessions {
    sessions: Mutex<HashMap<String, Session>>,
}

struct Session {
    input: mpsc::Sender<StreamInput>,
    cancel: oneshot::Sender<()>,
}

/// What a registered session receives.
pub(crate) struct SessionInbox {
    pub inputs: mpsc::Receiver<StreamInput>,
    pub cancel: oneshot::Receiver<()>,
}

impl Sessions {
    /// Registers a session on `inbox`; refused at [`MAX_CONSOLES_PER_AGENT`].
    pub(crate) fn register(&self, inbox: &str) -> Result<SessionInbox, ErrorReply> {
        let mut sessions = self.sessions.lock().expect("sessions lock");
        if sessions.len() >= MAX_CONSOLES_PER_AGENT {
            tracing::warn!(
                limit = MAX_CONSOLES_PER_AGENT,
                "refused a console session: at the agent's limit"
            );
            return Err(ErrorReply::new(
                ErrorCode::RateLimited,
                format!(
                    "this agent already serves {MAX_CONSOLES_PER_AGENT} console sessions and file transfers; close one and retry"
                ),
            ));
        }
        let (input, inputs) = mpsc::channel(INPUT_QUEUE);
        let (cancel, cancel_rx) = oneshot::channel();
        sessions.insert(inbox.to_string(), Session { input, cancel });
        Ok(SessionInbox {
            inputs,
            cancel: cancel_rx,
        })
    }

    pub(crate) fn forget(&self, inbox: &str) {
        self.sessions.lock().expect("sessions lock").remove(inbox);
    }

    /// Hands a `stream.input` frame (its inbox already the agent-side one) to its session.
    /// A session whose queue is full is ended: the client ignored its credit.
    pub fn input(&self, input: StreamInput) {
        let mut sessions = self.sessions.lock().expect("sessions lock");
        let Some(session) = sessions.get(&input.inbox) else {
            tracing::debug!(inbox = ?input.inbox, "input for a session that already ended");
            return;
        };
        let inbox = input.inbox.clone();
        if let Err(mpsc::error::TrySendError::Full(_)) = session.input.try_send(input) {
            tracing::warn!(
                "a client sent input frames faster than its session takes them; ending it"
            );
            if let Some(session) = sessions.remove(&inbox) {
                let _ = session.cancel.send(());
            }
        }
    }

    /// Ends the session on `inbox` (the client cancelled or went away).
    pub fn cancel(&self, inbox: &str) -> bool {
        match self.sessions.lock().expect("sessions lock").remove(inbox) {
            Some(session) => session.cancel.send(()).is_ok(),
            None => false,
        }
    }

    /// Starts a `container.exec` session answering on `inbox`.
    pub fn start_exec(
        self: &Arc<Self>,
        docker: Arc<DockerClient>,
        request: ExecRequest,
        inbox: String,
        tx: mpsc::Sender<String>,
    ) {
        let (stdin, window) = (request.stdin, request.window);
        self.spawn_session(docker, inbox, tx, stdin, window, move |docker| async move {
            let (id, io) = docker.exec_start(&request).await?;
            tracing::info!(container = ?request.container_id, tty = request.tty, "exec started");
            let container = request.container_id;
            Ok((Target::Exec { container, id }, io))
        });
    }

    /// Starts a `container.attach` session answering on `inbox`.
    pub fn start_attach(
        self: &Arc<Self>,
        docker: Arc<DockerClient>,
        request: AttachRequest,
        inbox: String,
        tx: mpsc::Sender<String>,
    ) {
        let (stdin, window) = (request.stdin, request.window);
        self.spawn_session(docker, inbox, tx, stdin, window, move |docker| async move {
            let io = docker
                .attach(&request.container_id, request.stdin, request.size)
                .await?;
            let container = request.container_id;
            Ok((Target::Attach { container }, io))
        });
    }

    /// Registers a session on `inbox` and runs it on a task of its own: `connect` starts the
    /// process or attaches to it, then bytes flow until it ends, and the last frame says how.
    fn spawn_session<F>(
        self: &Arc<Self>,
        docker: Arc<DockerClient>,
        inbox: String,
        tx: mpsc::Sender<String>,
        stdin: bool,
        window: Option<u32>,
        connect: impl FnOnce(Arc<DockerClient>) -> F + Send + 'static,
    ) where
        F: Future<Output = Result<(Target, ConsoleIo), DockerError>> + Send + 'static,
    {
        let Some(session) = self.open(&inbox, &tx) else {
            return;
        };
        let sessions = Arc::downgrade(self);
        tokio::spawn(async move {
            let (exit, end) = match connect(docker.clone()).await {
                Err(err) => (None, failed(err)),
                Ok((target, io)) => {
                    let window = window.unwrap_or(DEFAULT_CONSOLE_WINDOW);
                    run(&docker, &target, io, stdin, window, &inbox, &tx, session).await
                }
            };
            if let Some(sessions) = sessions.upgrade() {
                sessions.forget(&inbox);
            }
            last(&tx, &inbox, exit, end).await;
        });
    }

    /// Registers, or answers the refusal as the stream's only frame.
    fn open(&self, inbox: &str, tx: &mpsc::Sender<String>) -> Option<SessionInbox> {
        match self.register(inbox) {
            Ok(session) => Some(session),
            Err(refusal) => {
                let end = StreamEnd {
                    error_code: Some(refusal.error_code),
                    reason: refusal.error,
                };
                let frame = Envelope::new(inbox, serde_json::json!({ "end": end })).to_json();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _ = tx.send(frame).await;
                });
                None
            }
        }
    }
}

impl Drop for Sessions {
    fn drop(&mut self) {
        // The connection is gone: every session ends (and its exec's process with it).
        for (_, session) in self.sessions.lock().expect("sessions lock").drain() {
            let _ = session.cancel.send(());
        }
    }
}

/// What a session talks to.
enum Target {
    Exec { container: ContainerRef, id: String },
    Attach { container: ContainerRef },
}

/// Why the loop stopped.
enum Stop {
    /// The process's output ended: it exited (exec) or the container stopped (attach).
    Finished,
    /// The client cancelled, went away, or broke the protocol; the process is ended (exec).
    Ended(StreamEnd),
}

/// Moves bytes both ways until the process ends or the session is cancelled; returns the exit
/// status (exec) and how the session ended.
#[allow(clippy::too_many_arguments)]
async fn run(
    docker: &DockerClient,
    target: &Target,
    io: ConsoleIo,
    stdin: bool,
    window: u32,
    inbox: &str,
    tx: &mpsc::Sender<String>,
    session: SessionInbox,
) -> (Option<ExitStatus>, StreamEnd) {
    let SessionInbox {
        mut inputs,
        mut cancel,
    } = session;
    let ConsoleIo {
        mut output,
        input,
        tty,
    } = io;
    let in_window = if stdin { DEFAULT_CONSOLE_WINDOW } else { 0 };
    let started = ConsoleOutput {
        started: Some(ConsoleStarted {
            tty,
            window: in_window,
        }),
        ..ConsoleOutput::default()
    };
    if !send(tx, inbox, &started).await {
        return stop(
            docker,
            target,
            Stop::Ended(StreamEnd::ended("the relay connection closed")),
        )
        .await;
    }
    let mut out_credit = Credit::new(window);
    let mut in_credit = Credit::new(in_window);
    // Input accepted within credit and not yet handed to the writer.
    let mut pending_in: VecDeque<u8> = VecDeque::new();
    let mut in_eof = false;
    let (writer_tx, written_rx, writer) = spawn_writer(input);
    let mut writer_tx = Some(writer_tx);
    let mut written_rx = written_rx;
    // One piece of output read from Docker and not yet (fully) sent.
    let mut pending_out: Option<(ConsoleStream, Vec<u8>)> = None;
    let mut output_done = false;

    let outcome = loop {
        // Send what credit allows of the piece read.
        if let Some((stream, bytes)) = &mut pending_out {
            while !bytes.is_empty() && out_credit.available() > 0 {
                let n = bytes
                    .len()
                    .min(MAX_CONSOLE_CHUNK_BYTES)
                    .min(out_credit.available() as usize);
                out_credit.take(n);
                let frame = ConsoleOutput::data(*stream, &bytes[..n]);
                if !send(tx, inbox, &frame).await {
                    break;
                }
                bytes.drain(..n);
            }
            if bytes.is_empty() {
                pending_out = None;
            }
        }
        if output_done && pending_out.is_none() {
            break Stop::Finished;
        }
        if in_eof && pending_in.is_empty() {
            // Dropping the writer's queue closes the process's stdin once it has written all.
            writer_tx = None;
        }
        let can_read = pending_out.is_none() && !output_done && out_credit.available() > 0;
        tokio::select! {
            _ = &mut cancel => break Stop::Ended(StreamEnd::ended("cancelled")),
            input = inputs.recv() => match input {
                None => break Stop::Ended(StreamEnd::ended("cancelled")),
                Some(input) => {
                    if let Err(end) = take_input(
                        docker, target, input, &mut out_credit, &mut in_credit,
                        &mut pending_in, &mut in_eof, stdin,
                    ).await {
                        break Stop::Ended(end);
                    }
                }
            },
            permit = async { writer_tx.as_ref().expect("checked").reserve().await },
                if writer_tx.is_some() && !pending_in.is_empty() => {
                let Ok(permit) = permit else {
                    break Stop::Ended(StreamEnd::ended("the process closed its input"));
                };
                let n = pending_in.len().min(MAX_CONSOLE_CHUNK_BYTES);
                permit.send(pending_in.drain(..n).collect());
            }
            written = written_rx.recv() => {
                match written {
                    Some(n) => {
                        let grant = ConsoleOutput { grant: n, ..ConsoleOutput::default() };
                        if !send(tx, inbox, &grant).await {
                            break Stop::Ended(StreamEnd::ended("the relay connection closed"));
                        }
                        in_credit.grant(n);
                    }
                    // The writer stopped (stdin closed or the process gone): no more grants.
                    None => written_rx = mpsc::channel(1).1,
                }
            }
            piece = output.next(), if can_read => match piece {
                None => output_done = true,
                Some(Ok(piece)) => pending_out = Some(piece),
                Some(Err(err)) => break Stop::Ended(failed(err)),
            },
            () = tx.closed() => break Stop::Ended(StreamEnd::ended("the relay connection closed")),
        }
    };
    writer.abort();
    stop(docker, target, outcome).await
}

/// Applies one `stream.input` frame; an `Err` ends the session with that end.
#[allow(clippy::too_many_arguments)]
async fn take_input(
    docker: &DockerClient,
    target: &Target,
    input: StreamInput,
    out_credit: &mut Credit,
    in_credit: &mut Credit,
    pending_in: &mut VecDeque<u8>,
    in_eof: &mut bool,
    stdin: bool,
) -> Result<(), StreamEnd> {
    out_credit.grant(input.grant);
    if let Some(size) = input.resize {
        let resized = match target {
            Target::Exec { id, .. } => docker.exec_resize(id, size).await,
            Target::Attach { container } => docker.attach_resize(container, size).await,
        };
        if let Err(err) = resized {
            tracing::debug!(%err, "resize failed");
        }
    }
    if input.data.is_some() {
        let bytes = input.bytes().map_err(|e| broken(&e.to_string()))?;
        if !stdin || *in_eof {
            return Err(broken("input sent to a session without open stdin"));
        }
        if !in_credit.take(bytes.len()) {
            tracing::warn!("a client sent input beyond its credit; ending the session");
            return Err(broken("input beyond the granted window"));
        }
        pending_in.extend(bytes);
    }
    if input.eof {
        *in_eof = true;
    }
    Ok(())
}

/// The task writing to the process's stdin: one chunk at a time, reporting each written chunk's
/// size (which becomes a grant). Closing its queue closes stdin.
fn spawn_writer(
    mut input: ConsoleInput,
) -> (
    mpsc::Sender<Vec<u8>>,
    mpsc::Receiver<u32>,
    tokio::task::JoinHandle<()>,
) {
    let (chunks_tx, mut chunks) = mpsc::channel::<Vec<u8>>(1);
    let (written_tx, written) = mpsc::channel::<u32>(4);
    let task = tokio::spawn(async move {
        while let Some(chunk) = chunks.recv().await {
            if input.write_all(&chunk).await.is_err() || input.flush().await.is_err() {
                return;
            }
            if written_tx.send(chunk.len() as u32).await.is_err() {
                return;
            }
        }
        let _ = input.shutdown().await;
    });
    (chunks_tx, written, task)
}

/// After the loop: the exit status of a finished exec, or the process ended for a session that
/// was cut off.
async fn stop(
    docker: &DockerClient,
    target: &Target,
    outcome: Stop,
) -> (Option<ExitStatus>, StreamEnd) {
    match (outcome, target) {
        (Stop::Finished, Target::Exec { id, .. }) => {
            let code = docker.exec_exit_code(id).await;
            (
                Some(ExitStatus { code }),
                StreamEnd::ended("the process exited"),
            )
        }
        (Stop::Finished, Target::Attach { .. }) => {
            (None, StreamEnd::ended("the container stopped"))
        }
        (Stop::Ended(end), Target::Exec { container, id }) => {
            let gone = docker.exec_kill(container, id).await;
            tracing::info!(gone, reason = %end.reason, "exec session ended before its process; ended the process");
            (Some(ExitStatus { code: None }), end)
        }
        // Detaching leaves the main process running, as `docker attach` does.
        (Stop::Ended(end), Target::Attach { .. }) => (None, end),
    }
}

async fn last(tx: &mpsc::Sender<String>, inbox: &str, exit: Option<ExitStatus>, end: StreamEnd) {
    let frame = ConsoleOutput {
        exit,
        end: Some(end),
        ..ConsoleOutput::default()
    };
    let _ = send(tx, inbox, &frame).await;
}

fn broken(reason: &str) -> StreamEnd {
    StreamEnd {
        error_code: Some(ErrorCode::InvalidRequest),
        reason: reason.to_string(),
    }
}

fn failed(err: DockerError) -> StreamEnd {
    tracing::debug!(%err, "console session failed");
    StreamEnd {
        error_code: Some(err.code()),
        reason: err.to_string(),
    }
}

/// Answers `inbox` with what `answer` gives, in a task of its own (one-shot console and file
/// requests: `container.send`, `file.list`, `file.remove`, `file.mkdir`).
pub(crate) fn spawn_reply<T, F>(tx: &mpsc::Sender<String>, inbox: String, answer: F)
where
    T: Serialize + Send + 'static,
    F: std::future::Future<Output = Result<T, ErrorReply>> + Send + 'static,
{
    let tx = tx.clone();
    tokio::spawn(async move {
        let text = match answer.await {
            Ok(value) => Envelope::new(&inbox, value).to_json(),
            Err(refusal) => {
                tracing::debug!(code = %refusal.error_code, "console or file request refused");
                Envelope::new(&inbox, refusal).to_json()
            }
        };
        let _ = tx.send(text).await;
    });
}
