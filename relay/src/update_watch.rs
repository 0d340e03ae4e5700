//! Live state of agent updates (`agent.update.progress`, relay → every admin connection): the
//! agent's own `downloading` / `verifying` pushes while it runs an update this relay started,
//! `restarting` when it answered that the build is installed, then `online` when it connects
//! again with the new version, or `rolled-back` when it comes back on its old one (with the
//! reason its guard recorded, which the agent sends after connecting; an agent that says
//! nothing within [`ROLLBACK_REPORT_WAIT`] gets a reason in the relay's words).
//!
//! Bounded: one entry per agent (an agent runs one update at a time), forgotten when the
//! update ends or after [`FORGET_AFTER`]; an agent's pushes for an update this relay did not
//! start are dropped; `downloading` is forwarded at most every [`MIN_GAP`] per agent whatever
//! the agent sends; admin connections share one broadcast queue of [`QUEUE`] frames (a slow one
//! loses the oldest; the final answer and `agent.list` stay the truth).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;
use zedops_protocol::{AgentUpdatePhase, AgentUpdateProgress, AgentUpdated, ClientPush};

/// Frames queued for admin connections.
const QUEUE: usize = 256;
/// Least time between two forwarded `downloading` pushes of one agent (at most 5 a second).
pub const MIN_GAP: Duration = Duration::from_millis(200);
/// How long after reconnecting on its old version an agent has to say why it reverted.
pub const ROLLBACK_REPORT_WAIT: Duration = Duration::from_secs(5);
/// An update not seen to end by then is forgotten (download 5 min, revert deadline, margin).
pub const FORGET_AFTER: Duration = Duration::from_secs(30 * 60);

/// One update this relay started.
#[derive(Debug)]
struct Pending {
    name: String,
    from: String,
    to: String,
    phase: Option<AgentUpdatePhase>,
    /// When the last `downloading` was forwarded.
    last_progress: Option<Instant>,
    /// The `downloading` of the whole build was forwarded (always, once, whatever the gap).
    said_whole: bool,
    started: Instant,
    /// Connected again on another version: waiting for the agent's reason.
    back_on: Option<String>,
}

/// The updates in flight and the admins' push queue. Cheap to clone.
#[derive(Clone)]
pub struct UpdateWatch {
    inner: Arc<Inner>,
}

struct Inner {
    tx: broadcast::Sender<Arc<str>>,
    pending: Mutex<HashMap<String, Pending>>,
    /// [`ROLLBACK_REPORT_WAIT`] (shorter in tests).
    report_wait: Duration,
}

impl Default for UpdateWatch {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(QUEUE);
        Self {
            inner: Arc::new(Inner {
                tx,
                pending: Mutex::default(),
                report_wait: ROLLBACK_REPORT_WAIT,
            }),
        }
    }
}

impl UpdateWatch {
    /// The pushes for an admin connection, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.inner.tx.subscribe()
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.inner.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn send(&self, id: &str, name: &str, mut progress: AgentUpdateProgress) {
        progress.agent_id = id.into();
        progress.name = name.to_string();
        // Nobody listening is fine.
        let _ = self.inner.tx.send(
            ClientPush::AgentUpdateProgress(progress)
                .to_frame(None)
                .into(),
        );
    }

    /// `agent.update` is about to ask agent `id` to install `to`.
    pub(crate) fn begin(&self, id: &str, name: &str, from: &str, to: &str) {
        let mut pending = self.pending();
        pending.retain(|_, p| p.started.elapsed() < FORGET_AFTER);
        pending.insert(
            id.to_string(),
            Pending {
                name: name.to_string(),
                from: from.to_string(),
                to: to.to_string(),
                phase: None,
                last_progress: None,
                said_whole: false,
                started: Instant::now(),
                back_on: None,
            },
        );
    }

    /// The agent refused or the request failed: nothing was installed, nothing to watch.
    pub(crate) fn failed(&self, id: &str) {
        self.pending().remove(id);
    }

    /// The agent answered: installed, restarting.
    pub(crate) fn restarting(&self, done: &AgentUpdated) {
        let name = {
            let mut pending = self.pending();
            let Some(p) = pending.get_mut(done.agent_id.as_str()) else {
                return;
            };
            p.phase = Some(AgentUpdatePhase::Restarting);
            p.name.clone()
        };
        let mut progress = AgentUpdateProgress::new(AgentUpdatePhase::Restarting, &done.to);
        progress.running = Some(done.from.clone());
        self.send(&done.agent_id, &name, progress);
    }

