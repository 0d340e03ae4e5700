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
    eprintln!("{}", super::table::clean(&done.path));
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
    let part = (dest != "-").then(|| Part::beside(dest)).transpose()?;
    let (client, mut transfer) =
        open_stream(global, |c| async move { c.file_get(&request).await }).await?;
    let mut sink: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = match &part {
        None => Box::new(tokio::io::stdout()),
        Some(part) => Box::new(part.writer()?),
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
    let flushed = sink.flush().await;
    drop(sink);
    client.close().await;
    outcome?;
    flushed.map_err(|e| CliError::new("OUTPUT_FAILED", format!("cannot write {dest}: {e}")))?;
    match part {
        Some(part) => part.finish(dest),
        None => Ok(()),
    }
}

/// A download on its way to `dest`: a hidden file in the same directory, renamed over `dest`
/// once the whole file arrived. A download that fails (a mistyped path, a file over the
/// agent's limit, a broken connection) leaves `dest` as it was, and no empty file; the
/// temporary file is deleted when this drops.
struct Part {
    file: tempfile::NamedTempFile,
}

impl Part {
    fn beside(dest: &str) -> Result<Self, CliError> {
        let path = std::path::Path::new(dest);
        if path.is_dir() {
            return Err(CliError::new(
                "OUTPUT_FAILED",
                format!("{dest} is a directory; give the file's name too, e.g. {dest}/NAME"),
            ));
        }
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => std::path::Path::new("."),
        };
        let file = tempfile::Builder::new()
            .prefix(".zedops-get-")
            .tempfile_in(dir)
            .map_err(|e| CliError::new("OUTPUT_FAILED", format!("cannot create {dest}: {e}")))?;
        Ok(Self { file })
    }

    fn writer(&self) -> Result<tokio::fs::File, CliError> {
        let file = self
            .file
            .reopen()
            .map_err(|e| CliError::new("OUTPUT_FAILED", format!("cannot write a file: {e}")))?;
        Ok(tokio::fs::File::from_std(file))
    }

    /// Renames the complete download over `dest`, with `dest`'s permissions when it existed
    /// (else the usual 0644: the temporary file was made 0600).
    fn finish(self, dest: &str) -> CliResult {
        let failed =
            |e: std::io::Error| CliError::new("OUTPUT_FAILED", format!("cannot write {dest}: {e}"));
        let permissions = match std::fs::metadata(dest) {
            Ok(existing) => Some(existing.permissions()),
            Err(_) => new_file_permissions(),
        };
        if let Some(permissions) = permissions {
            std::fs::set_permissions(self.file.path(), permissions).map_err(failed)?;
        }
        self.file.persist(dest).map_err(|e| failed(e.error))?;
        Ok(())
    }
}

#[cfg(unix)]
fn new_file_permissions() -> Option<std::fs::Permissions> {
    use std::os::unix::fs::PermissionsExt;
    Some(std::fs::Permissions::from_mode(0o644))
}

#[cfg(not(unix))]
fn new_file_permissions() -> Option<std::fs::Permissions> {
    None
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
    // `PATH/` puts the file into that directory under its own name, as `docker cp` and `cp` do.
    let path = match path.ends_with('/') {
        true => {
            let name = std::path::Path::new(source)
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| {
                    CliError::new("INPUT_FAILED", format!("{source} has no file name to use"))
                })?;
            format!("{path}{name}")
        }
        false => path.to_string(),
    };
    let shown = super::table::clean(&path);
    let request = FilePutRequest {
        agent_id: agent.into(),
        container_id: container.into(),
        path,
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
                    eprintln!(
                        "{} written to {shown}",
                        super::table::count(size, "byte", "bytes")
                    );
                    Ok(())
                }
                Some(code) => Err(CliError::new(code.as_str(), end.reason)),
            };
        }
    };
    client.close().await;
    outcome
}
