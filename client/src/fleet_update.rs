//! Fleet updates: every container with an image update (on one agent or all), the canaries
//! first, one at a time, then the rest a few at a time through `container.update`, stopping at
//! the first rollback or failure; progress per container as it happens and a summary at the
//! end. Containers labelled `zedops.update=never` are always skipped, `pinned` unless named.
//! Shared by the CLI (`zedops update --all`) and the desktop app ("Update all").

use futures_util::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;
use zedops_protocol::{
    ContainerUpdated, ErrorCode, ImageUpdate, PullProgress, UpdateListResponse, UpdateRollback,
};

use crate::client::Client;
use crate::container_update::UpdateOptions;
use crate::error::ClientError;

/// How a fleet update runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetOptions {
    /// Only this agent (name or id); `None`: every agent.
    pub agent: Option<String>,
    /// Containers updated first, one at a time; a rollback among them stops everything.
    pub canary: usize,
    /// Containers updated at once after the canaries (at least 1).
    pub parallel: usize,
    /// Containers named explicitly (`agent/container` or `container`): they are updated even
    /// when labelled `pinned`.
    pub named: Vec<String>,
    /// What each container's update is asked for (health timeout, stable time).
    pub update: UpdateOptions,
}

impl Default for FleetOptions {
    fn default() -> Self {
        Self {
            agent: None,
            canary: 1,
            parallel: 2,
            named: vec![],
            update: UpdateOptions::default(),
        }
    }
}

/// One container of a fleet update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetTarget {
    /// The agent's name (what `--agent` takes).
    pub agent: String,
    pub container: String,
    pub image: String,
    pub current_digest: String,
    pub new_digest: String,
}

/// What to update and what not, decided before anything is touched.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetPlan {
    /// In order: the canaries are the first [`FleetOptions::canary`].
    pub targets: Vec<FleetTarget>,
    pub skipped: Vec<Skipped>,
}

/// A container left alone, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    pub target: FleetTarget,
    pub reason: String,
}

/// What happens, as it happens (one container's lines may interleave with another's when
/// several run at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FleetProgress {
    /// This container's update starts (`canary` when it is one of the canaries).
    Started { target: FleetTarget, canary: bool },
    /// A step of its update (pull, stop old, health, …), in the agent's words.
    Step {
        target: FleetTarget,
        phase: String,
        message: String,
    },
    /// How far the pull of its new image has come (as often as the agent reports it, a few
    /// times a second at most).
    Pull {
        target: FleetTarget,
        progress: PullProgress,
    },
    /// Its update ended: updated, rolled back, or failed.
    Finished {
        target: FleetTarget,
        outcome: Outcome,
    },
}

/// How one container's update ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "result")]
pub enum Outcome {
    Updated {
        updated: ContainerUpdated,
    },
    /// The new image failed (pull, start, health): the old container runs again (see
    /// `rollback.restored`).
    RolledBack {
        reason: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        rollback: Option<UpdateRollback>,
    },
    /// The update could not run at all (agent offline, refused, connection lost).
    Failed {
        code: String,
        reason: String,
    },
}

/// The end of a fleet update.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetSummary {
    pub updated: Vec<FleetTarget>,
    /// Already on the newest build when its turn came (nothing was recreated).
    pub unchanged: Vec<FleetTarget>,
    pub rolled_back: Vec<Skipped>,
    pub failed: Vec<Skipped>,
    /// Left alone by label or because an earlier update rolled back.
    pub skipped: Vec<Skipped>,
}

impl FleetSummary {
    /// True when nothing rolled back or failed.
    pub fn ok(&self) -> bool {
        self.rolled_back.is_empty() && self.failed.is_empty()
    }
}

/// The containers to update, from the relay's update states: every container with an update
/// on the chosen agent(s), ordered by agent and container, minus the labelled ones.
pub fn plan(states: &UpdateListResponse, options: &FleetOptions) -> FleetPlan {
    let mut plan = FleetPlan::default();
    let mut agents: Vec<_> = states
        .agents
        .iter()
        .filter(|a| {
            options
                .agent
                .as_deref()
                .is_none_or(|wanted| a.name == wanted || a.state.agent_id == wanted)
        })
        .collect();
    agents.sort_by(|a, b| a.name.cmp(&b.name));
    for agent in agents {
        let mut updates: Vec<&ImageUpdate> = agent.state.updates.iter().collect();
        updates.sort_by(|a, b| a.container.cmp(&b.container));
        for update in updates {
            let target = FleetTarget {
                agent: agent.name.clone(),
                container: update.container.clone(),
                image: update.image.clone(),
                current_digest: update.current_digest.clone(),
                new_digest: update.new_digest.clone(),
            };
            let named = options.named.iter().any(|n| {
                *n == target.container || *n == format!("{}/{}", target.agent, target.container)
            });
            let skip = match update.label.as_deref().map(str::trim) {
                Some("never") => {
                    Some("labelled zedops.update=never: fleet updates leave it alone".to_string())
                }
                Some("pinned") if !named => Some(format!(
                    "labelled zedops.update=pinned: update it by name (zedops update --agent {} {})",
                    target.agent, target.container
                )),
                _ => None,
            };
            match skip {
                Some(reason) => plan.skipped.push(Skipped { target, reason }),
                None => plan.targets.push(target),
            }
        }
    }
    plan
}