    /// An `agent.update.progress` from agent `id` (its connection's id, never the payload's).
    pub(crate) fn agent_said(&self, id: &str, progress: AgentUpdateProgress) {
        let mut pending = self.pending();
        let Some(p) = pending.get_mut(id) else {
            tracing::debug!(phase = ?progress.phase, "update progress for no update this relay started; dropped");
            return;
        };
        let name = p.name.clone();
        match progress.phase {
            AgentUpdatePhase::Downloading | AgentUpdatePhase::Verifying => {
                // Only while the agent works on the order, and only for the version asked.
                if p.phase >= Some(AgentUpdatePhase::Restarting) || progress.version != p.to {
                    return;
                }
                if progress.phase == AgentUpdatePhase::Downloading {
                    let whole = progress.total.is_some() && progress.bytes == progress.total;
                    let soon = p.last_progress.is_some_and(|at| at.elapsed() < MIN_GAP);
                    if p.phase == Some(AgentUpdatePhase::Verifying)
                        || p.said_whole
                        || (soon && !whole)
                    {
                        return;
                    }
                    p.said_whole = whole;
                    p.last_progress = Some(Instant::now());
                }
                p.phase = Some(progress.phase);
                drop(pending);
                let mut said = AgentUpdateProgress::new(progress.phase, &progress.version);
                said.bytes = progress.bytes;
                said.total = progress.total;
                self.send(id, &name, said);
            }
            AgentUpdatePhase::RolledBack => {
                if p.phase != Some(AgentUpdatePhase::Restarting) || progress.version != p.to {
                    return;
                }
                let running = p.back_on.clone().or(progress.running.clone());
                pending.remove(id);
                drop(pending);
                let mut said =
                    AgentUpdateProgress::new(AgentUpdatePhase::RolledBack, &progress.version);
                said.running = running;
                said.reason = progress.reason;
                self.send(id, &name, said);
            }
            AgentUpdatePhase::Restarting | AgentUpdatePhase::Online => {
                tracing::debug!(phase = ?progress.phase, "an agent cannot say this phase; dropped");
            }
        }
    }

