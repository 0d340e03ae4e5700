//! `zedops files ls|get|put|rm|mkdir`: a container's files over the agent's use of Docker's
//! archive API. Downloads and uploads stream in 32 KiB chunks within the credit the other side
//! grants, so a file of any size (up to the agent's limit) never sits whole in memory here.

use std::io::Write;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zedops_protocol::{
    FileGetRequest, FileKind, FilePathRequest, FilePutRequest, MAX_CONSOLE_CHUNK_BYTES,
    StreamInput, encode_bytes,
};

use super::{CliError, CliResult, Global, call, open_stream};

/// `files ls`: one line per entry (mode, size, modification time, name).
pub async fn ls(
    global: &Global,
    agent: &str,
    container: &str,
    path: &str,
    json: bool,
) -> CliResult {
    let request = FilePathRequest::new(agent, container, path);
    let list = call(global, |c| async move { c.list_files(request).await }).await?;
    if json {
        return super::print_json(&list);
    }
    let mut out = std::io::stdout().lock();
    for entry in &list.entries {
        let kind = match entry.kind {
            FileKind::Dir => 'd',
            FileKind::Symlink => 'l',
            FileKind::File => '-',
            FileKind::Other => '?',
        };
        let link = entry
            .link_target
            .as_deref()
            .map(|t| format!(" -> {}", super::table::clean(t)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{kind}{:04o} {:>12} {} {}{link}",
            entry.mode,
            entry.size,
            mtime(entry.mtime),
            super::table::clean(&entry.name)
        );
    }
    if list.truncated {
        eprintln!("[zedops: the listing was cut short: the directory is very large]");
    }
    Ok(())
}

/// A modification time as RFC 3339, to the second (UTC).
fn mtime(secs: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(time).to_string()
}

/// What `files rm` and `files mkdir` do to their path.
pub enum Change {
    Remove,
    Mkdir,
}

/// `files rm` and `files mkdir`: prints the path changed (on stderr, as a note).
pub async fn change(
    global: &Global,
    change: Change,
    agent: &str,
    container: &str,
    path: &str,
) -> CliResult {
    let request = FilePathRequest::new(agent, container, path);
    let done = call(global, |c| async move {
        match change {
            Change::Remove => c.remove_file(request).await,
            Change::Mkdir => c.make_dir(request).await,
        }
    })
    .await?;
    eprintln!("{}", done.path);
    Ok(())
}

/// `files get`: the file to `dest` (stdout when `-`).
pub async fn get(
    global: &Global,
    agent: &str,
    container: &str,
    path: &str,
    dest: &str,
) -> CliResult {
    let request = FileGetRequest {
        agent_id: agent.into(),
        container_id: container.into(),
        path: path.to_string(),
        window: None,
    };
    let (client, mut transfer) =
        open_stream(global, |c| async move { c.file_get(&request).await }).await?;
    let mut sink: Box<dyn tokio::io::AsyncWrite + Unpin + Send> =
        if dest == "-" {
            Box::new(tokio::io::stdout())
        } else {
            Box::new(tokio::fs::File::create(dest).await.map_err(|e| {
                CliError::new("OUTPUT_FAILED", format!("cannot create {dest}: {e}"))
            })?)
        };
    let outcome = loop {
        let frame = match transfer.next().await {
            None => break Err(CliError::new("DISCONNECTED", "the download stopped")),
            Some(Err(e)) => break Err(e.into()),
            Some(Ok(frame)) => frame,
        };
        let bytes = frame.bytes().unwrap_or_default();
        if !bytes.is_empty() {
            if let Err(e) = sink.write_all(&bytes).await {
                transfer.cancel();
                break Err(CliError::new(
                    "OUTPUT_FAILED",
                    format!("cannot write {dest}: {e}"),
                ));
            }
            let _ = transfer.grant(bytes.len()).await;
        }
        if let Some(end) = frame.end {
            break match end.error_code {
                None => Ok(()),
                Some(code) => Err(CliError::new(code.as_str(), end.reason)),
            };
        }
    };
    let _ = sink.flush().await;
    client.close().await;
    outcome
}

/// `files put`: the local file `source` to `path` in the container.
pub async fn put(
    global: &Global,
    agent: &str,
    container: &str,
    source: &str,
    path: &str,
) -> CliResult {
    let mut file = tokio::fs::File::open(source)
        .await
        .map_err(|e| CliError::new("INPUT_FAILED", format!("cannot open {source}: {e}")))?;
    let size = file
        .metadata()
        .await
        .map_err(|e| CliError::new("INPUT_FAILED", format!("cannot read {source}: {e}")))?
        .len();
    let request = FilePutRequest {
        agent_id: agent.into(),
        container_id: container.into(),
        path: path.to_string(),
        size,
        mode: None,
    };
    let (client, mut transfer) =
        open_stream(global, |c| async move { c.file_put(&request).await }).await?;
    let mut buf = vec![0u8; MAX_CONSOLE_CHUNK_BYTES];
    let (mut credit, mut sent, mut eof_sent) = (0u64, 0u64, false);
    let outcome = loop {
        // Send what the agent's credit allows, then read its frames (grants, the end).
        while !eof_sent && credit > 0 {
            let want = (credit as usize).min(buf.len()).min((size - sent) as usize);
            let n = match file.read(&mut buf[..want]).await {
                Ok(n) => n,
                Err(e) => {
                    transfer.cancel();
                    return Err(CliError::new(
                        "INPUT_FAILED",
                        format!("cannot read {source}: {e}"),
                    ));
                }
            };
            sent += n as u64;
            credit -= n as u64;
            eof_sent = n == 0 || sent == size;
            let input = StreamInput {
                data: (n > 0).then(|| encode_bytes(&buf[..n])),
                eof: eof_sent,
                ..Default::default()
            };
            if transfer.input(input).await.is_err() {
                break;
            }
        }
        let frame = match transfer.next().await {
            None => break Err(CliError::new("DISCONNECTED", "the upload stopped")),
            Some(Err(e)) => break Err(e.into()),
            Some(Ok(frame)) => frame,
        };
        credit += u64::from(frame.grant);
        if let Some(end) = frame.end {
            break match end.error_code {
                None => {
                    eprintln!("{size} bytes written to {path}");
                    Ok(())
                }
                Some(code) => Err(CliError::new(code.as_str(), end.reason)),
            };
        }
    };
    client.close().await;
    outcome
}
