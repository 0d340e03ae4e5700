//! `zedops logs`: a container's output, one line per line, stdout to stdout and stderr to
//! stderr (as `docker logs` does), following new lines with `--follow` until Ctrl-C.

use std::io::{IsTerminal, Write};

use zedops_client::{LogStream, LogsOptions};

use super::watch::Watch;
use super::{CliError, CliResult, Global, open_stream};

pub async fn logs(
    global: &Global,
    agent: &str,
    container: &str,
    options: LogsOptions,
) -> CliResult {
    let (client, stream) = open_stream(global, |c| async move {
        c.logs(agent, container, options).await
    })
    .await?;
    let mut watch = Watch::new(stream);
    let stdout_is_terminal = std::io::stdout().is_terminal();
    let stderr_is_terminal = std::io::stderr().is_terminal();
    let outcome = loop {
        let chunk = match watch.next().await {
            None => break Ok(()),
            Some(Err(err)) => break Err(CliError::from(err)),
            Some(Ok(chunk)) => chunk,
        };
        if chunk.dropped > 0 {
            eprintln!(
                "[zedops: {} lines left out: the stream was over its rate or this terminal fell behind]",
                chunk.dropped
            );
        }
        let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
        for line in &chunk.lines {
            let to_terminal = match line.stream {
                LogStream::Stdout => stdout_is_terminal,
                LogStream::Stderr => stderr_is_terminal,
            };
            // Into a file or pipe the output goes as the container wrote it (as `docker logs`
            // does); on a terminal, escape sequences are made visible instead of acted on.
            let text = if to_terminal {
                printable(&line.text)
            } else {
                std::borrow::Cow::Borrowed(line.text.as_str())
            };
            let cut = if line.truncated {
                " [line cut at 16 KiB]"
            } else {
                ""
            };
            let sink: &mut dyn Write = match line.stream {
                LogStream::Stdout => &mut out,
                LogStream::Stderr => &mut err,
            };
            if let Err(e) = writeln!(sink, "{text}{cut}") {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    // `zedops logs | head`: the reader has what it wanted.
                    watch.stop();
                    break;
                }
                return Err(CliError::new(
                    "OUTPUT_FAILED",
                    format!("cannot write the log: {e}"),
                ));
            }
        }
        let _ = out.flush();
        if let Some(end) = chunk.end {
            break match end.error_code {
                Some(code) if !watch.stopped => Err(CliError::new(
                    code.as_str(),
                    super::table::clean(&end.reason),
                )),
                _ => Ok(()),
            };
        }
    };
    drop(watch);
    client.close().await;
    outcome
}

/// A container's line with terminal control characters (escape sequences that could rewrite
/// the screen) made visible; tabs stay.
fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text
        .chars()
        .any(|c| c != '\t' && super::table::is_unsafe(c))
    {
        return std::borrow::Cow::Borrowed(text);
    }
    text.chars()
        .map(|c| {
            if c != '\t' && super::table::is_unsafe(c) {
                '?'
            } else {
                c
            }
        })
        .collect()
}
