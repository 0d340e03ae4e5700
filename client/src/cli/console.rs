//! `zedops exec` (without a terminal: stdout and stderr apart, stdin piped with `-i`, the
//! remote exit code as `zedops`'s own) and `zedops send` (one line to a game server's console).
//! Flow control as the protocol asks: output is granted back once written here, input is read
//! from the local stdin only within the agent's grants.

use std::io::Write;

use tokio::io::AsyncReadExt;
use zedops_protocol::{
    ConsoleStream, ExecRequest, MAX_CONSOLE_CHUNK_BYTES, SendRequest, SendResult, StreamInput,
    encode_bytes, subject,
};

use super::{CliError, CliResult, Global, connect};

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
    if tty {
        return Err(CliError::new(
            "NOT_SUPPORTED",
            "terminal sessions (-t) are not in the CLI yet; run without -t (stdout and stderr stay apart, -i pipes stdin)",
        ));
    }
    let client = connect(global).await?;
    let request = ExecRequest {
        agent_id: agent.to_string(),
        container_id: container.to_string(),
        cmd,
        tty: false,
        stdin: interactive,
        env: vec![],
        working_dir: None,
        size: None,
        window: None,
    };
    let mut session = match client.exec(&request).await {
        Ok(session) => session,
        Err(err) => {
            client.close().await;
            return Err(err.into());
        }
    };
    let mut stdin = tokio::io::stdin();
    let mut buf = vec![0u8; MAX_CONSOLE_CHUNK_BYTES];
    let mut credit: u64 = 0;
    let mut stdin_open = interactive;
    let mut interrupted = false;
    let code = loop {
        let frame = tokio::select! {
            _ = tokio::signal::ctrl_c(), if !interrupted => {
                // The agent ends the process; the last frame still comes.
                interrupted = true;
                session.cancel();
                continue;
            }
            read = stdin.read(&mut buf[..(credit as usize).min(MAX_CONSOLE_CHUNK_BYTES)]),
                if stdin_open && credit > 0 => {
                let n = read.unwrap_or(0);
                if n == 0 {
                    stdin_open = false;
                }
                credit -= n as u64;
                let input = StreamInput {
                    data: (n > 0).then(|| encode_bytes(&buf[..n])),
                    eof: n == 0,
                    ..Default::default()
                };
                if session.input(input).await.is_err() {
                    stdin_open = false;
                }
                continue;
            }
            next = session.next() => next,
        };
        let frame = match frame {
            None => break FAILED,
            Some(Err(err)) => {
                client.close().await;
                return Err(err.into());
            }
            Some(Ok(frame)) => frame,
        };
        if let Some(started) = &frame.started {
            credit += u64::from(started.window);
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
                let grant = StreamInput {
                    grant: bytes.len() as u32,
                    ..Default::default()
                };
                let _ = session.input(grant).await;
            }
        }
        if let Some(end) = frame.end {
            if let Some(code) = end.error_code {
                eprintln!("zedops: {code}: {}", end.reason);
                break FAILED;
            }
            break match frame.exit.and_then(|e| e.code) {
                Some(code) => code.clamp(0, 255) as i32,
                // Ended by Ctrl-C (the agent ended the process), like a shell's 128 + SIGINT.
                None if interrupted => 130,
                None => FAILED,
            };
        }
    };
    client.close().await;
    std::process::exit(code);
}

fn write_all(sink: &mut dyn Write, bytes: &[u8]) -> bool {
    sink.write_all(bytes).and_then(|()| sink.flush()).is_ok()
}

/// Sends one line to the stdin of `container`'s main process.
pub async fn send(global: &Global, agent: &str, container: &str, line: &str) -> CliResult {
    let client = connect(global).await?;
    let request = SendRequest {
        agent_id: agent.to_string(),
        container_id: container.to_string(),
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
    eprintln!("sent {} bytes to {container}", sent.bytes);
    Ok(())
}
