//! Update available: for each image reference this server's containers use, asks the registry
//! (through Docker's distribution endpoint) whether it now serves another digest than the one
//! the local image came with. Runs every `--update-check-interval` (6 h by default, the first
//! run at a random point of the first interval so a fleet does not hit a registry at once) and
//! on the relay's `updates.check`. One run at a time (a second asker joins the running one), a
//! few registry calls at a time, each with a timeout. The result is kept in the data directory
//! and pushed to the relay (`updates.state`) after each run and each reconnect.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{Mutex, mpsc, watch};
use zedops_protocol::payload::Validate;
use zedops_protocol::{
    AgentPush, ImageUpdate, MAX_SKIP_REASON_LEN, MAX_SKIPPED_ENTRIES, MAX_UPDATE_ENTRIES,
    MAX_UPDATE_LABEL_LEN, SkippedImage, UpdateState, is_digest, is_valid_image_ref,
};

use crate::docker::distribution::ContainerImage;
use crate::docker::{DockerClient, DockerError};

/// How often images are checked unless `--update-check-interval` says otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(6 * 3600);
/// Registry calls one run makes at once.
pub const REGISTRY_CALLS: usize = 4;
/// How long one registry call may take.
pub const REGISTRY_TIMEOUT: Duration = Duration::from_secs(30);
/// The file in the data directory that keeps the last result across restarts.
pub const STATE_FILE: &str = "updates.json";

/// The agent's update checks and their latest result; one per agent process, shared by its
/// connections.
pub struct UpdateChecker {
    docker: Arc<DockerClient>,
    data_dir: PathBuf,
    /// Held for the length of one run.
    running: Mutex<()>,
    /// Runs finished, so one who waited for a run in progress can take its result.
    runs: AtomicU64,
    state: watch::Sender<UpdateState>,
}

impl UpdateChecker {
    /// A checker starting from the result kept in `data_dir` (if readable and valid).
    pub fn new(docker: Arc<DockerClient>, data_dir: &Path) -> Arc<Self> {
        let state = load(data_dir).unwrap_or_default();
        Arc::new(Self {
            docker,
            data_dir: data_dir.to_path_buf(),
            running: Mutex::new(()),
            runs: AtomicU64::new(0),
            state: watch::Sender::new(state),
        })
    }

    /// The latest result, and every new one.
    pub fn subscribe(&self) -> watch::Receiver<UpdateState> {
        self.state.subscribe()
    }

    /// The latest result.
    pub fn state(&self) -> UpdateState {
        self.state.borrow().clone()
    }

    /// Checks every image now, or waits for the run in progress and takes its result.
    pub async fn check(&self) -> Result<UpdateState, DockerError> {
        let seen = self.runs.load(Ordering::Acquire);
        let _one_run = self.running.lock().await;
        if self.runs.load(Ordering::Acquire) != seen {
            return Ok(self.state());
        }
        let previous = self.state();
        let result = self.run(&previous).await;
        self.runs.fetch_add(1, Ordering::Release);
        let state = result?;
        if let Err(err) = save(&self.data_dir, &state) {
            tracing::warn!(%err, "cannot keep the update check's result in the data directory");
        }
        self.state.send_replace(state.clone());
        Ok(state)
    }

    /// Container `name` was just updated to the newest build of its image: it no longer has an
    /// update, so the state pushed to the relay (and `zedops updates`) stops listing it now
    /// rather than at the next periodic check. Waits for a check in progress, whose result
    /// could list it again.
    pub async fn container_updated(&self, name: &str) {
        let _one_run = self.running.lock().await;
        let mut state = self.state();
        let before = state.updates.len();
        state.updates.retain(|update| update.container != name);
        if state.updates.len() == before {
            return;
        }
        if let Err(err) = save(&self.data_dir, &state) {
            tracing::warn!(%err, "cannot keep the update check's result in the data directory");
        }
        self.state.send_replace(state);
    }

    /// Checks every `interval`, the first time at a random point of the first interval.
    pub async fn every(self: Arc<Self>, interval: Duration) {
        tokio::time::sleep(jitter(interval)).await;
        loop {
            match self.check().await {
                Ok(state) => tracing::info!(
                    updates = state.updates.len(),
                    skipped = state.skipped.len(),
                    "checked images for updates"
                ),
                Err(err) => tracing::warn!(%err, "could not check images for updates"),
            }
            tokio::time::sleep(interval).await;
        }
    }

