//! The update's files, all in `<data-dir>/update/` (one directory, so every replacement is a
//! rename within it, atomic on POSIX file systems):
//!
//! - `zedops-agent`: the installed build, run by the launcher instead of the packaged binary;
//! - `state.json`: its version, when it was installed, whether it has connected (`confirmed`);
//! - `zedops-agent.previous` + `state.previous.json`: the build it replaced, put back by a revert
//!   (absent when the packaged binary was running: removing the update reverts to it);
//! - `.zedops-agent.download`: a download being checked, never run;
//! - `lock`: held by the update in progress (`pid seconds`), stale after [`STALE_LOCK`];
//! - `rollback.json`: the last revert and why, for the log and a person.
//!
//! The packaged binary (`/usr/local/bin/zedops-agent`, the image's, the Debian package's) is
//! never written: it is root's, and it is the launcher that always comes back.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::unix_time::now;

/// The directory under the data directory.
pub const DIR: &str = "update";
const BUILD: &str = "zedops-agent";
const PREVIOUS: &str = "zedops-agent.previous";
const DOWNLOAD: &str = ".zedops-agent.download";
const STATE: &str = "state.json";
const PREVIOUS_STATE: &str = "state.previous.json";
const LOCK: &str = "lock";
const ROLLBACK: &str = "rollback.json";
/// A lock older than this is left over from an update that died (a download has 5 minutes).
pub const STALE_LOCK: Duration = Duration::from_secs(600);
/// Largest state file read.
const MAX_STATE: u64 = 4096;

/// What is known about the installed build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Installed {
    pub version: String,
    /// Unix seconds; with `revert_after_secs`, the deadline for its first connection.
    pub installed_at: u64,
    pub revert_after_secs: u64,
    /// It has connected to the relay; it is not reverted any more.
    pub confirmed: bool,
    /// Installed as a downgrade: run even though the packaged binary is newer.
    pub allow_older: bool,
}

impl Installed {
    /// Whether its deadline has passed without a connection.
    pub fn overdue(&self, now: u64) -> bool {
        !self.confirmed && now >= self.installed_at.saturating_add(self.revert_after_secs)
    }
}

/// The last revert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rollback {
    pub version: String,
    pub reason: String,
    pub at: u64,
    /// Told to the relay already (`agent.update.progress` `rolled-back`, once).
    #[serde(default)]
    pub reported: bool,
}

/// `<data-dir>/update/`.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// The update lock; released when dropped.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

impl Store {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join(DIR),
        }
    }

    /// The installed build's path.
    pub fn build_path(&self) -> PathBuf {
        self.dir.join(BUILD)
    }

    fn ensure_dir(&self) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))
    }

    /// Takes the update lock, or says who holds it. A lock older than `stale_after` is taken
    /// over (its update died without cleaning up).
    pub fn lock(&self, stale_after: Duration) -> Result<Lock, String> {
        self.ensure_dir()
            .map_err(|err| format!("cannot create {}: {err}", self.dir.display()))?;
        let path = self.dir.join(LOCK);
        for _ in 0..2 {
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(mut file) => {
                    let _ = writeln!(file, "{} {}", std::process::id(), now());
                    return Ok(Lock { path });
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                    let age = fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .unwrap_or_default();
                    if age < stale_after {
                        return Err(format!(
                            "another update of this agent started {} s ago and holds the \
                             update lock; wait for it to finish",
                            age.as_secs()
                        ));
                    }
                    tracing::warn!(age_secs = age.as_secs(), "taking over a stale update lock");
                    let _ = fs::remove_file(&path);
                }
                Err(err) => return Err(format!("cannot take the update lock: {err}")),
            }
        }
        Err("cannot take the update lock".into())
    }

    /// A fresh, empty file for a download (owner-only until it is installed).
    pub fn start_download(&self) -> io::Result<File> {
        self.ensure_dir()?;
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(self.dir.join(DOWNLOAD))
    }

    /// Removes a download that was refused or cut short.
    pub fn discard_download(&self) {
        let _ = fs::remove_file(self.dir.join(DOWNLOAD));
    }

    /// Installs the checked download as the build to run. `keep_running` keeps the build that
    /// is running now (an earlier update) as the one to revert to; otherwise the packaged
    /// binary is the fallback and any older backup goes.
    pub fn install(&self, installed: &Installed, keep_running: bool) -> io::Result<()> {
        let download = self.dir.join(DOWNLOAD);
        File::open(&download)?.sync_all()?;
        fs::set_permissions(&download, fs::Permissions::from_mode(0o755))?;
        let build = self.dir.join(BUILD);
        if keep_running && build.exists() {
            fs::rename(&build, self.dir.join(PREVIOUS))?;
            fs::rename(self.dir.join(STATE), self.dir.join(PREVIOUS_STATE))?;
        } else {
            remove_if_there(&self.dir.join(PREVIOUS))?;
            remove_if_there(&self.dir.join(PREVIOUS_STATE))?;
            // Without its state a build is never run, so the state goes first.
            remove_if_there(&self.dir.join(STATE))?;
        }
        // The binary first, then its state: a crash in between leaves a build without state,
        // which the launcher does not run.
        fs::rename(&download, &build)?;
        self.write_state(STATE, installed)?;
        File::open(&self.dir)?.sync_all()
    }

    /// The installed build's state, if a build is installed.
    pub fn installed(&self) -> Option<Installed> {
        if !self.build_path().is_file() {
            return None;
        }
        read_json(&self.dir.join(STATE))
    }

    /// Marks the installed build as having connected: it is kept from now on.
    pub fn confirm(&self) -> io::Result<()> {
        self.set_once(STATE, self.installed(), |installed| {
            &mut installed.confirmed
        })
    }

    /// Puts back the build the installed one replaced (or the packaged binary, by removing the
    /// update), and records why. Returns the version reverted from.
    pub fn revert(&self, reason: &str) -> io::Result<Option<String>> {
        let Some(installed) = self.installed() else {
            return Ok(None);
        };
        let rollback = Rollback {
            version: installed.version.clone(),
            reason: reason.to_string(),
            at: now(),
            reported: false,
        };
        self.write_state(ROLLBACK, &rollback)?;
        let previous = self.dir.join(PREVIOUS);
        if previous.is_file() && self.dir.join(PREVIOUS_STATE).is_file() {
            fs::rename(self.dir.join(PREVIOUS_STATE), self.dir.join(STATE))?;
            fs::rename(&previous, self.build_path())?;
        } else {
            remove_if_there(&self.dir.join(STATE))?;
            remove_if_there(&self.build_path())?;
        }
        File::open(&self.dir)?.sync_all()?;
        Ok(Some(installed.version))
    }

    /// The last revert, if any.
    pub fn rollback(&self) -> Option<Rollback> {
        read_json(&self.dir.join(ROLLBACK))
    }

    /// Records that the last revert was told to the relay.
    pub fn mark_rollback_reported(&self) -> io::Result<()> {
        self.set_once(ROLLBACK, self.rollback(), |rollback| &mut rollback.reported)
    }

    /// Sets the flag `flag` picks in `state` (as read from the state file `name`) and writes
    /// the file back, unless there is no such state or the flag is set already.
    fn set_once<T: Serialize>(
        &self,
        name: &str,
        state: Option<T>,
        flag: impl FnOnce(&mut T) -> &mut bool,
    ) -> io::Result<()> {
        let Some(mut state) = state else {
            return Ok(());
        };
        let set = flag(&mut state);
        if *set {
            return Ok(());
        }
        *set = true;
        self.write_state(name, &state)
    }

    fn write_state<T: Serialize>(&self, name: &str, value: &T) -> io::Result<()> {
        let json = serde_json::to_vec(value).map_err(io::Error::other)?;
        crate::replace::replace(&self.dir.join(name), &json, Some(0o600))
    }
}

