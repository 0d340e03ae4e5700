//! The app's own settings file (`settings.json` in the app's config directory, next to the
//! window-state plugin's file): for now, which agents are muted. Plain serde JSON, because it is
//! a handful of ids and people may want to read or fix it by hand.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file's name inside the app's config directory.
pub const FILE_NAME: &str = "settings.json";

/// What is remembered across restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Settings {
    /// Agent ids whose alerts raise no native notification (they are still listed in the app).
    /// Ids, not names: a renamed agent stays muted.
    pub muted_agents: BTreeSet<String>,
}

impl Settings {
    /// Reads the file; a missing file is the defaults. A file that cannot be read or parsed is
    /// reported, and the caller starts from the defaults rather than refusing to start.
    pub fn load(path: &Path) -> io::Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e),
        }
    }

    /// Writes the file whole through a temporary file and a rename, so a crash mid-write leaves
    /// the old settings rather than half a file.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = tmp_path(path);
        let json = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, path)
    }

    pub fn is_muted(&self, agent_id: &str) -> bool {
        self.muted_agents.contains(agent_id)
    }

    /// Mutes or unmutes; returns whether anything changed.
    pub fn set_muted(&mut self, agent_id: &str, muted: bool) -> bool {
        if muted {
            self.muted_agents.insert(agent_id.to_string())
        } else {
            self.muted_agents.remove(agent_id)
        }
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutes_survive_a_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(FILE_NAME);
        assert_eq!(Settings::load(&path).unwrap(), Settings::default());
        let mut settings = Settings::default();
        assert!(settings.set_muted("agent-1", true));
        assert!(!settings.set_muted("agent-1", true), "already muted");
        settings.set_muted("agent-2", true);
        settings.save(&path).unwrap();
        let loaded = Settings::load(&path).unwrap();
        assert!(loaded.is_muted("agent-1") && loaded.is_muted("agent-2"));
        assert!(!loaded.is_muted("agent-3"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"mutedAgents\""), "{text}");
        assert!(!dir.path().join("sub").join("settings.json.tmp").exists());

        let mut loaded = loaded;
        assert!(loaded.set_muted("agent-1", false));
        loaded.save(&path).unwrap();
        assert_eq!(
            Settings::load(&path).unwrap().muted_agents,
            BTreeSet::from(["agent-2".to_string()])
        );
    }

    #[test]
    fn a_broken_file_is_an_error_and_newer_fields_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, "{not json").unwrap();
        assert_eq!(
            Settings::load(&path).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        // A file from a newer version with more settings still yields the mutes.
        std::fs::write(&path, r#"{"mutedAgents":["a"],"later":1}"#).unwrap();
        assert!(Settings::load(&path).unwrap().is_muted("a"));
    }
}
