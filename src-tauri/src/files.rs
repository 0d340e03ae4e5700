//! The Files tab's backend over `zedops-client`, with no Tauri in sight (so tests drive it
//! against a real relay): list a directory of a container, download a file into a folder here,
//! upload one, delete, make a directory. Transfers stream in chunks within the credit the other
//! side grants (docs/PROTOCOL.md, "Flow control"); the agent confines paths to the container and
//! limits the size of one transfer.

pub mod commands;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use specta::Type;
use tokio::io::AsyncWriteExt;
use zedops_client::console::FileTransfer;
use zedops_client::{Client, ClientError};
use zedops_protocol::{
    FileDone, FileEntry, FileGetRequest, FileKind, FilePathRequest, FilePutRequest,
    MAX_CONSOLE_CHUNK_BYTES, StreamInput, encode_bytes,
};

use crate::error::{AppError, ErrorCode, sentence};

/// Largest upload the app sends (it is read whole into memory from the window; the agent's own
/// limit may be lower and is checked there).
pub const MAX_UPLOAD_BYTES: usize = 64 * 1024 * 1024;

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct FileEntryView {
    pub name: String,
    /// `file`, `dir`, `symlink` or `other`.
    pub kind: String,
    pub size: f64,
    /// Permission bits, e.g. `0644`.
    pub mode: String,
    /// Unix seconds.
    pub mtime: f64,
    pub link_target: Option<String>,
}

/// A directory's listing: directories first, then by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct FileListView {
    /// The directory as the agent normalised it.
    pub path: String,
    pub entries: Vec<FileEntryView>,
    /// The directory is very large and only its first entries are listed.
    pub truncated: bool,
}

/// A file saved on this computer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct SavedFile {
    pub path: String,
    pub bytes: f64,
}

/// A refusal by role says who may do it.
fn forbidden(who: &'static str) -> impl Fn(AppError) -> AppError {
    move |err| err.when_forbidden(|| format!("Only {who}: ask a ZedOps admin of this relay."))
}

/// A directory of the container.
pub async fn list(
    client: &Client,
    agent: &str,
    container: &str,
    path: &str,
) -> Result<FileListView, AppError> {
    let list = client
        .list_files(FilePathRequest::new(agent, container, path))
        .await
        .map_err(AppError::from)
        .map_err(forbidden(
            "operators and admins may read a container's files",
        ))?;
    let mut entries: Vec<FileEntryView> = list
        .entries
        .into_iter()
        .map(|e| FileEntryView {
            kind: match e.kind {
                FileKind::File => "file",
                FileKind::Dir => "dir",
                FileKind::Symlink => "symlink",
                FileKind::Other => "other",
            }
            .to_string(),
            name: e.name,
            size: e.size as f64,
            mode: format!("{:04o}", e.mode & 0o7777),
            mtime: e.mtime.max(0) as f64,
            link_target: e.link_target,
        })
        .collect();
    entries.sort_by(|a, b| {
        (a.kind != "dir")
            .cmp(&(b.kind != "dir"))
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok(FileListView {
        path: list.path,
        entries,
        truncated: list.truncated,
    })
}

/// (Admin) Deletes a file or an empty directory.
pub async fn remove(
    client: &Client,
    agent: &str,
    container: &str,
    path: &str,
) -> Result<String, AppError> {
    changed(
        client
            .remove_file(FilePathRequest::new(agent, container, path))
            .await,
    )
}

/// (Admin) Makes a directory.
pub async fn mkdir(
    client: &Client,
    agent: &str,
    container: &str,
    path: &str,
) -> Result<String, AppError> {
    changed(
        client
            .make_dir(FilePathRequest::new(agent, container, path))
            .await,
    )
}

/// The path a change was made to, or why not (a refusal by role says who may).
fn changed(done: Result<FileDone, ClientError>) -> Result<String, AppError> {
    done.map(|done| done.path)
        .map_err(AppError::from)
        .map_err(forbidden("admins may change a container's files"))
}

/// The last part of a container path, made safe as a file name here.
pub fn local_name(path: &str) -> String {
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    let clean: String = last
        .chars()
        .map(|c| {
            if c.is_control() || "/\\:*?\"<>|".contains(c) {
                '_'
            } else {
                c
            }
        })
        .collect();
    match clean.trim_matches('.') {
        "" => "download".to_string(),
        _ => clean,
    }
}

/// `dir/name`, or `dir/name (1)`, … when that exists: a download never overwrites a file.
pub fn free_path(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s.to_string(), format!(".{e}")),
        _ => (name.to_string(), String::new()),
    };
    (1..)
        .map(|n| dir.join(format!("{stem} ({n}){ext}")))
        .find(|p| !p.exists())
        .expect("some name is free")
}

