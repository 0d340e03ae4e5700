//! `container.update`: one container moved to a newer image with a health check and automatic
//! rollback, journalled so that a crash of the agent in the middle is put right at its next
//! start.
//!
//! Steps: refuse what may not be updated (the agent's own container, what the local policy
//! forbids, a second update of the same container, more than
//! [`MAX_UPDATES_PER_AGENT`](zedops_protocol::MAX_UPDATES_PER_AGENT) at once) → journal → pull
//! (progress streamed) → pre-update hook and its wait → rename the old container to
//! `<name>.zedops-old` → stop it with its own signal and grace → create the new one with the
//! old one's full configuration on the new image under the original name → start it → wait
//! until healthy → remove the old one (never volumes). Any failure from the pull on removes the
//! new container, renames the old one back and starts it again, and ends with
//! `UPDATE_ROLLED_BACK`, the reason and the new container's last log lines.
//!
//! An update runs to its end whatever happens to the relay connection (a stream cancel is not
//! obeyed: stopping half-way would leave a server down); its frames are simply lost then.

pub mod health;
pub mod hook;
pub mod journal;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tracing::Instrument;
use zedops_protocol::{
    ContainerUpdateFrame, ContainerUpdateRequest, ContainerUpdated, Envelope, ErrorCode,
    HOOK_TIMEOUT_SECS, HookOutcome, MAX_HOOK_OUTPUT_BYTES, MAX_UPDATE_LOG_BYTES,
    MAX_UPDATE_LOG_LINES, MAX_UPDATES_PER_AGENT, PullProgress, StreamEnd, UPDATE_OLD_SUFFIX,
    UpdatePhase, UpdateRollback, UpdateStep, is_valid_image_ref,
};

use crate::docker::recreate::Snapshot;
use crate::docker::{DockerClient, DockerError};
use journal::{Entry, Stage};

/// Frames waiting to be sent to the relay; pull progress beyond this is dropped, steps wait.
const FRAME_QUEUE: usize = 32;
/// Longest an update waits for one of the agent's pull slots.
const PULL_SLOT_WAIT: Duration = Duration::from_secs(30 * 60);

/// Updates running in this agent process: at most [`MAX_UPDATES_PER_AGENT`] at once.
static SLOTS: Semaphore = Semaphore::const_new(MAX_UPDATES_PER_AGENT);
/// Ids of the containers being updated now: one update per container at a time.
static ACTIVE: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Mutex::default);

/// Holds a container's place in [`ACTIVE`] until dropped.
struct ActiveGuard(String);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        ACTIVE
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.0);
    }
}

/// Starts `request` in its own task, its frames going to `inbox` on `tx` (the last with `end`).
pub fn start(
    docker: Arc<DockerClient>,
    updates: Arc<crate::update_check::UpdateChecker>,
    data_dir: PathBuf,
    request: ContainerUpdateRequest,
    inbox: String,
    tx: mpsc::Sender<String>,
) {
    let span = tracing::info_span!("update", container = %request.container_id, %inbox);
    let (frames, mut rx) = mpsc::channel::<ContainerUpdateFrame>(FRAME_QUEUE);
    // The forwarder keeps draining after the connection is gone, so the update never waits on
    // a relay that is not there.
    tokio::spawn(async move {
        let mut connected = true;
        while let Some(frame) = rx.recv().await {
            if connected
                && tx
                    .send(Envelope::new(&inbox, frame).to_json())
                    .await
                    .is_err()
            {
                tracing::debug!("the connection is gone; the update goes on without reporting");
                connected = false;
            }
        }
    });
    tokio::spawn(
        async move {
            let last = run(&docker, &data_dir, request, &frames).await;
            // On the newest build now (or already was): not to be listed as having an update.
            if let Some(updated) = &last.updated {
                updates.container_updated(&updated.name).await;
            }
            let _ = frames.send(last).await;
        }
        .instrument(span),
    );
}