/// Runs `plan`: the first `options.canary` targets one at a time, then the rest
/// `options.parallel` at a time; after the first rollback or failure no new update starts (the
/// ones running finish) and the rest are skipped. `progress` sees every step. Afterwards the
/// agents touched check again, so the relay's update states no longer list what was updated.
pub async fn run(
    client: &Client,
    plan: FleetPlan,
    options: &FleetOptions,
    progress: &(dyn Fn(FleetProgress) + Send + Sync),
) -> FleetSummary {
    let mut summary = FleetSummary {
        skipped: plan.skipped,
        ..FleetSummary::default()
    };
    let canaries = options.canary.min(plan.targets.len());
    let mut queue = plan.targets.into_iter();
    let mut stopped = false;
    for target in queue.by_ref().take(canaries) {
        let outcome = update_one(client, &target, true, options, progress).await;
        stopped |= record(&mut summary, target, outcome);
        if stopped {
            break;
        }
    }
    let mut running = FuturesUnordered::new();
    loop {
        while !stopped && running.len() < options.parallel.max(1) {
            let Some(target) = queue.next() else { break };
            running.push(async move {
                let outcome = update_one(client, &target, false, options, progress).await;
                (target, outcome)
            });
        }
        let Some((target, outcome)) = running.next().await else {
            break;
        };
        stopped |= record(&mut summary, target, outcome);
    }
    let reason = "not started: an earlier update rolled back or failed";
    summary.skipped.extend(queue.map(|target| Skipped {
        target,
        reason: reason.to_string(),
    }));
    // Refresh what the relay lists (best effort: the next periodic check does it anyway).
    let mut touched: Vec<&str> = (summary.updated.iter().chain(&summary.unchanged))
        .map(|t| t.agent.as_str())
        .collect();
    touched.sort_unstable();
    touched.dedup();
    for agent in touched {
        if let Err(err) = client.check_updates(Some(agent)).await {
            tracing::debug!(%agent, %err, "could not refresh the update state after updating");
        }
    }
    summary
}

/// Adds one outcome to the summary; true when it stops the fleet update.
fn record(summary: &mut FleetSummary, target: FleetTarget, outcome: Outcome) -> bool {
    match outcome {
        Outcome::Updated { updated } if !updated.changed => {
            summary.unchanged.push(target);
            false
        }
        Outcome::Updated { .. } => {
            summary.updated.push(target);
            false
        }
        Outcome::RolledBack { reason, .. } => {
            summary.rolled_back.push(Skipped { target, reason });
            true
        }
        Outcome::Failed { code, reason } => {
            summary.failed.push(Skipped {
                target,
                reason: format!("{code}: {reason}"),
            });
            true
        }
    }
}

/// One container's `container.update`, followed to its end.
async fn update_one(
    client: &Client,
    target: &FleetTarget,
    canary: bool,
    options: &FleetOptions,
    progress: &(dyn Fn(FleetProgress) + Send + Sync),
) -> Outcome {
    progress(FleetProgress::Started {
        target: target.clone(),
        canary,
    });
    let outcome = follow(client, target, options, progress).await;
    progress(FleetProgress::Finished {
        target: target.clone(),
        outcome: outcome.clone(),
    });
    outcome
}

