//! The audit log: who did what to which agent or container, with the outcome; entries for
//! actions in flight are written before and finished after.

use sqlx::Row;

use super::{Session, Store, StoreError, now};

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

impl<'a> AuditEntry<'a> {
    /// An entry of something the user of `session` did.
    pub fn by(session: &'a Session) -> Self {
        Self {
            user: Some(&session.user),
            session_id: Some(&session.id),
            ..Default::default()
        }
    }

    /// How it ended: `ok`, or `failed` with the error's code.
    pub fn ended(self, error: Option<&zedops_protocol::ErrorReply>) -> Self {
        Self {
            result: if error.is_none() { "ok" } else { "failed" },
            error_code: error.map(|e| e.error_code.as_str()),
            ..self
        }
    }
}

impl Store {
    /// Appends to the audit log.
    pub async fn audit(&self, entry: AuditEntry<'_>) -> Result<(), StoreError> {
        self.audit_begin(entry).await.map(|_| ())
    }

    /// Appends an audit entry for an action about to run and returns its id, so that
    /// [`audit_finish`](Self::audit_finish) can record the outcome. An entry still `pending`
    /// later means the relay stopped before the agent answered.
    pub async fn audit_begin(&self, entry: AuditEntry<'_>) -> Result<i64, StoreError> {
        with_pool!(self, |pool| {
            let id = sqlx::query_scalar(
            "INSERT INTO audit_log (at, user_name, session_id, agent_id, container, operation, result, error_code, target, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
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
        .fetch_one(pool)
        .await?;
            Ok(id)
        })
    }

    /// Records the outcome of the action whose entry [`audit_begin`](Self::audit_begin) wrote.
    pub async fn audit_finish(
        &self,
        id: i64,
        result: &str,
        error_code: Option<&str>,
    ) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query("UPDATE audit_log SET result = $1, error_code = $2 WHERE id = $3")
                .bind(result)
                .bind(error_code)
                .bind(id)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Adds `suffix` to the detail of entry `id` (an exec's ` exit=3` once it ended).
    pub async fn audit_append_detail(&self, id: i64, suffix: &str) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query("UPDATE audit_log SET detail = COALESCE(detail, '') || $1 WHERE id = $2")
                .bind(suffix)
                .bind(id)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Audit entries, newest first: at most `limit`, optionally for one agent id and since a time.
    pub async fn audit_list(
        &self,
        agent_id: Option<&str>,
        since: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError> {
        with_pool!(self, |pool| {
            let rows = sqlx::query(
            "SELECT id, at, user_name, session_id, agent_id, container, operation, result, error_code, target, detail FROM audit_log \
             WHERE ($1 IS NULL OR agent_id = $1) AND ($2 IS NULL OR at >= $2) ORDER BY id DESC LIMIT $3",
        )
        .bind(agent_id)
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(pool)
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
        })
    }

    /// Number of audit entries, for tests and health output.
    pub async fn audit_count(&self) -> Result<i64, StoreError> {
        with_pool!(self, |pool| {
            Ok(sqlx::query_scalar("SELECT COUNT(*) FROM audit_log")
                .fetch_one(pool)
                .await?)
        })
    }
}
