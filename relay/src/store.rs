//! All of the relay's SQL, behind one `Store`, so that a second backend (PostgreSQL) can be
//! added without touching the rest. Rows are converted to domain types here and nowhere else.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use zedops_protocol::{AgentInfo, Role};

use crate::secret::{self, TokenKind};

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

/// A user as stored, without the password hash.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub name: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: i64,
    /// Live device sessions.
    pub sessions: u32,
}

/// What [`Store::update_user`] changed.
#[derive(Debug, Clone)]
pub struct UserChange {
    pub user: UserRow,
    /// The role differs from before.
    pub role_changed: bool,
    /// The user went from enabled to disabled.
    pub disabled_now: bool,
    /// Sessions of the user that were live before the change (all revoked now when disabled).
    pub sessions: Vec<String>,
}

/// A registration token as stored, without the token or its hash.
#[derive(Debug, Clone)]
pub struct TokenRow {
    pub id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub used_by_agent: Option<String>,
    pub revoked_at: Option<i64>,
}

impl TokenRow {
    /// `valid`, `used`, `expired` or `revoked`, as of `now`.
    pub fn state(&self, now: i64) -> &'static str {
        if self.used_at.is_some() {
            "used"
        } else if self.revoked_at.is_some() {
            "revoked"
        } else if self.expires_at <= now {
            "expired"
        } else {
            "valid"
        }
    }
}

/// An authenticated device session.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub user: String,
    pub role: Role,
}

/// An agent as stored.
#[derive(Debug, Clone)]
pub struct AgentRecord {
    pub id: String,
    pub name: String,
    pub last_seen: Option<i64>,
    pub info: Option<AgentInfo>,
}

/// How long a device session lives: ended after `idle` without use, and `max_age` after login
/// however much it is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLifetimes {
    pub idle: Duration,
    pub max_age: Duration,
}

/// Default [`SessionLifetimes::idle`]: 30 days.
pub const SESSION_IDLE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Default [`SessionLifetimes::max_age`]: 90 days.
pub const SESSION_MAX_AGE: Duration = Duration::from_secs(90 * 24 * 3600);

impl Default for SessionLifetimes {
    fn default() -> Self {
        Self {
            idle: SESSION_IDLE,
            max_age: SESSION_MAX_AGE,
        }
    }
}

impl SessionLifetimes {
    /// Whether a session created at `created` and last used at `used` has ended at `now`
    /// (Unix seconds).
    pub fn expired(&self, created: i64, used: i64, now: i64) -> bool {
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        now.saturating_sub(used) >= secs(self.idle)
            || now.saturating_sub(created) >= secs(self.max_age)
    }
}

/// What [`Store::check_session`] found for a device token.
#[derive(Debug, Clone)]
pub enum SessionCheck {
    Live(Session),
    /// The session ran past its idle or absolute lifetime (and is ended now).
    Expired,
    /// No such token, or its session was revoked or its user disabled.
    Unknown,
}

/// A live device session as stored.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: String,
    pub user: String,
    pub device: Option<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// An audit log entry as stored.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub id: i64,
    pub at: i64,
    pub user: Option<String>,
    pub session_id: Option<String>,
    pub agent_id: Option<String>,
    pub container: Option<String>,
    pub operation: String,
    pub result: String,
    pub error_code: Option<String>,
    pub target: Option<String>,
    pub detail: Option<String>,
}

