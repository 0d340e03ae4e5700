//! Local credentials and settings. The device token lives only in the OS keyring (service
//! [`KEYRING_SERVICE`], user = the relay's canonical URL); a small JSON file in the config
//! directory remembers the last relay and user name, and never holds a secret.
//!
//! Every function here blocks (the keyring talks to D-Bus, Keychain or Credential Manager); from
//! async code prefer calling them inside `tokio::task::spawn_blocking`. They are safe to call from
//! any thread, though: keyring calls run on a short-lived thread of their own, because on Linux
//! the Secret Service client drives its own tokio runtime, which panics if started on a thread
//! that is already inside one.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zedops_transport::RelayUrl;

use crate::error::{ClientError, from_transport};

/// Keyring service name of every ZedOps device token.
pub const KEYRING_SERVICE: &str = "zedops";
/// Environment variable that overrides the config directory.
pub const CONFIG_DIR_ENV: &str = "ZEDOPS_CONFIG_DIR";
/// Name of the config file inside the config directory.
pub const CONFIG_FILE: &str = "config.json";

/// The keyring user name for `relay`: its canonical URL, so that `relay.example`,
/// `https://relay.example/` and `wss://relay.example` share one entry.
pub fn keyring_user(relay: &str) -> Result<String, ClientError> {
    // Whether plaintext is acceptable is decided when connecting; here only the key matters.
    let url = RelayUrl::parse_any(relay).map_err(|e| from_transport(e, relay))?;
    Ok(url.canonical())
}

