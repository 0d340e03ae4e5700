//! The agent's permanent identity, kept in `<data-dir>/credentials.json` readable by its owner
//! only, because the token in it lets anyone holding it act as this agent.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use zedops_protocol::AgentId;

const FILE_NAME: &str = "credentials.json";

/// What the relay issued at enrolment.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Credentials {
    pub agent_id: AgentId,
    /// The permanent agent token. Never logged.
    pub token: String,
    /// The relay that issued them (its canonical base URL).
    pub relay: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("agent_id", &self.agent_id)
            .field("token", &"<redacted>")
            .field("relay", &self.relay)
            .finish()
    }
}

/// Where the credentials of the agent using `dir` live.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// The stored credentials, or `None` when the agent has not enrolled yet.
pub fn load(dir: &Path) -> anyhow::Result<Option<Credentials>> {
    let path = path(dir);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    };
    warn_if_readable_by_others(&path);
    let credentials = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is corrupt; delete it and enrol again with a new token",
            path.display()
        )
    })?;
    Ok(Some(credentials))
}

/// Stores `credentials` atomically: a crash leaves either the old file or the new one, never half.
pub fn save(dir: &Path, credentials: &Credentials) -> anyhow::Result<()> {
    create_dir(dir)?;
    let path = path(dir);
    let json = serde_json::to_vec_pretty(credentials).expect("credentials always serialise");
    crate::replace::replace(&path, &json, Some(0o600))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Creates the data directory (and missing parents) accessible to the owner only. An existing
/// directory keeps its permissions: it may be one the user chose and shares with other things.
pub fn create_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    if let Ok(meta) = fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = %format_args!("{mode:o}"), "credentials file is readable by others; chmod 600 it");
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn round_trips_with_owner_only_modes() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        assert!(load(&dir).unwrap().is_none());
        let creds = Credentials {
            agent_id: "id-1".into(),
            token: "secret".into(),
            relay: "https://relay".into(),
        };
        save(&dir, &creds).unwrap();
        assert_eq!(load(&dir).unwrap(), Some(creds.clone()));
        assert_eq!(mode(&path(&dir)), 0o600);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&root.path().join("a")), 0o700);
        assert!(!dir.join(".credentials.json.tmp").exists());

        let newer = Credentials {
            token: "other".into(),
            ..creds
        };
        save(&dir, &newer).unwrap();
        assert_eq!(load(&dir).unwrap(), Some(newer));
        assert_eq!(mode(&path(&dir)), 0o600);
    }

    #[test]
    fn corrupt_file_is_an_error_and_token_is_not_debug_printed() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(path(dir.path()), "{nope").unwrap();
        let err = load(dir.path()).unwrap_err();
        assert!(format!("{err:#}").contains("corrupt"), "{err:#}");
        let creds = Credentials {
            agent_id: "a".into(),
            token: "s3cr3t".into(),
            relay: "r".into(),
        };
        assert!(!format!("{creds:?}").contains("s3cr3t"));
    }
}