/// Starts `file.get` of the container's `path`; refused, the error says who may (`who`).
async fn file_get(
    client: &Client,
    agent: &str,
    container: &str,
    path: &str,
    who: &'static str,
) -> Result<FileTransfer, AppError> {
    let request = FileGetRequest {
        agent_id: agent.into(),
        container_id: container.into(),
        path: path.to_string(),
        window: None,
    };
    client
        .file_get(&request)
        .await
        .map_err(AppError::from)
        .map_err(forbidden(who))
}

/// Downloads the container's file `path` into `dir` (under its own name, never overwriting),
/// streamed: written as it arrives and granted back once written. A failed download leaves
/// nothing behind.
pub async fn download(
    client: &Client,
    agent: &str,
    container: &str,
    path: &str,
    dir: &Path,
) -> Result<SavedFile, AppError> {
    let mut transfer = file_get(
        client,
        agent,
        container,
        path,
        "operators and admins may download a container's files",
    )
    .await?;
    let target = free_path(dir, &local_name(path));
    let partial = target.with_file_name(format!(
        ".{}.zedops-part",
        target.file_name().unwrap_or_default().to_string_lossy()
    ));
    let cannot_write = |e: std::io::Error| {
        AppError::new(
            ErrorCode::INVALID_INPUT,
            format!(
                "Could not save {} ({e}): check that the folder exists and has room.",
                target.display()
            ),
        )
    };
    let mut file = tokio::fs::File::create(&partial)
        .await
        .map_err(cannot_write)?;
    let mut written: u64 = 0;
    let outcome = loop {
        let frame = match transfer.next().await {
            None => {
                break Err(AppError::new(
                    zedops_client::LocalCode::Disconnected.into(),
                    "The download stopped: try again.",
                ));
            }
            Some(Err(err)) => break Err(AppError::from(err)),
            Some(Ok(frame)) => frame,
        };
        let bytes = frame.bytes().unwrap_or_default();
        if !bytes.is_empty() {
            if let Err(e) = file.write_all(&bytes).await {
                transfer.cancel();
                break Err(cannot_write(e));
            }
            written += bytes.len() as u64;
            let _ = transfer.grant(bytes.len()).await;
        }
        if let Some(end) = frame.end {
            break match end.error_code {
                None => Ok(()),
                Some(code) => Err(AppError::new(code.into(), sentence(&end.reason))),
            };
        }
    };
    let finished = match outcome {
        Ok(()) => file.flush().await.map_err(cannot_write),
        Err(err) => Err(err),
    };
    drop(file);
    if let Err(err) = finished {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(err);
    }
    tokio::fs::rename(&partial, &target)
        .await
        .map_err(cannot_write)?;
    Ok(SavedFile {
        path: target.display().to_string(),
        bytes: written as f64,
    })
}

/// (Admin) Uploads `bytes` as the container's file `path`, in chunks within the agent's credit.
pub async fn upload(
    client: &Client,
    agent: &str,
    container: &str,
    path: &str,
    bytes: &[u8],
) -> Result<String, AppError> {
    put(client, agent, container, path, bytes, None).await?;
    Ok(path.to_string())
}

