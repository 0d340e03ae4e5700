//! Live state for one relay connection: a full snapshot of the containers, then every container
//! lifecycle change Docker reports, pushed to the relay as it happens. After any gap (Docker's
//! event stream broke, or this is a new relay connection) a new snapshot goes first, because
//! Docker keeps only its last 256 events and some may have been lost meanwhile. Pushes stay
//! within the agent's budget ([`crate::pacing`]): in an event storm the changes reach the relay
//! as one `container.sync` instead of one `container.event` each. An event's row comes from
//! what the agent knows when the event says it ([`crate::rows`]), so a busy engine does not hold
//! the push back; Docker is asked only for what it alone knows.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use tokio::sync::mpsc;
use zedops_protocol::{
    AgentId, Container, ContainerAction, ContainerEvent, ContainerSync, subject,
};
use zedops_transport::Backoff;

use crate::docker::{DockerClient, DockerError, DockerEvent};
use crate::outbox::send;
use crate::pacing::{Offer, Pacer, PushBudget};
use crate::rows::Rows;

/// How far back the event stream starts before the snapshot, so that no event between asking
/// for the stream and Docker serving it is lost (Docker replays from its buffer).
const REPLAY_MARGIN: Duration = Duration::from_secs(1);

/// Background lists of rows pushed from what was known, at most this many at once (more are
/// skipped: the row stays as the event left it until the next event or snapshot).
const MAX_REFRESHES: usize = 8;

/// Why following stopped.
enum Gap {
    /// The relay connection is gone: nothing more to do for it.
    RelayGone,
    /// Docker did not answer or its stream broke: retry with backoff and a new snapshot.
    Docker(DockerError),
}

impl From<DockerError> for Gap {
    fn from(err: DockerError) -> Self {
        Gap::Docker(err)
    }
}

/// Follows Docker for as long as `tx` (the relay connection's outgoing queue) is open, pushing
/// within `budget` (see [`crate::pacing`]).
pub async fn follow(docker: Arc<DockerClient>, tx: mpsc::Sender<String>, budget: PushBudget) {
    let mut reason = "connected to the relay";
    let mut backoff = Backoff::default();
    let mut failures = 0u32;
    let mut live = Live {
        docker: &docker,
        tx: &tx,
        // Events already sent, so those Docker replays after a reconnect are not sent twice.
        sent: Recent::default(),
        // One per relay connection, as the relay's limit is.
        pacer: Pacer::new(budget, Instant::now()),
        rows: Rows::default(),
        refreshes: FuturesUnordered::new(),
    };
    loop {
        let since = SystemTime::now() - REPLAY_MARGIN;
        match live.follow_once(since, reason, &mut failures).await {
            Gap::RelayGone => return,
            Gap::Docker(err) => {
                failures += 1;
                // Logged once per outage: Docker down for hours must not fill the journal.
                if failures == 1 {
                    tracing::warn!(%err, "cannot follow Docker's events; retrying with backoff");
                } else {
                    tracing::debug!(%err, attempt = failures, "still cannot follow Docker's events");
                }
                reason = "reconnected to Docker";
                tokio::time::sleep(backoff.next_delay()).await;
                if tx.is_closed() {
                    return;
                }
            }
        }
        if failures == 0 {
            backoff.reset();
        }
    }
}

/// What following needs across Docker reconnects within one relay connection.
struct Live<'a> {
    docker: &'a DockerClient,
    tx: &'a mpsc::Sender<String>,
    sent: Recent,
    pacer: Pacer,
    /// The last known row of each container.
    rows: Rows,
    /// Lists of rows pushed from what was known: (id, the row's version, Docker's row).
    refreshes: FuturesUnordered<BoxFuture<'a, Refreshed>>,
}

type Refreshed = (String, u64, Result<Option<Container>, DockerError>);

/// What woke the loop up.
enum Next {
    Docker(Option<Result<DockerEvent, DockerError>>),
    SyncDue,
    Refreshed(Refreshed),
}

