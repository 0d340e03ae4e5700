//! The Console tab's backend: a container's main process (`container.attach`, the game
//! console) or a shell in it (`container.exec` with a terminal), as a session the window feeds
//! keystrokes and resizes into and reads output from.
//!
//! Flow control is end to end, as docs/PROTOCOL.md describes: output is granted back to the
//! agent only once the window says the terminal has written it ([`Consoles::ack`]), so a
//! flood (`yes`) waits at the agent instead of piling up here or in the web view; keystrokes
//! are sent only within the agent's grants, and what waits for credit is bounded.

pub mod commands;

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Serialize};
use specta::Type;
use tauri::async_runtime::JoinHandle;
use tokio::sync::mpsc;
use zedops_client::Client;
use zedops_protocol::{
    AttachRequest, ConsoleOutput, ExecRequest, MAX_CONSOLE_CHUNK_BYTES, MAX_TERM_SIDE, StreamInput,
    TermSize, encode_bytes,
};

use crate::detail::views::WatchEnd;
use crate::error::{AppError, ErrorCode};

/// Keystrokes (or a paste) held while the agent's input credit is used up; beyond this the
/// window is told the server is not taking input.
pub const MAX_PENDING_INPUT: usize = 256 * 1024;
/// Commands from the window waiting for the session's task (keystrokes, resizes, acks).
const COMMAND_QUEUE: usize = 256;
/// Shells the Console tab offers; anything else is refused (the agent runs what it is given).
pub const SHELLS: &[&str] = &["/bin/sh", "/bin/bash", "/bin/ash"];

/// What to connect the terminal to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "lowercase")]
pub enum ConsoleKind {
    /// The container's main process: its console (operators and admins).
    Attach,
    /// A new shell in the container (admins, unless the relay opens exec to operators).
    Shell,
}

/// One message to the terminal: the session started, output, or how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleEvent {
    /// Set once, first: whether the session has a terminal.
    pub started: Option<bool>,
    /// Output bytes, base64; the window acks their decoded length once written.
    pub data: Option<String>,
    /// The shell's exit code, when it ended by itself.
    pub exit_code: Option<i32>,
    /// The last event: why the session ended (`code` null when it ended normally).
    pub end: Option<WatchEnd>,
}

impl ConsoleEvent {
    fn ended(end: WatchEnd) -> Self {
        Self {
            started: None,
            data: None,
            exit_code: None,
            end: Some(end),
        }
    }
}

/// A terminal size within what the protocol allows.
pub fn term_size(cols: u16, rows: u16) -> TermSize {
    TermSize {
        cols: cols.clamp(1, MAX_TERM_SIDE),
        rows: rows.clamp(1, MAX_TERM_SIDE),
    }
}

/// What the window sends a session.
#[derive(Debug)]
enum Command {
    Input(Vec<u8>),
    Resize(TermSize),
    Ack(u32),
}

/// Opens the session: attach to the main process, or `shell` with a terminal.
pub async fn open(
    client: &Client,
    agent: &str,
    container: &str,
    kind: ConsoleKind,
    shell: Option<&str>,
    size: TermSize,
) -> Result<zedops_client::console::ConsoleSession, AppError> {
    let opened = match kind {
        ConsoleKind::Attach => {
            client
                .attach(&AttachRequest {
                    agent_id: agent.into(),
                    container_id: container.into(),
                    stdin: true,
                    size: Some(size),
                    window: None,
                })
                .await
        }
        ConsoleKind::Shell => {
            let shell = shell.unwrap_or(SHELLS[0]);
            if !SHELLS.contains(&shell) {
                return Err(AppError::new(
                    ErrorCode::INVALID_INPUT,
                    format!("Choose one of the shells offered ({}).", SHELLS.join(", ")),
                ));
            }
            client
                .exec(&ExecRequest {
                    agent_id: agent.into(),
                    container_id: container.into(),
                    cmd: vec![shell.to_string()],
                    tty: true,
                    stdin: true,
                    env: vec!["TERM=xterm-256color".to_string()],
                    working_dir: None,
                    size: Some(size),
                    window: None,
                })
                .await
        }
    };
    opened.map_err(AppError::from).map_err(|err| {
        err.when_forbidden(|| {
            let who = match kind {
                ConsoleKind::Attach => "operators and admins",
                ConsoleKind::Shell => "admins (or operators, when the relay allows it)",
            };
            format!("Only {who} may open this console: ask a ZedOps admin of this relay.")
        })
    })
}

