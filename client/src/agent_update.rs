//! Agent self-updates followed live, for one agent or a fleet: `agent.update`, then each state
//! as it changes, from the relay's `agent.update.progress` pushes (downloading with bytes,
//! verifying, restarting, online with the new version, rolled back with the reason). A relay
//! that sends no pushes (older) still works: the answer says restarting, and the agent list,
//! asked every few seconds, says when the agent is back and on which version. A fleet rollout
//! runs canaries first (one at a time), then the rest a few at a time, and stops at the first
//! failure. Shared by the CLI (`zedops agent update`) and the desktop app ("Update agents").

use std::time::Duration;

use futures_util::future::join_all;
use serde::Serialize;
use tokio::sync::broadcast;
use tokio::time::Instant;
use zedops_protocol::{AgentId, AgentUpdatePhase, AgentUpdateProgress, AgentUpdated};

use crate::client::Client;
use crate::connection::ClientEvent;

/// Time beyond the agent's revert deadline to wait for it to show up again.
pub const COME_BACK_MARGIN: Duration = Duration::from_secs(30);
/// How often the agent list is asked while waiting (the pushes are the fast path).
const POLL: Duration = Duration::from_secs(2);
/// After the agent list shows the agent back on its old version, how long to wait for the
/// relay's `rolled-back` push with the reason (the relay waits 5 s for the agent's).
const REASON_WAIT: Duration = Duration::from_secs(8);

/// Where one agent's update is. The order is the order they happen in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum AgentStep {
    /// Waiting for its wave.
    Queued,
    /// `agent.update` sent; the agent starts downloading.
    Asked,
    /// The agent downloads the build.
    Downloading { bytes: u64, total: u64 },
    /// The agent checks size, SHA-256 and the release signature.
    Verifying,
    /// Installed; the agent restarts into it.
    Restarting { from: String, to: String },
    /// Back online with the new version.
    Online { version: String },
    /// The new build did not stay (or the agent did not come back): why, in words.
    RolledBack { reason: String },
    /// Refused or failed before anything was replaced.
    Failed { code: String, reason: String },
    /// Not started: an agent before it failed.
    NotStarted,
}

impl AgentStep {
    fn rank(&self) -> u8 {
        match self {
            Self::Queued => 0,
            Self::Asked => 1,
            Self::Downloading { .. } => 2,
            Self::Verifying => 3,
            Self::Restarting { .. } => 4,
            Self::Online { .. } | Self::RolledBack { .. } | Self::Failed { .. } => 5,
            Self::NotStarted => 6,
        }
    }
}

/// What the update asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentUpdateOptions {
    /// The version expected; the relay refuses when it serves another.
    pub version: Option<String>,
    pub allow_downgrade: bool,
}

/// How a rollout ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSummary {
    /// Online with the new version.
    pub updated: Vec<String>,
    /// Refused, failed or rolled back, with why.
    pub failed: Vec<(String, String)>,
    /// Not started because of a failure before them.
    pub not_started: Vec<String>,
}

impl RolloutSummary {
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.not_started.is_empty()
    }
}

/// Reports each agent's step: the agent as it was given (name or id) and the step.
pub type Report<'a> = &'a (dyn Fn(&str, AgentStep) + Send + Sync);

