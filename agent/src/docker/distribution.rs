//! What the update check asks Docker: which image reference each container was created from,
//! the digest the registry gave the local image under that reference (its repo digest), and the
//! digest the registry serves for the reference now (Docker's distribution inspect endpoint,
//! `GET /distribution/{name}/json`, which asks the registry without pulling).

use std::collections::BTreeMap;
use std::time::Duration;

use bollard::models::ContainerSummary;
use bollard::query_parameters::InspectContainerOptions;
use zedops_protocol::{Container, ErrorCode, LABEL_UPDATE};

use super::{DockerClient, DockerError, chain};

/// One container as the update check sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerImage {
    /// Its name, without the leading `/`.
    pub name: String,
    /// The reference it was created from (`Config.Image`), e.g. `registry:5000/app:1`.
    pub reference: String,
    /// The id of the image it runs (`sha256:…`).
    pub image_id: String,
    /// Its `zedops.update` label, when set.
    pub label: Option<String>,
}

impl DockerClient {
    /// Every container with the reference it was created from. Docker's list shows an image id
    /// instead of the reference once the tag has moved to another image, so those are inspected.
    pub async fn container_images(&self) -> Result<Vec<ContainerImage>, DockerError> {
        let summaries = self.all_containers().await?;
        let mut out = Vec::with_capacity(summaries.len());
        for summary in summaries {
            let (Some(id), Some(image_id)) = (summary.id, summary.image_id) else {
                continue;
            };
            let name = summary
                .names
                .and_then(|n| n.into_iter().next())
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_else(|| id.chars().take(12).collect());
            let labels: BTreeMap<String, String> =
                summary.labels.unwrap_or_default().into_iter().collect();
            let mut reference = summary.image.unwrap_or_default();
            if shows_an_id(&reference, &image_id) {
                // Gone since the list: nothing to check.
                let Ok(configured) = self.configured_image(&id).await else {
                    continue;
                };
                reference = configured.unwrap_or_default();
            }
            out.push(ContainerImage {
                name,
                reference,
                image_id,
                label: labels.get(LABEL_UPDATE).cloned(),
            });
        }
        Ok(out)
    }

    /// The image reference a container was created with (its `Config.Image`): what Docker's
    /// list shows in its place once the tag has moved to another image is the image's id.
    pub(super) async fn configured_image(&self, id: &str) -> Result<Option<String>, DockerError> {
        let inspected = self
            .call(ErrorCode::DockerListFailed, Some(id), |d| {
                let id = id.to_string();
                async move {
                    d.inspect_container(&id, None::<InspectContainerOptions>)
                        .await
                }
            })
            .await?;
        Ok(inspected.config.and_then(|c| c.image))
    }

    /// One container from Docker's list as the protocol describes it, with the image it was
    /// created from where the list shows an image id instead (a tag since moved to a newer
    /// build); the id stays when the container is gone meanwhile.
    pub(super) async fn row(&self, mut summary: ContainerSummary) -> Container {
        if let (Some(id), Some(image_id)) = (&summary.id, &summary.image_id)
            && shows_an_id(summary.image.as_deref().unwrap_or_default(), image_id)
            && let Ok(Some(configured)) = self.configured_image(id).await
        {
            summary.image = Some(configured);
        }
        super::convert::container(summary)
    }

    /// The local image's repo digests (`repo@sha256:…`); empty for an image built or imported
    /// here and never pushed or pulled.
    pub async fn repo_digests(&self, image_id: &str) -> Result<Vec<String>, DockerError> {
        let image = self
            .call(ErrorCode::ImageNotFound, None, |d| {
                let id = image_id.to_string();
                async move { d.inspect_image(&id).await }
            })
            .await?;
        Ok(image.repo_digests.unwrap_or_default())
    }

    /// The digest the registry serves for `reference` now, asked through the engine (which
    /// uses its own registry settings: mirrors, insecure registries, certificates) within
    /// `timeout`.
    pub async fn registry_digest(
        &self,
        reference: &str,
        timeout: Duration,
    ) -> Result<String, DockerError> {
        let docker = self.engine().await?;
        let credentials = self.logins.for_image(reference);
        let asked = tokio::time::timeout(
            timeout,
            docker.inspect_registry_image(reference, credentials),
        );
        match asked.await {
            Err(_) => Err(DockerError::new(
                ErrorCode::RegistryUnreachable,
                format!("the registry did not answer within {} s", timeout.as_secs()),
            )),
            Ok(Err(err)) => {
                let (server, user) = self.logins.user_for(reference);
                let message = chain(&err);
                Err(DockerError::new(registry_code(&message), message)
                    .with_login(&server, user, false))
            }
            Ok(Ok(inspect)) => inspect.descriptor.digest.ok_or_else(|| {
                DockerError::new(
                    ErrorCode::DockerPullFailed,
                    "the registry answered without a digest",
                )
            }),
        }
    }
}

/// Whether Docker's list shows no reference for the image `image_id`: nothing, or its id.
fn shows_an_id(shown: &str, image_id: &str) -> bool {
    shown.is_empty() || looks_like_id(shown, image_id)
}

/// Whether Docker's list shows an image id (full or short) rather than a reference.
fn looks_like_id(shown: &str, image_id: &str) -> bool {
    let hex = shown.strip_prefix("sha256:").unwrap_or(shown);
    hex.len() >= 12
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
        && image_id.trim_start_matches("sha256:").starts_with(hex)
}

/// A registry failure's code from Docker's words.
fn registry_code(message: &str) -> ErrorCode {
    let lower = message.to_ascii_lowercase();
    if lower.contains("unauthorized")
        || lower.contains("authentication required")
        || lower.contains("denied")
    {
        ErrorCode::RegistryAuthFailed
    } else if lower.contains("not found") || lower.contains("manifest unknown") {
        ErrorCode::ImageNotFound
    } else {
        ErrorCode::RegistryUnreachable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_told_from_references() {
        let id = format!("sha256:{}", "ab12".repeat(16));
        assert!(looks_like_id(&id, &id));
        assert!(looks_like_id(&"ab12".repeat(3), &id));
        assert!(!looks_like_id("nginx:1.27", &id));
        assert!(!looks_like_id("abcdefabcdef", &id));
    }
}
