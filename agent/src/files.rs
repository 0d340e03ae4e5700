//! File operations on a container for the relay: list, download and upload (streamed in chunks
//! under the same credit scheme as console sessions), remove, make a directory. Every path is
//! normalised first, and a `..` above `/` is refused with `PATH_OUTSIDE`; Docker resolves what
//! is left inside the container's root filesystem.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use zedops_protocol::{
    Credit, DEFAULT_CONSOLE_WINDOW, ErrorCode, ErrorReply, FileChunk, FileDone, FileEntry,
    FileGetRequest, FileKind, FileList, FilePathRequest, FilePutRequest, MAX_CONSOLE_CHUNK_BYTES,
    MAX_LIST_ENTRIES, PathError, StreamEnd, encode_bytes, normalize_path, split_parent,
};

use crate::console::{SessionInbox, Sessions};
use crate::docker::DockerClient;
use crate::docker::archive::{Owner, tar_header, tar_trailer};
use crate::outbox::send;
use crate::unix_time::now;

/// How long a listing may read the directory's archive before it answers with what it has
/// (`truncated`); the relay waits 30 s for an answer.
const LIST_BUDGET: Duration = Duration::from_secs(8);
/// Tar pieces queued towards Docker during an upload.
const UPLOAD_QUEUE: usize = 4;

/// The normalised form of a request's path, or the refusal.
pub fn checked_path(path: &str) -> Result<String, ErrorReply> {
    normalize_path(path).map_err(|err| match err {
        PathError::Outside => {
            tracing::warn!("refused a path that climbs above the container's root");
            ErrorReply::new(
                ErrorCode::PathOutside,
                format!("{err}; name a path inside the container"),
            )
        }
        PathError::Invalid => ErrorReply::new(ErrorCode::InvalidRequest, err.to_string()),
    })
}