/// Updates `agents` (names or ids, in order): the first `canary` one at a time, then
/// `parallel` at a time (at least 1); stops at the first failure, the rest reported
/// [`AgentStep::NotStarted`].
pub async fn roll_out(
    client: &Client,
    agents: &[String],
    canary: usize,
    parallel: usize,
    options: &AgentUpdateOptions,
    report: Report<'_>,
) -> RolloutSummary {
    for agent in agents {
        report(agent, AgentStep::Queued);
    }
    let canaries = canary.min(agents.len());
    let waves = agents[..canaries]
        .chunks(1)
        .chain(agents[canaries..].chunks(parallel.max(1)));
    let mut summary = RolloutSummary::default();
    let mut done = 0;
    for wave in waves {
        let ends = join_all(
            wave.iter()
                .map(|agent| update_one(client, agent, options, report)),
        )
        .await;
        done += wave.len();
        for (agent, end) in wave.iter().zip(ends) {
            match end {
                AgentStep::Online { .. } => summary.updated.push(agent.clone()),
                AgentStep::RolledBack { reason } => summary
                    .failed
                    .push((agent.clone(), format!("rolled back: {reason}"))),
                AgentStep::Failed { code, reason } => summary
                    .failed
                    .push((agent.clone(), format!("{code}: {reason}"))),
                other => summary
                    .failed
                    .push((agent.clone(), format!("ended in state {other:?}"))),
            }
        }
        if !summary.failed.is_empty() {
            for agent in &agents[done..] {
                report(agent, AgentStep::NotStarted);
                summary.not_started.push(agent.clone());
            }
            break;
        }
    }
    summary
}

/// Updates one agent (name or id) and follows it to its end: [`AgentStep::Online`],
/// [`AgentStep::RolledBack`] or [`AgentStep::Failed`], which is also the last step reported.
pub async fn update_one(
    client: &Client,
    agent: &str,
    options: &AgentUpdateOptions,
    report: Report<'_>,
) -> AgentStep {
    let mut follow = Follow {
        agent,
        id: None,
        rank: 0,
        report,
    };
    // Subscribed before asking, so no push is missed.
    let mut events = client.events();
    follow.say(AgentStep::Asked);
    let request = client.update_agent(agent, options.version.as_deref(), options.allow_downgrade);
    tokio::pin!(request);
    let answer = loop {
        tokio::select! {
            biased;
            answer = &mut request => break answer,
            event = events.recv() => match event {
                Ok(ClientEvent::AgentUpdate(p)) => follow.pushed(&p),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => {
                    break (&mut request).await;
                }
            },
        }
    };
    let updated = match answer {
        Ok(updated) => updated,
        Err(err) => {
            let end = AgentStep::Failed {
                code: err.code().as_str().to_string(),
                reason: err.to_string(),
            };
            return follow.say(end);
        }
    };
    // The agent's pushes came before its answer on the wire: said before `restarting`.
    while let Ok(event) = events.try_recv() {
        if let ClientEvent::AgentUpdate(p) = event {
            follow.pushed(&p);
        }
    }
    follow.id = Some(updated.agent_id.clone());
    follow.say(AgentStep::Restarting {
        from: updated.from.clone(),
        to: updated.to.clone(),
    });
    let end = come_back(client, &updated, &mut events, &mut follow).await;
    follow.say(end)
}

/// One agent's steps, said once each and in order.
struct Follow<'a> {
    agent: &'a str,
    /// The agent's id, once the answer said it.
    id: Option<AgentId>,
    rank: u8,
    report: Report<'a>,
}

impl Follow<'_> {
    fn say(&mut self, step: AgentStep) -> AgentStep {
        let rank = step.rank();
        // Downloading repeats (bytes); everything else is said once, never going back.
        if rank > self.rank || (rank == 2 && self.rank == 2) {
            self.rank = rank;
            (self.report)(self.agent, step.clone());
        }
        step
    }

    fn mine(&self, p: &AgentUpdateProgress) -> bool {
        match &self.id {
            Some(id) => p.agent_id == *id,
            None => p.agent_id == self.agent || p.name == self.agent,
        }
    }

    /// A push before the answer: downloading or verifying.
    fn pushed(&mut self, p: &AgentUpdateProgress) {
        if !self.mine(p) {
            return;
        }
        match p.phase {
            AgentUpdatePhase::Downloading => {
                self.say(AgentStep::Downloading {
                    bytes: p.bytes.unwrap_or_default(),
                    total: p.total.unwrap_or_default(),
                });
            }
            AgentUpdatePhase::Verifying => {
                self.say(AgentStep::Verifying);
            }
            _ => {}
        }
    }
}

