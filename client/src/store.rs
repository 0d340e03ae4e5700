//! Local credentials and settings. The device token lives only in the OS keyring (service
//! [`KEYRING_SERVICE`], user = the relay's canonical URL); a small JSON file in the config
//! directory remembers the last relay and user name, and never holds a secret.
//!
//! Which store holds the tokens is decided in one place, [`KeyStore`]: the Secret Service on
//! Linux and the BSDs, the login Keychain on macOS, Credential Manager on Windows, always under
//! the service name [`KEYRING_SERVICE`]. A system with none of them gets `KEYRING_UNAVAILABLE`
//! like a Linux desktop whose keyring is not running, never an in-memory stand-in that would
//! lose the token when the program exits.
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
    let relay = crate::connection::first_relay(relay);
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

/// The OS credential stores ZedOps keeps device tokens in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStore {
    /// The freedesktop Secret Service over D-Bus (GNOME Keyring, KWallet, KeePassXC).
    SecretService,
    /// The macOS login Keychain (generic password items).
    Keychain,
    /// Windows Credential Manager (generic credentials; target `<relay>.zedops`).
    CredentialManager,
    /// No store is supported on this system: signing in needs `ZEDOPS_TOKEN` (CLI) or
    /// lasts one run (desktop app), as when a Linux keyring is not running.
    Unsupported,
}

impl KeyStore {
    /// The store for the operating system `os` (a value of `std::env::consts::OS`).
    pub fn for_os(os: &str) -> Self {
        match os {
            "linux" | "freebsd" | "openbsd" => Self::SecretService,
            "macos" => Self::Keychain,
            "windows" => Self::CredentialManager,
            _ => Self::Unsupported,
        }
    }

    /// The store of the system this program runs on.
    pub fn current() -> Self {
        Self::for_os(std::env::consts::OS)
    }

    /// The store's name as people know it, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::SecretService => "the Secret Service",
            Self::Keychain => "the macOS Keychain",
            Self::CredentialManager => "Windows Credential Manager",
            Self::Unsupported => "no supported OS keyring",
        }
    }

    /// keyring's builder for this store, when this build has it. Each arm is compiled only for
    /// its system (and needs keyring's feature for it: `async-secret-service`, `apple-native`,
    /// `windows-native`), so a store missing from the build fails the cross checks instead of
    /// falling back to keyring's in-memory mock at run time.
    fn builder(self) -> Option<Box<keyring::credential::CredentialBuilder>> {
        match self {
            #[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd"))]
            Self::SecretService => Some(keyring::secret_service::default_credential_builder()),
            #[cfg(target_os = "macos")]
            Self::Keychain => Some(keyring::macos::default_credential_builder()),
            #[cfg(target_os = "windows")]
            Self::CredentialManager => Some(keyring::windows::default_credential_builder()),
            _ => None,
        }
    }

    /// The entry of `user` (a canonical relay URL) under [`KEYRING_SERVICE`] in this store.
    fn entry(self, user: &str) -> Result<keyring::Entry, ClientError> {
        let Some(builder) = self.builder() else {
            return Err(ClientError::Keyring {
                reason: format!(
                    "ZedOps has no credential store for this system ({})",
                    std::env::consts::OS
                ),
            });
        };
        let credential = builder
            .build(None, KEYRING_SERVICE, user)
            .map_err(keyring_error)?;
        Ok(keyring::Entry::new_with_credential(credential))
    }
}

fn entry(relay: &str) -> Result<keyring::Entry, ClientError> {
    KeyStore::current().entry(&keyring_user(relay)?)
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
        for (given, canonical) in [
            ("relay.example", "https://relay.example"),
            ("wss://relay.example/", "https://relay.example"),
            (
                "https://relay.example:8443/zedops/",
                "https://relay.example:8443/zedops",
            ),
            ("ws://127.0.0.1:7878", "http://127.0.0.1:7878"),
            // A remote plaintext relay still has a key (connecting to it needs --insecure).
            ("http://relay.lan:7878", "http://relay.lan:7878"),
        ] {
            assert_eq!(keyring_user(given).unwrap(), canonical, "{given}");
        }
        assert_eq!(
            keyring_user("ftp://relay.example").unwrap_err().code(),
            "INVALID_URL"
        );
    }

    #[test]
    fn each_system_gets_its_own_credential_store() {
        assert_eq!(KeyStore::for_os("linux"), KeyStore::SecretService);
        assert_eq!(KeyStore::for_os("freebsd"), KeyStore::SecretService);
        assert_eq!(KeyStore::for_os("macos"), KeyStore::Keychain);
        assert_eq!(KeyStore::for_os("windows"), KeyStore::CredentialManager);
        assert_eq!(KeyStore::for_os("haiku"), KeyStore::Unsupported);
        assert_eq!(KeyStore::for_os("ios"), KeyStore::Unsupported);
        // The store of this build is compiled in (not keyring's in-memory mock).
        let current = KeyStore::current();
        assert_ne!(current, KeyStore::Unsupported);
        assert!(
            current.builder().is_some(),
            "{current:?} missing from the build"
        );
        if cfg!(target_os = "linux") {
            assert_eq!(current, KeyStore::SecretService);
        }
    }

    #[test]
    fn only_the_current_systems_store_is_built() {
        // The others are not in this build: asking for them is "unavailable", as on a system
        // without any store.
        for store in [
            KeyStore::SecretService,
            KeyStore::Keychain,
            KeyStore::CredentialManager,
        ] {
            assert_eq!(store.builder().is_some(), store == KeyStore::current());
        }
    }

    #[test]
    fn no_store_is_keyring_unavailable_with_the_way_out() {
        let err = KeyStore::Unsupported
            .entry("https://relay.example")
            .unwrap_err();
        assert_eq!(err.code(), "KEYRING_UNAVAILABLE");
        let text = err.to_string();
        assert!(
            text.contains("no credential store for this system") && text.contains("ZEDOPS_TOKEN"),
            "{text}"
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