/// `file.list`: the entries of a directory (or the one entry of a file), by name.
pub async fn list(
    docker: &DockerClient,
    request: &FilePathRequest,
) -> Result<FileList, ErrorReply> {
    let path = checked_path(&request.path)?;
    let mut archive = docker.archive(&request.container_id, &path).await?;
    let Some(top) = archive.next_entry().await? else {
        return Err(ErrorReply::new(
            ErrorCode::FileNotFound,
            format!("nothing at {path}"),
        ));
    };
    if top.kind != FileKind::Dir {
        let name = split_parent(&path).map_or("/", |(_, n)| n).to_string();
        return Ok(FileList {
            path,
            entries: vec![FileEntry { name, ..top }],
            truncated: false,
        });
    }
    // Docker names entries after the directory's own name: `etc/`, `etc/passwd`, …
    let prefix = top.name.trim_end_matches('/').to_string();
    let deadline = tokio::time::Instant::now() + LIST_BUDGET;
    let mut entries = Vec::new();
    let mut truncated = false;
    loop {
        let next = match tokio::time::timeout_at(deadline, archive.next_entry()).await {
            Err(_) => {
                truncated = true;
                break;
            }
            Ok(next) => next?,
        };
        let Some(entry) = next else { break };
        let Some(child) = child_name(&prefix, &entry.name) else {
            continue;
        };
        if entries.len() == MAX_LIST_ENTRIES {
            truncated = true;
            break;
        }
        entries.push(FileEntry {
            name: child.to_string(),
            ..entry
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(FileList {
        path,
        entries,
        truncated,
    })
}

/// The name of `entry` when it is a direct child of the directory `prefix`.
fn child_name<'a>(prefix: &str, entry: &'a str) -> Option<&'a str> {
    let rest = if prefix.is_empty() || prefix == "." {
        // The root's archive names entries `/bin/`, `/.dockerenv`, …
        entry
            .strip_prefix("./")
            .or_else(|| entry.strip_prefix('/'))
            .unwrap_or(entry)
    } else {
        entry.strip_prefix(prefix)?.strip_prefix('/')?
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    (!rest.is_empty() && !rest.contains('/')).then_some(rest)
}

/// `file.remove`: removes a file or a directory with everything in it.
pub async fn remove(
    docker: &DockerClient,
    request: &FilePathRequest,
) -> Result<FileDone, ErrorReply> {
    let path = checked_path(&request.path)?;
    if path == "/" {
        return Err(ErrorReply::new(
            ErrorCode::InvalidRequest,
            "refusing to remove the container's root",
        ));
    }
    if !exists(docker, &request.container_id, &path).await? {
        return Err(ErrorReply::new(
            ErrorCode::FileNotFound,
            format!("nothing at {path}"),
        ));
    }
    docker.remove_path(&request.container_id, &path).await?;
    Ok(FileDone { path })
}

/// `file.mkdir`: makes one directory (mode 0755, the owner of the directory it is made in) in
/// an existing one.
pub async fn mkdir(
    docker: &DockerClient,
    request: &FilePathRequest,
) -> Result<FileDone, ErrorReply> {
    let path = checked_path(&request.path)?;
    let (parent, name, parent_owner) = parent_dir(docker, &request.container_id, &path).await?;
    if exists(docker, &request.container_id, &path).await? {
        return Err(ErrorReply::new(
            ErrorCode::FileFailed,
            format!("{path} already exists"),
        ));
    }
    let (tx, rx) = mpsc::channel(2);
    let mut tar = tar_header(&name, FileKind::Dir, 0, 0o755, now(), parent_owner);
    tar.extend(tar_trailer(0));
    tx.send(Bytes::from(tar)).await.expect("queue has room");
    drop(tx);
    docker.extract(&request.container_id, &parent, rx).await?;
    Ok(FileDone { path })
}

/// Whether there is anything at `path` in `container`.
async fn exists(docker: &DockerClient, container: &str, path: &str) -> Result<bool, ErrorReply> {
    Ok(docker.stat(container, path).await?.is_some())
}

/// The existing directory holding `path`, the name in it, and the directory's owner.
async fn parent_dir(
    docker: &DockerClient,
    container: &str,
    path: &str,
) -> Result<(String, String, Owner), ErrorReply> {
    let Some((parent, name)) = split_parent(path) else {
        return Err(ErrorReply::new(
            ErrorCode::InvalidRequest,
            "the container's root cannot be written",
        ));
    };
    match docker.stat_owned(container, parent).await? {
        Some((entry, owner)) if entry.kind == FileKind::Dir => {
            // The root's archive starts with what is in it, not with `/` itself; `/` is root's
            // in every image.
            let owner = if parent == "/" { Owner::ROOT } else { owner };
            Ok((parent.to_string(), name.to_string(), owner))
        }
        Some(_) => Err(ErrorReply::new(
            ErrorCode::FileFailed,
            format!("{parent} is not a directory"),
        )),
        None => Err(ErrorReply::new(
            ErrorCode::FileNotFound,
            format!("the directory {parent} does not exist; make it first"),
        )),
    }
}

impl Sessions {
    /// Starts a `file.get` download answering on `inbox`.
    pub fn start_get(
        self: &Arc<Self>,
        docker: Arc<DockerClient>,
        request: FileGetRequest,
        max_file_size: u64,
        inbox: String,
        tx: mpsc::Sender<String>,
    ) {
        self.spawn_transfer(inbox, tx, move |inbox, tx, session| async move {
            let end = get(&docker, &request, max_file_size, &inbox, &tx, session).await;
            FileChunk {
                end: Some(end),
                ..FileChunk::default()
            }
        });
    }

    /// Starts a `file.put` upload answering on `inbox`; its bytes come as `stream.input`.
    pub fn start_put(
        self: &Arc<Self>,
        docker: Arc<DockerClient>,
        request: FilePutRequest,
        max_file_size: u64,
        inbox: String,
        tx: mpsc::Sender<String>,
    ) {
        self.spawn_transfer(inbox, tx, move |inbox, tx, session| async move {
            let (entry, end) =
                match put(&docker, &request, max_file_size, &inbox, &tx, session).await {
                    Ok(entry) => (Some(entry), StreamEnd::ended("written")),
                    Err(refusal) => (None, failed(refusal)),
                };
            FileChunk {
                entry,
                end: Some(end),
                ..FileChunk::default()
            }
        });
    }

    /// Registers a transfer on `inbox` (or answers the refusal) and runs it on a task of its
    /// own; `transfer` moves the bytes and gives the last frame, sent once the session is gone.
    fn spawn_transfer<F, T>(self: &Arc<Self>, inbox: String, tx: mpsc::Sender<String>, transfer: F)
    where
        F: FnOnce(String, mpsc::Sender<String>, SessionInbox) -> T + Send + 'static,
        T: Future<Output = FileChunk> + Send,
    {
        let session = match self.register(&inbox) {
            Ok(session) => session,
            Err(refusal) => return refuse(tx, inbox, refusal),
        };
        let sessions = Arc::downgrade(self);
        tokio::spawn(async move {
            let last = transfer(inbox.clone(), tx.clone(), session).await;
            if let Some(sessions) = sessions.upgrade() {
                sessions.forget(&inbox);
            }
            let _ = send(&tx, &inbox, &last).await;
        });
    }
}

fn refuse(tx: mpsc::Sender<String>, inbox: String, refusal: ErrorReply) {
    tokio::spawn(async move {
        let last = FileChunk {
            end: Some(failed(refusal)),
            ..FileChunk::default()
        };
        let _ = send(&tx, &inbox, &last).await;
    });
}

/// Sends the file within the client's grants; how the download ended.
async fn get(
    docker: &DockerClient,
    request: &FileGetRequest,
    max_file_size: u64,
    inbox: &str,
    tx: &mpsc::Sender<String>,
    session: SessionInbox,
) -> StreamEnd {
    let SessionInbox {
        mut inputs,
        mut cancel,
    } = session;
    let path = match checked_path(&request.path) {
        Ok(path) => path,
        Err(refusal) => return failed(refusal),
    };
    let mut archive = match docker.archive(&request.container_id, &path).await {
        Ok(archive) => archive,
        Err(err) => return failed(err.into()),
    };
    let entry = match archive.next_entry().await {
        Ok(Some(entry)) => entry,
        Ok(None) => {
            return failed(ErrorReply::new(
                ErrorCode::FileNotFound,
                format!("nothing at {path}"),
            ));
        }
        Err(err) => return failed(err.into()),
    };
    match entry.kind {
        FileKind::File => {}
        FileKind::Dir => {
            return failed(ErrorReply::new(
                ErrorCode::InvalidRequest,
                format!("{path} is a directory; list it, or get the files in it"),
            ));
        }
        FileKind::Symlink => {
            return failed(ErrorReply::new(
                ErrorCode::InvalidRequest,
                format!(
                    "{path} is a symbolic link to {}; get that path",
                    entry.link_target.as_deref().unwrap_or("?")
                ),
            ));
        }
        FileKind::Other => {
            return failed(ErrorReply::new(
                ErrorCode::InvalidRequest,
                format!("{path} is not a regular file"),
            ));
        }
    }
    if entry.size > max_file_size {
        return failed(too_large(entry.size, max_file_size));
    }
    let name = split_parent(&path).map_or("/", |(_, n)| n).to_string();
    let first = FileChunk {
        entry: Some(FileEntry { name, ..entry }),
        ..FileChunk::default()
    };
    if !send(tx, inbox, &first).await {
        return StreamEnd::ended("the relay connection closed");
    }
    let mut credit = Credit::new(request.window.unwrap_or(DEFAULT_CONSOLE_WINDOW));
    let mut buf = vec![0u8; MAX_CONSOLE_CHUNK_BYTES];
    loop {
        // Checked before waiting for credit: a file that ends exactly at the window is done.
        if archive.remaining() == 0 {
            return StreamEnd::ended("end of the file");
        }
        if credit.available() == 0 {
            tokio::select! {
                _ = &mut cancel => return StreamEnd::ended("cancelled"),
                input = inputs.recv() => match input {
                    None => return StreamEnd::ended("cancelled"),
                    Some(input) => credit.grant(input.grant),
                },
            }
            continue;
        }
        let want = buf.len().min(credit.available() as usize);
        let n = tokio::select! {
            _ = &mut cancel => return StreamEnd::ended("cancelled"),
            read = archive.read(&mut buf[..want]) => match read {
                Ok(n) => n,
                Err(err) => return failed(err.into()),
            },
        };
        if n == 0 {
            return StreamEnd::ended("end of the file");
        }
        credit.take(n);
        let chunk = FileChunk {
            data: Some(encode_bytes(&buf[..n])),
            ..FileChunk::default()
        };
        if !send(tx, inbox, &chunk).await {
            return StreamEnd::ended("the relay connection closed");
        }
        // Grants that came meanwhile (without waiting for one).
        while let Ok(input) = inputs.try_recv() {
            credit.grant(input.grant);
        }
    }
}

/// Receives the bytes within the agent's grants and streams them to Docker as a one-entry tar;
/// the file as written.
async fn put(
    docker: &DockerClient,
    request: &FilePutRequest,
    max_file_size: u64,
    inbox: &str,
    tx: &mpsc::Sender<String>,
    session: SessionInbox,
) -> Result<FileEntry, ErrorReply> {
    let SessionInbox {
        mut inputs,
        mut cancel,
    } = session;
    // Refused before a byte is sent: the client learns at once.
    if request.size > max_file_size {
        return Err(too_large(request.size, max_file_size));
    }
    // `dir/` names a directory, not a file to write (normalised, it would name `dir` itself
    // and replace it with the file).
    if request.path.ends_with('/') {
        return Err(ErrorReply::new(
            ErrorCode::InvalidRequest,
            format!(
                "{} names a directory; give the file's name in it, e.g. {}NAME",
                request.path, request.path
            ),
        ));
    }
    let path = checked_path(&request.path)?;
    let (parent, name, parent_owner) = parent_dir(docker, &request.container_id, &path).await?;
    let existing = docker.stat_owned(&request.container_id, &path).await?;
    if let Some((entry, _)) = &existing
        && entry.kind == FileKind::Dir
    {
        return Err(ErrorReply::new(
            ErrorCode::FileFailed,
            format!("{path} is a directory; give the file's name in it, e.g. {path}/NAME"),
        ));
    }
    // A replaced file keeps its owner (a game server running as its own user must still be
    // able to write its config after an edit from the desk); a new one takes its directory's,
    // as a file made there by that directory's user would.
    let owner = existing.map_or(parent_owner, |(_, owner)| owner);
    let mode = request.mode.unwrap_or(0o644);
    let mtime = now();
    let (body, rx) = mpsc::channel::<Bytes>(UPLOAD_QUEUE);
    body.send(Bytes::from(tar_header(
        &name,
        FileKind::File,
        request.size,
        mode,
        mtime,
        owner,
    )))
    .await
    .expect("queue has room");
    let container = request.container_id.clone();
    let mut upload = Box::pin(docker.extract(&container, &parent, rx));
    let mut body = Some(body);
    let mut credit = Credit::new(DEFAULT_CONSOLE_WINDOW);
    let ready = FileChunk {
        grant: DEFAULT_CONSOLE_WINDOW,
        ..FileChunk::default()
    };
    if !send(tx, inbox, &ready).await {
        return Err(ErrorReply::new(
            ErrorCode::InvalidRequest,
            "the relay connection closed",
        ));
    }
    let mut received: u64 = 0;
    loop {
        tokio::select! {
            _ = &mut cancel => {
                return Err(ErrorReply::new(ErrorCode::InvalidRequest, format!("cancelled after {received} of {} bytes; {path} may be left partly written", request.size)));
            }
            done = &mut upload => {
                // Docker finished (or failed) before the last byte: whatever it said.
                done?;
                if body.is_some() {
                    return Err(ErrorReply::new(ErrorCode::FileFailed, "Docker ended the upload early"));
                }
                break;
            }
            input = inputs.recv(), if body.is_some() => {
                let Some(input) = input else {
                    return Err(ErrorReply::new(ErrorCode::InvalidRequest, "cancelled"));
                };
                let bytes = input
                    .bytes()
                    .map_err(|e| ErrorReply::new(ErrorCode::InvalidRequest, e.to_string()))?;
                if !credit.take(bytes.len()) {
                    tracing::warn!("a client sent upload bytes beyond its credit; ending it");
                    return Err(ErrorReply::new(ErrorCode::InvalidRequest, "upload bytes beyond the granted window"));
                }
                received += bytes.len() as u64;
                if received > request.size {
                    return Err(ErrorReply::new(
                        ErrorCode::InvalidRequest,
                        format!("more bytes than the {} announced", request.size),
                    ));
                }
                let n = bytes.len() as u32;
                let queue = body.as_ref().expect("checked");
                // Waits while Docker is behind: the back-pressure that bounds this queue.
                let sent = tokio::select! {
                    sent = queue.send(Bytes::from(bytes)) => sent.is_ok(),
                    done = &mut upload => { done?; false }
                };
                if !sent {
                    return Err(ErrorReply::new(ErrorCode::FileFailed, "Docker ended the upload early"));
                }
                if n > 0 {
                    credit.grant(n);
                    let grant = FileChunk { grant: n, ..FileChunk::default() };
                    if !send(tx, inbox, &grant).await {
                        return Err(ErrorReply::new(ErrorCode::InvalidRequest, "the relay connection closed"));
                    }
                }
                if input.eof || received == request.size {
                    if received != request.size {
                        return Err(ErrorReply::new(
                            ErrorCode::InvalidRequest,
                            format!("the upload ended after {received} of {} bytes", request.size),
                        ));
                    }
                    let queue = body.take().expect("checked");
                    let trailer = Bytes::from(tar_trailer(request.size));
                    tokio::select! {
                        _ = queue.send(trailer) => {}
                        done = &mut upload => { done?; }
                    }
                    // Dropping the queue ends the tar stream; the upload finishes with it.
                }
            }
        }
    }
    Ok(FileEntry {
        name,
        kind: FileKind::File,
        size: request.size,
        mode,
        mtime: mtime as i64,
        link_target: None,
    })
}

fn too_large(size: u64, max: u64) -> ErrorReply {
    ErrorReply::new(
        ErrorCode::FileTooLarge,
        format!(
            "{size} bytes is over this agent's limit of {max} bytes per transfer (zedops-agent run --max-file-size)"
        ),
    )
}

fn failed(refusal: ErrorReply) -> StreamEnd {
    StreamEnd {
        error_code: Some(refusal.error_code),
        reason: refusal.error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_children_only() {
        assert_eq!(child_name("etc", "etc/passwd"), Some("passwd"));
        assert_eq!(child_name("etc", "etc/ssl/"), Some("ssl"));
        assert_eq!(child_name("etc", "etc/ssl/certs"), None);
        assert_eq!(child_name("etc", "etcetera/x"), None);
        assert_eq!(child_name(".", "./bin/"), Some("bin"));
        assert_eq!(child_name(".", "./"), None);
        assert_eq!(child_name("", "/bin/"), Some("bin"));
        assert_eq!(child_name("", "/.dockerenv"), Some(".dockerenv"));
        assert_eq!(child_name("", "/bin/busybox"), None);
    }

    #[test]
    fn climbing_out_is_its_own_code() {
        assert_eq!(
            checked_path("/srv/../../etc").unwrap_err().error_code,
            ErrorCode::PathOutside
        );
        assert_eq!(
            checked_path("a\0").unwrap_err().error_code,
            ErrorCode::InvalidRequest
        );
        assert_eq!(checked_path("srv/./x").unwrap(), "/srv/x");
    }
}
