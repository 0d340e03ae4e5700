//! Deploying and removing over `zedops-client`, with no Tauri in sight (so tests drive it against
//! a real relay): templates (list, show, save and remove for admins), deploying one onto an
//! agent with its pull progress, removing containers, and an agent's images. The relay checks
//! roles and the agent its own policy; these only ask and shape the answers for the UI.

pub mod commands;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use specta::Type;
use zedops_client::Client;
use zedops_protocol::{
    DeployFrame, ImageSummary, PullProgress, TemplateBody, TemplateRecord, TemplateSaved,
    TemplateSummary,
};

use crate::error::{AppError, ErrorCode, sentence};

/// A variable the deployer fills in, as the form shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct VariableView {
    pub name: String,
    pub description: String,
    pub default: Option<String>,
    pub required: bool,
    /// Typed into a masked field; never has a default.
    pub secret: bool,
}

/// One template in full: its variables for the deploy form, and its text for the editor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct TemplateView {
    pub name: String,
    pub version: u32,
    pub description: String,
    pub image: String,
    /// In name order, as the relay keeps them.
    pub variables: Vec<VariableView>,
    /// The whole template as pretty-printed JSON, what the editor starts from.
    pub json: String,
    pub updated_by: Option<String>,
    pub updated_at: String,
}

impl From<TemplateRecord> for TemplateView {
    fn from(r: TemplateRecord) -> Self {
        let json = serde_json::to_string_pretty(&r.template).unwrap_or_default();
        let t = r.template;
        Self {
            image: t.spec["image"].as_str().unwrap_or_default().to_string(),
            variables: t
                .variables
                .into_iter()
                .map(|(name, v)| VariableView {
                    name,
                    description: v.description,
                    default: v.default,
                    required: v.required,
                    secret: v.secret,
                })
                .collect(),
            name: t.name,
            version: r.version,
            description: t.description,
            json,
            updated_by: r.updated_by,
            updated_at: r.updated_at,
        }
    }
}

/// A pull in progress. Bytes are plain numbers (exact up to 2^53).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct PullProgressView {
    pub image: String,
    /// Bytes done and to do over all layers Docker named so far (0 of 0 before it knows).
    pub current: f64,
    pub total: f64,
    pub layers_done: u32,
    pub layers_total: u32,
}

impl From<PullProgress> for PullProgressView {
    fn from(p: PullProgress) -> Self {
        Self {
            image: p.image,
            current: p.current as f64,
            total: p.total as f64,
            layers_done: p.layers_done,
            layers_total: p.layers_total,
        }
    }
}

/// How a deploy ended well: the new container, and whether its image had to be pulled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct DeployedView {
    pub container_id: String,
    pub name: String,
    pub started: bool,
    pub image: String,
    /// False when the image was already on the server.
    pub pulled: bool,
    /// Docker's warnings about the configuration.
    pub warnings: Vec<String>,
}

/// One image on an agent's engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ImageView {
    /// `sha256:…`
    pub id: String,
    /// `repository:tag` names; empty for a dangling image.
    pub tags: Vec<String>,
    /// Bytes on disk.
    pub size: f64,
    /// Unix seconds.
    pub created: f64,
    /// Names of the containers (running or not) made from it.
    pub used_by: Vec<String>,
}

impl From<ImageSummary> for ImageView {
    fn from(i: ImageSummary) -> Self {
        Self {
            id: i.id,
            tags: i.repo_tags,
            size: i.size.max(0) as f64,
            created: i.created.max(0) as f64,
            used_by: i.used_by,
        }
    }
}

/// What removing an image did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ImageRemovedView {
    pub untagged: Vec<String>,
    pub deleted: Vec<String>,
}

/// Every template (any role).
pub async fn templates(client: &Client) -> Result<Vec<TemplateSummary>, AppError> {
    Ok(client.templates().await?)
}

/// One template in full (any role).
pub async fn template(client: &Client, name: &str) -> Result<TemplateView, AppError> {
    Ok(client.template(name.trim()).await?.into())
}