fn remove_if_there(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let meta = fs::metadata(path).ok()?;
    if meta.len() > MAX_STATE {
        return None;
    }
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn installed(version: &str) -> Installed {
        Installed {
            version: version.into(),
            installed_at: now(),
            revert_after_secs: 60,
            confirmed: false,
            allow_older: false,
        }
    }

    fn put(store: &Store, bytes: &[u8]) {
        store.start_download().unwrap().write_all(bytes).unwrap();
    }

    #[test]
    fn one_update_at_a_time_and_stale_locks_expire() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let lock = store.lock(STALE_LOCK).unwrap();
        let err = store.lock(STALE_LOCK).unwrap_err();
        assert!(err.contains("holds the update lock"), "{err}");
        // A lock left by a dead update is taken over once it is old enough.
        std::mem::forget(lock);
        let again = store.lock(Duration::ZERO).unwrap();
        drop(again);
        assert!(store.lock(STALE_LOCK).is_ok());
    }

    #[test]
    fn install_keeps_the_running_build_and_revert_puts_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert!(store.installed().is_none());
        put(&store, b"build one");
        store.install(&installed("0.2.0"), false).unwrap();
        store.confirm().unwrap();
        assert!(store.installed().unwrap().confirmed);
        let mode = fs::metadata(store.build_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);

        put(&store, b"build two");
        store.install(&installed("0.3.0"), true).unwrap();
        assert_eq!(fs::read(store.build_path()).unwrap(), b"build two");
        assert!(!store.installed().unwrap().confirmed);

        assert_eq!(
            store.revert("did not connect").unwrap().as_deref(),
            Some("0.3.0")
        );
        assert_eq!(fs::read(store.build_path()).unwrap(), b"build one");
        let back = store.installed().unwrap();
        assert_eq!((back.version.as_str(), back.confirmed), ("0.2.0", true));
        assert_eq!(store.rollback().unwrap().reason, "did not connect");
        assert!(!store.rollback().unwrap().reported);
        store.mark_rollback_reported().unwrap();
        assert!(store.rollback().unwrap().reported);

        // Reverting the first update removes it: the packaged binary runs again.
        assert_eq!(store.revert("again").unwrap().as_deref(), Some("0.2.0"));
        assert!(store.installed().is_none() && !store.build_path().exists());
    }

    #[test]
    fn overdue_only_when_unconfirmed_past_the_deadline() {
        let mut state = installed("0.2.0");
        assert!(!state.overdue(state.installed_at + 59));
        assert!(state.overdue(state.installed_at + 60));
        state.confirmed = true;
        assert!(!state.overdue(state.installed_at + 600));
    }
}
