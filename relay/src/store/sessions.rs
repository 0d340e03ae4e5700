//! Device sessions: their lifetimes, checking and renewing a device token, ending expired and
//! revoked sessions, and what was revoked since a time (for other relay processes).

use std::time::Duration;

use sqlx::Row;
use zedops_protocol::Role;

use super::{Store, StoreError, now};
use crate::secret;

/// An authenticated device session.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub user: String,
    pub role: Role,
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

impl Store {
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
        with_pool!(self, |pool| {
            let row = sqlx::query(
            "SELECT s.id, u.name, u.role, s.created_at, COALESCE(s.last_used_at, s.created_at) AS used, \
             s.revoked_at FROM device_sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND NOT u.disabled",
        )
        .bind(secret::token_hash(token))
        .fetch_optional(pool)
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
            sqlx::query("UPDATE device_sessions SET last_used_at = $1 WHERE id = $2")
                .bind(at)
                .bind(&id)
                .execute(pool)
                .await?;
            Ok(match Role::parse(row.get::<&str, _>("role")) {
                Some(role) => SessionCheck::Live(Session {
                    id,
                    user: row.get("name"),
                    role,
                }),
                None => SessionCheck::Unknown,
            })
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
        with_pool!(self, |pool| {
            let at = now();
            let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            let mut tx = pool.begin().await?;
            for id in in_use {
                sqlx::query(
                "UPDATE device_sessions SET last_used_at = $1 WHERE id = $2 AND revoked_at IS NULL",
            )
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            }
            let done = sqlx::query(
                "UPDATE device_sessions SET revoked_at = $1 WHERE revoked_at IS NULL \
             AND (COALESCE(last_used_at, created_at) <= $2 OR created_at <= $3)",
            )
            .bind(at)
            .bind(at.saturating_sub(secs(lifetimes.idle)))
            .bind(at.saturating_sub(secs(lifetimes.max_age)))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(done.rows_affected())
        })
    }

    /// Ends the session of a device token. Returns whether one was live.
    pub async fn revoke_session_token(&self, token: &str) -> Result<bool, StoreError> {
        with_pool!(self, |pool| {
            let done = sqlx::query(
            "UPDATE device_sessions SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL",
        )
        .bind(now())
        .bind(secret::token_hash(token))
        .execute(pool)
        .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Live device sessions, newest first.
    pub async fn sessions(&self) -> Result<Vec<SessionRow>, StoreError> {
        let sql = "SELECT s.id, u.name, s.device, s.created_at, s.last_used_at FROM device_sessions s \
             JOIN users u ON u.id = s.user_id WHERE s.revoked_at IS NULL ORDER BY s.created_at DESC";
        let sessions = self.select_all(sql, |r| SessionRow {
            id: r.text("id"),
            user: r.text("name"),
            device: r.opt_text("device"),
            created_at: r.int("created_at"),
            last_used_at: r.opt_int("last_used_at"),
        });
        Ok(sessions.await?)
    }

    /// Ends a device session by id. Returns whether one was live.
    pub async fn revoke_session(&self, id: &str) -> Result<bool, StoreError> {
        with_pool!(self, |pool| {
            let done = sqlx::query(
                "UPDATE device_sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
            )
            .bind(now())
            .bind(id)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Ids of agents and sessions revoked at or after `since` (Unix seconds), so a running relay
    /// can close their connections when another process (`zedops-relay agent revoke`) revoked them.
    pub async fn revoked_since(
        &self,
        since: i64,
    ) -> Result<(Vec<String>, Vec<String>), StoreError> {
        with_pool!(self, |pool| {
            let agents = sqlx::query_scalar("SELECT id FROM agents WHERE revoked_at >= $1")
                .bind(since)
                .fetch_all(pool)
                .await?;
            let sessions =
                sqlx::query_scalar("SELECT id FROM device_sessions WHERE revoked_at >= $1")
                    .bind(since)
                    .fetch_all(pool)
                    .await?;
            Ok((agents, sessions))
        })
    }

    /// The current role of a live device session (`None` when revoked or its user disabled),
    /// to check a connection that authenticated while its user was being changed.
    pub async fn session_role(&self, session_id: &str) -> Result<Option<Role>, StoreError> {
        with_pool!(self, |pool| {
            let role: Option<String> = sqlx::query_scalar(
                "SELECT u.role FROM device_sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.id = $1 AND s.revoked_at IS NULL AND NOT u.disabled",
            )
            .bind(session_id)
            .fetch_optional(pool)
            .await?;
            Ok(role.as_deref().and_then(Role::parse))
        })
    }
}
