//! Image updates in the app (issue 15) over `zedops-client`, with no Tauri in sight: which
//! containers have a newer image (the relay's `updates.list`, then the agents' `updates.state`
//! pushes), which of a pushed batch are news (one notification per batch, not per container),
//! one container's update followed step by step (pull progress; on a rollback the reason and
//! the new container's last log lines), and "Update all" through `client::fleet_update`.

pub mod commands;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use specta::Type;
use tauri_specta::Event;
use zedops_client::Client;
use zedops_client::UpdateOptions;
use zedops_client::fleet_update::{self, FleetOptions, FleetProgress, FleetTarget, Outcome};
use zedops_protocol::{
    AgentId, ContainerUpdateFrame, ErrorCode as WireCode, ImageUpdate, UpdateState,
};

use crate::deploy::PullProgressView;
use crate::error::{AppError, ErrorCode, sentence};

/// Most containers updated at once after the canaries.
pub const MAX_PARALLEL: u32 = 10;

/// One container whose image reference now has another build in its registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ImageUpdateView {
    pub container: String,
    pub image: String,
    pub current_digest: String,
    pub new_digest: String,
    /// When the agent first saw this build (Unix seconds).
    pub found_at: u32,
    /// The container's `zedops.update` label (`never`, `pinned`), if any.
    pub label: Option<String>,
}

/// One agent's updates, as last checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct AgentImageUpdates {
    pub agent_id: String,
    /// When its last check finished (Unix seconds); `null`: it never checked.
    pub checked_at: Option<u32>,
    pub updates: Vec<ImageUpdateView>,
}

/// An agent pushed the result of a check: its list replaces the one shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, Event)]
#[serde(rename_all = "camelCase")]
pub struct ImageUpdatesChanged {
    pub state: AgentImageUpdates,
}

/// The answer of "Check for updates": every agent's list, and the agents that could not check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ImageUpdateCheck {
    pub agents: Vec<AgentImageUpdates>,
    /// One sentence per agent that could not check.
    pub failed: Vec<String>,
}

fn secs(value: i64) -> u32 {
    value.clamp(0, u32::MAX.into()) as u32
}

impl From<&UpdateState> for AgentImageUpdates {
    fn from(state: &UpdateState) -> Self {
        Self {
            agent_id: state.agent_id.to_string(),
            checked_at: state.checked_at.map(secs),
            updates: state
                .updates
                .iter()
                .map(|u| ImageUpdateView {
                    container: u.container.clone(),
                    image: u.image.clone(),
                    current_digest: u.current_digest.clone(),
                    new_digest: u.new_digest.clone(),
                    found_at: secs(u.found_at),
                    label: u.label.clone(),
                })
                .collect(),
        }
    }
}

/// Every agent's updates as the relay keeps them.
pub async fn list(client: &Client) -> Result<Vec<AgentImageUpdates>, AppError> {
    let listed = client.updates(None).await?;
    Ok(listed.agents.iter().map(|a| (&a.state).into()).collect())
}

/// Has one agent (or every connected one) check now.
pub async fn check(client: &Client, agent: Option<&str>) -> Result<ImageUpdateCheck, AppError> {
    let checked = client
        .check_updates(agent)
        .await
        .map_err(AppError::from)
        .map_err(operators_only("check for updates"))?;
    Ok(ImageUpdateCheck {
        agents: checked.agents.iter().map(|a| (&a.state).into()).collect(),
        failed: checked
            .failed
            .iter()
            .map(|f| format!("{} could not check: {}", f.name, f.error))
            .collect(),
    })
}

fn operators_only(what: &'static str) -> impl Fn(AppError) -> AppError {
    move |err| {
        err.when_forbidden(|| {
            format!(
                "Only operators and admins may {what}: ask an admin of this relay for the operator role."
            )
        })
    }
}

/// The updates already announced, per agent: a pushed state notifies only for the
/// (container, new build) pairs not seen before, all of them in one notification.
#[derive(Debug, Default)]
pub struct Announced {
    seen: HashMap<AgentId, HashSet<(String, String)>>,
}

impl Announced {
    /// Records what is known without announcing it (the lists at sign-in are shown as badges).
    pub fn seed(&mut self, state: &UpdateState) {
        self.fresh(state);
    }