    async fn run(&self, previous: &UpdateState) -> Result<UpdateState, DockerError> {
        let containers = self.docker.container_images().await?;
        let mut by_reference: BTreeMap<String, Vec<ContainerImage>> = BTreeMap::new();
        for container in containers {
            by_reference
                .entry(container.reference.clone())
                .or_default()
                .push(container);
        }
        let found_before: HashMap<(&str, &str), i64> = previous
            .updates
            .iter()
            .map(|u| ((u.container.as_str(), u.new_digest.as_str()), u.found_at))
            .collect();
        let now = crate::unix_time::now() as i64;
        let checked: Vec<Checked> = futures_util::stream::iter(by_reference)
            .map(|(reference, containers)| self.check_reference(reference, containers))
            .buffer_unordered(REGISTRY_CALLS)
            .collect()
            .await;
        let mut state = UpdateState {
            checked_at: Some(now),
            ..UpdateState::default()
        };
        for outcome in checked {
            match outcome {
                Checked::Skipped(skipped) => state.skipped.push(skipped),
                Checked::Updates(updates) => {
                    state.updates.extend(updates.into_iter().map(|mut update| {
                        // The first time this new digest was seen, not this run's.
                        let key = (update.container.as_str(), update.new_digest.as_str());
                        update.found_at = found_before.get(&key).copied().unwrap_or(now);
                        update
                    }))
                }
            }
        }
        state.updates.sort_by(|a, b| a.container.cmp(&b.container));
        state.skipped.sort_by(|a, b| a.image.cmp(&b.image));
        if state.updates.len() > MAX_UPDATE_ENTRIES || state.skipped.len() > MAX_SKIPPED_ENTRIES {
            tracing::warn!(
                updates = state.updates.len(),
                skipped = state.skipped.len(),
                "more results than the relay takes; keeping the first {MAX_UPDATE_ENTRIES} updates and {MAX_SKIPPED_ENTRIES} skipped images"
            );
            state.updates.truncate(MAX_UPDATE_ENTRIES);
            state.skipped.truncate(MAX_SKIPPED_ENTRIES);
        }
        // Whatever Docker said, never push what the relay would refuse.
        state.updates.retain(|u| u.validate().is_ok());
        state.skipped.retain(|s| s.validate().is_ok());
        Ok(state)
    }

    /// One reference: its containers' repo digests against what the registry serves now.
    async fn check_reference(&self, reference: String, containers: Vec<ContainerImage>) -> Checked {
        let skip = |reason: &str| {
            Checked::Skipped(SkippedImage {
                image: printable(&reference, zedops_protocol::MAX_IMAGE_REF_LEN),
                reason: printable(reason, MAX_SKIP_REASON_LEN),
            })
        };
        if reference.contains('@') {
            return skip("pinned to a digest");
        }
        if !is_valid_image_ref(&reference) {
            return skip("not a registry reference (an image id or a local name)");
        }
        let repository = repository(&reference);
        let mut current: HashMap<String, String> = HashMap::new();
        for container in &containers {
            if current.contains_key(&container.image_id) {
                continue;
            }
            let digests = match self.docker.repo_digests(&container.image_id).await {
                Ok(digests) => digests,
                // Removed since the list: the container goes with it, or is checked next run.
                Err(_) => continue,
            };
            if let Some(digest) = digests.iter().find_map(|d| {
                let (repo, digest) = d.split_once('@')?;
                (normal(repo) == normal(repository) && is_digest(digest))
                    .then(|| digest.to_string())
            }) {
                current.insert(container.image_id.clone(), digest);
            }
        }
        if current.is_empty() {
            return skip("no registry digest: built or imported on this server, never pulled");
        }
        let new_digest = match self
            .docker
            .registry_digest(&reference, REGISTRY_TIMEOUT)
            .await
        {
            Ok(digest) if is_digest(&digest) => digest,
            Ok(_) => return skip("the registry answered with an unreadable digest"),
            Err(err) => {
                tracing::debug!(image = ?reference, %err, "could not ask the registry");
                return skip(&format!("registry: {} ({})", err, err.code()));
            }
        };
        let updates = containers
            .into_iter()
            .filter_map(|container| {
                let digest = current.get(&container.image_id)?;
                (*digest != new_digest).then(|| ImageUpdate {
                    container: container.name,
                    image: reference.clone(),
                    current_digest: digest.clone(),
                    new_digest: new_digest.clone(),
                    found_at: 0,
                    label: container.label.map(|l| printable(&l, MAX_UPDATE_LABEL_LEN)),
                })
            })
            .collect();
        Checked::Updates(updates)
    }
}

