//! Images: list them with the containers that use them, pull one with bounded per-layer
//! progress, remove one. Registry failures are told apart (missing image or tag, unreachable
//! registry, refused credentials) so each gets its own code and a sentence saying what to change.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::query_parameters::{
    CreateImageOptionsBuilder, ListImagesOptionsBuilder, RemoveImageOptionsBuilder,
};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use zedops_protocol::{
    ErrorCode, ImagePulled, ImageRemoved, ImageSummary, LayerProgress, MAX_PULL_LAYERS,
    PULL_PROGRESS_PER_SEC, PULL_TIMEOUT, PullProgress,
};

use super::{DockerClient, DockerError, chain};

/// Longest layer status kept from Docker (its words are short; anything longer is cut).
const MAX_STATUS_LEN: usize = 64;

/// `reference` with `:latest` when it names neither a tag nor a digest: without a tag Docker's
/// pull API fetches *every* tag of the repository.
pub fn with_tag(reference: &str) -> String {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    if reference.contains('@') || last.contains(':') {
        reference.to_string()
    } else {
        format!("{reference}:latest")
    }
}

impl DockerClient {
    /// Every image, newest first, with the names of the containers made from each.
    pub async fn images(&self) -> Result<Vec<ImageSummary>, DockerError> {
        let options = ListImagesOptionsBuilder::new().build();
        let images = self
            .call(ErrorCode::DockerListFailed, None, |d| async move {
                d.list_images(Some(options)).await
            })
            .await?;
        let containers = self.all_containers().await?;
        let mut used_by: HashMap<String, Vec<String>> = HashMap::new();
        for c in containers {
            let name = c
                .names
                .and_then(|n| n.into_iter().next())
                .map(|n| n.trim_start_matches('/').to_string())
                .or(c.id.map(|id| id.chars().take(12).collect()))
                .unwrap_or_default();
            if let Some(image_id) = c.image_id {
                used_by.entry(image_id).or_default().push(name);
            }
        }
        let mut out: Vec<ImageSummary> = images
            .into_iter()
            .map(|i| {
                let mut users = used_by.remove(&i.id).unwrap_or_default();
                users.sort();
                ImageSummary {
                    repo_tags: i
                        .repo_tags
                        .into_iter()
                        .filter(|t| t != "<none>:<none>")
                        .collect(),
                    id: i.id,
                    size: i.size,
                    created: i.created,
                    used_by: users,
                }
            })
            .collect();
        out.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// The id of a local image, or `None` when the engine does not have it.
    pub async fn image_id(&self, reference: &str) -> Result<Option<String>, DockerError> {
        let name = reference.to_string();
        match self
            .call(ErrorCode::DockerListFailed, None, |d| async move {
                d.inspect_image(&name).await
            })
            .await
        {
            Ok(image) => Ok(image.id),
            Err(err) if err.to_string().contains("No such image") => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Pulls `reference` (tagged `latest` when it names no tag), sending progress snapshots to
    /// `progress` at most [`PULL_PROGRESS_PER_SEC`] a second (dropped, not queued, when the
    /// receiver is behind). At most [`zedops_protocol::MAX_PULLS_PER_AGENT`] pulls run at once;
    /// more are refused with `RATE_LIMITED`.
    pub async fn pull(
        &self,
        reference: &str,
        progress: &mpsc::Sender<PullProgress>,
    ) -> Result<ImagePulled, DockerError> {
        let Ok(_slot) = self.pulls.try_acquire() else {
            return Err(DockerError::new(
                ErrorCode::RateLimited,
                format!(
                    "this agent is already pulling {} images; wait for one to finish",
                    zedops_protocol::MAX_PULLS_PER_AGENT
                ),
            ));
        };
        let image = with_tag(reference);
        let docker = self.engine().await?;
        let options = CreateImageOptionsBuilder::new().from_image(&image).build();
        let mut stream = docker.create_image(Some(options), None, self.logins.for_image(&image));
        let mut tracker = Tracker::new(&image);
        let interval = Duration::from_millis(1000 / u64::from(PULL_PROGRESS_PER_SEC.max(1)));
        let mut last_sent = Instant::now() - interval;
        let deadline = tokio::time::Instant::now() + PULL_TIMEOUT;
        loop {
            let item = match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(_) => {
                    return Err(DockerError::new(
                        ErrorCode::DockerPullFailed,
                        format!(
                            "pulling {image} took more than {} minutes; gave up",
                            PULL_TIMEOUT.as_secs() / 60
                        ),
                    ));
                }
            };
            match item {
                Ok(info) => {
                    tracker.update(info);
                    if last_sent.elapsed() >= interval {
                        last_sent = Instant::now();
                        let _ = progress.try_send(tracker.snapshot());
                    }
                }
                Err(err) => {
                    let (server, user) = self.logins.user_for(&image);
                    return Err(pull_error(&image, &chain(&err)).with_login(&server, user, true));
                }
            }
        }
        let _ = progress.try_send(tracker.snapshot());
        let id = self.image_id(&image).await?.ok_or_else(|| {
            DockerError::new(
                ErrorCode::DockerPullFailed,
                format!("Docker ended the pull of {image} but does not have the image"),
            )
        })?;
        tracing::info!(image = %image, "pulled an image");
        Ok(ImagePulled {
            image,
            id,
            pulled: true,
        })
    }

    /// The image `reference` names, pulled when the engine does not have it yet.
    pub async fn ensure_image(
        &self,
        reference: &str,
        progress: &mpsc::Sender<PullProgress>,
    ) -> Result<ImagePulled, DockerError> {
        if let Some(id) = self.image_id(reference).await? {
            return Ok(ImagePulled {
                image: reference.to_string(),
                id,
                pulled: false,
            });
        }
        self.pull(reference, progress).await
    }

    /// Removes an image (untags it; deletes it when no other tag or container holds it).
    pub async fn remove_image(
        &self,
        reference: &str,
        force: bool,
    ) -> Result<ImageRemoved, DockerError> {
        let options = RemoveImageOptionsBuilder::new().force(force).build();
        let name = reference.to_string();
        let result = self
            .call(ErrorCode::DockerRemoveFailed, None, |d| async move {
                d.remove_image(&name, Some(options), None).await
            })
            .await;
        let items = match result {
            Ok(items) => items,
            Err(err) => {
                let message = err.to_string();
                if message.contains("referenced in multiple repositories") {
                    // Docker will not delete an image by id while it still has several names;
                    // the generic failure would not say which way out there is.
                    return Err(DockerError::new(
                        ErrorCode::DockerRemoveFailed,
                        format!(
                            "image {reference} has several names (tags); remove the names one by one, or remove it with --force"
                        ),
                    ));
                }
                let code = if message.contains("No such image") {
                    ErrorCode::ImageNotFound
                } else if message.contains("is using its referenced image")
                    || message.contains("is being used by")
                    || message.contains("image is being used")
                {
                    ErrorCode::ImageInUse
                } else {
                    return Err(err);
                };
                let sentence = match code {
                    ErrorCode::ImageNotFound => {
                        format!("there is no image {reference} on this server")
                    }
                    _ => format!(
                        "image {reference} is used by a container; remove the container first, or remove the image with --force"
                    ),
                };
                return Err(DockerError::new(code, sentence));
            }
        };
        tracing::info!(image = %reference, force, "removed an image");
        Ok(ImageRemoved {
            image: reference.to_string(),
            untagged: items.iter().filter_map(|i| i.untagged.clone()).collect(),
            deleted: items.iter().filter_map(|i| i.deleted.clone()).collect(),
        })
    }
}

/// A failed pull, with its own code for a missing image or tag, an unreachable registry and
/// refused credentials.
fn pull_error(image: &str, message: &str) -> DockerError {
    let lower = message.to_ascii_lowercase();
    let says_any = |words: &[&str]| words.iter().any(|w| lower.contains(w));
    let (code, sentence) = if says_any(&[
        "unauthorized",
        "authentication required",
        "no basic auth credentials",
        "incorrect username or password",
    ]) {
        (
            ErrorCode::RegistryAuthFailed,
            format!("the registry refused to serve {image} without valid credentials"),
        )
    } else if says_any(&[
        "manifest unknown",
        "not found",
        "pull access denied",
        "repository does not exist",
    ]) {
        (
            ErrorCode::ImageNotFound,
            format!("the registry has no image {image}; check the name and tag"),
        )
    } else if says_any(&[
        "connection refused",
        "no such host",
        "i/o timeout",
        "dial tcp",
        "tls",
        "server misbehaving",
        "network is unreachable",
        "timeout exceeded",
    ]) {
        (
            ErrorCode::RegistryUnreachable,
            format!("cannot reach the registry of {image}; check its address and that it is up"),
        )
    } else {
        (
            ErrorCode::DockerPullFailed,
            format!("pulling {image} failed"),
        )
    };
    // Docker's own words go after the sentence, cut and with control characters escaped.
    let detail: String = message
        .chars()
        .take(300)
        .flat_map(char::escape_debug)
        .collect();
    DockerError::new(code, format!("{sentence} ({detail})"))
}

/// The state of every layer of one pull, from Docker's stream of status lines.
struct Tracker {
    image: String,
    order: Vec<String>,
    layers: HashMap<String, LayerProgress>,
}

impl Tracker {
    fn new(image: &str) -> Self {
        Self {
            image: image.to_string(),
            order: Vec::new(),
            layers: HashMap::new(),
        }
    }

    fn update(&mut self, info: bollard::models::CreateImageInfo) {
        // Lines without an id are about the whole image ("Pulling from …", "Digest: …").
        let Some(id) = info.id.filter(|id| !id.is_empty() && id.len() <= 128) else {
            return;
        };
        let status: String = info
            .status
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_STATUS_LEN)
            .collect();
        // "Pulling fs layer", "Waiting", … name layers; the line naming the tag does not.
        if status.starts_with("Pulling from") {
            return;
        }
        let detail = info.progress_detail.unwrap_or_default();
        let layer = self.layers.entry(id.clone()).or_insert_with(|| {
            self.order.push(id.clone());
            LayerProgress {
                id,
                status: String::new(),
                current: 0,
                total: None,
            }
        });
        let done = status == "Pull complete" || status == "Already exists";
        // Once a layer is downloaded, Docker counts its bytes again from 0 while it unpacks
        // them ("Extracting"): the download is over, so the layer stays whole, or the bar would
        // fall back from near the end to near the start.
        let downloaded = done
            || matches!(
                status.as_str(),
                "Verifying Checksum" | "Download complete" | "Extracting"
            );
        layer.status = status;
        if let Some(total) = detail.total.filter(|t| *t > 0)
            && (!downloaded || layer.total.is_none())
        {
            layer.total = Some(total as u64);
        }
        if !downloaded && let Some(current) = detail.current.filter(|c| *c >= 0) {
            layer.current = current as u64;
        }
        if downloaded && let Some(total) = layer.total {
            layer.current = total;
        }
    }

    fn snapshot(&self) -> PullProgress {
        let (mut current, mut total, mut done) = (0u64, 0u64, 0u32);
        for layer in self.layers.values() {
            current = current.saturating_add(layer.current);
            total = total.saturating_add(layer.total.unwrap_or(0));
            if layer.status == "Pull complete" || layer.status == "Already exists" {
                done += 1;
            }
        }
        PullProgress {
            image: self.image.clone(),
            layers: self
                .order
                .iter()
                .take(MAX_PULL_LAYERS)
                .filter_map(|id| self.layers.get(id).cloned())
                .collect(),
            current,
            total,
            layers_done: done,
            layers_total: self.order.len() as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{CreateImageInfo, ProgressDetail};

    #[test]
    fn untagged_references_pull_latest_only() {
        assert_eq!(with_tag("busybox"), "busybox:latest");
        assert_eq!(
            with_tag("127.0.0.1:5000/zedops/busybox"),
            "127.0.0.1:5000/zedops/busybox:latest"
        );
        assert_eq!(with_tag("127.0.0.1:5000/x:1"), "127.0.0.1:5000/x:1");
        let digest = format!("x@sha256:{}", "a".repeat(64));
        assert_eq!(with_tag(&digest), digest);
    }

    #[test]
    fn registry_failures_get_their_own_codes() {
        let code = |m: &str| pull_error("x:1", m).code();
        assert_eq!(
            code("manifest for 127.0.0.1:5000/x:2 not found: manifest unknown"),
            ErrorCode::ImageNotFound
        );
        assert_eq!(
            code(
                "Get \"http://127.0.0.1:9/v2/\": dial tcp 127.0.0.1:9: connect: connection refused"
            ),
            ErrorCode::RegistryUnreachable
        );
        assert_eq!(
            code("unauthorized: authentication required"),
            ErrorCode::RegistryAuthFailed
        );
        assert_eq!(code("something else"), ErrorCode::DockerPullFailed);
        let escaped = pull_error("x:1", "evil\x1b[2Jtext").to_string();
        assert!(!escaped.contains('\x1b'), "{escaped}");
    }

    #[test]
    fn progress_is_bounded_and_summed() {
        let mut t = Tracker::new("x:1");
        for i in 0..(MAX_PULL_LAYERS + 10) {
            t.update(CreateImageInfo {
                id: Some(format!("layer{i}")),
                status: Some("Downloading".into()),
                progress_detail: Some(ProgressDetail {
                    current: Some(5),
                    total: Some(10),
                }),
                ..CreateImageInfo::default()
            });
        }
        t.update(CreateImageInfo {
            id: Some("layer0".into()),
            status: Some("Pull complete".into()),
            ..CreateImageInfo::default()
        });
        let snap = t.snapshot();
        assert_eq!(snap.layers.len(), MAX_PULL_LAYERS);
        assert_eq!(snap.layers_total as usize, MAX_PULL_LAYERS + 10);
        assert_eq!(snap.layers_done, 1);
        assert_eq!(snap.total, 10 * (MAX_PULL_LAYERS as u64 + 10));
        assert_eq!(
            snap.current,
            snap.total - 5 * (MAX_PULL_LAYERS as u64 + 10) + 5
        );
        assert_eq!(snap.layers[0].status, "Pull complete");
    }

    #[test]
    fn unpacking_a_downloaded_layer_never_moves_the_progress_back() {
        let line = |status: &str, current: Option<i64>, total: Option<i64>| CreateImageInfo {
            id: Some("noise".into()),
            status: Some(status.into()),
            progress_detail: Some(ProgressDetail { current, total }),
            ..CreateImageInfo::default()
        };
        let mut t = Tracker::new("x:1");
        t.update(line("Pulling fs layer", None, None));
        let mut seen = vec![];
        for (status, current, total) in [
            ("Downloading", Some(10), Some(1000)),
            ("Downloading", Some(940), Some(1000)),
            ("Verifying Checksum", None, None),
            ("Download complete", None, None),
            // Docker counts the layer again as it unpacks it.
            ("Extracting", Some(20), Some(1000)),
            ("Extracting", Some(600), Some(1000)),
            ("Pull complete", None, None),
        ] {
            t.update(line(status, current, total));
            let snap = t.snapshot();
            assert_eq!(snap.total, 1000, "{status}");
            seen.push(snap.current);
        }
        assert_eq!(seen, [10, 940, 1000, 1000, 1000, 1000, 1000]);
        assert_eq!(t.snapshot().layers_done, 1);
    }
}