/// One audit log entry to write.
#[derive(Debug, Clone, Default)]
pub struct AuditEntry<'a> {
    pub user: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub agent_id: Option<&'a str>,
    pub container: Option<&'a str>,
    pub operation: &'a str,
    pub result: &'a str,
    pub error_code: Option<&'a str>,
    /// What an admin change applied to: a user name or a registration token id.
    pub target: Option<&'a str>,
    /// How, in words (`role viewer -> admin`); never a secret.
    pub detail: Option<&'a str>,
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

    // ---- users and sessions -----------------------------------------------------------------

    /// Creates a user with an argon2id password hash.
    pub async fn add_user(&self, name: &str, password: &str, role: Role) -> Result<(), StoreError> {
        let password = password.to_string();
        let hash = tokio::task::spawn_blocking(move || secret::hash_password(&password))
            .await
            .map_err(|e| StoreError::Hash(e.to_string()))?
            .map_err(|e| StoreError::Hash(e.to_string()))?;
        let result = sqlx::query(
            "INSERT INTO users (id, name, password_hash, role, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(name)
        .bind(hash)
        .bind(role.as_str())
        .bind(now())
        .execute(&self.pool)
        .await;
        match result {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::UserExists(name.into()))
            }
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    /// Checks a user's password and, if right, opens a device session. Returns the session and
    /// its token, or `None` for an unknown user, a disabled user or a wrong password (which take
    /// the same time to refuse).
    pub async fn login(
        &self,
        name: &str,
        password: &str,
        device: Option<&str>,
    ) -> Result<Option<(Session, String)>, StoreError> {
        self.login_holding(name, password, device, Vec::new()).await
    }

    /// [`login`](Self::login), holding `guard` (a password-check slot with its working memory)
    /// until the hash check ends, also when the caller stops waiting for it.
    pub async fn login_holding<G: AsMut<Vec<argon2::Block>> + Send + 'static>(
        &self,
        name: &str,
        password: &str,
        device: Option<&str>,
        mut guard: G,
    ) -> Result<Option<(Session, String)>, StoreError> {
        let row = sqlx::query("SELECT id, password_hash, role, disabled FROM users WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        let (user_id, hash, role, disabled) = match &row {
            Some(r) => (
                Some(r.get::<String, _>("id")),
                r.get::<String, _>("password_hash"),
                Role::parse(r.get::<&str, _>("role")),
                r.get::<bool, _>("disabled"),
            ),
            None => (None, secret::dummy_password_hash().to_string(), None, true),
        };
        let password = password.to_string();
        let matches = tokio::task::spawn_blocking(move || {
            let matches = secret::verify_password_in(&password, &hash, guard.as_mut());
            drop(guard);
            matches
        })
        .await
        .map_err(|e| StoreError::Hash(e.to_string()))?;
        let (Some(user_id), Some(role), false, true) = (user_id, role, disabled, matches) else {
            return Ok(None);
        };
        let token = secret::new_token(TokenKind::Device);
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query("INSERT INTO device_sessions (id, user_id, token_hash, device, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(&id)
            .bind(&user_id)
            .bind(secret::token_hash(&token))
            .bind(device)
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok(Some((
            Session {
                id,
                user: name.to_string(),
                role,
            },
            token,
        )))
    }

    /// The live session a device token belongs to, if any, with the default lifetimes.
    pub async fn session(&self, token: &str) -> Result<Option<Session>, StoreError> {
        match self
            .check_session(token, &SessionLifetimes::default())
            .await?
        {
            SessionCheck::Live(session) => Ok(Some(session)),
            SessionCheck::Expired | SessionCheck::Unknown => Ok(None),
        }
    }

    /// What a device token stands for now. A live session is renewed (its idle time starts
    /// again); one past its idle or absolute lifetime is ended for good.
    pub async fn check_session(
        &self,
        token: &str,
        lifetimes: &SessionLifetimes,
    ) -> Result<SessionCheck, StoreError> {
        let row = sqlx::query(
            "SELECT s.id, u.name, u.role, s.created_at, COALESCE(s.last_used_at, s.created_at) AS used, \
             s.revoked_at FROM device_sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = ? AND u.disabled = 0",
        )
        .bind(secret::token_hash(token))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(SessionCheck::Unknown);
        };
        let (created, used) = (row.get("created_at"), row.get("used"));
        // A session ended when it was already past its lifetime (by the relay's periodic sweep)
        // is reported as expired, not as revoked.
        if let Some(revoked) = row.get::<Option<i64>, _>("revoked_at") {
            return Ok(if lifetimes.expired(created, used, revoked) {
                SessionCheck::Expired
            } else {
                SessionCheck::Unknown
            });
        }
        let id: String = row.get("id");
        let at = now();
        if lifetimes.expired(created, used, at) {
            self.revoke_session(&id).await?;
            return Ok(SessionCheck::Expired);
        }
        sqlx::query("UPDATE device_sessions SET last_used_at = ? WHERE id = ?")
            .bind(at)
            .bind(&id)
            .execute(&self.pool)
            .await?;
        Ok(match Role::parse(row.get::<&str, _>("role")) {
            Some(role) => SessionCheck::Live(Session {
                id,
                user: row.get("name"),
                role,
            }),
            None => SessionCheck::Unknown,
        })
    }

    /// Ends every device session past its lifetimes; a session in `in_use` (connected now)
    /// counts as used now. The ended sessions reach their live connections through
    /// [`revoked_since`](Self::revoked_since). Returns how many ended.
    pub async fn end_expired_sessions(
        &self,
        lifetimes: &SessionLifetimes,
        in_use: &[String],
    ) -> Result<u64, StoreError> {
        let at = now();
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        let mut tx = self.pool.begin().await?;
        for id in in_use {
            sqlx::query(
                "UPDATE device_sessions SET last_used_at = ? WHERE id = ? AND revoked_at IS NULL",
            )
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        let done = sqlx::query(
            "UPDATE device_sessions SET revoked_at = ? WHERE revoked_at IS NULL \
             AND (COALESCE(last_used_at, created_at) <= ? OR created_at <= ?)",
        )
        .bind(at)
        .bind(at.saturating_sub(secs(lifetimes.idle)))
        .bind(at.saturating_sub(secs(lifetimes.max_age)))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Ends the session of a device token. Returns whether one was live.
    pub async fn revoke_session_token(&self, token: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE device_sessions SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL",
        )
        .bind(now())
        .bind(secret::token_hash(token))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Live device sessions, newest first.
    pub async fn sessions(&self) -> Result<Vec<SessionRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.id, u.name, s.device, s.created_at, s.last_used_at FROM device_sessions s \
             JOIN users u ON u.id = s.user_id WHERE s.revoked_at IS NULL ORDER BY s.created_at DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| SessionRow {
                id: r.get("id"),
                user: r.get("name"),
                device: r.get("device"),
                created_at: r.get("created_at"),
                last_used_at: r.get("last_used_at"),
            })
            .collect())
    }

    /// Ends a device session by id. Returns whether one was live.
    pub async fn revoke_session(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE device_sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        )
        .bind(now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ids of agents and sessions revoked at or after `since` (Unix seconds), so a running relay
    /// can close their connections when another process (`zedops-relay agent revoke`) revoked them.
    pub async fn revoked_since(
        &self,
        since: i64,
    ) -> Result<(Vec<String>, Vec<String>), StoreError> {
        let agents = sqlx::query_scalar("SELECT id FROM agents WHERE revoked_at >= ?")
            .bind(since)
            .fetch_all(&self.pool)
            .await?;
        let sessions = sqlx::query_scalar("SELECT id FROM device_sessions WHERE revoked_at >= ?")
            .bind(since)
            .fetch_all(&self.pool)
            .await?;
        Ok((agents, sessions))
    }

    // ---- registration tokens and agents -----------------------------------------------------

    /// Creates a single-use registration token valid for `ttl`.
    pub async fn create_registration_token(&self, ttl: Duration) -> Result<String, StoreError> {
        Ok(self.create_registration_token_with_id(ttl).await?.1)
    }

    /// Creates a single-use registration token valid for `ttl`; its id and the token.
    pub async fn create_registration_token_with_id(
        &self,
        ttl: Duration,
    ) -> Result<(String, String), StoreError> {
        let token = secret::new_token(TokenKind::Registration);
        let id = uuid::Uuid::new_v4().to_string();
        let created = now();
        sqlx::query("INSERT INTO registration_tokens (id, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?)")
            .bind(&id)
            .bind(secret::token_hash(&token))
            .bind(created)
            .bind(created + ttl.as_secs() as i64)
            .execute(&self.pool)
            .await?;
        Ok((id, token))
    }

    /// Registration tokens, newest first (at most 1000): never the tokens or their hashes.
    pub async fn registration_tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, created_at, expires_at, used_at, used_by_agent, revoked_at \
             FROM registration_tokens ORDER BY created_at DESC, id LIMIT 1000",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(token_from_row).collect())
    }

    /// Revokes an unused registration token by id, so it can no longer enrol an agent.
    /// Revoking a revoked or expired token again is harmless; a used one is refused.
    pub async fn revoke_registration_token(&self, id: &str) -> Result<TokenRow, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE registration_tokens SET revoked_at = ? \
             WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL",
        )
        .bind(now())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(
            "SELECT id, created_at, expires_at, used_at, used_by_agent, revoked_at \
             FROM registration_tokens WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let row = row
            .as_ref()
            .map(token_from_row)
            .ok_or_else(|| StoreError::NoSuchToken(id.into()))?;
        if row.used_at.is_some() {
            return Err(StoreError::TokenUsed(id.into()));
        }
        Ok(row)
    }

    /// Enrols a new agent: consumes the registration token and creates the agent with a fresh
    /// permanent token, in one transaction (a refused name leaves the token unused).
    pub async fn enrol_agent(
        &self,
        registration_token: &str,
        name: &str,
        info: &AgentInfo,
    ) -> Result<(AgentRecord, String), StoreError> {
        let mut tx = self.pool.begin().await?;
        let at = now();
        let agent_id = uuid::Uuid::new_v4().to_string();
        let consumed = sqlx::query(
            "UPDATE registration_tokens SET used_at = ?, used_by_agent = ? \
             WHERE token_hash = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?",
        )
        .bind(at)
        .bind(&agent_id)
        .bind(secret::token_hash(registration_token))
        .bind(at)
        .execute(&mut *tx)
        .await?;
        if consumed.rows_affected() != 1 {
            return Err(StoreError::BadRegistrationToken);
        }
        // A name equal to an agent's id would make references to that agent ambiguous.
        let is_an_id: Option<i64> = sqlx::query_scalar("SELECT 1 FROM agents WHERE id = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        if is_an_id.is_some() || zedops_protocol::looks_like_agent_id(name) {
            return Err(StoreError::NameTaken(name.into()));
        }
        let token = secret::new_token(TokenKind::Agent);
        let inserted = sqlx::query(
            "INSERT INTO agents (id, name, token_hash, created_at, last_seen, version, docker_version, engine_id, os, arch, hostname) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&agent_id)
        .bind(name)
        .bind(secret::token_hash(&token))
        .bind(at)
        .bind(at)
        .bind(&info.version)
        .bind(&info.docker_version)
        .bind(&info.engine_id)
        .bind(&info.os)
        .bind(&info.arch)
        .bind(&info.hostname)
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(StoreError::NameTaken(name.into()));
            }
            other => other?,
        };
        tx.commit().await?;
        let record = AgentRecord {
            id: agent_id,
            name: name.into(),
            last_seen: Some(at),
            info: Some(info.clone()),
        };
        Ok((record, token))
    }

    /// Checks an agent's permanent token and records what it reports about itself.
    /// `None` when the id and token do not match a live agent.
    pub async fn authenticate_agent(
        &self,
        agent_id: &str,
        token: &str,
        info: &AgentInfo,
    ) -> Result<Option<AgentRecord>, StoreError> {
        let at = now();
        // The token hash is the lookup key, so no secret is compared in the application.
        // A token being rotated (`next_token_hash`) is accepted too: the agent may have stored it
        // without its confirmation reaching the relay. Whichever token the agent proves it holds
        // becomes the only one.
        let hash = secret::token_hash(token);
        let row = sqlx::query(
            "UPDATE agents SET last_seen = ?1, version = ?2, docker_version = ?3, engine_id = ?4, os = ?5, arch = ?6, hostname = ?7, \
             token_hash = ?8, next_token_hash = NULL \
             WHERE id = ?9 AND (token_hash = ?8 OR next_token_hash = ?8) AND revoked_at IS NULL RETURNING name",
        )
        .bind(at)
        .bind(&info.version)
        .bind(&info.docker_version)
        .bind(&info.engine_id)
        .bind(&info.os)
        .bind(&info.arch)
        .bind(&info.hostname)
        .bind(&hash)
        .bind(agent_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| AgentRecord {
            id: agent_id.into(),
            name: r.get("name"),
            last_seen: Some(at),
            info: Some(info.clone()),
        }))
    }

    /// Records when an agent was last heard from.
    pub async fn touch_agent(&self, agent_id: &str, at: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE agents SET last_seen = ? WHERE id = ?")
            .bind(at)
            .bind(agent_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// All live (not revoked) agents, by name.
    pub async fn agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, last_seen, version, docker_version, engine_id, os, arch, hostname \
             FROM agents WHERE revoked_at IS NULL ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(agent_from_row).collect())
    }

    /// The live agent with this id or name.
    pub async fn find_agent(&self, id_or_name: &str) -> Result<Option<AgentRecord>, StoreError> {
        // The id first, exactly; a name only when no agent has that id and the reference
        // cannot be an id (see `Hub::agent`).
        const COLUMNS: &str = "SELECT id, name, last_seen, version, docker_version, engine_id, os, arch, hostname FROM agents";
        let by_id = sqlx::query(&format!("{COLUMNS} WHERE revoked_at IS NULL AND id = ?"))
            .bind(id_or_name)
            .fetch_optional(&self.pool)
            .await?;
        if by_id.is_some() || zedops_protocol::looks_like_agent_id(id_or_name) {
            return Ok(by_id.as_ref().map(agent_from_row));
        }
        let by_name = sqlx::query(&format!("{COLUMNS} WHERE revoked_at IS NULL AND name = ?"))
            .bind(id_or_name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(by_name.as_ref().map(agent_from_row))
    }

    /// Agents whose name is another agent's id (refused since names may not look like ids, but
    /// possibly in a database from before): `(named, id_owner)` pairs, for a warning at start.
    pub async fn agent_name_clashes(&self) -> Result<Vec<(AgentRecord, AgentRecord)>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.id AS a_id, a.name AS a_name, b.id AS b_id, b.name AS b_name \
             FROM agents a JOIN agents b ON a.name = b.id AND a.id <> b.id \
             WHERE a.revoked_at IS NULL AND b.revoked_at IS NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        let record = |id: String, name: String| AgentRecord {
            id,
            name,
            last_seen: None,
            info: None,
        };
        Ok(rows
            .iter()
            .map(|r| {
                (
                    record(r.get("a_id"), r.get("a_name")),
                    record(r.get("b_id"), r.get("b_name")),
                )
            })
            .collect())
    }

    /// Revokes an agent by id or name; its token stops working.
    pub async fn revoke_agent(&self, id_or_name: &str) -> Result<AgentRecord, StoreError> {
        let agent = self
            .find_agent(id_or_name)
            .await?
            .ok_or_else(|| StoreError::NoSuchAgent(id_or_name.into()))?;
        sqlx::query("UPDATE agents SET revoked_at = ? WHERE id = ?")
            .bind(now())
            .bind(&agent.id)
            .execute(&self.pool)
            .await?;
        Ok(agent)
    }

    /// Revokes the agent with exactly this id (an agent forgetting itself: no name lookup, so
    /// no other agent can be meant). Returns its name, or `None` when it was not live.
    pub async fn revoke_agent_id(&self, agent_id: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "UPDATE agents SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL RETURNING name",
        )
        .bind(now())
        .bind(agent_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Starts rotating an agent's token: `next_hash` is accepted alongside the current token
    /// until [`finish_rotation`](Self::finish_rotation) or the agent's next authentication.
    pub async fn begin_rotation(&self, agent_id: &str, next_hash: &str) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE agents SET next_token_hash = ? WHERE id = ? AND revoked_at IS NULL",
        )
        .bind(next_hash)
        .bind(agent_id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::NoSuchAgent(agent_id.into()));
        }
        Ok(())
    }

    /// The agent confirmed it stored the new token: it replaces the old one, which is refused
    /// from now on. False when the rotation was settled otherwise meanwhile (the agent
    /// reconnected, or it was revoked).
    pub async fn finish_rotation(
        &self,
        agent_id: &str,
        next_hash: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE agents SET token_hash = next_token_hash, next_token_hash = NULL \
             WHERE id = ? AND next_token_hash = ? AND revoked_at IS NULL",
        )
        .bind(agent_id)
        .bind(next_hash)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The agent said it could not store the new token: forget it, the old one stays.
    pub async fn abort_rotation(&self, agent_id: &str, next_hash: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE agents SET next_token_hash = NULL WHERE id = ? AND next_token_hash = ?",
        )
        .bind(agent_id)
        .bind(next_hash)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // ---- user management --------------------------------------------------------------------

    /// All users by name, with their live session counts; never the password hashes.
    pub async fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT u.name, u.role, u.disabled, u.created_at, \
             (SELECT COUNT(*) FROM device_sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL) AS sessions \
             FROM users u ORDER BY u.name",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().filter_map(user_from_row).collect())
    }

    /// One user by name.
    pub async fn user(&self, name: &str) -> Result<Option<UserRow>, StoreError> {
        let row = sqlx::query(
            "SELECT u.name, u.role, u.disabled, u.created_at, \
             (SELECT COUNT(*) FROM device_sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL) AS sessions \
             FROM users u WHERE u.name = ?",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().and_then(user_from_row))
    }

    /// Changes a user's role and/or disabled flag in one transaction. Disabling revokes every
    /// device session of the user. The last enabled admin can be neither demoted nor disabled,
    /// so the relay always keeps someone who can administer it.
    pub async fn update_user(
        &self,
        name: &str,
        role: Option<Role>,
        disabled: Option<bool>,
    ) -> Result<UserChange, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("SELECT id, role, disabled FROM users WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NoSuchUser(name.into()))?;
        let user_id: String = row.get("id");
        let old_role = Role::parse(row.get::<&str, _>("role")).unwrap_or(Role::Viewer);
        let was_disabled: bool = row.get("disabled");
        let new_role = role.unwrap_or(old_role);
        let now_disabled = disabled.unwrap_or(was_disabled);
        let admin_before = old_role == Role::Admin && !was_disabled;
        let admin_after = new_role == Role::Admin && !now_disabled;
        if admin_before && !admin_after {
            let others: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = 0 AND id != ?",
            )
            .bind(&user_id)
            .fetch_one(&mut *tx)
            .await?;
            if others == 0 {
                return Err(StoreError::LastAdmin(name.into()));
            }
        }
        let sessions: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM device_sessions WHERE user_id = ? AND revoked_at IS NULL",
        )
        .bind(&user_id)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query("UPDATE users SET role = ?, disabled = ? WHERE id = ?")
            .bind(new_role.as_str())
            .bind(now_disabled)
            .bind(&user_id)
            .execute(&mut *tx)
            .await?;
        if now_disabled {
            sqlx::query(
                "UPDATE device_sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
            )
            .bind(now())
            .bind(&user_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let user = self
            .user(name)
            .await?
            .ok_or_else(|| StoreError::NoSuchUser(name.into()))?;
        Ok(UserChange {
            user,
            role_changed: new_role != old_role,
            disabled_now: now_disabled && !was_disabled,
            sessions,
        })
    }

    /// Gives a user a new password (argon2id hash) and revokes the user's device sessions, all
    /// but `keep` (the admin's own, when admins change their own password): a password is
    /// reset because the old one may be known to someone else, so sessions opened with it end
    /// too. Returns the ids of the revoked sessions, so their connections can be closed.
    pub async fn set_password(
        &self,
        name: &str,
        password: &str,
        keep: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        let password = password.to_string();
        let hash = tokio::task::spawn_blocking(move || secret::hash_password(&password))
            .await
            .map_err(|e| StoreError::Hash(e.to_string()))?
            .map_err(|e| StoreError::Hash(e.to_string()))?;
        let mut tx = self.pool.begin().await?;
        let user_id: String = sqlx::query_scalar("SELECT id FROM users WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NoSuchUser(name.into()))?;
        sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
            .bind(hash)
            .bind(&user_id)
            .execute(&mut *tx)
            .await?;
        let revoked: Vec<String> = sqlx::query_scalar(
            "UPDATE device_sessions SET revoked_at = ? \
             WHERE user_id = ? AND revoked_at IS NULL AND (?3 IS NULL OR id != ?3) RETURNING id",
        )
        .bind(now())
        .bind(&user_id)
        .bind(keep)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(revoked)
    }

    /// The current role of a live device session (`None` when revoked or its user disabled),
    /// to check a connection that authenticated while its user was being changed.
    pub async fn session_role(&self, session_id: &str) -> Result<Option<Role>, StoreError> {
        let role: Option<String> = sqlx::query_scalar(
            "SELECT u.role FROM device_sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.id = ? AND s.revoked_at IS NULL AND u.disabled = 0",
        )
        .bind(session_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(role.as_deref().and_then(Role::parse))
    }

    // ---- audit ------------------------------------------------------------------------------

    /// Appends to the audit log.
    pub async fn audit(&self, entry: AuditEntry<'_>) -> Result<(), StoreError> {
        self.audit_begin(entry).await.map(|_| ())
    }

    /// Appends an audit entry for an action about to run and returns its id, so that
    /// [`audit_finish`](Self::audit_finish) can record the outcome. An entry still `pending`
    /// later means the relay stopped before the agent answered.
    pub async fn audit_begin(&self, entry: AuditEntry<'_>) -> Result<i64, StoreError> {
        let id = sqlx::query_scalar(
            "INSERT INTO audit_log (at, user_name, session_id, agent_id, container, operation, result, error_code, target, detail) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(now())
        .bind(entry.user)
        .bind(entry.session_id)
        .bind(entry.agent_id)
        .bind(entry.container)
        .bind(entry.operation)
        .bind(entry.result)
        .bind(entry.error_code)
        .bind(entry.target)
        .bind(entry.detail)
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    /// Records the outcome of the action whose entry [`audit_begin`](Self::audit_begin) wrote.
    pub async fn audit_finish(
        &self,
        id: i64,
        result: &str,
        error_code: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE audit_log SET result = ?, error_code = ? WHERE id = ?")
            .bind(result)
            .bind(error_code)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Audit entries, newest first: at most `limit`, optionally for one agent id and since a time.
    pub async fn audit_list(
        &self,
        agent_id: Option<&str>,
        since: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, user_name, session_id, agent_id, container, operation, result, error_code, target, detail FROM audit_log \
             WHERE (?1 IS NULL OR agent_id = ?1) AND (?2 IS NULL OR at >= ?2) ORDER BY id DESC LIMIT ?3",
        )
        .bind(agent_id)
        .bind(since)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| AuditRow {
                id: r.get("id"),
                at: r.get("at"),
                user: r.get("user_name"),
                session_id: r.get("session_id"),
                agent_id: r.get("agent_id"),
                container: r.get("container"),
                operation: r.get("operation"),
                result: r.get("result"),
                error_code: r.get("error_code"),
                target: r.get("target"),
                detail: r.get("detail"),
            })
            .collect())
    }

    /// Number of audit entries, for tests and health output.
    pub async fn audit_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM audit_log")
            .fetch_one(&self.pool)
            .await?)
    }
}

