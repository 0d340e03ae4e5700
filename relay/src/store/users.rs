//! Users: accounts with argon2id password hashes, logins that open device sessions, role and
//! disabled changes (never leaving the relay without an enabled admin) and password resets.

use sqlx::Row;
use zedops_protocol::Role;

use super::{Fields, Session, Store, StoreError, now};
use crate::secret::{self, TokenKind};

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

/// The argon2id hash of `password`, computed off the async threads (it takes tens of
/// milliseconds on purpose).
async fn hash_password(password: &str) -> Result<String, StoreError> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || secret::hash_password(&password))
        .await
        .map_err(|e| StoreError::Hash(e.to_string()))?
        .map_err(|e| StoreError::Hash(e.to_string()))
}

impl Store {
    /// Creates a user with an argon2id password hash.
    pub async fn add_user(&self, name: &str, password: &str, role: Role) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            let hash = hash_password(password).await?;
            let result = sqlx::query(
            "INSERT INTO users (id, name, password_hash, role, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(name)
        .bind(hash)
        .bind(role.as_str())
        .bind(now())
        .execute(pool)
        .await;
            match result {
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    Err(StoreError::UserExists(name.into()))
                }
                other => other.map(|_| ()).map_err(Into::into),
            }
        })
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
        with_pool!(self, |pool| {
            let row =
                sqlx::query("SELECT id, password_hash, role, disabled FROM users WHERE name = $1")
                    .bind(name)
                    .fetch_optional(pool)
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
            let (Some(user_id), Some(role), false, true) = (user_id, role, disabled, matches)
            else {
                return Ok(None);
            };
            let token = secret::new_token(TokenKind::Device);
            let id = uuid::Uuid::new_v4().to_string();
            sqlx::query("INSERT INTO device_sessions (id, user_id, token_hash, device, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&id)
            .bind(&user_id)
            .bind(secret::token_hash(&token))
            .bind(device)
            .bind(now())
            .execute(pool)
            .await?;
            Ok(Some((
                Session {
                    id,
                    user: name.to_string(),
                    role,
                },
                token,
            )))
        })
    }

    /// All users by name, with their live session counts; never the password hashes.
    pub async fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        let sql = "SELECT u.name, u.role, u.disabled, u.created_at, \
             (SELECT COUNT(*) FROM device_sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL) AS sessions \
             FROM users u ORDER BY u.name";
        Ok(self
            .select_all(sql, user_from_row)
            .await?
            .into_iter()
            .flatten()
            .collect())
    }

    /// One user by name.
    pub async fn user(&self, name: &str) -> Result<Option<UserRow>, StoreError> {
        with_pool!(self, |pool| {
            let row = sqlx::query(
            "SELECT u.name, u.role, u.disabled, u.created_at, \
             (SELECT COUNT(*) FROM device_sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL) AS sessions \
             FROM users u WHERE u.name = $1",
        )
        .bind(name)
        .fetch_optional(pool)
        .await?;
            Ok(row.as_ref().and_then(user_from_row))
        })
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
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let row = sqlx::query("SELECT id, role, disabled FROM users WHERE name = $1")
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
                    "SELECT COUNT(*) FROM users WHERE role = 'admin' AND NOT disabled AND id != $1",
                )
                .bind(&user_id)
                .fetch_one(&mut *tx)
                .await?;
                if others == 0 {
                    return Err(StoreError::LastAdmin(name.into()));
                }
            }
            let sessions: Vec<String> = sqlx::query_scalar(
                "SELECT id FROM device_sessions WHERE user_id = $1 AND revoked_at IS NULL",
            )
            .bind(&user_id)
            .fetch_all(&mut *tx)
            .await?;
            sqlx::query("UPDATE users SET role = $1, disabled = $2 WHERE id = $3")
                .bind(new_role.as_str())
                .bind(now_disabled)
                .bind(&user_id)
                .execute(&mut *tx)
                .await?;
            if now_disabled {
                sqlx::query(
                "UPDATE device_sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
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
        with_pool!(self, |pool| {
            let hash = hash_password(password).await?;
            let mut tx = pool.begin().await?;
            let user_id: String = sqlx::query_scalar("SELECT id FROM users WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::NoSuchUser(name.into()))?;
            sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                .bind(hash)
                .bind(&user_id)
                .execute(&mut *tx)
                .await?;
            let revoked: Vec<String> = sqlx::query_scalar(
                "UPDATE device_sessions SET revoked_at = $1 \
             WHERE user_id = $2 AND revoked_at IS NULL AND ($3 IS NULL OR id != $3) RETURNING id",
            )
            .bind(now())
            .bind(&user_id)
            .bind(keep)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(revoked)
        })
    }
}

fn user_from_row(r: &(impl Fields + ?Sized)) -> Option<UserRow> {
    Some(UserRow {
        name: r.text("name"),
        role: Role::parse(&r.text("role"))?,
        disabled: r.flag("disabled"),
        created_at: r.int("created_at"),
        sessions: r.int("sessions").try_into().unwrap_or(u32::MAX),
    })
}
