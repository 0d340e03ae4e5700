//! Files of a container over Docker's archive API: list a directory, download and upload a file
//! in chunks (with the same credit-based flow control as console sessions), remove, make a
//! directory. Paths are normalised here, the same way on every peer.

use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;
use crate::ids::{AgentRef, ContainerRef};
use crate::payload::{Validate, check_target};
use crate::stream::StreamEnd;

/// Longest path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 4096;
/// Most entries of one listing; a longer directory is cut there (`truncated`).
pub const MAX_LIST_ENTRIES: usize = 10_000;
/// The agent's default limit of one transfer (`zedops-agent run --max-file-size`): 256 MiB.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 256 * 1024 * 1024;

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("a path must be 1 to 4096 bytes without NUL")]
    Invalid,
    #[error("the path climbs above the container's root with ..")]
    Outside,
}

/// The absolute, normalised form of a container path: `.` and empty parts dropped, `..` applied,
/// relative paths taken from `/`. A `..` above `/` is refused (not clamped), so a path never
/// means something other than what its sender wrote. Symbolic links are Docker's to resolve,
/// inside the container's root.
pub fn normalize_path(path: &str) -> Result<String, PathError> {
    if path.is_empty() || path.len() > MAX_PATH_LEN || path.contains('\0') {
        return Err(PathError::Invalid);
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(PathError::Outside);
                }
            }
            other => parts.push(other),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// The directory holding `path` (normalised) and the name in it; `None` for `/`.
pub fn split_parent(path: &str) -> Option<(&str, &str)> {
    let (dir, name) = path.rsplit_once('/')?;
    if name.is_empty() {
        return None;
    }
    Some((if dir.is_empty() { "/" } else { dir }, name))
}

fn check_path(path: &str) -> Result<(), ProtocolError> {
    if path.is_empty() || path.len() > MAX_PATH_LEN || path.contains('\0') {
        return Err(ProtocolError::invalid(
            "path",
            "must be 1 to 4096 bytes without NUL",
        ));
    }
    Ok(())
}

/// What a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Other,
}

/// One directory entry, or the file a transfer moves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileEntry {
    pub name: String,
    pub kind: FileKind,
    /// Bytes (0 for directories).
    pub size: u64,
    /// Permission bits (`0o644` is 420).
    pub mode: u32,
    /// Last modification, seconds since the Unix epoch.
    pub mtime: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_target: Option<String>,
}

/// Requests that name one path: `file.list`, `file.remove`, `file.mkdir`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilePathRequest {
    pub agent_id: AgentRef,
    pub container_id: ContainerRef,
    pub path: String,
}

impl FilePathRequest {
    /// The request for `path` in `container` (a name or id) on `agent` (a name or id).
    pub fn new(agent: &str, container: &str, path: &str) -> Self {
        Self {
            agent_id: agent.into(),
            container_id: container.into(),
            path: path.to_string(),
        }
    }
}

impl Validate for FilePathRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_target(&self.agent_id, &self.container_id)?;
        check_path(&self.path)
    }
}

/// The answer to `file.list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileList {
    /// The directory, normalised.
    pub path: String,
    /// Its entries by name.
    pub entries: Vec<FileEntry>,
    /// The directory has more than [`MAX_LIST_ENTRIES`] entries, or more than the listing could
    /// read in its time; these are the first.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl Validate for FileList {}

/// The answer to `file.remove` and `file.mkdir`: what was done to which path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileDone {
    pub path: String,
}

impl Validate for FileDone {}

/// `file.get` request: one regular file, streamed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileGetRequest {
    pub agent_id: AgentRef,
    pub container_id: ContainerRef,
    pub path: String,
    /// Bytes the client grants at the start (`DEFAULT_CONSOLE_WINDOW` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<u32>,
}

impl Validate for FileGetRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_target(&self.agent_id, &self.container_id)?;
        check_path(&self.path)?;
        if self
            .window
            .is_some_and(|w| w == 0 || w > crate::console::MAX_CONSOLE_WINDOW)
        {
            return Err(ProtocolError::invalid("window", "must be 1 byte to 1 MiB"));
        }
        Ok(())
    }
}

/// `file.put` request: write `size` bytes (sent with `stream.input`) to `path`, replacing a file
/// there. The parent directory must exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilePutRequest {
    pub agent_id: AgentRef,
    pub container_id: ContainerRef,
    pub path: String,
    /// Exactly the bytes that will follow; over the agent's limit the upload is refused before
    /// any byte is sent.
    pub size: u64,
    /// Permission bits (default `0o644`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

impl Validate for FilePutRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_target(&self.agent_id, &self.container_id)?;
        check_path(&self.path)?;
        if self.mode.is_some_and(|m| m > 0o7777) {
            return Err(ProtocolError::invalid("mode", "permission bits only"));
        }
        Ok(())
    }
}

/// One frame of a `file.get` or `file.put` answer.
///
/// `file.get`: `entry` first (the file's size, mode, mtime), then `data` frames within the
/// client's grants, then `end`. `file.put`: a first frame with the agent's initial `grant` (the
/// agent is ready), more grants as bytes are written, and last `entry` (the file as written)
/// with `end`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileChunk {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<FileEntry>,
    /// File bytes, base64, at most `MAX_CONSOLE_CHUNK_BYTES` decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub grant: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<StreamEnd>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl FileChunk {
    pub fn bytes(&self) -> Result<Vec<u8>, ProtocolError> {
        self.data
            .as_deref()
            .map_or(Ok(Vec::new()), crate::console::decode_bytes)
    }
}

impl Validate for FileChunk {
    fn validate(&self) -> Result<(), ProtocolError> {
        if self
            .data
            .as_ref()
            .is_some_and(|d| d.len() > crate::console::MAX_CONSOLE_CHUNK_BASE64)
        {
            return Err(ProtocolError::invalid("data", "at most 32 KiB per frame"));
        }
        if self.grant > crate::console::MAX_CONSOLE_WINDOW {
            return Err(ProtocolError::invalid("grant", "at most 1 MiB"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_and_confined() {
        let ok = [
            ("/", "/"),
            ("a/b", "/a/b"),
            (
                "/srv//zomboid/./servertest.ini",
                "/srv/zomboid/servertest.ini",
            ),
            ("/a/b/../c", "/a/c"),
            ("/a/..", "/"),
        ];
        for (input, want) in ok {
            assert_eq!(normalize_path(input).as_deref(), Ok(want), "{input}");
        }
        for outside in ["..", "/../etc/passwd", "a/../../b", "/a/../../../x"] {
            assert_eq!(
                normalize_path(outside),
                Err(PathError::Outside),
                "{outside}"
            );
        }
        assert_eq!(normalize_path(""), Err(PathError::Invalid));
        assert_eq!(normalize_path("a\0b"), Err(PathError::Invalid));
        assert_eq!(split_parent("/a/b"), Some(("/a", "b")));
        assert_eq!(split_parent("/a"), Some(("/", "a")));
        assert_eq!(split_parent("/"), None);
    }

    #[test]
    fn uploads_name_their_size_and_bits() {
        let put = FilePutRequest {
            agent_id: "a".into(),
            container_id: "pz".into(),
            path: "/srv/x.ini".into(),
            size: 10,
            mode: Some(0o644),
        };
        assert!(put.validate().is_ok());
        assert!(
            FilePutRequest {
                mode: Some(0o10000),
                ..put.clone()
            }
            .validate()
            .is_err()
        );
        assert_eq!(
            serde_json::to_string(&put).unwrap(),
            r#"{"agentId":"a","containerId":"pz","path":"/srv/x.ini","size":10,"mode":420}"#
        );
    }
}