impl Live<'_> {
    /// Sends a snapshot, then events until Docker's stream breaks or the relay connection
    /// closes. Events over the push budget are held and a `container.sync` sent for them instead.
    async fn follow_once(&mut self, since: SystemTime, reason: &str, failures: &mut u32) -> Gap {
        let mut events = match self.docker.events(since).await {
            Ok(events) => Box::pin(events),
            Err(err) => return err.into(),
        };
        if let Err(gap) = self.sync(reason.to_string()).await {
            return gap;
        }
        if *failures > 0 {
            tracing::info!("following Docker's events again");
            *failures = 0;
        }
        loop {
            // While events are held, wake up when their sync is due even if Docker is silent.
            let due = self.pacer.next_due();
            let next = tokio::select! {
                item = events.next() => Next::Docker(item),
                () = sleep_until(due) => Next::SyncDue,
                Some(refreshed) = self.refreshes.next(), if !self.refreshes.is_empty() => {
                    Next::Refreshed(refreshed)
                }
            };
            let item = match next {
                Next::Docker(item) => item,
                Next::SyncDue => {
                    if self.pacer.poll(Instant::now()) {
                        let reason =
                            "container events came faster than the agent pushes them (coalesced)";
                        if let Err(gap) = self.sync(reason.to_string()).await {
                            return gap;
                        }
                    }
                    continue;
                }
                Next::Refreshed((id, version, listed)) => {
                    match listed {
                        Ok(row) => self.rows.refreshed(&id, version, row),
                        Err(err) => {
                            tracing::debug!(%err, "could not list a container again after its event")
                        }
                    }
                    continue;
                }
            };
            let event = match item {
                Some(Ok(event)) => event,
                Some(Err(err)) => return err.into(),
                None => return Gap::Docker(DockerError::stream_ended()),
            };
            // Docker's events are not in time order across containers, so only an exact repeat
            // (a replay after reconnecting) is skipped.
            let key = (event.container_id.clone(), event.action, event.time_nano);
            if !self.sent.insert(key) {
                continue;
            }
            if self.pacer.offer(Instant::now(), has_room(self.tx)) == Offer::Hold {
                // The next sync carries it; not even the row is asked for, which spares Docker
                // hundreds of list calls in a storm. Its known row is out of date until then.
                self.rows.forget(&event.container_id);
                continue;
            }
            if !self.push(event).await {
                return Gap::RelayGone;
            }
        }
    }

    /// Sends the full list (`reason` says why) once the budget allows, and tells the pacer.
    async fn sync(&mut self, reason: String) -> Result<(), Gap> {
        let ready = self.pacer.sync_ready_at(Instant::now());
        tokio::time::sleep_until(ready.into()).await;
        // Listed after waiting, so the sync is as fresh as it can be.
        let containers = self.docker.list().await?;
        self.rows.replace(&containers);
        tracing::debug!(count = containers.len(), %reason, "sending a container snapshot");
        // A big fleet goes in parts, each under the relay's size cap for a push.
        for part in ContainerSync::whole(containers, reason).into_parts() {
            if !send(self.tx, subject::CONTAINER_SYNC, &part).await {
                return Err(Gap::RelayGone);
            }
        }
        self.pacer.synced(Instant::now());
        Ok(())
    }

    /// Pushes one event with the container's row as it is now: from what the agent knows when
    /// the event says it (then listed again in the background), else from Docker. False when
    /// the relay is gone.
    async fn push(&mut self, event: DockerEvent) -> bool {
        let docker = self.docker;
        // The row as it is now, so clients update it without asking; a destroyed one has none.
        let container =
            match event.action {
                ContainerAction::Destroy => {
                    self.rows.forget(&event.container_id);
                    None
                }
                _ => match self.rows.after(&event) {
                    Some((row, version)) => {
                        self.refresh(&event.container_id, version);
                        Some(row)
                    }
                    None => {
                        let listed = docker.container(&event.container_id).await.unwrap_or_else(
                            |err| {
                                tracing::debug!(%err, "could not list a container after its event");
                                None
                            },
                        );
                        self.rows.listed(&event, listed)
                    }
                },
            };
        let requested = docker.was_requested(&event.container_id, &event.name);
        let pushed = ContainerEvent {
            agent_id: AgentId::default(),
            container_id: event.container_id.into(),
            name: event.name,
            action: event.action,
            time_nano: event.time_nano,
            exit_code: event.exit_code,
            health: event.health,
            requested,
            container,
        };
        if pushed.is_unexpected_death() {
            tracing::info!(container = %pushed.name, action = %pushed.action, exit_code = ?pushed.exit_code, "container stopped without a ZedOps request");
        }
        send(self.tx, subject::CONTAINER_EVENT, &pushed).await
    }

    /// Lists `id` again in the background, to replace the row pushed from what was known with
    /// Docker's own (its status text, a restart policy's `restarting`) before its next event.
    fn refresh(&mut self, id: &str, version: u64) {
        if self.refreshes.len() >= MAX_REFRESHES {
            return;
        }
        let (docker, id) = (self.docker, id.to_string());
        self.refreshes.push(Box::pin(async move {
            let listed = docker.container(&id).await;
            (id, version, listed)
        }));
    }
}