fn user_from_row(r: &sqlx::sqlite::SqliteRow) -> Option<UserRow> {
    Some(UserRow {
        name: r.get("name"),
        role: Role::parse(r.get::<&str, _>("role"))?,
        disabled: r.get("disabled"),
        created_at: r.get("created_at"),
        sessions: r.get::<i64, _>("sessions").try_into().unwrap_or(u32::MAX),
    })
}

fn token_from_row(r: &sqlx::sqlite::SqliteRow) -> TokenRow {
    TokenRow {
        id: r.get("id"),
        created_at: r.get("created_at"),
        expires_at: r.get("expires_at"),
        used_at: r.get("used_at"),
        used_by_agent: r.get("used_by_agent"),
        revoked_at: r.get("revoked_at"),
    }
}

fn agent_from_row(r: &sqlx::sqlite::SqliteRow) -> AgentRecord {
    let version: Option<String> = r.get("version");
    AgentRecord {
        id: r.get("id"),
        name: r.get("name"),
        last_seen: r.get("last_seen"),
        info: version.map(|version| AgentInfo {
            version,
            docker_version: r.get("docker_version"),
            engine_id: r.get("engine_id"),
            os: r.get::<Option<String>, _>("os").unwrap_or_default(),
            arch: r.get::<Option<String>, _>("arch").unwrap_or_default(),
            hostname: r.get("hostname"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> AgentInfo {
        AgentInfo {
            version: "1".into(),
            os: "linux".into(),
            arch: "x86_64".into(),
            ..Default::default()
        }
    }

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("relay.db").to_str().unwrap())
            .await
            .unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn registration_tokens_are_single_use_and_expire() {
        let (_dir, store) = store().await;
        let token = store
            .create_registration_token(Duration::from_secs(60))
            .await
            .unwrap();
        let (agent, permanent) = store.enrol_agent(&token, "web-1", &info()).await.unwrap();
        assert!(matches!(
            store.enrol_agent(&token, "web-2", &info()).await,
            Err(StoreError::BadRegistrationToken)
        ));
        assert!(
            store
                .authenticate_agent(&agent.id, &permanent, &info())
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .authenticate_agent(&agent.id, "za_wrong", &info())
                .await
                .unwrap()
                .is_none()
        );

        let expired = store
            .create_registration_token(Duration::ZERO)
            .await
            .unwrap();
        assert!(matches!(
            store.enrol_agent(&expired, "web-3", &info()).await,
            Err(StoreError::BadRegistrationToken)
        ));

        // A taken name leaves the token usable.
        let token = store
            .create_registration_token(Duration::from_secs(60))
            .await
            .unwrap();
        assert!(matches!(
            store.enrol_agent(&token, "web-1", &info()).await,
            Err(StoreError::NameTaken(_))
        ));
        store.enrol_agent(&token, "web-2", &info()).await.unwrap();

        store.revoke_agent("web-1").await.unwrap();
        assert!(
            store
                .authenticate_agent(&agent.id, &permanent, &info())
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn logins_open_sessions_and_store_no_plain_secret() {
        let (dir, store) = store().await;
        store
            .add_user("alice", "s3cret-pass", Role::Operator)
            .await
            .unwrap();
        assert!(matches!(
            store.add_user("alice", "x", Role::Viewer).await,
            Err(StoreError::UserExists(_))
        ));
        assert!(store.login("alice", "wrong", None).await.unwrap().is_none());
        assert!(
            store
                .login("bob", "s3cret-pass", None)
                .await
                .unwrap()
                .is_none()
        );
        let (session, token) = store
            .login("alice", "s3cret-pass", Some("laptop"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(session.role, Role::Operator);
        assert_eq!(store.session(&token).await.unwrap().unwrap().user, "alice");
        assert!(store.revoke_session_token(&token).await.unwrap());
        assert!(store.session(&token).await.unwrap().is_none());
        store.close().await;
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains("s3cret-pass") && !text.contains(&token));
        }
    }

    #[tokio::test]
    async fn the_last_admin_stays_and_disabling_revokes_sessions() {
        let (_dir, store) = store().await;
        store
            .add_user("root", "pw-root", Role::Admin)
            .await
            .unwrap();
        store
            .add_user("bob", "pw-bob", Role::Operator)
            .await
            .unwrap();
        let (bob, token) = store.login("bob", "pw-bob", None).await.unwrap().unwrap();
        assert!(matches!(
            store.update_user("root", Some(Role::Viewer), None).await,
            Err(StoreError::LastAdmin(_))
        ));
        assert!(matches!(
            store.update_user("root", None, Some(true)).await,
            Err(StoreError::LastAdmin(_))
        ));
        assert!(matches!(
            store.update_user("nobody", None, Some(true)).await,
            Err(StoreError::NoSuchUser(_))
        ));

        let change = store
            .update_user("bob", Some(Role::Viewer), None)
            .await
            .unwrap();
        assert!(change.role_changed && !change.disabled_now);
        assert_eq!(change.sessions, vec![bob.id.clone()]);
        assert_eq!(
            store.session_role(&bob.id).await.unwrap(),
            Some(Role::Viewer)
        );
        assert_eq!(
            store.session(&token).await.unwrap().unwrap().role,
            Role::Viewer
        );

        let change = store.update_user("bob", None, Some(true)).await.unwrap();
        assert!(change.disabled_now && change.user.disabled);
        assert_eq!(change.user.sessions, 0);
        assert!(store.session(&token).await.unwrap().is_none());
        assert!(store.login("bob", "pw-bob", None).await.unwrap().is_none());
        // Enabling does not bring the old sessions back; a new login works.
        store.update_user("bob", None, Some(false)).await.unwrap();
        assert!(store.session(&token).await.unwrap().is_none());
        assert!(store.login("bob", "pw-bob", None).await.unwrap().is_some());

        // With a second admin, the first may step down.
        store
            .update_user("bob", Some(Role::Admin), None)
            .await
            .unwrap();
        store
            .update_user("root", Some(Role::Viewer), None)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn revoked_registration_tokens_cannot_enrol() {
        let (_dir, store) = store().await;
        let (id, token) = store
            .create_registration_token_with_id(Duration::from_secs(60))
            .await
            .unwrap();
        let listed = store.registration_tokens().await.unwrap();
        assert_eq!((listed.len(), listed[0].state(now())), (1, "valid"));
        let row = store.revoke_registration_token(&id).await.unwrap();
        assert_eq!(row.state(now()), "revoked");
        // Twice is harmless.
        store.revoke_registration_token(&id).await.unwrap();
        assert!(matches!(
            store.enrol_agent(&token, "web-1", &info()).await,
            Err(StoreError::BadRegistrationToken)
        ));
        assert!(matches!(
            store.revoke_registration_token("nope").await,
            Err(StoreError::NoSuchToken(_))
        ));
        let (used_id, used) = store
            .create_registration_token_with_id(Duration::from_secs(60))
            .await
            .unwrap();
        store.enrol_agent(&used, "web-1", &info()).await.unwrap();
        assert!(matches!(
            store.revoke_registration_token(&used_id).await,
            Err(StoreError::TokenUsed(_))
        ));
    }

    #[tokio::test]
    async fn a_rotation_switches_tokens_only_when_confirmed() {
        let (_dir, store) = store().await;
        let token = store
            .create_registration_token(Duration::from_secs(60))
            .await
            .unwrap();
        let (agent, old) = store.enrol_agent(&token, "web-1", &info()).await.unwrap();
        let auth = |t: String| {
            let store = store.clone();
            let id = agent.id.clone();
            async move {
                store
                    .authenticate_agent(&id, &t, &info())
                    .await
                    .unwrap()
                    .is_some()
            }
        };

        // Pending: both work until one is used; using the old one cancels the rotation.
        let new = secret::new_token(TokenKind::Agent);
        store
            .begin_rotation(&agent.id, &secret::token_hash(&new))
            .await
            .unwrap();
        assert!(auth(old.clone()).await);
        assert!(
            !auth(new.clone()).await,
            "authenticating with the old token settles it"
        );

        // Confirmed: the new token replaces the old one.
        store
            .begin_rotation(&agent.id, &secret::token_hash(&new))
            .await
            .unwrap();
        assert!(
            store
                .finish_rotation(&agent.id, &secret::token_hash(&new))
                .await
                .unwrap()
        );
        assert!(!auth(old.clone()).await);
        assert!(auth(new.clone()).await);

        // Confirmation lost, agent reconnects with the newer token: it becomes the only one.
        let newer = secret::new_token(TokenKind::Agent);
        store
            .begin_rotation(&agent.id, &secret::token_hash(&newer))
            .await
            .unwrap();
        assert!(auth(newer.clone()).await);
        assert!(!auth(new.clone()).await);
        assert!(
            !store
                .finish_rotation(&agent.id, &secret::token_hash(&newer))
                .await
                .unwrap()
        );

        // Aborted: the current token stays.
        let spare = secret::new_token(TokenKind::Agent);
        store
            .begin_rotation(&agent.id, &secret::token_hash(&spare))
            .await
            .unwrap();
        store
            .abort_rotation(&agent.id, &secret::token_hash(&spare))
            .await
            .unwrap();
        assert!(!auth(spare).await);
        assert!(auth(newer).await);
    }
}