/// Writes `bytes` as the file `path` with permission bits `mode` (`0644` when `None`); returns
/// the file as the agent wrote it.
async fn put(
    client: &Client,
    agent: &str,
    container: &str,
    path: &str,
    bytes: &[u8],
    mode: Option<u32>,
) -> Result<FileEntry, AppError> {
    if bytes.len() > MAX_UPLOAD_BYTES {
        return Err(AppError::new(
            ErrorCode::INVALID_INPUT,
            "The app uploads files of up to 64 MiB: use `zedops files put` for larger ones.",
        ));
    }
    let request = FilePutRequest {
        agent_id: agent.into(),
        container_id: container.into(),
        path: path.to_string(),
        size: bytes.len() as u64,
        mode,
    };
    let mut transfer = client
        .file_put(&request)
        .await
        .map_err(AppError::from)
        .map_err(forbidden("admins may upload files"))?;
    let (mut credit, mut sent, mut eof_sent) = (0usize, 0usize, false);
    loop {
        while !eof_sent && (credit > 0 || bytes.is_empty()) {
            let n = credit.min(MAX_CONSOLE_CHUNK_BYTES).min(bytes.len() - sent);
            let chunk = &bytes[sent..sent + n];
            sent += n;
            credit -= n;
            eof_sent = sent == bytes.len();
            let input = StreamInput {
                data: (n > 0).then(|| encode_bytes(chunk)),
                eof: eof_sent,
                ..Default::default()
            };
            transfer.input(input).await?;
        }
        let frame = match transfer.next().await {
            None => {
                return Err(AppError::new(
                    zedops_client::LocalCode::Disconnected.into(),
                    "The upload stopped: try again.",
                ));
            }
            Some(frame) => frame?,
        };
        credit += frame.grant as usize;
        if let Some(end) = frame.end {
            return match end.error_code {
                None => frame.entry.ok_or_else(|| {
                    AppError::new(
                        zedops_client::LocalCode::ProtocolError.into(),
                        "The agent did not say what it wrote: update the agent.",
                    )
                }),
                Some(code) => Err(AppError::new(code.into(), sentence(&end.reason))),
            };
        }
    }
}

/// The editor's limit: larger files are offered for download only (an editor holds the whole
/// text in the window, and config files are far smaller).
pub const MAX_EDIT_BYTES: u64 = 1024 * 1024;

/// A file read whole for the editor, as the agent sent it: the bytes untouched (the window
/// decodes them, keeping the encoding and line endings) and what it knew of the file, so a save
/// can tell whether it changed on the server in between.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct OpenedFile {
    /// The file as the agent normalised its path.
    pub path: String,
    pub size: u32,
    /// Unix seconds.
    pub mtime: f64,
    /// Permission bits, e.g. 420 for `0644` (kept when the file is saved).
    pub mode: u32,
    /// The bytes, base64.
    pub data: String,
}

/// The file as written by a save: its new size and modification time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct WrittenFile {
    pub size: u32,
    pub mtime: f64,
}

fn too_large_to_edit(path: &str, size: u64) -> AppError {
    AppError::new(
        ErrorCode::Wire(zedops_client::ErrorCode::FileTooLarge),
        format!(
            "{path} is {size} bytes, over the editor's limit of 1 MiB: download it to edit it on this computer."
        ),
    )
}

/// Reads the container's file `path` whole for the editor (at most [`MAX_EDIT_BYTES`]; a
/// larger file is refused after its first frame, the transfer cancelled).
pub async fn read_for_edit(
    client: &Client,
    agent: &str,
    container: &str,
    path: &str,
) -> Result<OpenedFile, AppError> {
    let mut transfer = file_get(
        client,
        agent,
        container,
        path,
        "operators and admins may read a container's files",
    )
    .await?;
    let mut entry: Option<FileEntry> = None;
    let mut bytes: Vec<u8> = Vec::new();
    loop {
        let frame = match transfer.next().await {
            None => {
                return Err(AppError::new(
                    zedops_client::LocalCode::Disconnected.into(),
                    "Reading the file stopped: try again.",
                ));
            }
            Some(frame) => frame.map_err(AppError::from)?,
        };
        if let Some(first) = frame.entry.clone() {
            if first.size > MAX_EDIT_BYTES {
                transfer.cancel();
                return Err(too_large_to_edit(path, first.size));
            }
            entry = Some(first);
        }
        let chunk = frame.bytes().map_err(|_| {
            AppError::new(
                zedops_client::LocalCode::ProtocolError.into(),
                "The agent sent bytes that could not be read: update the agent.",
            )
        })?;
        if !chunk.is_empty() {
            // It grew while being read: still over the limit, whatever the first frame said.
            if (bytes.len() + chunk.len()) as u64 > MAX_EDIT_BYTES {
                transfer.cancel();
                return Err(too_large_to_edit(path, (bytes.len() + chunk.len()) as u64));
            }
            bytes.extend_from_slice(&chunk);
            let _ = transfer.grant(chunk.len()).await;
        }
        if let Some(end) = frame.end {
            if let Some(code) = end.error_code {
                return Err(AppError::new(code.into(), sentence(&end.reason)));
            }
            let entry = entry.ok_or_else(|| {
                AppError::new(
                    zedops_client::LocalCode::ProtocolError.into(),
                    "The agent did not describe the file: update the agent.",
                )
            })?;
            return Ok(OpenedFile {
                path: zedops_protocol::normalize_path(path).unwrap_or_else(|_| path.to_string()),
                size: bytes.len() as u32,
                mtime: entry.mtime.max(0) as f64,
                mode: entry.mode & 0o7777,
                data: encode_bytes(&bytes),
            });
        }
    }
}

