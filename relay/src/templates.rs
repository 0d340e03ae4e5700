//! Container templates at the relay: stored versioned in SQLite (every saved version kept),
//! changed by admins only (the policy checks the role before these run), every change audited
//! with who and what; and the resolution of a deploy request (`container.create` from a client)
//! into the spec the agent gets, with the audit detail that records it (secrets masked).

use std::collections::BTreeMap;

use sqlx::Row;
use zedops_protocol::{
    ContainerCreate, DeployRequest, ErrorCode, ErrorReply, TemplateBody, TemplateListResponse,
    TemplateNameRequest, TemplateRecord, TemplateSaveRequest, TemplateSaved, TemplateStamp,
    TemplateSummary,
};

use crate::state::AppState;
use crate::store::{Session, Store, StoreError, now};
use crate::time::rfc3339;

/// Audit operations of template changes.
pub const AUDIT_ADD: &str = "template.add";
pub const AUDIT_UPDATE: &str = "template.update";
pub const AUDIT_REMOVE: &str = "template.remove";

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
    let rows = sqlx::query(
        "SELECT name, version, body, created_by, created_at, updated_by, updated_at FROM templates ORDER BY name",
    )
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(row).collect()
}

/// One template by name.
pub async fn get(store: &Store, name: &str) -> Result<Option<TemplateRow>, TemplateError> {
    let found = sqlx::query(
        "SELECT name, version, body, created_by, created_at, updated_by, updated_at FROM templates WHERE name = ?",
    )
    .bind(name)
    .fetch_optional(store.pool())
    .await?;
    found.as_ref().map(row).transpose()
}

fn row(r: &sqlx::sqlite::SqliteRow) -> Result<TemplateRow, TemplateError> {
    let name: String = r.get("name");
    let version: i64 = r.get("version");
    Ok(TemplateRow {
        version: u32::try_from(version).unwrap_or(0),
        body: decode(&name, r.get("body"))?,
        created_by: r.get("created_by"),
        created_at: r.get("created_at"),
        updated_by: r.get("updated_by"),
        updated_at: r.get("updated_at"),
    })
}