/// Runs a keyring call on a thread outside any tokio runtime (see the module docs).
fn off_runtime<T: Send>(call: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| match scope.spawn(call).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

fn entry(relay: &str) -> Result<keyring::Entry, ClientError> {
    keyring::Entry::new(KEYRING_SERVICE, &keyring_user(relay)?).map_err(keyring_error)
}

fn keyring_error(err: keyring::Error) -> ClientError {
    let reason = match &err {
        keyring::Error::Ambiguous(items) => format!(
            "{} keyring items match service {KEYRING_SERVICE:?} and this relay; delete the extra ones with your keyring tool",
            items.len()
        ),
        _ => err.to_string(),
    };
    ClientError::Keyring { reason }
}

/// Stores the device token for `relay`, replacing any earlier one.
pub fn save_token(relay: &str, token: &str) -> Result<(), ClientError> {
    let entry = entry(relay)?;
    off_runtime(|| save_entry(&entry, token))
}

fn save_entry(entry: &keyring::Entry, token: &str) -> Result<(), ClientError> {
    match entry.set_password(token) {
        // Several matching items (left by another tool): start over with exactly one.
        Err(keyring::Error::Ambiguous(items)) => {
            for item in items {
                item.delete_credential().map_err(keyring_error)?;
            }
            entry.set_password(token).map_err(keyring_error)
        }
        other => other.map_err(keyring_error),
    }
}

/// The stored device token for `relay`, if there is one.
pub fn load_token(relay: &str) -> Result<Option<String>, ClientError> {
    let entry = entry(relay)?;
    match off_runtime(|| entry.get_password()) {
        Ok(token) => Ok(Some(token)),
        Err(keyring::Error::NoEntry) => Ok(None),
        Err(err) => Err(keyring_error(err)),
    }
}

/// Deletes the stored device token for `relay`; no stored token is not an error.
pub fn delete_token(relay: &str) -> Result<(), ClientError> {
    let entry = entry(relay)?;
    off_runtime(|| match entry.delete_credential() {
        Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
        Err(keyring::Error::Ambiguous(items)) => {
            for item in items {
                item.delete_credential().map_err(keyring_error)?;
            }
            Ok(())
        }
        Err(err) => Err(keyring_error(err)),
    })
}

/// What the CLI remembers between runs. Never a secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    /// The relay of the last login, used when no `--relay` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<String>,
    /// The user name of the last login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// `$ZEDOPS_CONFIG_DIR` if set, else the platform's config directory for zedops
/// (`~/.config/zedops` on Linux).
pub fn config_dir() -> Result<PathBuf, ClientError> {
    if let Some(dir) = std::env::var_os(CONFIG_DIR_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    directories::ProjectDirs::from("", "", "zedops")
        .map(|dirs| dirs.config_dir().to_path_buf())
        .ok_or_else(|| ClientError::Config {
            path: "(none)".into(),
            reason: format!("this system has no home directory; set {CONFIG_DIR_ENV}"),
        })
}

/// The config file's path.
pub fn config_path() -> Result<PathBuf, ClientError> {
    Ok(config_dir()?.join(CONFIG_FILE))
}

/// The saved config; the default when there is none yet.
pub fn load_config() -> Result<Config, ClientError> {
    load_config_from(&config_dir()?)
}

/// Saves `config`, replacing the file atomically so that a crash never leaves half a file.
pub fn save_config(config: &Config) -> Result<(), ClientError> {
    save_config_to(&config_dir()?, config)
}

/// [`load_config`] from an explicit directory.
pub fn load_config_from(dir: &Path) -> Result<Config, ClientError> {
    let path = dir.join(CONFIG_FILE);
    let config_error = |reason: String| ClientError::Config {
        path: path.display().to_string(),
        reason,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| config_error(e.to_string())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
        Err(err) => Err(config_error(err.to_string())),
    }
}

/// [`save_config`] into an explicit directory (created if missing).
pub fn save_config_to(dir: &Path, config: &Config) -> Result<(), ClientError> {
    let path = dir.join(CONFIG_FILE);
    let config_error = |reason: String| ClientError::Config {
        path: path.display().to_string(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|e| config_error(e.to_string()))?;
    let text = serde_json::to_string_pretty(config).expect("config always serialises") + "\n";
    let temp = dir.join(format!(".{CONFIG_FILE}.{}.tmp", std::process::id()));
    std::fs::write(&temp, text).map_err(|e| config_error(e.to_string()))?;
    std::fs::rename(&temp, &path).map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        config_error(e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyring_user_is_the_canonical_relay_url() {
        assert_eq!(
            keyring_user("relay.example").unwrap(),
            "https://relay.example"
        );
        assert_eq!(
            keyring_user("wss://relay.example/").unwrap(),
            "https://relay.example"
        );
        assert_eq!(
            keyring_user("https://relay.example:8443/zedops/").unwrap(),
            "https://relay.example:8443/zedops"
        );
        assert_eq!(
            keyring_user("ws://127.0.0.1:7878").unwrap(),
            "http://127.0.0.1:7878"
        );
        // A remote plaintext relay still has a key (connecting to it needs --insecure).
        assert_eq!(
            keyring_user("http://relay.lan:7878").unwrap(),
            "http://relay.lan:7878"
        );
        assert_eq!(
            keyring_user("ftp://relay.example").unwrap_err().code(),
            "INVALID_URL"
        );
    }

    #[test]
    fn config_round_trips_and_tolerates_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        assert_eq!(load_config_from(&nested).unwrap(), Config::default());
        let config = Config {
            relay: Some("https://relay.example".into()),
            user: Some("alice".into()),
        };
        save_config_to(&nested, &config).unwrap();
        assert_eq!(load_config_from(&nested).unwrap(), config);
        let text = std::fs::read_to_string(nested.join(CONFIG_FILE)).unwrap();
        assert!(
            text.contains("\"relay\": \"https://relay.example\""),
            "{text}"
        );
        // Only the config file is left behind, no temporary.
        assert_eq!(std::fs::read_dir(&nested).unwrap().count(), 1);
    }

    #[test]
    fn a_corrupt_config_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), "{not json").unwrap();
        let err = load_config_from(dir.path()).unwrap_err();
        assert_eq!(err.code(), "CONFIG_ERROR");
        assert!(err.to_string().contains(CONFIG_FILE), "{err}");
    }
}