/// (Admin) Saves the editor's bytes as the file `path`, keeping its permission bits `mode`.
pub async fn save_edited(
    client: &Client,
    agent: &str,
    container: &str,
    path: &str,
    bytes: &[u8],
    mode: u32,
) -> Result<WrittenFile, AppError> {
    if bytes.len() as u64 > MAX_EDIT_BYTES {
        return Err(AppError::new(
            ErrorCode::INVALID_INPUT,
            "The text is over the editor's limit of 1 MiB: upload the file instead.",
        ));
    }
    let entry = put(client, agent, container, path, bytes, Some(mode & 0o7777))
        .await
        .map_err(forbidden("admins may change a container's files"))?;
    Ok(WrittenFile {
        size: entry.size as u32,
        mtime: entry.mtime.max(0) as f64,
    })
}

/// Decodes the window's base64 text of a file of at most `max` bytes, in pieces the protocol's
/// decoder takes (a multiple of 4 characters, at most 32 KiB decoded each). Text too long for
/// `max` bytes is refused with `too_large` before any of it is decoded.
pub fn decode_base64(text: &str, max: usize, too_large: &str) -> Result<Vec<u8>, AppError> {
    const PIECE: usize = MAX_CONSOLE_CHUNK_BYTES / 3 * 4;
    // 4 characters for each 3 bytes, the last group padded.
    if text.len() > max / 3 * 4 + 4 {
        return Err(AppError::new(ErrorCode::INVALID_INPUT, too_large));
    }
    let unreadable = || {
        AppError::new(
            ErrorCode::INVALID_INPUT,
            "The file could not be read: choose it again.",
        )
    };
    if !text.is_ascii() || text.len() % 4 != 0 {
        return Err(unreadable());
    }
    let mut bytes = Vec::with_capacity(text.len() / 4 * 3);
    for piece in text.as_bytes().chunks(PIECE) {
        let piece = std::str::from_utf8(piece).map_err(|_| unreadable())?;
        bytes.extend(zedops_protocol::decode_bytes(piece).map_err(|_| unreadable())?);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_are_decoded_piece_by_piece() {
        let data: Vec<u8> = (0..100_001u32).map(|i| (i * 7) as u8).collect();
        // Whole-file base64 as the window sends it: one text, padded at the end only (pieces
        // of a multiple of 3 bytes encode without padding).
        let whole: String = {
            let mut s = String::new();
            let mut rest = &data[..];
            while !rest.is_empty() {
                let n = rest.len().min(3 * 1000);
                s.push_str(&encode_bytes(&rest[..n]));
                rest = &rest[n..];
            }
            s
        };
        let decode = |text: &str| decode_base64(text, data.len(), "too large");
        assert_eq!(decode(&whole).unwrap(), data);
        assert_eq!(decode("").unwrap(), Vec::<u8>::new());
        assert!(decode("abc").is_err());
        assert!(decode("ab!=").is_err());
        // Text for more than `max` bytes is refused as too large, before it is decoded.
        assert_eq!(decode_base64("AAAA", 3, "too large").unwrap(), [0, 0, 0]);
        assert_eq!(
            decode_base64("AAAAAAAAAAAA", 3, "too large")
                .unwrap_err()
                .message,
            "too large"
        );
    }

    #[test]
    fn downloads_get_a_safe_name_that_is_free() {
        assert_eq!(local_name("/etc/os-release"), "os-release");
        assert_eq!(local_name("/data/"), "data");
        assert_eq!(local_name("/"), "download");
        assert_eq!(local_name("/x/.."), "download");
        assert_eq!(local_name("/x/a\u{1b}b:c"), "a_b_c");
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(free_path(dir.path(), "a.txt"), dir.path().join("a.txt"));
        std::fs::write(dir.path().join("a.txt"), "1").unwrap();
        std::fs::write(dir.path().join("a (1).txt"), "1").unwrap();
        assert_eq!(free_path(dir.path(), "a.txt"), dir.path().join("a (2).txt"));
        std::fs::write(dir.path().join("README"), "1").unwrap();
        assert_eq!(
            free_path(dir.path(), "README"),
            dir.path().join("README (1)")
        );
    }
}
