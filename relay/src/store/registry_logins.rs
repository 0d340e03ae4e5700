//! Logins to private image registries (issue 14): one row per registry server, its password
//! sealed by `crate::registry_key` before it gets here, so this module never sees it in clear.

use super::{Fields, Store, StoreError, now};

/// A stored login; `secret` is sealed (see `crate::registry_key`).
#[derive(Clone)]
pub struct LoginRow {
    pub server: String,
    pub username: String,
    pub secret: String,
    pub updated_by: Option<String>,
    pub updated_at: i64,
}

impl std::fmt::Debug for LoginRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRow")
            .field("server", &self.server)
            .field("username", &self.username)
            .field("secret", &"<sealed>")
            .finish()
    }
}

fn row(r: &(impl Fields + ?Sized)) -> LoginRow {
    LoginRow {
        server: r.text("server"),
        username: r.text("username"),
        secret: r.text("secret"),
        updated_by: r.opt_text("updated_by"),
        updated_at: r.int("updated_at"),
    }
}

/// Every login, by server.
pub async fn all(store: &Store) -> Result<Vec<LoginRow>, StoreError> {
    let sql = "SELECT server, username, secret, updated_by, updated_at FROM registry_logins ORDER BY server";
    Ok(store.select_all(sql, row).await?)
}

/// How many logins there are.
pub async fn count(store: &Store) -> Result<i64, StoreError> {
    with_pool!(store, |pool| {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM registry_logins")
            .fetch_one(pool)
            .await?)
    })
}

/// Stores the login for `server`, replacing an older one; returns whether one was replaced.
pub async fn upsert(
    store: &Store,
    server: &str,
    username: &str,
    secret: &str,
    by: &str,
) -> Result<bool, StoreError> {
    let at = now();
    with_pool!(store, |pool| {
        let mut tx = pool.begin().await?;
        let replaced = sqlx::query(
            "UPDATE registry_logins SET username = $1, secret = $2, updated_by = $3, updated_at = $4 WHERE server = $5",
        )
        .bind(username)
        .bind(secret)
        .bind(by)
        .bind(at)
        .bind(server)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if !replaced {
            sqlx::query(
                "INSERT INTO registry_logins (server, username, secret, created_by, created_at, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(server)
            .bind(username)
            .bind(secret)
            .bind(by)
            .bind(at)
            .bind(by)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(replaced)
    })
}

/// Forgets the login for `server`; returns whether there was one.
pub async fn delete(store: &Store, server: &str) -> Result<bool, StoreError> {
    with_pool!(store, |pool| {
        let done = sqlx::query("DELETE FROM registry_logins WHERE server = $1")
            .bind(server)
            .execute(pool)
            .await?;
        Ok(done.rows_affected() > 0)
    })
}
