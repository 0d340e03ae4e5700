//! `zedops exec` (with `-t` a terminal: raw mode here, the window size sent at the start and on
//! every resize; without it stdout and stderr apart, stdin piped with `-i`; the remote exit code
//! as `zedops`'s own), `zedops attach` (a container's main process, left with the detach keys)
//! and `zedops send` (one line to a game server's console). Flow control as the protocol asks:
//! output is granted back once written here, input is read from the local stdin only within the
//! agent's grants.

use std::io::Write;

use tokio::io::AsyncReadExt;
use zedops_client::console::ConsoleSession;
use zedops_protocol::{
    AttachRequest, ConsoleStream, ExecRequest, MAX_CONSOLE_CHUNK_BYTES, SendRequest, SendResult,
    StreamInput, TermSize, encode_bytes, subject,
};

use super::tty::{self, DetachScanner, RawMode, Resizes};
use super::vt::VtMode;
use super::{CliError, CliResult, Global, connect, open_stream, table};

/// Exit status for a failure of zedops itself (refused, agent offline), as `docker exec` uses.
const FAILED: i32 = 125;

/// Runs `cmd` in `container` and exits with its exit code.
pub async fn exec(
    global: &Global,
    agent: &str,
    container: &str,
    cmd: Vec<String>,
    interactive: bool,
    tty: bool,
) -> CliResult {
    // Like docker: typing into a terminal session needs a terminal to type on.
    let raw = tty && interactive;
    if raw && !tty::stdin_is_terminal() {
        return Err(CliError::new(
            "NOT_A_TERMINAL",
            "the input is not a terminal, so -it cannot pass keystrokes; drop -t to pipe stdin (zedops exec -i)",
        ));
    }
    let size = if tty { tty::size() } else { None };
    let request = ExecRequest {
        agent_id: agent.into(),
        container_id: container.into(),
        cmd,
        tty,
        stdin: interactive,
        env: if tty {
            // What the remote programs need to draw; docker exec -t sets none, shells guess.
            vec![format!(
                "TERM={}",
                std::env::var("TERM").unwrap_or_else(|_| "xterm".into())
            )]
        } else {
            vec![]
        },
        working_dir: None,
        size,
        window: None,
    };
    let (client, session) = open_stream(global, |c| async move { c.exec(&request).await }).await?;
    let options = Drive {
        stdin: interactive,
        raw,
        size,
        detach: None,
        attach: false,
    };
    let code = drive(session, options).await;
    client.close().await;
    std::process::exit(code);
}

/// Attaches to `container`'s main process until it stops or the detach keys are typed.
pub async fn attach(
    global: &Global,
    agent: &str,
    container: &str,
    no_stdin: bool,
    detach_keys: &str,
) -> CliResult {
    let keys = tty::parse_detach_keys(detach_keys)
        .map_err(|e| CliError::new("INVALID_ARGUMENT", format!("--detach-keys: {e}")))?;
    let stdin = !no_stdin;
    let size = tty::size();
    let request = AttachRequest {
        agent_id: agent.into(),
        container_id: container.into(),
        stdin,
        size,
        window: None,
    };
    let (client, session) = open_stream(global, |c| async move { c.attach(&request).await })
        .await
        .map_err(|mut err| {
            if err.message.contains("OpenStdin") {
                err.message
                    .push_str("; or attach with --no-stdin to watch its output only");
            }
            err
        })?;
    let options = Drive {
        stdin,
        // Decided by the container: raw when it has a terminal (known from the first frame).
        raw: stdin && tty::stdin_is_terminal(),
        size,
        detach: Some(keys),
        attach: true,
    };
    let code = drive(session, options).await;
    client.close().await;
    std::process::exit(code);
}

/// How to run a session here.
struct Drive {
    /// Pass local stdin.
    stdin: bool,
    /// Raw mode when the session has a terminal (and stdin is one).
    raw: bool,
    /// The size sent at the start (resizes are sent when it has a terminal).
    size: Option<TermSize>,
    /// Attach: the detach keys.
    detach: Option<Vec<u8>>,
    /// Attach: local end of input is not passed on (it would close a game server's stdin), and
    /// Ctrl-C without a terminal detaches rather than stopping the server.
    attach: bool,
}