/// Stores a new template at version 1 (or one past the last version of a removed template of
/// the same name, so a version number never means two specs).
pub async fn insert(store: &Store, body: &TemplateBody, by: &str) -> Result<u32, TemplateError> {
    let mut tx = store.pool().begin().await?;
    let exists: Option<i64> = sqlx::query_scalar("SELECT version FROM templates WHERE name = ?")
        .bind(&body.name)
        .fetch_optional(&mut *tx)
        .await?;
    if exists.is_some() {
        return Err(TemplateError::Exists(body.name.clone()));
    }
    let last: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM template_versions WHERE name = ?")
            .bind(&body.name)
            .fetch_one(&mut *tx)
            .await?;
    let version = last.unwrap_or(0) + 1;
    let (text, at) = (encode(body), now());
    sqlx::query(
        "INSERT INTO templates (name, version, body, created_by, created_at, updated_by, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
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
    save_version(&mut tx, &body.name, version, &text, by, at).await?;
    tx.commit().await?;
    Ok(version as u32)
}

/// Replaces a template's body with a new version.
pub async fn update(store: &Store, body: &TemplateBody, by: &str) -> Result<u32, TemplateError> {
    let mut tx = store.pool().begin().await?;
    let current: Option<i64> = sqlx::query_scalar("SELECT version FROM templates WHERE name = ?")
        .bind(&body.name)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(current) = current else {
        return Err(TemplateError::NotFound(body.name.clone()));
    };
    let version = current + 1;
    let (text, at) = (encode(body), now());
    sqlx::query(
        "UPDATE templates SET version = ?, body = ?, updated_by = ?, updated_at = ? WHERE name = ?",
    )
    .bind(version)
    .bind(&text)
    .bind(by)
    .bind(at)
    .bind(&body.name)
    .execute(&mut *tx)
    .await?;
    save_version(&mut tx, &body.name, version, &text, by, at).await?;
    tx.commit().await?;
    Ok(version as u32)
}

async fn save_version(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    name: &str,
    version: i64,
    body: &str,
    by: &str,
    at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO template_versions (name, version, body, saved_by, saved_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(name)
    .bind(version)
    .bind(body)
    .bind(by)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Removes a template (its saved versions stay, for the containers made from them); returns
/// the version it had.
pub async fn delete(store: &Store, name: &str) -> Result<u32, TemplateError> {
    let version: Option<i64> =
        sqlx::query_scalar("DELETE FROM templates WHERE name = ? RETURNING version")
            .bind(name)
            .fetch_optional(store.pool())
            .await?;
    version
        .map(|v| v as u32)
        .ok_or_else(|| TemplateError::NotFound(name.to_string()))
}

/// The body of `name` at `version`, also of a template since changed or removed.
pub async fn version(
    store: &Store,
    name: &str,
    version: u32,
) -> Result<Option<TemplateBody>, TemplateError> {
    let body: Option<String> =
        sqlx::query_scalar("SELECT body FROM template_versions WHERE name = ? AND version = ?")
            .bind(name)
            .bind(i64::from(version))
            .fetch_optional(store.pool())
            .await?;
    body.map(|b| decode(name, &b)).transpose()
}

// ---- the subjects ------------------------------------------------------------------------------

fn reply(e: TemplateError) -> ErrorReply {
    match e {
        TemplateError::Exists(name) => ErrorReply::new(
            ErrorCode::TemplateExists,
            format!(
                "a template named {name} already exists; change it with `zedops template update {name} FILE`"
            ),
        ),
        TemplateError::NotFound(name) => ErrorReply::new(
            ErrorCode::NotFound,
            format!("no template named {name}; `zedops template list` shows them"),
        ),
        TemplateError::Store(e) => {
            tracing::error!(%e, "store failure in a template request");
            ErrorReply::new(
                ErrorCode::Internal,
                "the relay could not use its database; see the relay's log",
            )
        }
    }
}

async fn audit(
    state: &AppState,
    session: &Session,
    operation: &str,
    name: &str,
    detail: &str,
    error: Option<&ErrorReply>,
) -> Result<(), ErrorReply> {
    crate::admin::audit_change(state, session, operation, name, Some(detail), error).await
}

/// `template.list` (every role).
pub async fn list(state: &AppState) -> Result<TemplateListResponse, ErrorReply> {
    let rows = all(&state.store).await.map_err(reply)?;
    Ok(TemplateListResponse {
        templates: rows
            .into_iter()
            .map(|r| TemplateSummary {
                image: r
                    .body
                    .spec
                    .get("image")
                    .and_then(|i| i.as_str())
                    .unwrap_or_default()
                    .to_string(),
                name: r.body.name,
                version: r.version,
                description: r.body.description,
                updated_by: r.updated_by,
                updated_at: rfc3339(r.updated_at),
            })
            .collect(),
    })
}

/// `template.show` (every role).
pub async fn show(
    state: &AppState,
    request: TemplateNameRequest,
) -> Result<TemplateRecord, ErrorReply> {
    let row = get(&state.store, &request.name)
        .await
        .map_err(reply)?
        .ok_or_else(|| reply(TemplateError::NotFound(request.name.clone())))?;
    Ok(TemplateRecord {
        version: row.version,
        template: row.body,
        created_by: row.created_by,
        created_at: rfc3339(row.created_at),
        updated_by: row.updated_by,
        updated_at: rfc3339(row.updated_at),
    })
}

/// `template.add` (admin).
pub async fn add(
    state: &AppState,
    session: &Session,
    request: TemplateSaveRequest,
) -> Result<TemplateSaved, ErrorReply> {
    save(state, session, request.template, false).await
}

/// `template.update` (admin).
pub async fn change(
    state: &AppState,
    session: &Session,
    request: TemplateSaveRequest,
) -> Result<TemplateSaved, ErrorReply> {
    save(state, session, request.template, true).await
}

async fn save(
    state: &AppState,
    session: &Session,
    body: TemplateBody,
    existing: bool,
) -> Result<TemplateSaved, ErrorReply> {
    let operation = if existing { AUDIT_UPDATE } else { AUDIT_ADD };
    let name = body.name.clone();
    let result = match body.check() {
        Err(e) => Err(e),
        Ok(()) if existing => update(&state.store, &body, &session.user)
            .await
            .map_err(reply),
        Ok(()) => insert(&state.store, &body, &session.user)
            .await
            .map_err(reply),
    };
    match result {
        Ok(version) => {
            let image = body
                .spec
                .get("image")
                .and_then(|i| i.as_str())
                .unwrap_or("");
            let detail = format!("version {version}, image {}", image.escape_debug());
            audit(state, session, operation, &name, &detail, None).await?;
            tracing::info!(template = %name, version, by = %session.user, "{operation}");
            Ok(TemplateSaved { name, version })
        }
        Err(e) => {
            audit(state, session, operation, &name, &e.error, Some(&e)).await?;
            Err(e)
        }
    }
}

/// `template.remove` (admin).
pub async fn remove(
    state: &AppState,
    session: &Session,
    request: TemplateNameRequest,
) -> Result<TemplateSaved, ErrorReply> {
    match delete(&state.store, &request.name).await.map_err(reply) {
        Ok(version) => {
            let detail = format!("version {version}");
            audit(state, session, AUDIT_REMOVE, &request.name, &detail, None).await?;
            tracing::info!(template = %request.name, by = %session.user, "template removed");
            Ok(TemplateSaved {
                name: request.name,
                version,
            })
        }
        Err(e) => {
            audit(
                state,
                session,
                AUDIT_REMOVE,
                &request.name,
                &e.error,
                Some(&e),
            )
            .await?;
            Err(e)
        }
    }
}

/// A client's deploy resolved for the agent `agent_id` (already resolved from the request's
/// reference): the agent's `container.create` and the audit detail (template, version, image,
/// every variable with secrets masked).
pub async fn resolve_deploy(
    state: &AppState,
    session: &Session,
    agent_id: &str,
    request: &DeployRequest,
) -> Result<(ContainerCreate, String), ErrorReply> {
    let row = get(&state.store, &request.template)
        .await
        .map_err(reply)?
        .ok_or_else(|| reply(TemplateError::NotFound(request.template.clone())))?;
    let resolved = row.body.resolve(&request.variables)?;
    let detail = deploy_detail(
        &request.template,
        row.version,
        &resolved.spec.image,
        &resolved.shown,
    );
    let create = ContainerCreate {
        agent_id: agent_id.to_string(),
        name: request.name.clone(),
        spec: resolved.spec,
        start: request.start,
        template: Some(TemplateStamp {
            name: request.template.clone(),
            version: row.version,
        }),
        created_by: Some(session.user.clone()),
    };
    Ok((create, detail))
}

/// `template zomboid v3, image x:1, SERVER_NAME="a", ADMIN_PASSWORD="******"`.
pub fn deploy_detail(
    template: &str,
    version: u32,
    image: &str,
    shown: &BTreeMap<String, String>,
) -> String {
    let mut detail = format!(
        "template {template} v{version}, image {}",
        image.escape_debug()
    );
    for (name, value) in shown {
        detail.push_str(&format!(", {name}=\"{}\"", value.escape_debug()));
    }
    detail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(image: &str) -> TemplateBody {
        serde_json::from_value(serde_json::json!({
            "name": "web",
            "variables": {"PW": {"secret": true, "required": true}},
            "spec": {"image": image, "env": {"PW": "${PW}"}}
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn versions_count_up_and_survive_removal() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("relay.db");
        let store = Store::open(db.to_str().unwrap()).await.unwrap();
        assert_eq!(insert(&store, &body("nginx:1"), "ann").await.unwrap(), 1);
        assert!(matches!(
            insert(&store, &body("nginx:1"), "ann").await,
            Err(TemplateError::Exists(_))
        ));
        assert_eq!(update(&store, &body("nginx:2"), "bob").await.unwrap(), 2);
        let row = get(&store, "web").await.unwrap().unwrap();
        assert_eq!(row.version, 2);
        assert_eq!(row.created_by.as_deref(), Some("ann"));
        assert_eq!(row.updated_by.as_deref(), Some("bob"));
        assert_eq!(delete(&store, "web").await.unwrap(), 2);
        assert!(get(&store, "web").await.unwrap().is_none());
        assert_eq!(
            version(&store, "web", 1).await.unwrap().unwrap().spec["image"],
            "nginx:1"
        );
        // A new template of the same name never reuses a version number.
        assert_eq!(insert(&store, &body("nginx:3"), "ann").await.unwrap(), 3);
        assert!(matches!(
            update(
                &store,
                &TemplateBody {
                    name: "nope".into(),
                    ..body("x")
                },
                "a"
            )
            .await,
            Err(TemplateError::NotFound(_))
        ));
    }

    #[test]
    fn the_audit_detail_masks_secrets() {
        let resolved = body("nginx:1")
            .resolve(&BTreeMap::from([("PW".into(), "hunter2".into())]))
            .unwrap();
        let detail = deploy_detail("web", 4, &resolved.spec.image, &resolved.shown);
        assert_eq!(detail, "template web v4, image nginx:1, PW=\"******\"");
        assert_eq!(resolved.spec.env["PW"], "hunter2");
    }
}