/// Carries out `request`, sending steps, progress and the hook's outcome to `frames`; returns
/// the last frame (with `end`).
pub async fn run(
    docker: &DockerClient,
    data_dir: &Path,
    request: ContainerUpdateRequest,
    frames: &mpsc::Sender<ContainerUpdateFrame>,
) -> ContainerUpdateFrame {
    let old = match docker.snapshot(&request.container_id).await {
        Ok(old) => old,
        Err(err) => return refused(err.code(), err.to_string()),
    };
    if old.name.ends_with(UPDATE_OLD_SUFFIX) {
        return refused(
            ErrorCode::InvalidRequest,
            format!(
                "{} is the old copy kept during an update; update the container under its own name",
                old.name
            ),
        );
    }
    if let Err(denied) = docker.policy().check(&old.policy_spec()) {
        tracing::warn!(container = %old.name, field = %denied.field, "refused to update a container by local policy");
        return refused(denied.code(), denied.to_string());
    }
    let image = match &request.image {
        Some(image) => image.clone(),
        None if is_valid_image_ref(&old.image) && !old.image.starts_with("sha256:") => {
            old.image.clone()
        }
        None => {
            return refused(
                ErrorCode::InvalidRequest,
                format!(
                    "{} was created from an image id, not a reference that can be pulled again; name the image with --image",
                    old.name
                ),
            );
        }
    };
    let hook = match hook::from_labels(&old.labels) {
        Ok(hook) => hook,
        Err(reason) => return refused(ErrorCode::InvalidRequest, reason),
    };
    let _active = {
        let mut active = ACTIVE.lock().unwrap_or_else(|p| p.into_inner());
        if !active.insert(old.id.clone()) {
            return refused(
                ErrorCode::RateLimited,
                format!(
                    "{} is being updated already; wait for that update to end",
                    old.name
                ),
            );
        }
        ActiveGuard(old.id.clone())
    };
    let Ok(_slot) = SLOTS.try_acquire() else {
        return refused(
            ErrorCode::RateLimited,
            format!(
                "this agent is already updating {MAX_UPDATES_PER_AGENT} containers; wait for one to finish"
            ),
        );
    };
    let mut update = Update {
        docker,
        data_dir,
        frames,
        entry: Entry {
            name: old.name.clone(),
            old_id: old.id.clone(),
            was_running: old.running,
            image: image.clone(),
            new_id: None,
            stage: Stage::Started,
            started_at: crate::unix_time::now(),
        },
        old,
        health_timeout: request.health_timeout(),
        stable: request.stable(),
    };
    tracing::info!(container = %update.old.name, %image, "updating a container");
    update.carry_out(&request, hook).await
}

/// One update under way.
struct Update<'a> {
    docker: &'a DockerClient,
    data_dir: &'a Path,
    frames: &'a mpsc::Sender<ContainerUpdateFrame>,
    old: Snapshot,
    entry: Entry,
    /// Seconds the new container gets to be healthy, and to run without restarting.
    health_timeout: u32,
    stable: u32,
}

/// Where an update that failed left the old container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Back {
    /// It failed before anything was changed (pull, hook, journal).
    Untouched,
    /// It was changed and has been put back.
    Restored,
    /// It could not be put back yet (the journal has it for the next start).
    NotYet,
}

/// A failure of one step: the step, what happened, and its code when it had one.
struct Failed {
    phase: UpdatePhase,
    reason: String,
    code: Option<ErrorCode>,
}

impl Failed {
    fn new(phase: UpdatePhase, reason: impl Into<String>) -> Self {
        Self {
            phase,
            reason: reason.into(),
            code: None,
        }
    }

    fn docker(phase: UpdatePhase, what: &str, err: DockerError) -> Self {
        Self {
            phase,
            reason: format!("{what}: {err}"),
            code: Some(err.code()),
        }
    }
}

