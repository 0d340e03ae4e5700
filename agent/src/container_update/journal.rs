//! The update journal: one small JSON file per container being updated, in `<data dir>/updates/`,
//! written atomically (temporary file, fsync, rename, fsync of the directory) before each step
//! that changes the engine, so an agent killed in the middle knows at its next start which
//! container to put back or finish (see [`super::recover`]).

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Journal files read at start at most; more is not something an agent makes.
const MAX_ENTRIES: usize = 256;
/// Largest journal file read.
const MAX_ENTRY_BYTES: u64 = 64 * 1024;

/// How far an update got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Recorded; the old container is untouched (hook, pull).
    Started,
    /// The old container is being renamed, stopped, replaced, or the new one watched: a crash
    /// from here on is rolled back.
    Replacing,
    /// The new container was healthy: a crash from here on is finished (the old one removed).
    Healthy,
}

/// One update in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Entry {
    /// The container's name, which it keeps.
    pub name: String,
    /// The old container's full id.
    pub old_id: String,
    /// The old container was running (so a rollback starts it again).
    pub was_running: bool,
    /// The image reference the update moves to.
    pub image: String,
    /// The new container's id, once created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_id: Option<String>,
    pub stage: Stage,
    /// Seconds since the Unix epoch when the update began.
    pub started_at: u64,
}

/// The journal directory under the agent's data directory.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("updates")
}

fn file(data_dir: &Path, name: &str) -> PathBuf {
    // Container names are [a-zA-Z0-9][a-zA-Z0-9_.-]*: safe as a file name.
    dir(data_dir).join(format!("{name}.json"))
}

/// Writes (or replaces) the entry of `entry.name`, durably.
pub fn write(data_dir: &Path, entry: &Entry) -> std::io::Result<()> {
    fs::create_dir_all(dir(data_dir))?;
    let text = serde_json::to_vec_pretty(entry).map_err(std::io::Error::other)?;
    crate::replace::replace(&file(data_dir, &entry.name), &text, None)
}

/// Removes the entry of `name` (done, or put back).
pub fn remove(data_dir: &Path, name: &str) -> std::io::Result<()> {
    match fs::remove_file(file(data_dir, name)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => fs::File::open(dir(data_dir))
            .and_then(|d| d.sync_all())
            .or(Ok(())),
    }
}

/// Every entry left in the journal (at most [`MAX_ENTRIES`]), with the files that could not
/// be read (removed by the caller after logging them).
pub fn list(data_dir: &Path) -> (Vec<Entry>, Vec<(PathBuf, String)>) {
    let (mut entries, mut unreadable) = (Vec::new(), Vec::new());
    let Ok(read) = fs::read_dir(dir(data_dir)) else {
        return (entries, unreadable);
    };
    for item in read.flatten().take(MAX_ENTRIES) {
        let path = item.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            // A temporary file of a write cut short: the entry before it still stands.
            if path.to_string_lossy().ends_with(".json.tmp") {
                let _ = fs::remove_file(&path);
            }
            continue;
        }
        let parsed = fs::metadata(&path)
            .map_err(|e| e.to_string())
            .and_then(|m| {
                if m.len() > MAX_ENTRY_BYTES {
                    Err("larger than a journal entry can be".to_string())
                } else {
                    fs::read(&path).map_err(|e| e.to_string())
                }
            })
            .and_then(|bytes| serde_json::from_slice::<Entry>(&bytes).map_err(|e| e.to_string()));
        match parsed {
            Ok(entry) => entries.push(entry),
            Err(err) => unreadable.push((path, err)),
        }
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    (entries, unreadable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_written_read_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let entry = Entry {
            name: "game".into(),
            old_id: "a".repeat(64),
            was_running: true,
            image: "registry:5000/game:2".into(),
            new_id: None,
            stage: Stage::Replacing,
            started_at: 1,
        };
        write(dir.path(), &entry).unwrap();
        fs::write(super::dir(dir.path()).join("bad.json"), b"{").unwrap();
        fs::write(super::dir(dir.path()).join(".cut.json.tmp"), b"{").unwrap();
        let (entries, unreadable) = list(dir.path());
        assert_eq!(entries, vec![entry]);
        assert_eq!(unreadable.len(), 1);
        assert!(!super::dir(dir.path()).join(".cut.json.tmp").exists());
        remove(dir.path(), "game").unwrap();
        remove(dir.path(), "game").unwrap();
        assert!(list(dir.path()).0.is_empty());
    }
}