async fn follow(
    client: &Client,
    target: &FleetTarget,
    options: &FleetOptions,
    progress: &(dyn Fn(FleetProgress) + Send + Sync),
) -> Outcome {
    let failed = |err: ClientError| Outcome::Failed {
        code: err.code().as_str().to_string(),
        reason: err.to_string(),
    };
    let mut stream = match client
        .update_container(&target.agent, &target.container, options.update.clone())
        .await
    {
        Ok(stream) => stream,
        Err(err) => return failed(err),
    };
    while let Some(frame) = stream.next().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(err) if err.code().as_str() == ErrorCode::UpdateRolledBack.as_str() => {
                return Outcome::RolledBack {
                    reason: err.to_string(),
                    rollback: None,
                };
            }
            Err(err) => return failed(err),
        };
        if let Some(step) = &frame.step {
            progress(FleetProgress::Step {
                target: target.clone(),
                phase: step.phase.to_string(),
                message: step.message.clone(),
            });
        }
        if let Some(pulled) = frame.progress {
            progress(FleetProgress::Pull {
                target: target.clone(),
                progress: pulled,
            });
        }
        let Some(end) = frame.end else { continue };
        return match (end.error_code, frame.updated, frame.rolled_back) {
            (None, Some(updated), _) => Outcome::Updated { updated },
            (Some(ErrorCode::UpdateRolledBack), _, rollback) => Outcome::RolledBack {
                reason: end.reason,
                rollback,
            },
            (Some(code), _, Some(rollback)) => Outcome::RolledBack {
                reason: format!("{code}: {}", end.reason),
                rollback: Some(rollback),
            },
            (Some(code), _, None) => Outcome::Failed {
                code: code.as_str().to_string(),
                reason: end.reason,
            },
            (None, None, _) => Outcome::Failed {
                code: "INTERNAL".into(),
                reason: "the update ended without saying what it did".into(),
            },
        };
    }
    Outcome::Failed {
        code: "DISCONNECTED".into(),
        reason: "the update's stream ended before its last frame".into(),
    }
}

#[cfg(test)]
mod tests {
    use zedops_protocol::{AgentUpdates, UpdateState};

    use super::*;

    /// A container found already on the newest build when its turn came is counted apart: the
    /// summary must not say it was updated when nothing was recreated.
    #[test]
    fn an_update_that_changed_nothing_is_not_counted_as_updated() {
        let target = |container: &str| FleetTarget {
            agent: "eu-1".into(),
            container: container.into(),
            image: "reg:5000/app:1".into(),
            current_digest: String::new(),
            new_digest: String::new(),
        };
        let outcome = |changed| Outcome::Updated {
            updated: ContainerUpdated {
                name: "x".into(),
                image: "reg:5000/app:1".into(),
                old_image_id: "sha256:1".into(),
                old_digest: None,
                new_image_id: "sha256:2".into(),
                new_digest: None,
                container_id: "c".into(),
                changed,
            },
        };
        let mut summary = FleetSummary::default();
        assert!(!record(&mut summary, target("new"), outcome(true)));
        assert!(!record(&mut summary, target("same"), outcome(false)));
        assert_eq!(summary.updated, [target("new")]);
        assert_eq!(summary.unchanged, [target("same")]);
        assert!(summary.ok());
        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(json["unchanged"][0]["container"], "same");
    }

    fn update(container: &str, label: Option<&str>) -> ImageUpdate {
        ImageUpdate {
            container: container.into(),
            image: "reg:5000/app:1".into(),
            current_digest: format!("sha256:{}", "a".repeat(64)),
            new_digest: format!("sha256:{}", "b".repeat(64)),
            found_at: 1,
            label: label.map(str::to_string),
        }
    }

    fn states() -> UpdateListResponse {
        let agent = |name: &str, updates| AgentUpdates {
            name: name.into(),
            online: true,
            state: UpdateState {
                agent_id: format!("id-{name}").into(),
                checked_at: Some(1),
                updates,
                skipped: vec![],
            },
        };
        UpdateListResponse {
            agents: vec![
                agent("web-2", vec![update("b", None)]),
                agent(
                    "web-1",
                    vec![
                        update("z", None),
                        update("never", Some("never")),
                        update("pin", Some("pinned")),
                        update("a", None),
                    ],
                ),
            ],
            failed: vec![],
        }
    }

    #[test]
    fn the_plan_orders_targets_and_skips_labelled_containers() {
        let all = plan(&states(), &FleetOptions::default());
        let order: Vec<String> = all
            .targets
            .iter()
            .map(|t| format!("{}/{}", t.agent, t.container))
            .collect();
        assert_eq!(order, ["web-1/a", "web-1/z", "web-2/b"]);
        let skipped: Vec<&str> = all
            .skipped
            .iter()
            .map(|s| s.target.container.as_str())
            .collect();
        assert_eq!(skipped, ["never", "pin"]);
        assert!(all.skipped[0].reason.contains("never"));
        assert!(
            all.skipped[1]
                .reason
                .contains("zedops update --agent web-1 pin")
        );

        // Named, a pinned container is updated; a `never` one still is not. One agent only.
        let options = FleetOptions {
            agent: Some("id-web-1".into()),
            named: vec!["web-1/pin".into(), "never".into()],
            ..FleetOptions::default()
        };
        let one = plan(&states(), &options);
        let order: Vec<&str> = one.targets.iter().map(|t| t.container.as_str()).collect();
        assert_eq!(order, ["a", "pin", "z"]);
        assert_eq!(one.skipped.len(), 1);
    }
}