impl Update<'_> {
    async fn step(&self, phase: UpdatePhase, message: impl Into<String>) {
        let frame = ContainerUpdateFrame {
            step: Some(UpdateStep {
                phase,
                message: message.into(),
            }),
            ..ContainerUpdateFrame::default()
        };
        let _ = self.frames.send(frame).await;
    }

    fn record(&mut self, stage: Stage) -> Result<(), Failed> {
        self.entry.stage = stage;
        journal::write(self.data_dir, &self.entry).map_err(|e| {
            tracing::error!(err = %e, "could not write the update journal");
            Failed {
                phase: UpdatePhase::Journal,
                reason: format!(
                    "the agent could not write its update journal in {} ({e}); nothing was changed",
                    journal::dir(self.data_dir).display()
                ),
                code: Some(ErrorCode::Internal),
            }
        })
    }

    async fn carry_out(
        &mut self,
        request: &ContainerUpdateRequest,
        hook: Option<hook::Hook>,
    ) -> ContainerUpdateFrame {
        let name = self.old.name.clone();
        self.step(
            UpdatePhase::Journal,
            format!("updating {name} to {}", self.entry.image),
        )
        .await;
        if let Err(failed) = self.record(Stage::Started) {
            return self.rolled_back(failed, Vec::new(), Back::Untouched);
        }
        // Until the rename nothing was changed: a failure only ends the journal entry.
        let pulled = match self.pull().await {
            Ok(pulled) => pulled,
            Err(failed) => return self.abandon(failed).await,
        };
        let old_digest = self
            .docker
            .image_digest(&self.old.image_id)
            .await
            .ok()
            .flatten();
        let new_digest = self.docker.image_digest(&pulled).await.ok().flatten();
        if pulled == self.old.image_id && !request.force {
            let _ = journal::remove(self.data_dir, &name);
            tracing::info!(container = %name, "already on the newest image; left as it was");
            return ContainerUpdateFrame {
                updated: Some(ContainerUpdated {
                    name: name.clone(),
                    image: self.entry.image.clone(),
                    old_image_id: self.old.image_id.clone(),
                    old_digest: old_digest.clone(),
                    new_image_id: pulled,
                    new_digest,
                    container_id: self.old.id.clone().into(),
                    changed: false,
                }),
                end: Some(StreamEnd {
                    error_code: None,
                    reason: format!("{name} already runs the newest {}", self.entry.image),
                }),
                ..ContainerUpdateFrame::default()
            };
        }
        if let Some(hook) = hook
            && let Err(failed) = self.run_hook(hook).await
        {
            return self.abandon(failed).await;
        }
        let new_id = match self.replace().await {
            Ok(id) => id,
            Err(failed) => return self.roll_back(failed).await,
        };
        // Healthy: from here a crash finishes the update instead of undoing it.
        if let Err(failed) = self.record(Stage::Healthy) {
            return self.roll_back(failed).await;
        }
        self.step(
            UpdatePhase::RemoveOld,
            "removing the old container (its volumes stay)",
        )
        .await;
        let reason = match self.docker.remove_keeping_volumes(&self.old.id).await {
            Ok(()) => {
                let _ = journal::remove(self.data_dir, &name);
                format!("{name} updated to {}", self.entry.image)
            }
            Err(err) => {
                // The update stands; the journal stays so the next start removes it.
                tracing::warn!(container = %name, %err, "the old container could not be removed");
                format!(
                    "{name} updated to {}, but the old container {name}{UPDATE_OLD_SUFFIX} could not be removed ({err}); remove it by hand",
                    self.entry.image
                )
            }
        };
        tracing::info!(container = %name, image = %self.entry.image, "updated a container");
        ContainerUpdateFrame {
            updated: Some(ContainerUpdated {
                name,
                image: self.entry.image.clone(),
                old_image_id: self.old.image_id.clone(),
                old_digest,
                new_image_id: pulled,
                new_digest,
                container_id: new_id.into(),
                changed: true,
            }),
            end: Some(StreamEnd {
                error_code: None,
                reason,
            }),
            ..ContainerUpdateFrame::default()
        }
    }

    /// Pulls the image with progress frames; the pulled image's id.
    async fn pull(&self) -> Result<String, Failed> {
        self.step(UpdatePhase::Pull, format!("pulling {}", self.entry.image))
            .await;
        let (progress_tx, mut progress_rx) = mpsc::channel::<PullProgress>(4);
        let forward = async {
            while let Some(progress) = progress_rx.recv().await {
                let frame = ContainerUpdateFrame {
                    progress: Some(progress),
                    ..ContainerUpdateFrame::default()
                };
                // Progress is dropped rather than waited for.
                let _ = self.frames.try_send(frame);
            }
        };
        let image = self.entry.image.as_str();
        let work = async move {
            // The agent pulls two images at once; an update waits for its turn rather than
            // failing (its own slot among the agent's updates is taken already).
            let deadline = tokio::time::Instant::now() + PULL_SLOT_WAIT;
            let mut told = false;
            loop {
                match self.docker.pull(image, &progress_tx).await {
                    Err(err)
                        if err.code() == ErrorCode::RateLimited
                            && tokio::time::Instant::now() < deadline =>
                    {
                        if !told {
                            self.step(UpdatePhase::Pull, "waiting for another pull to finish")
                                .await;
                            told = true;
                        }
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    pulled => return pulled,
                }
            }
        };
        let (pulled, ()) = tokio::join!(work, forward);
        pulled
            .map(|p| p.id)
            .map_err(|e| Failed::docker(UpdatePhase::Pull, "pulling the image failed", e))
    }

    async fn run_hook(&self, hook: hook::Hook) -> Result<(), Failed> {
        if !self.old.running {
            self.step(
                UpdatePhase::Hook,
                "the container is not running; its pre-update hook is skipped",
            )
            .await;
            return Ok(());
        }
        self.step(
            UpdatePhase::Hook,
            format!("running the pre-update hook: {}", hook.command),
        )
        .await;
        let ran = self
            .docker
            .exec_capture(
                &self.old.id,
                hook.argv.clone(),
                MAX_HOOK_OUTPUT_BYTES,
                Duration::from_secs(u64::from(HOOK_TIMEOUT_SECS)),
            )
            .await;
        let (exit_code, output) = match ran {
            Ok(ran) => ran,
            Err(err) => {
                return Err(Failed::docker(
                    UpdatePhase::Hook,
                    "the pre-update hook could not be run",
                    err,
                ));
            }
        };
        let _ = self
            .frames
            .send(ContainerUpdateFrame {
                hook: Some(HookOutcome {
                    command: hook.command.clone(),
                    exit_code,
                    output,
                    wait_secs: hook.wait_secs,
                }),
                ..ContainerUpdateFrame::default()
            })
            .await;
        match exit_code {
            Some(0) => {}
            Some(code) => {
                return Err(Failed::new(
                    UpdatePhase::Hook,
                    format!(
                        "the pre-update hook exited with code {code}; the container was not touched"
                    ),
                ));
            }
            None => {
                return Err(Failed::new(
                    UpdatePhase::Hook,
                    format!(
                        "the pre-update hook did not end within {HOOK_TIMEOUT_SECS} s; the container was not touched"
                    ),
                ));
            }
        }
        if hook.wait_secs > 0 {
            self.step(
                UpdatePhase::Hook,
                format!("waiting {} s after the hook", hook.wait_secs),
            )
            .await;
            tokio::time::sleep(Duration::from_secs(u64::from(hook.wait_secs))).await;
        }
        Ok(())
    }

    /// Rename, stop, create, start, health: the new container's id once it is healthy.
    async fn replace(&mut self) -> Result<String, Failed> {
        let name = self.old.name.clone();
        let old_name = format!("{name}{UPDATE_OLD_SUFFIX}");
        self.record(Stage::Replacing)?;
        self.step(
            UpdatePhase::RenameOld,
            format!("renaming the old container to {old_name}"),
        )
        .await;
        self.docker
            .rename(&self.old.id, &old_name)
            .await
            .map_err(|e| {
                Failed::docker(
                    UpdatePhase::RenameOld,
                    "renaming the old container failed",
                    e,
                )
            })?;
        test_pause("rename-old").await;
        if self.old.running {
            self.step(UpdatePhase::StopOld, "stopping the old container")
                .await;
            self.docker
                .stop_as_configured(&self.old.id)
                .await
                .map_err(|e| {
                    Failed::docker(UpdatePhase::StopOld, "stopping the old container failed", e)
                })?;
        }
        self.step(
            UpdatePhase::Create,
            format!("creating {name} from {}", self.entry.image),
        )
        .await;
        let new_id = self
            .docker
            .recreate(&self.old, &name, &self.entry.image)
            .await
            .map_err(|e| {
                Failed::docker(UpdatePhase::Create, "creating the new container failed", e)
            })?;
        self.entry.new_id = Some(new_id.clone());
        self.record(Stage::Replacing)?;
        if !self.old.running {
            // A container stopped on purpose (a game server kept off) stays stopped: the new
            // one is created, not started, so there is no health to wait for.
            self.step(
                UpdatePhase::Start,
                "the old container was stopped: the new one is left stopped",
            )
            .await;
            return Ok(new_id);
        }
        self.step(UpdatePhase::Start, "starting the new container")
            .await;
        // Until it is healthy the new container is the update's to judge: if it exits, the
        // update says so (and rolls back); its death is no crash for alerts.
        let _judged = self.docker.watched_by_us(&new_id);
        self.docker.start_id(&new_id).await.map_err(|e| {
            Failed::docker(UpdatePhase::Start, "starting the new container failed", e)
        })?;
        test_pause("start").await;
        let (timeout, stable) = (self.timeout(), self.stable());
        self.step(
            UpdatePhase::Health,
            format!(
                "waiting up to {} s for the new container to be healthy",
                timeout.as_secs()
            ),
        )
        .await;
        health::wait(self.docker, &new_id, timeout, stable)
            .await
            .map_err(|reason| Failed::new(UpdatePhase::Health, reason))?;
        Ok(new_id)
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.health_timeout))
    }

    fn stable(&self) -> Duration {
        Duration::from_secs(u64::from(self.stable))
    }

    /// A failure before the old container was touched: nothing to put back.
    async fn abandon(&self, failed: Failed) -> ContainerUpdateFrame {
        tracing::warn!(container = %self.old.name, phase = %failed.phase, reason = %failed.reason, "update abandoned before anything changed");
        let _ = journal::remove(self.data_dir, &self.old.name);
        self.rolled_back(failed, Vec::new(), Back::Untouched)
    }

    /// A failure after the rename: remove the new container, put the old one back.
    async fn roll_back(&self, failed: Failed) -> ContainerUpdateFrame {
        tracing::warn!(container = %self.old.name, phase = %failed.phase, reason = %failed.reason, "update failed; rolling back");
        self.step(
            UpdatePhase::Rollback,
            format!("{}; putting the old container back", failed.reason),
        )
        .await;
        let new_id = match &self.entry.new_id {
            Some(id) => Some(id.clone()),
            None => self.docker.id_of(&self.old.name).await.ok().flatten(),
        }
        .filter(|id| *id != self.old.id);
        let logs = match &new_id {
            Some(id) => {
                self.docker
                    .last_lines(id, MAX_UPDATE_LOG_LINES, MAX_UPDATE_LOG_BYTES)
                    .await
            }
            None => Vec::new(),
        };
        let back = match restore(self.docker, &self.entry).await {
            Ok(()) => {
                let _ = journal::remove(self.data_dir, &self.old.name);
                Back::Restored
            }
            Err(err) => {
                // The journal stays: the next start of the agent tries again.
                tracing::error!(container = %self.old.name, %err, "could not put the old container back");
                Back::NotYet
            }
        };
        self.rolled_back(failed, logs, back)
    }

    fn rolled_back(&self, failed: Failed, logs: Vec<String>, back: Back) -> ContainerUpdateFrame {
        let name = &self.old.name;
        let outcome = match back {
            Back::Untouched => format!("nothing was changed; {name} is as it was"),
            Back::Restored if self.entry.was_running => {
                format!("the old container runs again as {name}")
            }
            // It was stopped: it is back, and stays stopped.
            Back::Restored => format!("the old container is back as {name}, stopped as it was"),
            Back::NotYet => format!(
                "the old container could not be put back yet (the agent retries at its next start); check {name} and {name}{UPDATE_OLD_SUFFIX} on the server"
            ),
        };
        let restored = back != Back::NotYet;
        let reason = format!(
            "the update of {name} failed at {} ({}); {outcome}",
            failed.phase, failed.reason
        );
        ContainerUpdateFrame {
            rolled_back: Some(UpdateRollback {
                phase: failed.phase,
                reason: failed.reason,
                code: failed.code,
                logs,
                restored,
            }),
            end: Some(StreamEnd {
                error_code: Some(ErrorCode::UpdateRolledBack),
                reason,
            }),
            ..ContainerUpdateFrame::default()
        }
    }
}

