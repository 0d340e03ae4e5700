//! All of the relay's SQL, behind one `Store` on SQLite (one relay, the default) or PostgreSQL
//! (a cluster's shared database). Each query is written once: its text uses `$N` parameters,
//! which both drivers accept, and [`with_pool!`] compiles it once per backend's typed pool. Rows
//! are converted to domain types here and nowhere else; one file per aggregate (users,
//! sessions, tokens, agents, audit, templates), and `copy` moves a relay's data between them.

/// Runs `$body` with `$pool` bound to the store's typed pool (`&SqlitePool` or `&PgPool`): the
/// body is written once and type-checked for each backend, so the two cannot drift apart.
macro_rules! with_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::Backend::Sqlite($pool) => $body,
            $crate::store::Backend::Postgres($pool) => $body,
        }
    };
}

mod agents;
mod audit;
pub mod copy;
mod fields;
pub mod registry_logins;
mod sessions;
pub mod templates;
mod tokens;
mod users;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use sqlx::{PgPool, SqlitePool};

pub use agents::AgentRecord;
pub use audit::{AuditEntry, AuditRow};
use fields::Fields;
pub use sessions::{
    SESSION_IDLE, SESSION_MAX_AGE, Session, SessionCheck, SessionLifetimes, SessionRow,
};
pub use tokens::TokenRow;
pub use users::{UserChange, UserRow};

/// The database of one relay (SQLite) or of a cluster of relays (PostgreSQL).
#[derive(Clone)]
pub(crate) enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// How long a request waits for a database connection before failing: a PostgreSQL server that
/// is down fails requests within this, not after sqlx's default of 30 s.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`Store::close`] waits for connections still in use.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Whether `db` names a PostgreSQL database (`postgres://…` or `postgresql://…`).
pub fn is_postgres(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

/// `db` fit for a log line or an error: a PostgreSQL URL without its password (or any user
/// info and query, which may carry one); a SQLite path as it is.
pub fn redacted(db: &str) -> String {
    if !is_postgres(db) {
        return db.to_string();
    }
    let (scheme, rest) = db.split_once("://").unwrap_or(("postgres", db));
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let rest = rest.split_once('?').map_or(rest, |(path, _)| path);
    format!("{scheme}://{rest}")
}

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
    Database(sqlx::Error),
    /// The database server is down or unreachable (PostgreSQL stopped, network cut, no free
    /// connection within the acquire timeout): worth retrying, not a bug.
    #[error("the database cannot be reached: {0}")]
    Unavailable(sqlx::Error),
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
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if unreachable(&e) {
            Self::Unavailable(e)
        } else {
            Self::Database(e)
        }
    }
}

/// A migration that fails is a database error like any other (or `Unavailable`).
impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        sqlx::Error::from(e).into()
    }
}

impl StoreError {
    /// The database could not be reached; the request may succeed when it is back.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// Whether `e` says the server could not be reached rather than that a query failed:
/// connection errors, a pool that found no working connection in time, and PostgreSQL's
/// "connection exception" (08) and "operator intervention" (57P, a server shutting down) codes.
fn unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

/// The relay's database.
#[derive(Clone)]
pub struct Store {
    pool: Backend,
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
        // An existing database is not opened here: closing a descriptor of it would drop the
        // POSIX locks SQLite holds on it for any connection this process already has open.
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
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

/// A new agent token and its hash, as a rotation makes them (for tests of
/// [`Store::begin_rotation`] outside the crate).
#[doc(hidden)]
pub fn new_agent_token() -> (String, String) {
    let token = crate::secret::new_token(crate::secret::TokenKind::Agent);
    let hash = crate::secret::token_hash(&token);
    (token, hash)
}

/// Current time in Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Opens the database at `db` and runs its pending migrations: a PostgreSQL URL
    /// (`postgres://…`), or else a SQLite file path or `sqlite:` URL (created if needed).
    pub async fn open(db: &str) -> Result<Self, StoreError> {
        let store = if is_postgres(db) {
            Self::open_postgres(db).await?
        } else {
            Self::open_sqlite(db).await?
        };
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

    /// Connects to PostgreSQL and brings its schema up to date (sqlx holds an advisory lock
    /// while migrating, so relays starting together take turns).
    async fn open_postgres(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?.application_name("zedops-relay");
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self {
            pool: Backend::Postgres(pool),
        })
    }

    /// Opens (creating if needed) a SQLite database, a file path or a `sqlite:` URL.
    async fn open_sqlite(db: &str) -> Result<Self, StoreError> {
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
        // The SQLite migrations keep the versions and checksums they had before PostgreSQL
        // was added, so existing databases open as they did.
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Self {
            pool: Backend::Sqlite(pool),
        })
    }

    /// `sqlite` or `postgres`, for log lines.
    pub fn backend(&self) -> &'static str {
        match self.pool {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Whether the database answers a trivial query (for `/readyz`).
    pub async fn ping(&self) -> bool {
        with_pool!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .is_ok())
    }

    /// Every row `sql` (a query without parameters) selects, each converted by `convert` (the
    /// rows of both drivers own their data, hence `'static`).
    async fn select_all<T>(
        &self,
        sql: &str,
        convert: fn(&(dyn Fields + 'static)) -> T,
    ) -> Result<Vec<T>, sqlx::Error> {
        with_pool!(self, |pool| {
            let rows = sqlx::query(sql).fetch_all(pool).await?;
            Ok(rows.iter().map(|r| convert(r)).collect())
        })
    }

    /// Closes every connection (on SQLite the last one checkpoints the WAL into the database
    /// file and removes it). sqlx's `Pool::close` can return with one connection left open: one
    /// being given back to the pool as it closes lands in the idle queue after the last sweep.
    /// Such a connection keeps the database open for the life of the process (its locks can
    /// then be lost to any other open and close of the file in this process, after which another
    /// process may remove the WAL under it), so close again until none is left, for at most
    /// [`CLOSE_WAIT`].
    pub async fn close(&self) {
        let deadline = tokio::time::Instant::now() + CLOSE_WAIT;
        with_pool!(self, |pool| {
            pool.close().await;
            while pool.size() > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(1)).await;
                pool.close().await;
            }
            if pool.size() > 0 {
                tracing::warn!(
                    connections = pool.size(),
                    "database connections still in use after {CLOSE_WAIT:?}; closing without them"
                );
            }
        })
    }
}
