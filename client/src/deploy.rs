//! Deploying and removing, typed: templates (list, show; add, update, remove for admins),
//! deploying one onto an agent with pull progress, pulling, listing and removing images, and
//! removing containers. The relay checks roles; these only ask.

use std::collections::BTreeMap;
use std::path::Path;

use zedops_protocol::{
    ClientRequest, ContainerRemoveRequest, ContainerRemoved, DeployFrame, DeployRequest,
    ImageListRequest, ImageListResponse, ImagePullRequest, ImageRemoveRequest, ImageRemoved,
    ImageSummary, TemplateBody, TemplateListRequest, TemplateListResponse, TemplateNameRequest,
    TemplateRecord, TemplateSaveRequest, TemplateSaved, TemplateSummary,
};

use crate::client::Client;
use crate::error::ClientError;
use crate::streams::StreamReader;

/// The frames of a deploy or pull: progress, then what was pulled and created, the last
/// with `end`.
pub type Deploy = StreamReader<DeployFrame>;

/// Largest template file read.
const MAX_TEMPLATE_FILE: u64 = 256 * 1024;

/// Reads a template file: JSON when its name ends in `.json`, TOML otherwise. Errors name the
/// file and, for a schema mistake, the field.
pub fn load_template(path: &Path) -> Result<TemplateBody, String> {
    let shown = path.display();
    let size = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {shown}: {e}"))?
        .len();
    if size > MAX_TEMPLATE_FILE {
        return Err(format!("{shown} is larger than 256 KiB; is it a template?"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let value: serde_json::Value = if is_json {
        serde_json::from_str(&text).map_err(|e| format!("{shown} is not valid JSON: {e}"))?
    } else {
        toml::from_str(&text)
            .map_err(|e| format!("{shown} is not valid TOML: {}", toml_error(&text, &e)))?
    };
    let body: TemplateBody =
        serde_json::from_value(value).map_err(|e| format!("{shown} is not a template: {e}"))?;
    body.check().map_err(|e| format!("{shown}: {}", e.error))?;
    Ok(body)
}

/// A TOML mistake on one line, where and what (`line 3, column 8: invalid string`): the
/// excerpt with a caret that toml draws takes several lines, which an error line
/// (`error: CODE: …`) cannot carry.
fn toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim().replace('\n', "; ");
    let Some(before) = error.span().and_then(|span| text.get(..span.start)) else {
        return message;
    };
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    format!("line {line}, column {column}: {message}")
}

impl Client {
    /// Every template, by name (any role).
    pub async fn templates(&self) -> Result<Vec<TemplateSummary>, ClientError> {
        let list: TemplateListResponse = self
            .quick_request(ClientRequest::TemplateList(TemplateListRequest {}))
            .await?;
        Ok(list.templates)
    }

    /// One template in full (any role).
    pub async fn template(&self, name: &str) -> Result<TemplateRecord, ClientError> {
        let request = TemplateNameRequest {
            name: name.to_string(),
        };
        self.quick_request(ClientRequest::TemplateShow(request))
            .await
    }

    /// Stores a new template (admin); `TEMPLATE_EXISTS` when the name is taken.
    pub async fn add_template(&self, template: TemplateBody) -> Result<TemplateSaved, ClientError> {
        let request = TemplateSaveRequest { template };
        self.quick_request(ClientRequest::TemplateAdd(Box::new(request)))
            .await
    }

    /// Stores a new version of the template `template.name` (admin).
    pub async fn update_template(
        &self,
        template: TemplateBody,
    ) -> Result<TemplateSaved, ClientError> {
        let request = TemplateSaveRequest { template };
        self.quick_request(ClientRequest::TemplateUpdate(Box::new(request)))
            .await
    }

    /// Removes a template (admin); containers made from it stay.
    pub async fn remove_template(&self, name: &str) -> Result<TemplateSaved, ClientError> {
        let request = TemplateNameRequest {
            name: name.to_string(),
        };
        self.quick_request(ClientRequest::TemplateRemove(request))
            .await
    }

    /// Deploys `template` onto `agent` as a container `name` (operator): the relay resolves the
    /// variables, the agent pulls the image if it is missing and creates (and with `start`
    /// starts) the container. Refusals arrive as the first item of the stream.
    pub async fn deploy(
        &self,
        agent: &str,
        template: &str,
        name: &str,
        variables: BTreeMap<String, String>,
        start: bool,
    ) -> Result<Deploy, ClientError> {
        let request = DeployRequest {
            agent_id: agent.into(),
            template: template.to_string(),
            name: name.to_string(),
            variables,
            start,
        };
        self.open_stream(ClientRequest::ContainerDeploy(request))
            .await
    }

    /// Pulls `image` on `agent` (operator), with progress.
    pub async fn pull(&self, agent: &str, image: &str) -> Result<Deploy, ClientError> {
        let request = ImagePullRequest {
            agent_id: agent.into(),
            image: image.to_string(),
        };
        self.open_stream(ClientRequest::ImagePull(request)).await
    }

    /// Removes a container (operator); a running one only with `force`.
    pub async fn remove_container(
        &self,
        agent: &str,
        container: &str,
        force: bool,
        volumes: bool,
    ) -> Result<ContainerRemoved, ClientError> {
        let request = ContainerRemoveRequest {
            agent_id: agent.into(),
            container_id: container.into(),
            force,
            volumes,
        };
        self.operation_request(ClientRequest::ContainerRemove(request))
            .await
    }

    /// The agent's images with the containers that use them (any role).
    pub async fn images(&self, agent: &str) -> Result<Vec<ImageSummary>, ClientError> {
        let request = ImageListRequest {
            agent_id: agent.into(),
        };
        let list: ImageListResponse = self
            .quick_request(ClientRequest::ImageList(request))
            .await?;
        Ok(list.images)
    }

    /// Removes an image from the agent (operator).
    pub async fn remove_image(
        &self,
        agent: &str,
        image: &str,
        force: bool,
    ) -> Result<ImageRemoved, ClientError> {
        let request = ImageRemoveRequest {
            agent_id: agent.into(),
            image: image.to_string(),
            force,
        };
        self.operation_request(ClientRequest::ImageRemove(request))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_toml_mistake_is_one_line_saying_where() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.toml");
        std::fs::write(&path, "name = \"web\"\n[spec]\nimage = \"nginx\n").unwrap();
        let error = load_template(&path).unwrap_err();
        assert!(!error.contains('\n'), "{error}");
        assert!(
            error.contains("is not valid TOML: line 3, column "),
            "{error}"
        );
    }
}
