//! All of the relay's SQL, behind one `Store`, so that a second backend (PostgreSQL) can be
//! added without touching the rest. Rows are converted to domain types here and nowhere else;
//! one file per aggregate (users, sessions, tokens, agents, audit, templates).

mod agents;
mod audit;
mod sessions;
pub mod templates;
mod tokens;
mod users;

use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use agents::AgentRecord;
pub use audit::{AuditEntry, AuditRow};
pub use sessions::{
    SESSION_IDLE, SESSION_MAX_AGE, Session, SessionCheck, SessionLifetimes, SessionRow,
};
pub use tokens::TokenRow;
pub use users::{UserChange, UserRow};

/// Errors of the store that callers branch on; anything else is `Database`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a user named {0:?} already exists")]
    UserExists(String),
    #[error("the registration token is unknown, already used or expired")]
    BadRegistrationToken,
    #[error("an agent named {0:?} is already enrolled")]
    NameTaken(String),
    #[error("no agent with the name or id {0:?}")]
    NoSuchAgent(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("no user named {0:?}")]
    NoSuchUser(String),
    #[error("{0:?} is the last enabled admin")]
    LastAdmin(String),
    #[error("no registration token with id {0:?}")]
    NoSuchToken(String),
    #[error("registration token {0:?} was already used")]
    TokenUsed(String),
}
/// The relay's database.
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

/// Makes the database file (and its directory, when created here) readable by the relay's user
/// alone, whatever the umask: it holds password hashes and the audit log. SQLite gives the
/// `-wal` and `-shm` files the database file's mode. An existing file with wider permissions is
/// narrowed (with the files beside it); an existing directory is left as it is, since it may be
/// shared.
fn private_file(path: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
            && !parent.exists()
        {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)?;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        let mut names = vec![path.as_os_str().to_owned()];
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            names.push(name);
        }
        for name in names {
            let file = std::path::Path::new(&name);
            if let Ok(meta) = std::fs::metadata(file)
                && meta.permissions().mode() & 0o077 != 0
            {
                std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))?;
            }
        }
    }
    #[cfg(not(unix))]
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)?;
    }
    Ok(())
}

/// Current time in Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Opens (creating if needed) the database at `db`, a file path or a `sqlite://` URL,
    /// and runs pending migrations.
    pub async fn open(db: &str) -> Result<Self, StoreError> {
        let options = if db.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(db)?
        } else {
            SqliteConnectOptions::new().filename(db)
        }
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        // Admin commands (`user add`, `token create`) write while the relay runs.
        .busy_timeout(Duration::from_secs(5));
        let in_memory = sqlx::ConnectOptions::to_url_lossy(&options)
            .as_str()
            .contains("mode=memory");
        if !in_memory {
            private_file(options.get_filename()).map_err(|e| StoreError::Database(e.into()))?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Database(e.into()))?;
        let store = Self { pool };
        // Names that equal another agent's id were accepted before names had to differ from
        // ids. References resolve to the id's owner now; the admin should rename or revoke.
        for (named, owner) in store.agent_name_clashes().await? {
            tracing::warn!(
                agent = %named.id,
                name = %named.name,
                clashes_with = %owner.id,
                owner_name = %owner.name,
                "an agent is named with another agent's id; requests naming that id go to the agent with the id. Revoke the misnamed agent (`zedops-relay agent revoke {}`) and enrol it again under another name",
                named.id
            );
        }
        Ok(store)
    }

    /// The pool, for the modules that keep their own queries (templates).
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes the pool, flushing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests;