    /// Agent `id` connected, reporting `version`: `online` when it is the new one; otherwise it
    /// reverted, and the agent's reason (or, after [`ROLLBACK_REPORT_WAIT`], the relay's) follows.
    pub(crate) fn connected(&self, id: &str, version: &str) {
        let mut pending = self.pending();
        let Some(p) = pending.get_mut(id) else {
            return;
        };
        if p.phase != Some(AgentUpdatePhase::Restarting) {
            // Connected again before it answered (a lost connection mid-download): the
            // request failed with it; this update is over.
            pending.remove(id);
            return;
        }
        if version == p.to {
            let name = p.name.clone();
            let to = p.to.clone();
            pending.remove(id);
            drop(pending);
            let mut said = AgentUpdateProgress::new(AgentUpdatePhase::Online, &to);
            said.running = Some(to.clone());
            self.send(id, &name, said);
            return;
        }
        p.back_on = Some(version.to_string());
        let (started, to, from) = (p.started, p.to.clone(), p.from.clone());
        drop(pending);
        let watch = self.clone();
        let (id, version) = (id.to_string(), version.to_string());
        tokio::spawn(async move {
            tokio::time::sleep(watch.inner.report_wait).await;
            let name = {
                let mut pending = watch.pending();
                match pending.get(&id) {
                    Some(p) if p.started == started && p.back_on.is_some() => {}
                    _ => return,
                }
                pending.remove(&id).map(|p| p.name).unwrap_or_default()
            };
            let mut said = AgentUpdateProgress::new(AgentUpdatePhase::RolledBack, &to);
            said.running = Some(version.clone());
            said.reason = Some(format!(
                "it came back on {version} (it ran {from} before), not {to}; the agent's log on \
                 that server says why"
            ));
            watch.send(&id, &name, said);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pushed(rx: &mut broadcast::Receiver<Arc<str>>) -> Vec<AgentUpdateProgress> {
        let mut out = vec![];
        while let Ok(frame) = rx.try_recv() {
            let frame = zedops_protocol::Frame::decode(&frame).unwrap();
            match ClientPush::decode(&frame).unwrap() {
                ClientPush::AgentUpdateProgress(p) => out.push(p),
                other => panic!("{other:?}"),
            }
        }
        out
    }

    fn downloading(bytes: u64) -> AgentUpdateProgress {
        let mut p = AgentUpdateProgress::new(AgentUpdatePhase::Downloading, "0.2.0");
        p.bytes = Some(bytes);
        p.total = Some(1_000_000);
        p
    }

    #[tokio::test]
    async fn a_flood_of_progress_is_thinned_and_only_for_an_update_the_relay_started() {
        let watch = UpdateWatch::default();
        let mut rx = watch.subscribe();
        // Not started here: dropped.
        watch.agent_said("a1", downloading(1));
        assert!(pushed(&mut rx).is_empty());

        watch.begin("a1", "web-1", "0.1.0", "0.2.0");
        let started = Instant::now();
        for bytes in 0..10_000 {
            watch.agent_said("a1", downloading(bytes));
        }
        let forwarded = pushed(&mut rx);
        // At most one per MIN_GAP while the flood lasted, plus the first; then the whole
        // build's once.
        let most = 1 + (started.elapsed().as_millis() / MIN_GAP.as_millis()) as usize;
        assert!(
            !forwarded.is_empty() && forwarded.len() <= most,
            "{} forwarded, at most {most}",
            forwarded.len()
        );
        assert_eq!(forwarded[0].agent_id, "a1");
        assert_eq!(forwarded[0].name, "web-1");
        for _ in 0..1000 {
            watch.agent_said("a1", downloading(1_000_000));
        }
        let whole = pushed(&mut rx);
        assert_eq!(
            whole.len(),
            1,
            "the whole build's progress is forwarded once"
        );
        assert_eq!(whole[0].bytes, Some(1_000_000));

        watch.agent_said(
            "a1",
            AgentUpdateProgress::new(AgentUpdatePhase::Verifying, "0.2.0"),
        );
        // Downloading after verifying, or the agent claiming a relay phase: dropped.
        watch.agent_said("a1", downloading(5));
        watch.agent_said(
            "a1",
            AgentUpdateProgress::new(AgentUpdatePhase::Online, "0.2.0"),
        );
        watch.restarting(&AgentUpdated {
            agent_id: "a1".into(),
            from: "0.1.0".into(),
            to: "0.2.0".into(),
            revert_after_secs: 60,
        });
        watch.connected("a1", "0.2.0");
        let phases: Vec<_> = pushed(&mut rx).into_iter().map(|p| p.phase).collect();
        assert_eq!(
            phases,
            [
                AgentUpdatePhase::Verifying,
                AgentUpdatePhase::Restarting,
                AgentUpdatePhase::Online
            ]
        );
        // Over: a later connection says nothing.
        watch.connected("a1", "0.2.0");
        assert!(pushed(&mut rx).is_empty());
    }

    #[tokio::test]
    async fn a_revert_is_said_with_the_agents_reason_or_the_relays() {
        let (tx, _) = broadcast::channel(QUEUE);
        let wait = Duration::from_millis(200);
        let watch = UpdateWatch {
            inner: Arc::new(Inner {
                tx,
                pending: Mutex::default(),
                report_wait: wait,
            }),
        };
        let mut rx = watch.subscribe();
        let done = AgentUpdated {
            agent_id: "a1".into(),
            from: "0.1.0".into(),
            to: "0.2.0".into(),
            revert_after_secs: 60,
        };
        watch.begin("a1", "web-1", "0.1.0", "0.2.0");
        watch.restarting(&done);
        watch.connected("a1", "0.1.0");
        let mut report = AgentUpdateProgress::new(AgentUpdatePhase::RolledBack, "0.2.0");
        report.reason = Some("it did not connect to the relay within 60 s".into());
        watch.agent_said("a1", report);
        tokio::time::sleep(wait * 3).await;
        let said = pushed(&mut rx);
        assert_eq!(said.len(), 2, "{said:?}");
        assert_eq!(said[1].phase, AgentUpdatePhase::RolledBack);
        assert_eq!(said[1].running.as_deref(), Some("0.1.0"));
        assert!(
            said[1]
                .reason
                .as_deref()
                .unwrap()
                .contains("did not connect")
        );

        // An agent that says nothing: the relay's words after the wait.
        watch.begin("a1", "web-1", "0.1.0", "0.2.0");
        watch.restarting(&done);
        watch.connected("a1", "0.1.0");
        tokio::time::sleep(wait * 3).await;
        let said = pushed(&mut rx);
        assert_eq!(said.len(), 2, "{said:?}");
        assert_eq!(said[1].phase, AgentUpdatePhase::RolledBack);
        assert!(
            said[1]
                .reason
                .as_deref()
                .unwrap()
                .contains("came back on 0.1.0")
        );
    }
}
