//! Container templates (issue 14): one row per template with its current version, and every
//! version ever saved, so a container's zedops.template.version label can be traced to the
//! specification it was made from.

use zedops_protocol::TemplateBody;

use super::{Fields, Store, StoreError, now};

/// Keeps `$body` as version `$version` of template `$name`, in transaction `$tx` (a macro, not
/// a function, so it takes either backend's transaction).
macro_rules! save_version {
    ($tx:expr, $name:expr, $version:expr, $body:expr, $by:expr, $at:expr) => {
        sqlx::query(
            "INSERT INTO template_versions (name, version, body, saved_by, saved_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind($name)
        .bind($version)
        .bind($body)
        .bind($by)
        .bind($at)
        .execute(&mut *$tx)
        .await?
    };
}

/// The current version of template `$name`, `None` when there is none, read in transaction
/// `$tx` (a macro for the same reason as `save_version!`).
macro_rules! current_version {
    ($tx:expr, $name:expr) => {{
        let version: Option<i64> =
            sqlx::query_scalar("SELECT version FROM templates WHERE name = $1")
                .bind($name)
                .fetch_optional(&mut *$tx)
                .await?;
        version
    }};
}

/// A template as stored.
#[derive(Debug, Clone)]
pub struct TemplateRow {
    pub version: u32,
    pub body: TemplateBody,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub updated_by: Option<String>,
    pub updated_at: i64,
}

/// Why a template could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("a template named {0:?} already exists; use template update")]
    Exists(String),
    #[error("no template named {0:?}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for TemplateError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(e))
    }
}

fn decode(name: &str, body: &str) -> Result<TemplateBody, TemplateError> {
    serde_json::from_str(body).map_err(|e| {
        // Only this relay writes these rows; a row it cannot read is a bug or a hand edit.
        tracing::error!(template = %name, %e, "a stored template does not decode");
        TemplateError::Store(StoreError::Database(sqlx::Error::Decode(Box::new(e))))
    })
}

fn encode(body: &TemplateBody) -> String {
    serde_json::to_string(body).expect("a template encodes")
}

/// All templates, by name.
pub async fn all(store: &Store) -> Result<Vec<TemplateRow>, TemplateError> {
    let sql = "SELECT name, version, body, created_by, created_at, updated_by, updated_at FROM templates ORDER BY name";
    store.select_all(sql, row).await?.into_iter().collect()
}

/// One template by name.
pub async fn get(store: &Store, name: &str) -> Result<Option<TemplateRow>, TemplateError> {
    with_pool!(store, |pool| {
        let found = sqlx::query(
        "SELECT name, version, body, created_by, created_at, updated_by, updated_at FROM templates WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(pool)
    .await?;
        found.as_ref().map(row).transpose()
    })
}

fn row(r: &(impl Fields + ?Sized)) -> Result<TemplateRow, TemplateError> {
    let name = r.text("name");
    Ok(TemplateRow {
        version: u32::try_from(r.int("version")).unwrap_or(0),
        body: decode(&name, &r.text("body"))?,
        created_by: r.opt_text("created_by"),
        created_at: r.int("created_at"),
        updated_by: r.opt_text("updated_by"),
        updated_at: r.int("updated_at"),
    })
}

/// Stores a new template at version 1 (or one past the last version of a removed template of
/// the same name, so a version number never means two specs).
pub async fn insert(store: &Store, body: &TemplateBody, by: &str) -> Result<u32, TemplateError> {
    with_pool!(store, |pool| {
        let mut tx = pool.begin().await?;
        if current_version!(tx, &body.name).is_some() {
            return Err(TemplateError::Exists(body.name.clone()));
        }
        let last: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM template_versions WHERE name = $1")
                .bind(&body.name)
                .fetch_one(&mut *tx)
                .await?;
        let version = last.unwrap_or(0) + 1;
        let (text, at) = (encode(body), now());
        sqlx::query(
        "INSERT INTO templates (name, version, body, created_by, created_at, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&body.name)
    .bind(version)
    .bind(&text)
    .bind(by)
    .bind(at)
    .bind(by)
    .bind(at)
    .execute(&mut *tx)
    .await?;
        save_version!(tx, &body.name, version, &text, by, at);
        tx.commit().await?;
        Ok(version as u32)
    })
}

/// Replaces a template's body with a new version.
pub async fn update(store: &Store, body: &TemplateBody, by: &str) -> Result<u32, TemplateError> {
    with_pool!(store, |pool| {
        let mut tx = pool.begin().await?;
        let Some(current) = current_version!(tx, &body.name) else {
            return Err(TemplateError::NotFound(body.name.clone()));
        };
        let version = current + 1;
        let (text, at) = (encode(body), now());
        sqlx::query(
        "UPDATE templates SET version = $1, body = $2, updated_by = $3, updated_at = $4 WHERE name = $5",
    )
    .bind(version)
    .bind(&text)
    .bind(by)
    .bind(at)
    .bind(&body.name)
    .execute(&mut *tx)
    .await?;
        save_version!(tx, &body.name, version, &text, by, at);
        tx.commit().await?;
        Ok(version as u32)
    })
}

/// Removes a template (its saved versions stay, for the containers made from them); returns
/// the version it had.
pub async fn delete(store: &Store, name: &str) -> Result<u32, TemplateError> {
    with_pool!(store, |pool| {
        let version: Option<i64> =
            sqlx::query_scalar("DELETE FROM templates WHERE name = $1 RETURNING version")
                .bind(name)
                .fetch_optional(pool)
                .await?;
        version
            .map(|v| v as u32)
            .ok_or_else(|| TemplateError::NotFound(name.to_string()))
    })
}

/// The body of `name` at `version`, also of a template since changed or removed.
pub async fn version(
    store: &Store,
    name: &str,
    version: u32,
) -> Result<Option<TemplateBody>, TemplateError> {
    with_pool!(store, |pool| {
        let body: Option<String> = sqlx::query_scalar(
            "SELECT body FROM template_versions WHERE name = $1 AND version = $2",
        )
        .bind(name)
        .bind(i64::from(version))
        .fetch_optional(pool)
        .await?;
        body.map(|b| decode(name, &b)).transpose()
    })
}