/// The last frame of an update refused before it began.
fn refused(code: ErrorCode, reason: String) -> ContainerUpdateFrame {
    ContainerUpdateFrame {
        end: Some(StreamEnd {
            error_code: Some(code),
            reason,
        }),
        ..ContainerUpdateFrame::default()
    }
}

/// Puts the old container of `entry` back as it was: whatever now holds its name removed
/// (never volumes), the old one renamed back and, when it was running, started.
async fn restore(docker: &DockerClient, entry: &Entry) -> Result<(), DockerError> {
    if let Some(id) = docker.id_of(&entry.name).await?
        && id != entry.old_id
    {
        docker.remove_keeping_volumes(&id).await?;
    }
    if let Some(id) = &entry.new_id
        && *id != entry.old_id
        && docker.name_of(id).await?.is_some()
    {
        docker.remove_keeping_volumes(id).await?;
    }
    match docker.name_of(&entry.old_id).await? {
        None => {
            return Err(DockerError::gone(format!(
                "the old container of {} is gone",
                entry.name
            )));
        }
        Some(name) if name != entry.name => docker.rename(&entry.old_id, &entry.name).await?,
        Some(_) => {}
    }
    if entry.was_running {
        docker.start_id(&entry.old_id).await?;
    }
    Ok(())
}