/// Runs a session until it ends, the window closes it, or the window stops listening: output
/// goes to `send`, commands come from `commands`. The last event sent carries `end`.
async fn run(
    mut session: zedops_client::console::ConsoleSession,
    mut commands: mpsc::Receiver<Command>,
    send: impl Fn(ConsoleEvent) -> bool,
) {
    let mut credit: u64 = 0;
    let mut pending: VecDeque<u8> = VecDeque::new();
    loop {
        // Keystrokes that waited for credit go out first.
        while credit > 0 && !pending.is_empty() {
            let n = (credit as usize)
                .min(pending.len())
                .min(MAX_CONSOLE_CHUNK_BYTES);
            let chunk: Vec<u8> = pending.drain(..n).collect();
            credit -= n as u64;
            let input = StreamInput {
                data: Some(encode_bytes(&chunk)),
                ..Default::default()
            };
            if let Err(err) = session.input(input).await {
                send(ConsoleEvent::ended(AppError::from(err).into()));
                return;
            }
        }
        tokio::select! {
            frame = session.next() => {
                let frame: ConsoleOutput = match frame {
                    None => return,
                    Some(Err(err)) => {
                        send(ConsoleEvent::ended(AppError::from(err).into()));
                        return;
                    }
                    Some(Ok(frame)) => frame,
                };
                if let Some(started) = &frame.started {
                    credit += u64::from(started.window);
                }
                credit += u64::from(frame.grant);
                let event = ConsoleEvent {
                    started: frame.started.as_ref().map(|s| s.tty),
                    data: frame.data,
                    exit_code: frame
                        .exit
                        .and_then(|e| e.code)
                        .map(|c| c.clamp(i32::MIN.into(), i32::MAX.into()) as i32),
                    end: frame.end.map(WatchEnd::from),
                };
                let last = event.end.is_some();
                let worth_sending = event.started.is_some()
                    || event.data.is_some()
                    || event.exit_code.is_some()
                    || last;
                if worth_sending && !send(event) || last {
                    return;
                }
            }
            command = commands.recv() => {
                let input = match command {
                    // The window closed the session (or went away).
                    None => return,
                    Some(Command::Input(bytes)) => {
                        if pending.len() + bytes.len() > MAX_PENDING_INPUT {
                            tracing::warn!(pending = pending.len(), "console input dropped: the server is not reading it");
                            continue;
                        }
                        pending.extend(bytes);
                        continue;
                    }
                    Some(Command::Resize(size)) => StreamInput {
                        resize: Some(size),
                        ..Default::default()
                    },
                    Some(Command::Ack(bytes)) => StreamInput {
                        grant: bytes,
                        ..Default::default()
                    },
                };
                if let Err(err) = session.input(input).await {
                    send(ConsoleEvent::ended(AppError::from(err).into()));
                    return;
                }
            }
        }
    }
}

struct Open {
    commands: mpsc::Sender<Command>,
    task: JoinHandle<()>,
}

/// The open console sessions, by id, so the window can type into, resize and close one.
#[derive(Default)]
pub struct Consoles {
    next: AtomicU32,
    open: Mutex<HashMap<u32, Open>>,
}

impl Consoles {
    /// Runs `session` and returns its id; its events go to `send`.
    pub fn start(
        &self,
        session: zedops_client::console::ConsoleSession,
        send: impl Fn(ConsoleEvent) -> bool + Send + 'static,
    ) -> u32 {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let task = tauri::async_runtime::spawn(run(session, rx, send));
        let mut open = self.lock();
        open.retain(|_, s| !s.task.inner().is_finished());
        open.insert(id, Open { commands: tx, task });
        id
    }

    fn send(&self, id: u32, command: Command) -> Result<(), AppError> {
        let tx = self.lock().get(&id).map(|s| s.commands.clone());
        let gone = || {
            AppError::new(
                ErrorCode::INVALID_INPUT,
                "This console session has ended: open it again.",
            )
        };
        let tx = tx.ok_or_else(gone)?;
        tx.try_send(command).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => AppError::new(
                ErrorCode::INVALID_INPUT,
                "The server is not keeping up with the input: wait a moment and type again.",
            ),
            mpsc::error::TrySendError::Closed(_) => gone(),
        })
    }

    /// Keystrokes (or pasted text) for the session.
    pub fn input(&self, id: u32, text: &str) -> Result<(), AppError> {
        if text.is_empty() {
            return Ok(());
        }
        if text.len() > MAX_PENDING_INPUT {
            return Err(AppError::new(
                ErrorCode::INVALID_INPUT,
                "That is too much to paste at once (256 KiB at most): paste it in parts.",
            ));
        }
        self.send(id, Command::Input(text.as_bytes().to_vec()))
    }

    /// The terminal changed size.
    pub fn resize(&self, id: u32, cols: u16, rows: u16) -> Result<(), AppError> {
        self.send(id, Command::Resize(term_size(cols, rows)))
    }

    /// The terminal wrote `bytes` of output: the agent may send that much more.
    pub fn ack(&self, id: u32, bytes: u32) -> Result<(), AppError> {
        if bytes == 0 {
            return Ok(());
        }
        self.send(id, Command::Ack(bytes))
    }

    /// Ends a session (the agent ends a shell's process); unknown ids are fine.
    pub fn close(&self, id: u32) {
        if let Some(s) = self.lock().remove(&id) {
            s.task.abort();
        }
    }

    /// Ends every session: the session with the relay ended.
    pub fn close_all(&self) {
        for (_, s) in self.lock().drain() {
            s.task.abort();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Open>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_kept_within_the_protocol() {
        assert_eq!(term_size(0, 0), TermSize { cols: 1, rows: 1 });
        assert_eq!(
            term_size(5000, 40),
            TermSize {
                cols: MAX_TERM_SIDE,
                rows: 40
            }
        );
    }

    #[test]
    fn events_serialise_for_the_terminal() {
        let e = ConsoleEvent {
            started: None,
            data: Some("aGk=".into()),
            exit_code: None,
            end: None,
        };
        assert_eq!(
            serde_json::to_value(e).unwrap(),
            serde_json::json!({"started": null, "data": "aGk=", "exitCode": null, "end": null})
        );
        assert_eq!(
            serde_json::to_value(ConsoleKind::Shell).unwrap(),
            serde_json::json!("shell")
        );
    }
}