    /// The containers of `state` whose update was not in this agent's previous state; the
    /// agent's known set becomes `state`'s (an update applied and found again is news again).
    pub fn fresh<'a>(&mut self, state: &'a UpdateState) -> Vec<&'a ImageUpdate> {
        let known = self.seen.remove(&state.agent_id).unwrap_or_default();
        let fresh = state
            .updates
            .iter()
            .filter(|u| !known.contains(&(u.container.clone(), u.new_digest.clone())))
            .collect();
        self.seen.insert(
            state.agent_id.clone(),
            state
                .updates
                .iter()
                .map(|u| (u.container.clone(), u.new_digest.clone()))
                .collect(),
        );
        fresh
    }
}

/// The title and body of the one notification for a batch of new updates on `agent`.
pub fn batch_notice(agent: &str, fresh: &[&ImageUpdate]) -> (String, String) {
    let title = match fresh.len() {
        1 => format!("An image update for {} on {agent}", fresh[0].container),
        n => format!("Image updates for {n} containers on {agent}"),
    };
    const NAMED: usize = 5;
    let mut names: Vec<String> = fresh
        .iter()
        .take(NAMED)
        .map(|u| format!("{} ({})", u.container, u.image))
        .collect();
    if fresh.len() > NAMED {
        names.push(format!("and {} more", fresh.len() - NAMED));
    }
    let body = format!(
        "A newer build is in the registry for {}. Open the Fleet view and press Update when it suits you.",
        names.join(", ")
    );
    (title, body)
}

/// A step of one container's update, as it happens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ContainerUpdateEvent {
    /// `pull`, `hook`, `rename-old`, `stop-old`, `create`, `start`, `health`, `remove-old`,
    /// `rollback`, …
    pub phase: String,
    /// The agent's sentence for the step (or the hook's outcome).
    pub message: String,
    /// The pull's progress, while it pulls.
    pub progress: Option<PullProgressView>,
}

/// How one container's update ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateResult {
    /// The new image runs under the container's name.
    Updated,
    /// It already ran the newest build: nothing was changed.
    Unchanged,
    /// The new image failed; the old container was put back.
    RolledBack,
}

/// The end of one container's update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ContainerUpdateOutcome {
    pub result: UpdateResult,
    /// In plain words: what happened and, after a rollback, what runs now.
    pub message: String,
    /// The step that failed, after a rollback.
    pub failed_phase: Option<String>,
    /// After a rollback: the new container's last log lines (empty when it never ran).
    pub logs: Vec<String>,
    /// After a rollback: false when the old container could not be put back yet.
    pub restored: bool,
    /// The container's id now (a new one after an update).
    pub container_id: Option<String>,
}

/// What a phase means, for people.
fn phase_words(phase: &str) -> &'static str {
    match phase {
        "pull" => "pulling the new image",
        "hook" => "running the pre-update hook",
        "rename-old" | "stop-old" => "stopping the old container",
        "create" => "creating the new container",
        "start" => "starting the new container",
        "health" => "waiting for the new container to be healthy",
        "remove-old" => "removing the old container",
        "rollback" => "putting the old container back",
        _ => "preparing",
    }
}

/// The sentence shown after a rollback.
pub fn rollback_message(container: &str, phase: &str, reason: &str, restored: bool) -> String {
    let reason = reason.trim().trim_end_matches('.');
    if restored {
        format!(
            "The update of {container} failed while {} ({reason}), so ZedOps put the old container back: {container} runs as before. Fix the image (its log lines are below) and update again.",
            phase_words(phase)
        )
    } else {
        format!(
            "The update of {container} failed while {} ({reason}), and the old container could not be put back yet: the agent retries when it next starts. Check {container} and {container}.zedops-old on that server.",
            phase_words(phase)
        )
    }
}

