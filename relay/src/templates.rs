//! Container templates at the relay: stored versioned in SQLite (every saved version kept),
//! changed by admins only (the policy checks the role before these run), every change audited
//! with who and what; and the resolution of a deploy request (`container.create` from a client)
//! into the spec the agent gets, with the audit detail that records it (secrets masked).

use std::collections::BTreeMap;

use zedops_protocol::{
    ContainerCreate, DeployRequest, ErrorCode, ErrorReply, TemplateBody, TemplateListResponse,
    TemplateNameRequest, TemplateRecord, TemplateSaveRequest, TemplateSaved, TemplateStamp,
    TemplateSummary,
};

use crate::state::AppState;
use crate::store::Session;
use crate::time::rfc3339;

/// Audit operations of template changes.
pub const AUDIT_ADD: &str = "template.add";
pub const AUDIT_UPDATE: &str = "template.update";
pub const AUDIT_REMOVE: &str = "template.remove";

pub use crate::store::templates::{
    TemplateError, TemplateRow, all, delete, get, insert, update, version,
};

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
        agent_id: agent_id.into(),
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