/// Reads the editor's text as a template: JSON, checked the way the relay checks it, so a
/// mistake is named (with its line and column, or its field) before anything is sent.
pub fn parse_template(text: &str) -> Result<TemplateBody, AppError> {
    let body: TemplateBody = serde_json::from_str(text).map_err(|e| {
        AppError::new(
            ErrorCode::INVALID_INPUT,
            format!("The template is not valid: {e}. Fix it and save again."),
        )
    })?;
    body.check().map_err(|e| {
        AppError::new(
            ErrorCode::Wire(e.error_code),
            format!(
                "The template is not valid: {}.",
                e.error.trim_end_matches('.')
            ),
        )
    })?;
    Ok(body)
}

/// (Admin) Stores the editor's text as a new template, or as the next version of the template
/// it names when `update` is set.
pub async fn save_template(
    client: &Client,
    text: &str,
    update: bool,
) -> Result<TemplateSaved, AppError> {
    let body = parse_template(text)?;
    if update {
        client.update_template(body).await
    } else {
        client.add_template(body).await
    }
    .map_err(AppError::from)
    .map_err(admins_only("change templates"))
}

/// (Admin) Removes a template; containers made from it stay.
pub async fn remove_template(client: &Client, name: &str) -> Result<TemplateSaved, AppError> {
    client
        .remove_template(name.trim())
        .await
        .map_err(AppError::from)
        .map_err(admins_only("remove templates"))
}

/// Deploys `template` onto `agent` as `name` and passes the pull's progress to `progress`;
/// returns the new container once the agent created (and with `start` started) it. Empty
/// values are left out, so the template's defaults apply to the fields left blank.
pub async fn deploy(
    client: &Client,
    agent: &str,
    template: &str,
    name: &str,
    variables: BTreeMap<String, String>,
    start: bool,
    mut progress: impl FnMut(PullProgressView),
) -> Result<DeployedView, AppError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(AppError::new(
            ErrorCode::INVALID_INPUT,
            "Enter a name for the new container.",
        ));
    }
    let variables = variables
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let mut stream = client
        .deploy(agent, template, name, variables, start)
        .await
        .map_err(AppError::from)
        .map_err(operators_only("deploy containers"))?;
    let mut pulled = None;
    let mut created = None;
    while let Some(frame) = stream.next().await {
        let DeployFrame {
            progress: step,
            pulled: got,
            created: made,
            end,
        } = frame
            .map_err(AppError::from)
            .map_err(operators_only("deploy containers"))?;
        if let Some(p) = step {
            progress(PullProgressView::from(p));
        }
        pulled = got.or(pulled);
        created = made.or(created);
        if let Some(end) = end {
            if let Some(code) = end.error_code {
                return Err(AppError::new(code.into(), sentence(&end.reason)));
            }
            break;
        }
    }
    let Some(created) = created else {
        return Err(AppError::new(
            zedops_client::LocalCode::Disconnected.into(),
            "The deploy ended before the agent said it created the container: look at the agent's \
             containers, and try again if it is not there.",
        ));
    };
    Ok(DeployedView {
        container_id: created.id,
        name: created.name,
        started: created.started,
        image: pulled.as_ref().map(|p| p.image.clone()).unwrap_or_default(),
        pulled: pulled.is_some_and(|p| p.pulled),
        warnings: created.warnings,
    })
}

/// Removes a container; a running one only with `force`.
pub async fn remove_container(
    client: &Client,
    agent: &str,
    container: &str,
    force: bool,
    volumes: bool,
) -> Result<(), AppError> {
    client
        .remove_container(agent, container, force, volumes)
        .await
        .map_err(AppError::from)
        .map_err(operators_only("remove containers"))?;
    Ok(())
}

/// The agent's images, largest first.
pub async fn images(client: &Client, agent: &str) -> Result<Vec<ImageView>, AppError> {
    let mut list: Vec<ImageView> = client
        .images(agent)
        .await?
        .into_iter()
        .map(ImageView::from)
        .collect();
    list.sort_by(|a, b| b.size.total_cmp(&a.size).then_with(|| a.id.cmp(&b.id)));
    Ok(list)
}

/// Removes an image; one in use or with several tags only with `force`.
pub async fn remove_image(
    client: &Client,
    agent: &str,
    image: &str,
    force: bool,
) -> Result<ImageRemovedView, AppError> {
    let removed = client
        .remove_image(agent, image, force)
        .await
        .map_err(AppError::from)
        .map_err(operators_only("remove images"))?;
    Ok(ImageRemovedView {
        untagged: removed.untagged,
        deleted: removed.deleted,
    })
}