/// Updates one container, reporting each step to `report`; a rollback is an outcome, not an
/// error (its reason and log lines are what the person needs). Errors are refusals (role,
/// offline, unknown container) and lost connections.
pub async fn update_one(
    client: &Client,
    agent: &str,
    container: &str,
    report: impl Fn(ContainerUpdateEvent),
) -> Result<ContainerUpdateOutcome, AppError> {
    let mut stream = client
        .update_container(agent, container, UpdateOptions::default())
        .await
        .map_err(AppError::from)
        .map_err(operators_only("update containers"))?;
    let mut phase = String::from("journal");
    while let Some(frame) = stream.next().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(err) if err.code().as_str() == WireCode::UpdateRolledBack.as_str() => {
                let reason = err.to_string();
                return Ok(ContainerUpdateOutcome {
                    result: UpdateResult::RolledBack,
                    message: rollback_message(container, &phase, &reason, true),
                    failed_phase: Some(phase),
                    logs: vec![],
                    restored: true,
                    container_id: None,
                });
            }
            Err(err) => {
                return Err(operators_only("update containers")(AppError::from(err)));
            }
        };
        if let Some(outcome) = follow(container, &mut phase, frame, &report) {
            return outcome;
        }
    }
    Err(AppError::new(
        ErrorCode::Wire(WireCode::Internal),
        format!(
            "The update of {container} stopped reporting before its end (the connection dropped?). It goes on on the server: look at the container in a minute."
        ),
    ))
}

/// Handles one frame; `Some` once it is the last.
fn follow(
    container: &str,
    phase: &mut String,
    frame: ContainerUpdateFrame,
    report: &impl Fn(ContainerUpdateEvent),
) -> Option<Result<ContainerUpdateOutcome, AppError>> {
    if let Some(step) = frame.step {
        *phase = step.phase.to_string();
        report(ContainerUpdateEvent {
            phase: phase.clone(),
            message: step.message,
            progress: None,
        });
    }
    if let Some(p) = frame.progress {
        report(ContainerUpdateEvent {
            phase: "pull".into(),
            message: format!("pulling {}", p.image),
            progress: Some(PullProgressView::from(p)),
        });
    }
    if let Some(hook) = frame.hook {
        let ended = match hook.exit_code {
            Some(code) => format!("exited with {code}"),
            None => "did not end in time".into(),
        };
        report(ContainerUpdateEvent {
            phase: "hook".into(),
            message: format!(
                "pre-update hook `{}` {ended}; waiting {} s",
                hook.command, hook.wait_secs
            ),
            progress: None,
        });
    }
    let end = frame.end?;
    Some(match (end.error_code, frame.updated, frame.rolled_back) {
        (None, Some(updated), _) => Ok(ContainerUpdateOutcome {
            result: if updated.changed {
                UpdateResult::Updated
            } else {
                UpdateResult::Unchanged
            },
            message: if updated.changed {
                format!(
                    "{container} now runs the new build of {} (the old container was removed; its volumes were kept).",
                    updated.image
                )
            } else {
                format!(
                    "{container} already runs the newest build of {}: nothing was changed.",
                    updated.image
                )
            },
            failed_phase: None,
            logs: vec![],
            restored: false,
            container_id: Some(updated.container_id.into()),
        }),
        (Some(_), _, Some(rollback)) => Ok(ContainerUpdateOutcome {
            result: UpdateResult::RolledBack,
            message: rollback_message(
                container,
                rollback.phase.as_str(),
                &rollback.reason,
                rollback.restored,
            ),
            failed_phase: Some(rollback.phase.to_string()),
            logs: rollback.logs,
            restored: rollback.restored,
            container_id: None,
        }),
        (Some(code), _, None) => Err(AppError::new(code.into(), sentence(&end.reason))),
        (None, None, _) => Err(AppError::new(
            ErrorCode::Wire(WireCode::Internal),
            "The agent ended the update without saying what it did; look at the container on that server.",
        )),
    })
}

/// Where one container of "Update all" is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "kebab-case")]
pub enum FleetItemState {
    Queued,
    Updating,
    Updated,
    RolledBack,
    Failed,
    Skipped,
}

/// One container's state in "Update all", as it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct FleetUpdateEvent {
    pub agent_id: String,
    pub agent_name: String,
    pub container: String,
    pub state: FleetItemState,
    pub canary: bool,
    /// The current step, or how it ended, in words.
    pub detail: String,
    /// After a rollback: the new container's last log lines.
    pub logs: Vec<String>,
    /// While it pulls its new image: how far the pull has come.
    pub progress: Option<PullProgressView>,
}