/// Waits for the agent to come back: the relay's `online` / `rolled-back` push, or (an older
/// relay, a missed push) the agent list.
async fn come_back(
    client: &Client,
    updated: &AgentUpdated,
    events: &mut broadcast::Receiver<ClientEvent>,
    follow: &mut Follow<'_>,
) -> AgentStep {
    let deadline =
        Instant::now() + Duration::from_secs(updated.revert_after_secs) + COME_BACK_MARGIN;
    let mut poll = tokio::time::interval_at(Instant::now() + POLL, POLL);
    let (mut went_offline, mut back_on_old) = (false, None::<(String, Instant)>);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(ClientEvent::AgentUpdate(p)) if follow.mine(&p) && p.version == updated.to => {
                    match p.phase {
                        AgentUpdatePhase::Online => {
                            return AgentStep::Online { version: updated.to.clone() };
                        }
                        AgentUpdatePhase::RolledBack => {
                            let reason = p.reason.clone().unwrap_or_default();
                            let running = p.running.clone().unwrap_or_else(|| "its previous version".into());
                            return AgentStep::RolledBack {
                                reason: format!("back on {running}: {reason}"),
                            };
                        }
                        _ => {}
                    }
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                // The client is closing: the list cannot be asked either.
                Err(broadcast::error::RecvError::Closed) => {
                    return AgentStep::RolledBack {
                        reason: "the connection to the relay ended before the agent came back".into(),
                    };
                }
            },
            _ = poll.tick() => {
                if let Ok(agents) = client.agents().await
                    && let Some(agent) = agents.into_iter().find(|a| a.id == updated.agent_id)
                {
                    let version = agent.info.as_ref().map(|i| i.version.clone());
                    if agent.online && version.as_deref() == Some(updated.to.as_str()) {
                        return AgentStep::Online { version: updated.to.clone() };
                    }
                    went_offline |= !agent.online;
                    if went_offline && agent.online && back_on_old.is_none() {
                        back_on_old = Some((
                            version.unwrap_or_else(|| "an unknown version".into()),
                            Instant::now() + REASON_WAIT,
                        ));
                    }
                }
                if let Some((version, until)) = &back_on_old
                    && Instant::now() >= *until
                {
                    return AgentStep::RolledBack {
                        reason: format!(
                            "it is online with {version} again, not {}; its log on that server says why",
                            updated.to
                        ),
                    };
                }
                if Instant::now() >= deadline {
                    return AgentStep::RolledBack {
                        reason: format!(
                            "it did not come back within {} s; check the agent on that server",
                            updated.revert_after_secs + COME_BACK_MARGIN.as_secs()
                        ),
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn steps_are_said_once_each_and_never_backwards() {
        let seen = Mutex::new(vec![]);
        let report =
            |agent: &str, step: AgentStep| seen.lock().unwrap().push((agent.to_string(), step));
        let mut follow = Follow {
            agent: "web-1",
            id: None,
            rank: 0,
            report: &report,
        };
        let push = |phase, agent_id: &str, name: &str| AgentUpdateProgress {
            agent_id: agent_id.into(),
            name: name.into(),
            phase,
            version: "0.2.0".into(),
            bytes: Some(5),
            total: Some(10),
            running: None,
            reason: None,
        };
        follow.pushed(&push(AgentUpdatePhase::Downloading, "id-1", "web-1"));
        follow.pushed(&push(AgentUpdatePhase::Downloading, "id-2", "web-2"));
        follow.pushed(&push(AgentUpdatePhase::Downloading, "id-1", "web-1"));
        follow.pushed(&push(AgentUpdatePhase::Verifying, "id-1", "web-1"));
        follow.pushed(&push(AgentUpdatePhase::Downloading, "id-1", "web-1"));
        follow.say(AgentStep::Verifying);
        follow.say(AgentStep::Online {
            version: "0.2.0".into(),
        });
        let steps: Vec<u8> = seen.lock().unwrap().iter().map(|(_, s)| s.rank()).collect();
        assert_eq!(steps, [2, 2, 3, 5]);
        assert_eq!(
            serde_json::to_value(AgentStep::RolledBack { reason: "x".into() }).unwrap(),
            serde_json::json!({"state": "rolled-back", "reason": "x"})
        );
    }
}