/// True while at least half of the outgoing queue is free: the other half is kept for answers
/// to requests and stream chunks, so pushes never crowd them out of a slowly read connection.
fn has_room(tx: &mpsc::Sender<String>) -> bool {
    tx.capacity() * 2 >= tx.max_capacity()
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// The last events sent, to recognise Docker's replays. Replays only reach back
/// [`REPLAY_MARGIN`], so events a minute older than the newest are forgotten: keeping the last
/// [`Recent::CAPACITY`] regardless made the agent grow by about 1.8 MB over its first hour on a
/// host with an event a second (the soak in BENCHMARKS.md).
#[derive(Default)]
struct Recent {
    order: std::collections::VecDeque<EventKey>,
    keys: std::collections::HashSet<EventKey>,
}

type EventKey = (String, ContainerAction, i64);

impl Recent {
    /// The most kept, for a storm (thousands of events within the horizon).
    const CAPACITY: usize = 4096;
    /// How far behind the newest event (in Docker's own time, so no clock of the agent's is
    /// compared with Docker's) an event is still kept: far more than [`REPLAY_MARGIN`], to allow
    /// for the engine's and the agent's clocks differing.
    const HORIZON_NANOS: i64 = 60_000_000_000;

    /// False when `key` was sent already.
    fn insert(&mut self, key: EventKey) -> bool {
        if !self.keys.insert(key.clone()) {
            return false;
        }
        let oldest_kept = key.2.saturating_sub(Self::HORIZON_NANOS);
        self.order.push_back(key);
        while let Some(old) = self.order.front()
            && (self.order.len() > Self::CAPACITY || old.2 < oldest_kept)
        {
            if let Some(old) = self.order.pop_front() {
                self.keys.remove(&old);
            }
        }
        // After a storm, give back what it made the tables grow to.
        if self.keys.capacity() > 256 && self.keys.capacity() > 4 * self.keys.len() {
            self.keys.shrink_to(2 * self.keys.len());
            self.order.shrink_to(2 * self.order.len());
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_repeats_are_skipped() {
        let mut recent = Recent::default();
        let key = |t| ("c".to_string(), ContainerAction::Die, t);
        assert!(recent.insert(key(20)));
        // An older event arriving later is still new.
        assert!(recent.insert(key(10)));
        assert!(!recent.insert(key(20)), "a replay");
        for t in 100..(100 + Recent::CAPACITY as i64) {
            recent.insert(key(t));
        }
        assert!(recent.insert(key(20)), "forgotten once out of the window");
    }

    #[test]
    fn events_a_minute_behind_the_newest_are_forgotten() {
        let mut recent = Recent::default();
        let second = 1_000_000_000i64;
        let key = |t| ("c".to_string(), ContainerAction::Start, t);
        // An hour of an event a second keeps only the last minute's.
        for s in 0..3600 {
            assert!(recent.insert(key(s * second)));
        }
        assert!(recent.keys.len() <= 61, "kept {}", recent.keys.len());
        assert_eq!(recent.keys.len(), recent.order.len());
        // A replay of the last second is still recognised; an hour-old event is not kept.
        assert!(!recent.insert(key(3599 * second)), "a replay");
        assert!(recent.insert(key(0)), "forgotten");
        // A storm within the horizon stays capped, and its tables shrink once it is over.
        let t = 3600 * second;
        for i in 0..20_000 {
            recent.insert(key(t + i));
        }
        assert_eq!(recent.keys.len(), Recent::CAPACITY);
        recent.insert(key(t + 120 * second));
        assert_eq!(recent.keys.len(), 1);
        assert!(recent.keys.capacity() < 1024);
    }
}