/// The end of "Update all": how many of each, and the sentence to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct FleetUpdateSummary {
    pub updated: u32,
    pub rolled_back: u32,
    pub failed: u32,
    pub skipped: u32,
    pub message: String,
}

/// Where "Update all" reports.
pub type FleetReport = Arc<dyn Fn(FleetUpdateEvent) + Send + Sync>;

/// "Update all": every container with an update (on `agent`, or everywhere), `never` and
/// `pinned` ones skipped, the first `canary` one at a time, then `parallel` at a time,
/// stopping at the first rollback; every change goes to `report`.
pub async fn update_all(
    client: &Client,
    agent: Option<String>,
    canary: u32,
    parallel: u32,
    report: FleetReport,
) -> Result<FleetUpdateSummary, AppError> {
    let states = client.updates(agent.as_deref()).await?;
    let ids: HashMap<String, String> = states
        .agents
        .iter()
        .map(|a| (a.name.clone(), a.state.agent_id.to_string()))
        .collect();
    let options = FleetOptions {
        agent,
        canary: canary as usize,
        parallel: parallel.clamp(1, MAX_PARALLEL) as usize,
        ..FleetOptions::default()
    };
    let plan = fleet_update::plan(&states, &options);
    if plan.targets.is_empty() {
        return Err(AppError::new(
            ErrorCode::INVALID_INPUT,
            if plan.skipped.is_empty() {
                "No container has an update: press Check for updates first.".to_string()
            } else {
                format!(
                    "No container to update: the {} with an update are labelled never or pinned (update a pinned one with its own Update button).",
                    plan.skipped.len()
                )
            },
        ));
    }
    let event = move |t: &FleetTarget, state, canary, detail: String, logs| FleetUpdateEvent {
        agent_id: ids
            .get(&t.agent)
            .cloned()
            .unwrap_or_else(|| t.agent.clone()),
        agent_name: t.agent.clone(),
        container: t.container.clone(),
        state,
        canary,
        detail,
        logs,
        progress: None,
    };
    let event = Arc::new(event);
    for (i, t) in plan.targets.iter().enumerate() {
        report(event(
            t,
            FleetItemState::Queued,
            i < options.canary,
            "Waiting for its turn.".into(),
            vec![],
        ));
    }
    for s in &plan.skipped {
        report(event(
            &s.target,
            FleetItemState::Skipped,
            false,
            sentence(&s.reason),
            vec![],
        ));
    }
    let canaries: HashSet<(String, String)> = plan
        .targets
        .iter()
        .take(options.canary)
        .map(|t| (t.agent.clone(), t.container.clone()))
        .collect();
    let progress = {
        let (report, event) = (report.clone(), event.clone());
        move |p: FleetProgress| {
            let is_canary =
                |t: &FleetTarget| canaries.contains(&(t.agent.clone(), t.container.clone()));
            let e = match p {
                FleetProgress::Started { target, canary } => event(
                    &target,
                    FleetItemState::Updating,
                    canary,
                    "Starting.".into(),
                    vec![],
                ),
                FleetProgress::Step {
                    target,
                    phase,
                    message,
                } => event(
                    &target,
                    FleetItemState::Updating,
                    is_canary(&target),
                    sentence(&format!("{}: {message}", phase_words(&phase))),
                    vec![],
                ),
                FleetProgress::Pull { target, progress } => {
                    let detail = format!("Pulling {}.", progress.image);
                    FleetUpdateEvent {
                        progress: Some(PullProgressView::from(progress)),
                        ..event(
                            &target,
                            FleetItemState::Updating,
                            is_canary(&target),
                            detail,
                            vec![],
                        )
                    }
                }
                FleetProgress::Finished { target, outcome } => {
                    let canary = is_canary(&target);
                    match outcome {
                        Outcome::Updated { updated } => event(
                            &target,
                            FleetItemState::Updated,
                            canary,
                            if updated.changed {
                                "Updated: the new build runs.".into()
                            } else {
                                "Already the newest build: nothing changed.".into()
                            },
                            vec![],
                        ),
                        Outcome::RolledBack { reason, rollback } => {
                            let (phase, why, restored, logs) = match rollback {
                                Some(r) => (r.phase.to_string(), r.reason, r.restored, r.logs),
                                None => ("health".into(), reason, true, vec![]),
                            };
                            event(
                                &target,
                                FleetItemState::RolledBack,
                                canary,
                                rollback_message(&target.container, &phase, &why, restored),
                                logs,
                            )
                        }
                        Outcome::Failed { code, reason } => event(
                            &target,
                            FleetItemState::Failed,
                            canary,
                            format!("Could not update ({code}): {}", sentence(&reason)),
                            vec![],
                        ),
                    }
                }
            };
            report(e);
        }
    };
    let summary = fleet_update::run(client, plan, &options, &progress).await;
    // The ones never started after a rollback are skipped now: say so on their rows.
    for s in &summary.skipped {
        if s.reason.starts_with("not started") {
            report(event(
                &s.target,
                FleetItemState::Skipped,
                false,
                "Not started: an earlier update rolled back or failed.".into(),
                vec![],
            ));
        }
    }
    let n = |v: usize| v as u32;
    let (updated, rolled_back, failed, skipped) = (
        n(summary.updated.len()),
        n(summary.rolled_back.len()),
        n(summary.failed.len()),
        n(summary.skipped.len()),
    );
    let unchanged = match summary.unchanged.len() {
        0 => String::new(),
        n => format!(", {n} already on the newest build"),
    };
    let mut message = format!(
        "{updated} updated{unchanged}, {rolled_back} rolled back, {failed} failed, {skipped} skipped."
    );
    if !summary.ok() {
        message.push_str(" The fleet update stopped at the first rollback or failure: see that container's row for why.");
    }
    Ok(FleetUpdateSummary {
        updated,
        rolled_back,
        failed,
        skipped,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(container: &str, digest: char) -> ImageUpdate {
        ImageUpdate {
            container: container.into(),
            image: "reg:5000/app:1".into(),
            current_digest: format!("sha256:{}", "a".repeat(64)),
            new_digest: format!("sha256:{}", digest.to_string().repeat(64)),
            found_at: 1,
            label: None,
        }
    }

    fn state(updates: Vec<ImageUpdate>) -> UpdateState {
        UpdateState {
            agent_id: "a1".into(),
            checked_at: Some(2),
            updates,
            skipped: vec![],
        }
    }

    #[test]
    fn a_batch_announces_only_what_is_new() {
        let mut announced = Announced::default();
        announced.seed(&state(vec![update("web", 'b')]));
        // The same state again (a reconnect) is no news.
        assert!(announced.fresh(&state(vec![update("web", 'b')])).is_empty());
        // Two new ones in one push: one batch of two.
        let next = state(vec![
            update("web", 'b'),
            update("db", 'c'),
            update("pz", 'c'),
        ]);
        let fresh: Vec<&str> = announced
            .fresh(&next)
            .iter()
            .map(|u| u.container.as_str())
            .collect();
        assert_eq!(fresh, ["db", "pz"]);
        // Another build of web is news again.
        let rebuilt = state(vec![update("web", 'd')]);
        let fresh = announced.fresh(&rebuilt);
        assert_eq!(fresh.len(), 1);
        let (title, body) = batch_notice("eu-1", &fresh);
        assert_eq!(title, "An image update for web on eu-1");
        assert!(body.contains("web (reg:5000/app:1)"), "{body}");
        let many: Vec<ImageUpdate> = (0..7).map(|i| update(&format!("c{i}"), 'e')).collect();
        let refs: Vec<&ImageUpdate> = many.iter().collect();
        let (title, body) = batch_notice("eu-1", &refs);
        assert_eq!(title, "Image updates for 7 containers on eu-1");
        assert!(body.contains("and 2 more"), "{body}");
    }

    #[test]
    fn a_rollback_is_said_in_plain_words() {
        let text = rollback_message(
            "pz-1",
            "health",
            "the new container exited with code 3.",
            true,
        );
        assert!(
            text.contains("failed while waiting for the new container to be healthy (the new container exited with code 3)")
                && text.contains("pz-1 runs as before"),
            "{text}"
        );
        let text = rollback_message("pz-1", "start", "port in use", false);
        assert!(text.contains("pz-1.zedops-old"), "{text}");
    }
}