/// Finishes or undoes every update the journal in `data_dir` holds (an agent killed during
/// one): an update whose new container was healthy is finished (the old one removed), any
/// other put back. Run before the agent serves the relay. Returns how many entries were
/// settled.
pub async fn recover(docker: &DockerClient, data_dir: &Path) -> usize {
    let (entries, unreadable) = journal::list(data_dir);
    for (path, err) in unreadable {
        tracing::warn!(file = %path.display(), %err, "removed an unreadable update journal entry; check that container by hand");
        let _ = std::fs::remove_file(&path);
    }
    let mut settled = 0;
    for entry in entries {
        let done = match entry.stage {
            Stage::Healthy => finish(docker, &entry).await,
            Stage::Started | Stage::Replacing => restore(docker, &entry).await,
        };
        match done {
            Ok(()) => {
                tracing::info!(container = %entry.name, stage = ?entry.stage, "settled an update interrupted by the agent's stop");
                let _ = journal::remove(data_dir, &entry.name);
                settled += 1;
            }
            // The old container is gone (removed by hand): nothing is left to put back.
            Err(err) if err.code() == ErrorCode::ContainerNotFound => {
                tracing::warn!(container = %entry.name, %err, "an interrupted update cannot be settled; dropping its journal entry");
                let _ = journal::remove(data_dir, &entry.name);
            }
            Err(err) => {
                tracing::error!(container = %entry.name, %err, "could not settle an interrupted update; will retry at the next start");
            }
        }
    }
    settled
}

/// The rest of an update whose new container was healthy: the old container removed.
async fn finish(docker: &DockerClient, entry: &Entry) -> Result<(), DockerError> {
    if docker.name_of(&entry.old_id).await?.is_some() {
        docker.remove_keeping_volumes(&entry.old_id).await?;
    }
    Ok(())
}

/// Tests only: `ZEDOPS_TEST_UPDATE_PAUSE=<point>` makes an update stop for an hour at that
/// point (`rename-old`, `start`), so a test can kill the agent there. Debug builds only.
async fn test_pause(point: &str) {
    if cfg!(debug_assertions) && std::env::var("ZEDOPS_TEST_UPDATE_PAUSE").is_ok_and(|p| p == point)
    {
        tracing::warn!(
            point,
            "pausing the update for a test (ZEDOPS_TEST_UPDATE_PAUSE)"
        );
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}