/// Pulls an image onto an agent (operator), reporting progress; resolves with the image's id
/// once Docker has it. A refusal (registry refusing, no such image, …) is the agent's sentence.
pub async fn pull_image(
    client: &Client,
    agent: &str,
    image: &str,
    mut progress: impl FnMut(PullProgressView),
) -> Result<String, AppError> {
    let image = image.trim();
    if image.is_empty() || image.chars().any(char::is_whitespace) {
        return Err(AppError::new(
            ErrorCode::INVALID_INPUT,
            "Enter an image reference without spaces, e.g. nginx:1.27.",
        ));
    }
    let mut stream = client
        .pull(agent, image)
        .await
        .map_err(AppError::from)
        .map_err(operators_only("pull images"))?;
    let mut id = None;
    while let Some(frame) = stream.next().await {
        let frame = frame
            .map_err(AppError::from)
            .map_err(operators_only("pull images"))?;
        if let Some(p) = frame.progress {
            progress(PullProgressView::from(p));
        }
        if let Some(pulled) = frame.pulled {
            id = Some(pulled.id);
        }
        if let Some(end) = frame.end {
            if let Some(code) = end.error_code {
                return Err(AppError::new(code.into(), sentence(&end.reason)));
            }
            break;
        }
    }
    id.ok_or_else(|| {
        AppError::new(
            zedops_client::LocalCode::Disconnected.into(),
            "The pull ended before the agent said it has the image: reload the images, and try again if it is not there.",
        )
    })
}

fn forbidden(who: &'static str, what: &'static str) -> impl Fn(AppError) -> AppError {
    move |err| {
        err.when_forbidden(|| format!("Only {who} may {what}: ask a ZedOps admin of this relay."))
    }
}

/// A refusal by role says who may do it.
fn admins_only(what: &'static str) -> impl Fn(AppError) -> AppError {
    forbidden("admins", what)
}

fn operators_only(what: &'static str) -> impl Fn(AppError) -> AppError {
    forbidden("operators and admins", what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_editor_text_is_checked_with_the_field_named() {
        let ok = r#"{"name":"web","variables":{"PORT":{"default":"8080"}},"spec":{"image":"nginx:1","env":{"P":"${PORT}"}}}"#;
        assert_eq!(parse_template(ok).unwrap().name, "web");
        let err = parse_template("{\"name\": \"web\",").unwrap_err();
        assert_eq!(err.code, ErrorCode::INVALID_INPUT);
        assert!(err.message.contains("line 1"), "{}", err.message);
        let err =
            parse_template(r#"{"name":"web","spec":{"image":"nginx","env":{"P":"${NOPE}"}}}"#)
                .unwrap_err();
        assert_eq!(err.code.as_str(), "TEMPLATE_INVALID");
        assert!(err.message.contains("NOPE"), "{}", err.message);
        let err = parse_template(r#"{"name":"web","spek":{}}"#).unwrap_err();
        assert!(err.message.contains("spek"), "{}", err.message);
    }

    #[test]
    fn a_record_becomes_a_form_with_its_variables() {
        let record: TemplateRecord = serde_json::from_value(serde_json::json!({
            "version": 3,
            "template": {
                "name": "zomboid",
                "description": "Project Zomboid",
                "variables": {
                    "ADMIN_PASSWORD": {"description": "admin password", "required": true, "secret": true},
                    "SERVER_NAME": {"description": "shown in the browser", "default": "servertest"}
                },
                "spec": {"image": "zomboid:${TAG}"}
            },
            "createdBy": "ann", "createdAt": "2026-01-01T00:00:00Z",
            "updatedBy": "ann", "updatedAt": "2026-01-02T00:00:00Z"
        }))
        .unwrap();
        let view = TemplateView::from(record);
        assert_eq!(view.version, 3);
        assert_eq!(view.image, "zomboid:${TAG}");
        assert_eq!(view.variables.len(), 2);
        assert!(view.variables[0].secret && view.variables[0].required);
        assert_eq!(view.variables[1].default.as_deref(), Some("servertest"));
        assert!(view.json.contains("\"ADMIN_PASSWORD\""));
    }
}