/// Pushes the latest result on one connection (`updates.state`): at once when the agent has
/// checked before (so a reconnect restores the relay's view), then after every run. Waits for
/// room in the outgoing queue: a state is never dropped, and only the newest one is sent.
pub async fn push(mut state: watch::Receiver<UpdateState>, tx: mpsc::Sender<String>) {
    loop {
        let frame = {
            let current = state.borrow_and_update();
            current
                .checked_at
                .is_some()
                .then(|| AgentPush::UpdatesState(current.clone()).to_frame(None))
        };
        if let Some(frame) = frame
            && tx.send(frame).await.is_err()
        {
            return;
        }
        if state.changed().await.is_err() {
            return;
        }
    }
}

/// What one reference's check found.
enum Checked {
    Skipped(SkippedImage),
    Updates(Vec<ImageUpdate>),
}

/// The repository of a reference: without its digest and tag (a colon after the last slash).
fn repository(reference: &str) -> &str {
    let rest = reference.split('@').next().unwrap_or(reference);
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[last_slash..].rfind(':') {
        Some(colon) => &rest[..last_slash + colon],
        None => rest,
    }
}

/// A repository in Docker's familiar form (`nginx` for `docker.io/library/nginx`).
fn normal(repository: &str) -> &str {
    let rest = repository
        .strip_prefix("docker.io/")
        .or_else(|| repository.strip_prefix("index.docker.io/"))
        .unwrap_or(repository);
    rest.strip_prefix("library/").unwrap_or(rest)
}

/// `text` without control characters, cut to `max` bytes on a character boundary.
fn printable(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    crate::text::truncate(&mut out, max);
    out
}

/// A random point of `interval`, different for each agent process.
fn jitter(interval: Duration) -> Duration {
    use std::hash::BuildHasher;
    let random = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
    interval.mul_f64((random % 10_000) as f64 / 10_000.0)
}

fn load(data_dir: &Path) -> Option<UpdateState> {
    let path = data_dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).ok()?;
    match serde_json::from_str::<UpdateState>(&text) {
        Ok(state) if state.validate().is_ok() => Some(state),
        _ => {
            tracing::warn!(path = %path.display(), "ignoring an unreadable update check result; the next check replaces it");
            None
        }
    }
}

/// Writes the result next to the credentials, replacing the old one at once (rename).
fn save(data_dir: &Path, state: &UpdateState) -> std::io::Result<()> {
    std::fs::create_dir_all(data_dir)?;
    let json = serde_json::to_vec(state).expect("states serialise");
    crate::replace::replace(&data_dir.join(STATE_FILE), &json, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_and_their_familiar_form() {
        assert_eq!(
            repository("127.0.0.1:5000/zt/web:1"),
            "127.0.0.1:5000/zt/web"
        );
        assert_eq!(repository("127.0.0.1:5000/zt/web"), "127.0.0.1:5000/zt/web");
        assert_eq!(repository("nginx:1.27"), "nginx");
        assert_eq!(normal("docker.io/library/nginx"), "nginx");
        assert_eq!(
            normal(repository("docker.io/library/nginx:1")),
            normal("nginx")
        );
        assert_eq!(normal("ghcr.io/a/b"), "ghcr.io/a/b");
    }

    #[test]
    fn jitter_stays_within_the_interval_and_text_is_made_printable() {
        let interval = Duration::from_secs(3600);
        assert!(jitter(interval) < interval);
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
        assert_eq!(printable("a\u{1b}[31mb", 64), "a [31mb");
        assert_eq!(printable("ééé", 3), "é");
    }

    #[test]
    fn a_kept_result_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()), None);
        let state = UpdateState {
            checked_at: Some(7),
            skipped: vec![SkippedImage {
                image: "local/app:1".into(),
                reason: "built here".into(),
            }],
            ..Default::default()
        };
        save(dir.path(), &state).unwrap();
        assert_eq!(load(dir.path()), Some(state));
        std::fs::write(dir.path().join(STATE_FILE), "{junk").unwrap();
        assert_eq!(load(dir.path()), None);
    }
}
