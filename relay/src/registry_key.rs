//! The key that seals registry passwords in the database: 32 random bytes (hex) in a file the
//! relay's user alone can read, created at first use, so a copy of the database (a backup, a
//! PostgreSQL dump) does not give the passwords away. ChaCha20-Poly1305 (ring, already in the
//! relay for TLS) with a random nonce per password and the server name as associated data, so a
//! sealed password moved to another server's row does not open.
//!
//! Where the file is: `ZEDOPS_REGISTRY_KEY_FILE` when set (relays of a cluster must share one
//! key); else `registry.key` beside a SQLite database file; else (PostgreSQL) in the relay's
//! platform data directory. An in-memory SQLite database gets a key in memory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

/// The variable naming the key file (a cluster's relays need the same key).
pub const KEY_FILE_ENV: &str = "ZEDOPS_REGISTRY_KEY_FILE";
const KEY_LEN: usize = 32;

/// Why a password could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot use the registry key file {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("the registry key file {0} does not hold a key (64 hex digits)")]
    Malformed(PathBuf),
    #[error(
        "a stored registry password does not open with the key in {0}: it was sealed with another key; add the login again"
    )]
    WrongKey(String),
}

/// The relay's registry key, loaded (or created) at first use.
pub struct RegistryKey {
    /// `None`: a key in memory only (an in-memory database).
    path: Option<PathBuf>,
    key: Mutex<Option<[u8; KEY_LEN]>>,
}

impl RegistryKey {
    /// The key for the database `db` (see the module's note for where its file is).
    pub fn for_db(db: &str) -> Self {
        let from_env = std::env::var_os(KEY_FILE_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let path = from_env.or_else(|| {
            if crate::store::is_postgres(db) {
                directories::ProjectDirs::from("", "", "zedops-relay")
                    .map(|d| d.data_dir().join("registry.key"))
                    .or_else(|| Some(PathBuf::from("registry.key")))
            } else {
                let file = db
                    .strip_prefix("sqlite://")
                    .or_else(|| db.strip_prefix("sqlite:"))
                    .unwrap_or(db);
                let file = file.split('?').next().unwrap_or(file);
                if file.is_empty() || file.contains(":memory:") || db.contains("mode=memory") {
                    None
                } else {
                    let parent = Path::new(file).parent().unwrap_or(Path::new(""));
                    Some(parent.join("registry.key"))
                }
            }
        });
        Self {
            path,
            key: Mutex::new(None),
        }
    }

    /// Where the key is kept, for messages (`memory` for an in-memory database).
    pub fn shown(&self) -> String {
        self.path
            .as_ref()
            .map_or_else(|| "memory".to_string(), |p| p.display().to_string())
    }

    fn key(&self) -> Result<LessSafeKey, KeyError> {
        let mut held = self.key.lock().expect("registry key lock");
        let bytes = match *held {
            Some(bytes) => bytes,
            None => {
                let bytes = match &self.path {
                    Some(path) => load_or_create(path)?,
                    None => random_key(),
                };
                *held = Some(bytes);
                bytes
            }
        };
        Ok(LessSafeKey::new(
            UnboundKey::new(&CHACHA20_POLY1305, &bytes).expect("a 32-byte key"),
        ))
    }

    /// `password` sealed for `server`'s row: base64 of nonce || ciphertext || tag.
    pub fn seal(&self, server: &str, password: &str) -> Result<String, KeyError> {
        let key = self.key()?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut sealed = password.as_bytes().to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(server.as_bytes()),
            &mut sealed,
        )
        .expect("sealing a short password cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(STANDARD.encode(out))
    }

    /// The password `sealed` holds for `server`.
    pub fn open(&self, server: &str, sealed: &str) -> Result<String, KeyError> {
        let key = self.key()?;
        let wrong = || KeyError::WrongKey(self.shown());
        let bytes = STANDARD.decode(sealed).map_err(|_| wrong())?;
        if bytes.len() < NONCE_LEN {
            return Err(wrong());
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| wrong())?;
        let mut rest = rest.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(server.as_bytes()), &mut rest)
            .map_err(|_| wrong())?;
        String::from_utf8(plain.to_vec()).map_err(|_| wrong())
    }
}

fn random_key() -> [u8; KEY_LEN] {
    let mut bytes = [0u8; KEY_LEN];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// Reads the key file, or creates it (mode 0600, its directory 0700 when made here). Two
/// relays creating it at once: one wins (`create_new`), the other reads the winner's key.
fn load_or_create(path: &Path) -> Result<[u8; KEY_LEN], KeyError> {
    let io = |error| KeyError::Io {
        path: path.to_path_buf(),
        error,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => return parse(path, &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
        && !parent.exists()
    {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(parent).map_err(io)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let bytes = random_key();
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(format!("{}\n", hex::encode(bytes)).as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(io)?;
            tracing::info!(path = %path.display(), "created the key that seals registry passwords; back it up with the database");
            Ok(bytes)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path).map_err(io)?;
            parse(path, &text)
        }
        Err(e) => Err(io(e)),
    }
}

fn parse(path: &Path, text: &str) -> Result<[u8; KEY_LEN], KeyError> {
    let bytes = hex::decode(text.trim()).map_err(|_| KeyError::Malformed(path.to_path_buf()))?;
    bytes
        .try_into()
        .map_err(|_| KeyError::Malformed(path.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_open_only_for_their_server_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("sub").join("relay.db");
        let key = RegistryKey::for_db(&db.display().to_string());
        let sealed = key.seal("r.example:5000", "hunter2").unwrap();
        assert!(!sealed.contains("hunter2"));
        assert_eq!(key.open("r.example:5000", &sealed).unwrap(), "hunter2");
        assert!(key.open("other.example", &sealed).is_err());
        // A second seal of the same password differs (fresh nonce).
        assert_ne!(key.seal("r.example:5000", "hunter2").unwrap(), sealed);
        let file = dir.path().join("sub").join("registry.key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // The same file opens it again; another key does not.
        let again = RegistryKey::for_db(&db.display().to_string());
        assert_eq!(again.open("r.example:5000", &sealed).unwrap(), "hunter2");
        std::fs::write(&file, format!("{}\n", "ab".repeat(32))).unwrap();
        let other = RegistryKey::for_db(&db.display().to_string());
        let err = other.open("r.example:5000", &sealed).unwrap_err();
        assert!(err.to_string().contains("add the login again"), "{err}");
    }
}