/// Moves bytes until the session ends; returns the exit code for this process. The terminal is
/// back in its mode before this returns, whatever ended the session.
async fn drive(mut session: ConsoleSession, options: Drive) -> i32 {
    let mut stdin = tokio::io::stdin();
    let mut buf = vec![0u8; MAX_CONSOLE_CHUNK_BYTES];
    let mut credit: u64 = 0;
    let mut stdin_open = options.stdin;
    let mut interrupted = false;
    let mut detached = false;
    let mut scanner = options.detach.clone().map(DetachScanner::new);
    // The Windows console in VT mode for a terminal session (dropped after raw mode's guard).
    let mut vt: Option<VtMode> = None;
    let mut raw: Option<RawMode> = None;
    let mut resizes: Option<Resizes> = None;
    let mut started = false;
    let terminated = tty::terminated();
    tokio::pin!(terminated);
    let code = loop {
        let held = scanner.as_ref().map_or(0, DetachScanner::held) as u64;
        let room = credit
            .saturating_sub(held)
            .min(MAX_CONSOLE_CHUNK_BYTES as u64) as usize;
        let frame = tokio::select! {
            code = &mut terminated => {
                session.cancel();
                break code;
            }
            _ = tokio::signal::ctrl_c(), if !interrupted => {
                // In raw mode Ctrl-C is a byte to the remote process; this is a signal sent to
                // zedops itself (or no terminal): the agent ends an exec's process, an attach
                // is left running. The last frame still comes.
                interrupted = true;
                detached = options.attach;
                session.cancel();
                continue;
            }
            size = async { resizes.as_mut().expect("checked").next().await }, if resizes.is_some() => {
                let _ = session.input(StreamInput { resize: Some(size), ..Default::default() }).await;
                continue;
            }
            read = stdin.read(&mut buf[..room]), if stdin_open && started && room > 0 => {
                let n = read.unwrap_or(0);
                if n == 0 {
                    stdin_open = false;
                    if options.attach {
                        // Closing a game server's stdin would end its console for everyone.
                        continue;
                    }
                }
                let (bytes, detach) = match &mut scanner {
                    Some(scanner) => scanner.feed(&buf[..n]),
                    None => (buf[..n].to_vec(), false),
                };
                credit = credit.saturating_sub(bytes.len() as u64);
                if !bytes.is_empty() || n == 0 {
                    let input = StreamInput {
                        data: (!bytes.is_empty()).then(|| encode_bytes(&bytes)),
                        eof: n == 0,
                        ..Default::default()
                    };
                    if session.input(input).await.is_err() {
                        stdin_open = false;
                    }
                }
                if detach {
                    detached = true;
                    interrupted = true;
                    stdin_open = false;
                    session.cancel();
                }
                continue;
            }
            next = session.next() => next,
        };
        let frame = match frame {
            None => break FAILED,
            Some(Err(err)) => {
                drop(raw.take());
                eprintln!("error: {}: {err}", err.code().as_str());
                break FAILED;
            }
            Some(Ok(frame)) => frame,
        };
        if let Some(first) = &frame.started {
            started = true;
            credit += u64::from(first.window);
            if first.tty {
                vt = Some(VtMode::enter(options.raw));
                if options.raw {
                    match RawMode::enter() {
                        Ok(mode) => raw = Some(mode),
                        Err(err) => eprintln!("zedops: cannot put the terminal in raw mode: {err}"),
                    }
                }
                resizes = Some(Resizes::new(options.size));
            }
        }
        credit += u64::from(frame.grant);
        let bytes = frame.bytes().unwrap_or_default();
        if !bytes.is_empty() {
            let written = match frame.stream {
                Some(ConsoleStream::Stderr) => write_all(&mut std::io::stderr().lock(), &bytes),
                _ => write_all(&mut std::io::stdout().lock(), &bytes),
            };
            if !written {
                // `zedops exec … | head`: the reader has what it wanted.
                session.cancel();
                interrupted = true;
            } else {
                let _ = session.grant(bytes.len()).await;
            }
        }
        if let Some(end) = frame.end {
            drop(raw.take());
            if detached {
                eprintln!("zedops: detached; the container keeps running");
                break 0;
            }
            if let Some(code) = end.error_code {
                eprintln!("error: {code}: {}", end.reason);
                break FAILED;
            }
            if options.attach {
                eprintln!("zedops: {}", end.reason);
                break 0;
            }
            break match frame.exit.and_then(|e| e.code) {
                Some(code) => code.clamp(0, 255) as i32,
                // Ended by Ctrl-C (the agent ended the process), like a shell's 128 + SIGINT.
                None if interrupted => 130,
                None => FAILED,
            };
        }
    };
    // Every way out of the loop: the terminal back as it was before anything is printed.
    drop(raw);
    drop(vt);
    code
}

fn write_all(sink: &mut dyn Write, bytes: &[u8]) -> bool {
    sink.write_all(bytes).and_then(|()| sink.flush()).is_ok()
}

/// Sends one line to the stdin of `container`'s main process.
pub async fn send(global: &Global, agent: &str, container: &str, line: &str) -> CliResult {
    let client = connect(global).await?;
    let request = SendRequest {
        agent_id: agent.into(),
        container_id: container.into(),
        line: line.to_string(),
    };
    let answer = client
        .request_raw(
            subject::CONTAINER_SEND,
            serde_json::to_value(&request).expect("protocol types serialise"),
        )
        .await;
    client.close().await;
    let sent: SendResult = serde_json::from_value(answer?).map_err(|e| {
        CliError::new(
            "INVALID_ANSWER",
            format!("the relay's answer is unreadable: {e}"),
        )
    })?;
    eprintln!(
        "sent {} to {container}",
        table::count(sent.bytes, "byte", "bytes")
    );
    Ok(())
}
