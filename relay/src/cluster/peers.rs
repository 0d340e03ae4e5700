//! The cluster itself: one NATS connection per relay, the map of which relay holds which agent,
//! the stand-ins for agents held elsewhere, and the tasks that serve the other relays.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::{HeaderMap, Message};
use bytes::BytesMut;
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use tokio::sync::{Notify, mpsc, oneshot};
use tracing::{debug, info, warn};
use zedops_protocol::{AgentRequestKind, AgentStatus, ErrorCode, ErrorReply, Frame};

use super::moving::Moving;
use super::wire::{self, Outbox, Presence, RelayHello, header};
use super::{CLOSE_MARK, ClusterOptions, Forward, is_stream};
use crate::hub::{AgentLink, Kick, Peers};
use crate::state::AppState;

/// How often a relay says it is alive.
const ALIVE_EVERY: Duration = Duration::from_secs(1);
/// A relay silent this long is gone (killed, or cut off from NATS): its agents are offline
/// until they connect elsewhere.
const RELAY_TIMEOUT: Duration = Duration::from_secs(4);
/// How long a relay waits for another to take a frame for its agent.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// Times a frame is offered again when it reached a relay the agent just left.
const MOVED_RETRIES: u32 = 10;
/// Batches of frames for one agent sent to the relay holding it before the first is
/// acknowledged: with [`wire::BATCH_ENTRIES`] each, what a stand-in has in flight is bounded.
const PIPELINE: usize = 8;
/// How long a holding relay may take to queue one batch to its agent (waiting while the agent's
/// queue is full), within the asking relay's [`ACK_TIMEOUT`].
const BATCH_TIMEOUT: Duration = Duration::from_secs(4);
/// How long a relay waits for another to say it is there.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Requests from other relays one agent may owe answers to at once.
const MAX_FORWARDS: usize = 4096;
/// The queue group of the relays holding an agent: one of them takes each frame.
const HOLDERS: &str = "holders";

/// What this relay knows of an agent held by another.
#[derive(Debug, Clone)]
struct Held {
    relay: String,
    name: String,
    since_ms: i64,
    version: u32,
    last_seen: i64,
    /// The holding relay reads batches of frames (an older relay is sent one at a time).
    batches: bool,
}

/// A stand-in for an agent another relay holds, and which relay took each request sent
/// through it: when that relay dies after the agent moved on, those fail at once.
struct StandIn {
    link: Arc<AgentLink>,
    /// Relay inbox → the relay that took the request (pruned as requests end).
    taken: Mutex<HashMap<String, Arc<str>>>,
    /// The last relay found gone (killed) after the agent left it: batches sent to it and not
    /// yet acknowledged never will be, and fail at once rather than at [`ACK_TIMEOUT`].
    gone: tokio::sync::watch::Sender<Option<Arc<str>>>,
}

impl StandIn {
    /// Gives up on what `relay` took for this agent (it is gone): requests are answered
    /// `AGENT_OFFLINE`, streams end as when their agent leaves.
    fn fail_taken_by(&self, relay: &str) -> usize {
        let inboxes: Vec<String> = {
            let mut taken = self.taken.lock().expect("taken lock");
            let inboxes: Vec<String> = taken
                .iter()
                .filter(|(_, r)| ***r == *relay)
                .map(|(inbox, _)| inbox.clone())
                .collect();
            for inbox in &inboxes {
                taken.remove(inbox);
            }
            inboxes
        };
        for inbox in &inboxes {
            self.link.fail_inbox(inbox);
        }
        inboxes.len()
    }

    /// Records that `relay` took these requests; forgets those that ended.
    fn record(&self, relay: &Arc<str>, entries: &[Entry]) {
        let mut taken = self.taken.lock().expect("taken lock");
        for inbox in entries.iter().filter_map(|e| e.inbox.as_ref()) {
            taken.insert(inbox.clone(), relay.clone());
        }
        // Bounded by the requests and streams in flight to the agent: prune those that ended.
        if taken.len() >= 64 && taken.len() >= 2 * self.link_in_flight() {
            let pending = self.link.pending.lock().expect("pending lock");
            let streams = self.link.streams.lock().expect("streams lock");
            taken.retain(|inbox, _| pending.contains_key(inbox) || streams.contains_key(inbox));
        }
    }

    fn link_in_flight(&self) -> usize {
        self.link.pending.lock().expect("pending lock").len()
            + self.link.streams.lock().expect("streams lock").len()
    }
}

/// A frame on a stand-in's queue on its way to the relay holding the agent.
struct Entry {
    text: String,
    /// The request's inbox: what fails if the frame cannot be delivered (none for a stream's
    /// input or cancel, or a close).
    inbox: Option<String>,
    /// Times it reached a relay that no longer held the agent.
    moved: u32,
}

impl Entry {
    fn new(text: String) -> Self {
        /// The envelope's reply, read without copying the data.
        #[derive(serde::Deserialize)]
        struct Head<'a> {
            #[serde(borrow, default)]
            reply: Option<std::borrow::Cow<'a, str>>,
        }
        let inbox = if text.starts_with(CLOSE_MARK) {
            None
        } else {
            serde_json::from_str::<Head>(&text)
                .ok()
                .and_then(|h| h.reply.map(|r| r.into_owned()))
        };
        Self {
            text,
            inbox,
            moved: 0,
        }
    }
}

/// What came of one batch sent to the relay holding the agent.
enum Outcome {
    /// The first `n` entries were queued to the agent by `relay` (all when `n` is the batch's
    /// length); the others reached a relay that no longer holds it, or were sent out of turn.
    Taken { n: usize, relay: Option<Arc<str>> },
    /// NATS's answer: no relay holds the agent.
    NoResponders,
    /// No acknowledgement within [`ACK_TIMEOUT`].
    TimedOut,
    /// Sent to the relay that held the agent, which was then found gone (killed) before it
    /// acknowledged: whether it passed the frames on is unknown, so they are not sent again.
    HolderGone,
    /// The request failed otherwise (NATS connection lost).
    Failed(async_nats::RequestError),
}

/// The other relays, as seen from this one (see the module docs of [`crate::cluster`]).
pub(crate) struct Cluster {
    me: Weak<Cluster>,
    relay_id: Arc<str>,
    client: async_nats::Client,
    out: Outbox,
    /// The same outbox, as the hub's forwards hold it (one allocation, shared).
    answers: Arc<Outbox>,
    state: Weak<AppState>,
    presence: Mutex<HashMap<String, Held>>,
    /// Agents whose relay said they left because it drains, and when: requests for them wait
    /// for them to come back on another relay (see [`Peers::moving`]).
    moving: Moving,
    relays: Mutex<HashMap<String, Instant>>,
    stand_ins: Mutex<HashMap<String, Arc<StandIn>>>,
    /// This relay's agents: the task serving each one's subject, stopped when it leaves.
    holding: Mutex<HashMap<String, (u64, oneshot::Sender<()>)>>,
}

impl Cluster {
    pub(super) async fn connect(
        state: &Arc<AppState>,
        options: &ClusterOptions,
    ) -> anyhow::Result<Arc<Cluster>> {
        let reconnected = Arc::new(Notify::new());
        let told = reconnected.clone();
        let shown = options.shown();
        // Why the last attempt to reach NATS failed: said once, not at every retry.
        let failing = Arc::new(Mutex::new(None::<String>));
        let servers = shown.clone();
        let client = options
            .connect_options()
            .await?
            .event_callback(move |event| {
                let (told, failing, servers) = (told.clone(), failing.clone(), servers.clone());
                async move {
                    let failed = match &event {
                        async_nats::Event::ClientError(async_nats::ClientError::Other(reason)) => {
                            Some(reason.clone())
                        }
                        async_nats::Event::ServerError(
                            async_nats::ServerError::AuthorizationViolation,
                        ) => Some("authorization violation".to_string()),
                        async_nats::Event::ServerError(async_nats::ServerError::Other(said))
                            if said.to_lowercase().contains("authentication expired") =>
                        {
                            Some("user authentication expired".to_string())
                        }
                        _ => None,
                    };
                    if let Some(reason) = failed {
                        let mut last = failing.lock().unwrap();
                        if last.as_deref() != Some(reason.as_str()) {
                            warn!("{}", super::options::explain_failure(&reason, &servers));
                            *last = Some(reason);
                        }
                        return;
                    }
                    match event {
                        async_nats::Event::Connected => {
                            info!("connected to NATS");
                            *failing.lock().unwrap() = None;
                            told.notify_one();
                        }
                        async_nats::Event::Disconnected => {
                            warn!(
                                "lost NATS; agents on other relays are unreachable until it is back"
                            )
                        }
                        other => debug!(event = %other, "NATS"),
                    }
                }
            })
            .connect(options.addresses()?)
            .await
            .with_context(|| format!("connecting to NATS at {shown}"))?;
        let relay_id: Arc<str> = uuid::Uuid::new_v4().simple().to_string().into();
        let (out, outgoing) = Outbox::new();
        let cluster = Arc::new_cyclic(|me| Cluster {
            me: me.clone(),
            relay_id: relay_id.clone(),
            client: client.clone(),
            answers: Arc::new(out.clone()),
            out,
            state: Arc::downgrade(state),
            presence: Mutex::default(),
            moving: Moving::default(),
            relays: Mutex::default(),
            stand_ins: Mutex::default(),
            holding: Mutex::default(),
        });
        let mut subscriptions = Vec::new();
        for subject in [
            wire::relay_subject(&relay_id),
            wire::PRESENCE.to_string(),
            wire::SYNC.to_string(),
            wire::ALIVE.to_string(),
            wire::EVENT.to_string(),
            wire::KICK.to_string(),
            wire::LOGIN.to_string(),
        ] {
            subscriptions.push(client.subscribe(subject).await?);
        }
        info!(nats = %shown, relay = %relay_id, "joined the relay cluster");
        tokio::spawn(publish(client.clone(), outgoing, cluster.out.readers()));
        tokio::spawn(cluster.clone().serve(subscriptions, state.shutdown.clone()));
        tokio::spawn(
            cluster
                .clone()
                .heartbeat(reconnected, state.shutdown.clone()),
        );
        cluster.out.json(
            wire::SYNC,
            &RelayHello {
                relay: relay_id.to_string(),
            },
        );
        Ok(cluster)
    }

    fn nats_up(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    fn state(&self) -> Option<Arc<AppState>> {
        self.state.upgrade()
    }

    /// Messages from the other relays, until the relay shuts down.
    async fn serve(
        self: Arc<Self>,
        subscriptions: Vec<async_nats::Subscriber>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut inbound = futures_util::stream::select_all(subscriptions);
        loop {
            let message = tokio::select! {
                m = inbound.next() => match m { Some(m) => m, None => return },
                _ = shutdown.changed() => return,
            };
            let Some(state) = self.state() else { return };
            match message.subject.as_str() {
                wire::PRESENCE => self.on_presence(&state, &message),
                wire::SYNC => {
                    self.alive_seen(&message);
                    self.announce_all(&state);
                }
                wire::ALIVE => self.alive_seen(&message),
                wire::EVENT => {
                    if let (Some(agent), Ok(frame)) = (
                        header(message.headers.as_ref(), wire::AGENT),
                        std::str::from_utf8(&message.payload),
                    ) {
                        state.hub.push_event_here(agent, frame.to_string());
                    }
                }
                wire::KICK => match serde_json::from_slice::<wire::Kick>(&message.payload) {
                    Ok(kick) => {
                        if let Some(agent) = &kick.agent {
                            state.hub.kick_agent_here(agent);
                        }
                        if let Some(session) = &kick.session {
                            let why = if kick.role_changed {
                                Kick::RoleChanged
                            } else {
                                Kick::Revoked
                            };
                            state.hub.kick_session_here(session, why);
                        }
                    }
                    Err(e) => warn!(%e, "unreadable revocation from another relay"),
                },
                wire::LOGIN => match serde_json::from_slice::<wire::Login>(&message.payload) {
                    // NATS hands a relay its own messages too: those were counted already.
                    Ok(login) if *login.relay == *self.relay_id => {}
                    Ok(login) if login.ok => {
                        state
                            .login_limit
                            .succeeded_elsewhere(&login.user, login.address);
                    }
                    Ok(login) => state
                        .login_limit
                        .failed_elsewhere(&login.user, login.address),
                    Err(e) => warn!(%e, "unreadable login outcome from another relay"),
                },
                _ => self.on_answer(&message),
            }
        }
    }

    /// Agents' answers (or their departure) for requests this relay sent through stand-ins,
    /// one per message or several in a batch; or another relay asking whether this one is there.
    fn on_answer(&self, message: &Message) {
        let headers = message.headers.as_ref();
        if header(headers, wire::ANSWERS).is_some() {
            let Some(parts) = wire::parts(&message.payload).filter(|p| p.len() % 4 == 0) else {
                return warn!("an unreadable batch of answers from another relay; dropped");
            };
            let mut last: Option<(&[u8], Arc<StandIn>)> = None;
            for answer in parts.chunks_exact(4) {
                let [agent, inbox, gone, data] = answer else {
                    continue;
                };
                // Answers in a batch are mostly for one agent: look its stand-in up once.
                let stand_in = match &last {
                    Some((id, s)) if id == agent => Some(s.clone()),
                    _ => std::str::from_utf8(agent)
                        .ok()
                        .and_then(|a| self.stand_in_of(a)),
                };
                let Some(stand_in) = stand_in else { continue };
                if let Ok(inbox) = std::str::from_utf8(inbox) {
                    deliver(&stand_in.link, inbox, *gone == b"1", data);
                }
                last = Some((agent, stand_in));
            }
            return;
        }
        if header(headers, wire::PROBE).is_some() {
            if let Some(reply) = &message.reply {
                self.out
                    .send(reply.to_string(), HeaderMap::new(), bytes::Bytes::new());
            }
            return;
        }
        let (Some(agent), Some(inbox)) =
            (header(headers, wire::AGENT), header(headers, wire::INBOX))
        else {
            return;
        };
        if let Some(stand_in) = self.stand_in_of(agent) {
            let gone = header(headers, wire::GONE).is_some();
            deliver(&stand_in.link, inbox, gone, &message.payload);
        }
    }

    fn stand_in_of(&self, agent: &str) -> Option<Arc<StandIn>> {
        self.stand_ins
            .lock()
            .expect("stand-ins lock")
            .get(agent)
            .cloned()
    }

    /// Asks `relay` whether it is there, after `agent` left it for another relay: when NATS
    /// says no relay listens on its subject (killed, cut off), what it took for the agent will
    /// never be answered, and fails now rather than after the request timeout (or, for a
    /// stream, when the silent relay is dropped).
    async fn probe(self: Arc<Self>, relay: String, agent: String) {
        let mut headers = HeaderMap::new();
        headers.insert(wire::PROBE, "1");
        headers.insert(wire::FROM, &*self.relay_id);
        let asked = self.client.request_with_headers(
            wire::relay_subject(&relay),
            headers,
            bytes::Bytes::new(),
        );
        let gone = matches!(
            tokio::time::timeout(PROBE_TIMEOUT, asked).await,
            Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders
        );
        if !gone {
            return;
        }
        if let Some(stand_in) = self.stand_in_of(&agent) {
            stand_in.gone.send_replace(Some(relay.as_str().into()));
            let failed = stand_in.fail_taken_by(&relay);
            if failed > 0 {
                info!(relay = %relay, agent = %stand_in.link.name, failed, "the relay the agent left is gone; what it took for the agent failed");
            }
        }
    }

    fn on_presence(&self, state: &AppState, message: &Message) {
        let presence = match serde_json::from_slice::<Presence>(&message.payload) {
            Ok(p) if zedops_protocol::looks_like_agent_id(&p.agent) => p,
            Ok(_) => return warn!("presence for a malformed agent id from another relay"),
            Err(e) => return warn!(%e, "unreadable presence from another relay"),
        };
        if *presence.relay == *self.relay_id {
            return;
        }
        self.relays
            .lock()
            .expect("relays lock")
            .insert(presence.relay.clone(), Instant::now());
        let local = state.hub.local_agent(&presence.agent);
        self.note_moving(&presence);
        if presence.online {
            if let Some(local) = &local {
                if local.connected_ms > presence.since_ms {
                    // Ours is the newer connection: say so, so the other relay closes its own.
                    self.announce(local, true);
                    return;
                }
                info!(agent = %presence.name, "the agent connected to another relay; closing its connection here");
                state.hub.close_replaced(&presence.agent, presence.since_ms);
            }
            let left = {
                let mut map = self.presence.lock().expect("presence lock");
                if map
                    .get(&presence.agent)
                    .is_some_and(|h| h.since_ms > presence.since_ms)
                {
                    return;
                }
                map.insert(
                    presence.agent.clone(),
                    Held {
                        relay: presence.relay.clone(),
                        name: presence.name.clone(),
                        since_ms: presence.since_ms,
                        version: presence.version,
                        last_seen: presence.last_seen,
                        batches: presence.batches,
                    },
                )
                .map(|old| old.relay)
                .filter(|old| *old != presence.relay)
            };
            if let Some(stand_in) = self.stand_in_of(&presence.agent) {
                stand_in
                    .link
                    .protocol_version
                    .store(presence.version, std::sync::atomic::Ordering::Relaxed);
                if let (Some(left), Some(me)) = (left, self.me.upgrade()) {
                    // The agent moved: is the relay it left still there to answer what it took?
                    tokio::spawn(me.probe(left, presence.agent.clone()));
                }
            }
            if local.is_none() {
                state.hub.push_status_here(status(
                    &presence.agent,
                    &presence.name,
                    true,
                    presence.last_seen,
                ));
            }
        } else {
            let removed = {
                let mut map = self.presence.lock().expect("presence lock");
                let same = map
                    .get(&presence.agent)
                    .is_some_and(|h| h.relay == presence.relay && h.since_ms == presence.since_ms);
                same.then(|| map.remove(&presence.agent)).flatten()
            };
            if removed.is_some() && local.is_none() {
                state.hub.push_status_here(status(
                    &presence.agent,
                    &presence.name,
                    false,
                    presence.last_seen,
                ));
            }
        }
    }

    fn alive_seen(&self, message: &Message) {
        if let Ok(hello) = serde_json::from_slice::<RelayHello>(&message.payload)
            && *hello.relay != *self.relay_id
        {
            self.relays
                .lock()
                .expect("relays lock")
                .insert(hello.relay, Instant::now());
        }
    }

    /// Says this relay is alive; forgets relays that went silent (and their agents); after
    /// NATS comes back, asks every relay for its agents and announces its own.
    async fn heartbeat(
        self: Arc<Self>,
        reconnected: Arc<Notify>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(ALIVE_EVERY);
        let hello = RelayHello {
            relay: self.relay_id.to_string(),
        };
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = reconnected.notified() => {
                    // Relays could not be heard while NATS was away: a fresh grace for each.
                    for seen in self.relays.lock().expect("relays lock").values_mut() {
                        *seen = Instant::now();
                    }
                    self.out.json(wire::SYNC, &hello);
                    if let Some(state) = self.state() {
                        self.announce_all(&state);
                    }
                    continue;
                }
                _ = shutdown.changed() => return,
            }
            self.out.json(wire::ALIVE, &hello);
            let Some(state) = self.state() else { return };
            if !self.nats_up() {
                // Silence is NATS's, not the relays': keep their agents (requests to them are
                // answered UNAVAILABLE meanwhile).
                for seen in self.relays.lock().expect("relays lock").values_mut() {
                    *seen = Instant::now();
                }
                continue;
            }
            let gone: Vec<String> = {
                let mut relays = self.relays.lock().expect("relays lock");
                let gone = relays
                    .iter()
                    .filter(|(_, seen)| seen.elapsed() > RELAY_TIMEOUT)
                    .map(|(r, _)| r.clone())
                    .collect::<Vec<_>>();
                for r in &gone {
                    relays.remove(r);
                }
                gone
            };
            for relay in gone {
                warn!(relay = %relay, "another relay went silent; its agents are offline until they reconnect");
                let lost: Vec<(String, Held)> = {
                    let mut map = self.presence.lock().expect("presence lock");
                    let ids: Vec<String> = map
                        .iter()
                        .filter(|(_, h)| h.relay == relay)
                        .map(|(id, _)| id.clone())
                        .collect();
                    ids.into_iter()
                        .filter_map(|id| map.remove(&id).map(|h| (id, h)))
                        .collect()
                };
                for (id, held) in lost {
                    // What this relay sent the agent through the silent relay will never be
                    // answered: requests fail and streams (a log follow) end now, instead of
                    // waiting for the request timeout or, for a stream, forever.
                    if let Some(stand_in) = self.stand_in_of(&id) {
                        fail_everything(&stand_in.link);
                    }
                    if state.hub.local_agent(&id).is_none() {
                        state
                            .hub
                            .push_status_here(status(&id, &held.name, false, held.last_seen));
                    }
                }
                // What it took for agents that have moved on since will not be answered either.
                let stand_ins: Vec<Arc<StandIn>> = self
                    .stand_ins
                    .lock()
                    .expect("stand-ins lock")
                    .values()
                    .cloned()
                    .collect();
                for stand_in in stand_ins {
                    stand_in.fail_taken_by(&relay);
                }
                // Answers owed to the silent relay would go nowhere.
                for (id, _, _) in state.hub.local_agent_ids() {
                    if let Some(link) = state.hub.local_agent(&id) {
                        link.forwards
                            .lock()
                            .expect("forwards lock")
                            .retain(|_, f| *f.relay != *relay);
                    }
                }
            }
        }
    }

    /// Remembers an agent leaving a draining relay, and forgets it once it is online again.
    fn note_moving(&self, presence: &Presence) {
        if presence.online {
            self.moving.arrived(&presence.agent);
        } else if presence.moving {
            self.moving.left(&presence.agent);
        }
    }

    fn announce(&self, link: &AgentLink, online: bool) {
        let presence = Presence {
            relay: self.relay_id.to_string(),
            agent: link.id.clone(),
            name: link.name.clone(),
            online,
            since_ms: link.connected_ms,
            version: link
                .protocol_version
                .load(std::sync::atomic::Ordering::Relaxed),
            last_seen: link.last_seen.load(std::sync::atomic::Ordering::Relaxed),
            batches: true,
            // Leaving because this relay drains: the others wait for it to come back.
            moving: !online && self.state().is_some_and(|s| s.hub.drain.is_draining()),
        };
        self.out.json(wire::PRESENCE, &presence);
    }

    fn announce_all(&self, state: &AppState) {
        for (id, _, _) in state.hub.local_agent_ids() {
            if let Some(link) = state.hub.local_agent(&id) {
                self.announce(&link, true);
            }
        }
    }

    /// Serves agent `link`'s subject while it is connected here: frames from other relays go
    /// to the agent, and its answers back to them.
    async fn hold(self: Arc<Self>, link: Arc<AgentLink>, mut stop: oneshot::Receiver<()>) {
        let subject = wire::agent_subject(&link.id);
        let mut frames = match self
            .client
            .queue_subscribe(subject, HOLDERS.to_string())
            .await
        {
            Ok(s) => s,
            Err(e) => {
                warn!(%e, agent = %link.name, "could not serve the agent to other relays");
                return;
            }
        };
        // Subscribed at the server before the other relays learn where the agent is.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.client.flush()).await;
        self.announce(&link, true);
        // Per asking relay, the last batch taken whole on this connection: a pipelined batch
        // is taken only after its predecessor ([`wire::AFTER`]), so none overtakes another.
        let mut chains: HashMap<String, u64> = HashMap::new();
        loop {
            let message = tokio::select! {
                m = frames.next() => match m { Some(m) => m, None => return },
                _ = &mut stop => break,
            };
            self.to_agent(&link, message, &mut chains).await;
        }
        // The agent left this connection. What NATS delivered here before the unsubscribe
        // reaches nobody else: unanswered, its sender would wait out its acknowledgement
        // timeout. Each is answered instead (none taken: the agent is not here), so the asking
        // relay offers it again at once, wherever the agent is now.
        let _ = frames.unsubscribe().await;
        let until = tokio::time::Instant::now() + Duration::from_secs(2);
        while let Ok(Some(message)) = tokio::time::timeout_at(until, frames.next()).await {
            self.to_agent(&link, message, &mut chains).await;
        }
    }

    /// Frames from another relay for an agent connected here: a batch, or one frame (from a
    /// relay of an older version).
    async fn to_agent(
        &self,
        link: &AgentLink,
        message: Message,
        chains: &mut HashMap<String, u64>,
    ) {
        let headers = message.headers.as_ref();
        let Some(from) = header(headers, wire::FROM).filter(|r| is_relay_id(r)) else {
            return warn!("a frame for an agent from another relay without its id; dropped");
        };
        let Some(seq) = header(headers, wire::BATCH) else {
            return self.to_agent_one(link, from, &message).await;
        };
        let Ok(seq) = seq.parse::<u64>() else {
            return warn!("a batch of frames from another relay without its number; dropped");
        };
        self.out.reads_batches(from);
        let after = header(headers, wire::AFTER).and_then(|a| a.parse::<u64>().ok());
        let taken = if after.is_some() && chains.get(from) != after.as_ref() {
            // Its predecessor went elsewhere or was not taken whole: the asking relay sends
            // both again, in order.
            chains.remove(from);
            0
        } else {
            let Some(entries) = wire::parts(&message.payload) else {
                return warn!("an unreadable batch of frames from another relay; dropped");
            };
            let deadline = tokio::time::Instant::now() + BATCH_TIMEOUT;
            let mut taken = 0;
            for entry in &entries {
                if !self.take(link, from, entry, deadline).await {
                    break;
                }
                taken += 1;
            }
            if taken == entries.len() {
                if chains.len() >= 1024 && !chains.contains_key(from) {
                    chains.clear();
                }
                chains.insert(from.to_string(), seq);
            } else {
                chains.remove(from);
            }
            taken
        };
        if let Some(reply) = message.reply.clone() {
            let ack = format!("{taken} {}", self.relay_id);
            let _ = self.client.publish(reply, ack.into()).await;
        }
    }

    /// One frame, as relays of an older version send them (acknowledged `queued` or
    /// `not-here`; a close in a header).
    async fn to_agent_one(&self, link: &AgentLink, from: &str, message: &Message) {
        if let Some(inbox) = header(message.headers.as_ref(), wire::CLOSE) {
            link.forwards.lock().expect("forwards lock").remove(inbox);
            return;
        }
        let deadline = tokio::time::Instant::now() + BATCH_TIMEOUT;
        let ack = if self.take(link, from, &message.payload, deadline).await {
            wire::ACK_QUEUED
        } else {
            wire::ACK_NOT_HERE
        };
        if let Some(reply) = message.reply.clone() {
            let _ = self
                .client
                .publish(reply, bytes::Bytes::from_static(ack))
                .await;
        }
    }

    /// Queues one entry from relay `from` to the agent: a frame (remembering where its answers
    /// go) or a stream's close. False when the agent is not here any more (moved, left, or its
    /// queue stayed full until `deadline`): the asking relay offers it again. A malformed
    /// frame is dropped (and logged), which counts as taken.
    async fn take(
        &self,
        link: &AgentLink,
        from: &str,
        entry: &[u8],
        deadline: tokio::time::Instant,
    ) -> bool {
        if let Some(inbox) = entry.strip_prefix(CLOSE_MARK.as_bytes()) {
            if let Ok(inbox) = std::str::from_utf8(inbox) {
                link.forwards.lock().expect("forwards lock").remove(inbox);
            }
            return true;
        }
        let superseded = self
            .held(&link.id, |h| h.since_ms)
            .is_some_and(|since| since > link.connected_ms);
        if superseded || link.tx.is_closed() {
            return false;
        }
        let Ok(text) = String::from_utf8(entry.to_vec()) else {
            warn!("a frame for an agent from another relay is not text; dropped");
            return true;
        };
        let frame = match Frame::decode(&text) {
            Ok(frame) => frame,
            Err(e) => {
                warn!(error = %e, "an unreadable frame for an agent from another relay; dropped");
                return true;
            }
        };
        if let Some(inbox) = &frame.reply {
            let once = !AgentRequestKind::from_subject(&frame.subject).is_some_and(is_stream);
            let full = {
                let mut forwards = link.forwards.lock().expect("forwards lock");
                let full = forwards.len() >= MAX_FORWARDS;
                if !full {
                    forwards.insert(
                        inbox.clone(),
                        Forward {
                            relay: from.into(),
                            once,
                            out: self.answers.clone(),
                            _counted: once
                                .then(|| self.state().map(|state| state.hub.drain.count()))
                                .flatten(),
                        },
                    );
                }
                full
            };
            if full {
                warn!(agent = %link.name, "too many requests from other relays waiting on this agent; refused");
                return false;
            }
        }
        match tokio::time::timeout_at(deadline, link.tx.send(text)).await {
            Ok(Ok(())) => true,
            _ => {
                if let Some(inbox) = &frame.reply {
                    link.forwards.lock().expect("forwards lock").remove(inbox);
                }
                false
            }
        }
    }

    fn stand_in(&self, id: &str, held: &Held) -> Arc<AgentLink> {
        let mut stand_ins = self.stand_ins.lock().expect("stand-ins lock");
        if let Some(stand_in) = stand_ins.get(id) {
            return stand_in.link.clone();
        }
        let (in_flight, streams) = self.state().map_or(
            (
                crate::rate_limit::AGENT_IN_FLIGHT,
                zedops_protocol::MAX_STREAMS_PER_AGENT,
            ),
            |s| s.hub.link_limits(),
        );
        let (link, rx) = AgentLink::remote(id, &held.name, in_flight, streams);
        link.protocol_version
            .store(held.version, std::sync::atomic::Ordering::Relaxed);
        let stand_in = Arc::new(StandIn {
            link: link.clone(),
            taken: Mutex::default(),
            gone: tokio::sync::watch::channel(None).0,
        });
        stand_ins.insert(id.to_string(), stand_in.clone());
        if let Some(me) = self.me.upgrade() {
            tokio::spawn(me.send_frames(stand_in, rx));
        }
        link
    }

    /// What `read` takes from this relay's knowledge of another relay holding `agent`, if one
    /// does.
    fn held<T>(&self, agent: &str, read: impl FnOnce(&Held) -> T) -> Option<T> {
        self.presence
            .lock()
            .expect("presence lock")
            .get(agent)
            .map(read)
    }

    /// Whether the relay holding `agent` reads batches, as far as this relay knows.
    fn holder_reads_batches(&self, agent: &str) -> bool {
        self.held(agent, |h| h.batches).unwrap_or(false)
    }

    /// Carries the frames queued on a stand-in to the relay holding its agent, in order.
    ///
    /// Frames go in batches (what queued up meanwhile, up to [`wire::BATCH_ENTRIES`]), up to
    /// [`PIPELINE`] batches in flight. The holding relay takes a batch only after the one sent
    /// before it ([`wire::AFTER`]): when one reaches a relay the agent has just left, it and
    /// every batch after it are refused, and once all are back they are offered again, in
    /// order (up to [`MOVED_RETRIES`] times; then their requests fail `AGENT_OFFLINE`).
    async fn send_frames(self: Arc<Self>, stand_in: Arc<StandIn>, mut rx: mpsc::Receiver<String>) {
        let link = stand_in.link.clone();
        let subject = async_nats::Subject::from(wire::agent_subject(&link.id));
        let mut seq = 0u64;
        // Frames to offer again, ahead of the queue.
        let mut again: VecDeque<Entry> = VecDeque::new();
        // Frames of refused batches, while the batches sent after them come back.
        let mut refused: Vec<Entry> = Vec::new();
        let mut in_flight = FuturesOrdered::new();
        let mut open = true;
        loop {
            if in_flight.is_empty() && !refused.is_empty() {
                for mut entry in refused.drain(..).rev() {
                    entry.moved += 1;
                    if entry.moved > MOVED_RETRIES {
                        self.give_up(&link, &entry);
                    } else {
                        again.push_front(entry);
                    }
                }
                // Give the agent's new relay a moment to say it holds it.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let batches = self.holder_reads_batches(&link.id);
            let window = if batches { PIPELINE } else { 1 };
            let room = refused.is_empty() && in_flight.len() < window;
            let mut entries = Vec::new();
            if room && !again.is_empty() {
                entries.push(again.pop_front().expect("not empty"));
            } else {
                if !open && in_flight.is_empty() && again.is_empty() {
                    return;
                }
                tokio::select! {
                    biased;
                    Some((sent, outcome)) = in_flight.next(), if !in_flight.is_empty() => {
                        self.settle(&stand_in, sent, outcome, &mut refused);
                        continue;
                    }
                    got = rx.recv(), if room && open => match got {
                        Some(text) => entries.push(Entry::new(text)),
                        None => {
                            open = false;
                            continue;
                        }
                    },
                    else => return,
                }
            }
            // What queued up meanwhile goes in the same batch.
            let mut bytes = entries[0].text.len();
            while batches && entries.len() < wire::BATCH_ENTRIES {
                let next = match again.pop_front() {
                    Some(entry) => entry,
                    None => match rx.try_recv() {
                        Ok(text) => Entry::new(text),
                        Err(mpsc::error::TryRecvError::Disconnected) => {
                            open = false;
                            break;
                        }
                        Err(mpsc::error::TryRecvError::Empty) => break,
                    },
                };
                if bytes + next.text.len() > wire::BATCH_BYTES {
                    again.push_front(next);
                    break;
                }
                bytes += next.text.len();
                entries.push(next);
            }
            if !self.nats_up() {
                // Without NATS nothing reaches the other relays: say so at once.
                for entry in &entries {
                    self.give_up(&link, entry);
                }
                continue;
            }
            let mut headers = HeaderMap::new();
            headers.insert(wire::FROM, &*self.relay_id);
            let payload = if batches {
                seq += 1;
                headers.insert(wire::BATCH, seq.to_string().as_str());
                if !in_flight.is_empty() {
                    // The batch sent just before this one is still in flight.
                    headers.insert(wire::AFTER, (seq - 1).to_string().as_str());
                }
                let mut payload = BytesMut::with_capacity(bytes + 8 * entries.len());
                for entry in &entries {
                    wire::put(&mut payload, entry.text.as_bytes());
                }
                payload.freeze()
            } else if let Some(inbox) = entries[0].text.strip_prefix(CLOSE_MARK) {
                // A relay of an older version: a close is a header, and not acknowledged.
                headers.insert(wire::CLOSE, inbox);
                let _ = self
                    .client
                    .publish_with_headers(subject.clone(), headers, bytes::Bytes::new())
                    .await;
                continue;
            } else {
                bytes::Bytes::copy_from_slice(entries[0].text.as_bytes())
            };
            let asked = self
                .client
                .request_with_headers(subject.clone(), headers, payload);
            // The relay this batch goes to, as far as this relay knows.
            let holder: Option<Arc<str>> = self.held(&link.id, |h| h.relay.as_str().into());
            let gone = stand_in.gone.subscribe();
            in_flight.push_back(async move {
                let outcome = tokio::select! {
                    acked = tokio::time::timeout(ACK_TIMEOUT, asked) => match acked {
                        Ok(Ok(ack)) => acknowledged(&ack.payload, entries.len()),
                        Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
                            Outcome::NoResponders
                        }
                        Ok(Err(e)) => Outcome::Failed(e),
                        Err(_) => Outcome::TimedOut,
                    },
                    () = found_gone(gone, holder) => Outcome::HolderGone,
                };
                (entries, outcome)
            });
        }
    }

    /// What follows from one batch's acknowledgement (or its absence).
    fn settle(
        &self,
        stand_in: &StandIn,
        mut sent: Vec<Entry>,
        outcome: Outcome,
        refused: &mut Vec<Entry>,
    ) {
        let link = &stand_in.link;
        match outcome {
            Outcome::Taken { n, relay } => {
                let rest = sent.split_off(n.min(sent.len()));
                if let Some(relay) = relay {
                    stand_in.record(&relay, &sent);
                }
                // Reached a relay the agent just left, or sent out of turn: offered again.
                refused.extend(rest);
            }
            Outcome::NoResponders => {
                // Nobody holds the agent: AGENT_OFFLINE at once rather than a timeout.
                for entry in &sent {
                    self.give_up(link, entry);
                }
            }
            Outcome::HolderGone => {
                info!(agent = %link.name, frames = sent.len(), "the relay that held the agent is gone before it took these frames; their requests failed");
                for entry in &sent {
                    self.give_up(link, entry);
                }
            }
            Outcome::TimedOut => {
                warn!(agent = %link.name, frames = sent.len(), "the relay holding the agent did not take frames in time");
                for entry in &sent {
                    self.give_up(link, entry);
                }
            }
            Outcome::Failed(e) => {
                warn!(error = %e, agent = %link.name, "could not reach the relay holding the agent");
                for entry in &sent {
                    self.give_up(link, entry);
                }
            }
        }
    }

    /// A frame that cannot be delivered: its request fails `AGENT_OFFLINE` (`UNAVAILABLE`
    /// while NATS is unreachable); a stream ends.
    fn give_up(&self, link: &AgentLink, entry: &Entry) {
        if let Some(inbox) = &entry.inbox {
            if self.nats_up() {
                link.fail_inbox(inbox);
            } else {
                unavailable(link, inbox);
            }
        }
    }
}

/// Resolves once `holder` (where a batch went) is found gone; never when it is not known.
async fn found_gone(
    mut gone: tokio::sync::watch::Receiver<Option<Arc<str>>>,
    holder: Option<Arc<str>>,
) {
    let Some(holder) = holder else {
        return std::future::pending().await;
    };
    while gone.changed().await.is_ok() {
        if gone.borrow_and_update().as_deref() == Some(&*holder) {
            return;
        }
    }
    std::future::pending().await
}

/// Reads a holding relay's acknowledgement of `count` frames: `<taken> <relay id>`, or
/// `queued` / `not-here` from a relay of an older version (one frame).
fn acknowledged(ack: &[u8], count: usize) -> Outcome {
    if ack == wire::ACK_QUEUED {
        return Outcome::Taken {
            n: count,
            relay: None,
        };
    }
    if ack == wire::ACK_NOT_HERE {
        return Outcome::Taken { n: 0, relay: None };
    }
    let text = std::str::from_utf8(ack).unwrap_or_default();
    match text.split_once(' ') {
        Some((n, relay)) if is_relay_id(relay) => match n.parse::<usize>() {
            Ok(n) => Outcome::Taken {
                n,
                relay: Some(relay.into()),
            },
            Err(_) => Outcome::TimedOut,
        },
        _ => Outcome::TimedOut,
    }
}

impl Peers for Cluster {
    fn leaving(&self) -> oneshot::Receiver<()> {
        if let Some(state) = self.state() {
            for (id, _, _) in state.hub.local_agent_ids() {
                if let Some(link) = state.hub.local_agent(&id) {
                    // Offline and moving (this relay drains): the others stop routing to it.
                    self.announce(&link, false);
                }
            }
        }
        self.out.flushed()
    }

    fn moving(&self, agent_id: &str) -> bool {
        self.moving.is_moving(agent_id)
    }

    fn flushed(&self) -> oneshot::Receiver<()> {
        self.out.flushed()
    }

    fn connected(&self, link: &Arc<AgentLink>) {
        let (stop_tx, stop_rx) = oneshot::channel();
        self.holding
            .lock()
            .expect("holding lock")
            .insert(link.id.clone(), (link.conn_id, stop_tx));
        if let Some(me) = self.me.upgrade() {
            tokio::spawn(me.clone().hold(link.clone(), stop_rx));
            // It connected here from another relay: is that one still there to answer what
            // it took for the agent?
            let before = self.held(&link.id, |h| h.relay.clone());
            if let Some(before) = before
                && self.stand_in_of(&link.id).is_some()
            {
                tokio::spawn(me.probe(before, link.id.clone()));
            }
        }
    }

    fn disconnected(&self, link: &Arc<AgentLink>, current: bool) -> bool {
        {
            let mut holding = self.holding.lock().expect("holding lock");
            if holding
                .get(&link.id)
                .is_some_and(|(c, _)| *c == link.conn_id)
            {
                holding.remove(&link.id);
            }
        }
        if !current {
            return false;
        }
        let elsewhere = self
            .held(&link.id, |h| h.since_ms)
            .is_some_and(|since| since >= link.connected_ms);
        if !elsewhere {
            self.announce(link, false);
        }
        elsewhere
    }

    fn kicked_agent(&self, id: &str) {
        let kick = wire::Kick {
            relay: self.relay_id.to_string(),
            agent: Some(id.to_string()),
            ..Default::default()
        };
        self.out.json(wire::KICK, &kick);
    }

    fn kicked_session(&self, id: &str, why: Kick) {
        let kick = wire::Kick {
            relay: self.relay_id.to_string(),
            session: Some(id.to_string()),
            role_changed: why == Kick::RoleChanged,
            ..Default::default()
        };
        self.out.json(wire::KICK, &kick);
    }

    fn login(&self, user: &str, address: std::net::IpAddr, ok: bool) {
        let login = wire::Login {
            relay: self.relay_id.to_string(),
            user: user.to_string(),
            address,
            ok,
        };
        self.out.json(wire::LOGIN, &login);
    }

    fn event(&self, agent_id: &str, frame: &str) {
        let mut headers = HeaderMap::new();
        headers.insert(wire::AGENT, agent_id);
        self.out.send(
            wire::EVENT.to_string(),
            headers,
            bytes::Bytes::copy_from_slice(frame.as_bytes()),
        );
    }

    fn remote_agent(&self, id_or_name: &str) -> Option<Arc<AgentLink>> {
        let found = {
            let map = self.presence.lock().expect("presence lock");
            match map.get(id_or_name) {
                Some(held) => Some((id_or_name.to_string(), held.clone())),
                None if !zedops_protocol::looks_like_agent_id(id_or_name) => map
                    .iter()
                    .find(|(_, h)| h.name == id_or_name)
                    .map(|(id, h)| (id.clone(), h.clone())),
                None => None,
            }
        };
        let (id, held) = found?;
        Some(self.stand_in(&id, &held))
    }

    fn nats_connected(&self) -> bool {
        self.nats_up()
    }

    fn remote_online(&self) -> HashMap<String, i64> {
        self.presence
            .lock()
            .expect("presence lock")
            .iter()
            .map(|(id, h)| (id.clone(), h.last_seen))
            .collect()
    }
}

/// What a request for an agent on another relay is answered while NATS is unreachable.
const NATS_UNAVAILABLE: &str = "the relays' message bus (NATS) cannot be reached right now, so agents connected to other relays are out of reach; try again in a moment";

/// Answers the request on `inbox` `UNAVAILABLE` (a stream just ends, as when its agent leaves).
fn unavailable(link: &AgentLink, inbox: &str) {
    let waiting = link
        .pending
        .lock()
        .expect("pending lock")
        .contains_key(inbox);
    if waiting {
        let reply = ErrorReply::new(ErrorCode::Unavailable, NATS_UNAVAILABLE);
        let data = serde_json::to_string(&reply).expect("replies serialise");
        link.answer(inbox, &data);
    } else {
        link.fail_inbox(inbox);
    }
}

/// Gives up on every request and stream waiting on a stand-in (its relay is gone): requests
/// are answered `AGENT_OFFLINE`, streams end as when their agent leaves.
fn fail_everything(link: &AgentLink) {
    let mut inboxes: Vec<String> = link
        .pending
        .lock()
        .expect("pending lock")
        .keys()
        .cloned()
        .collect();
    inboxes.extend(link.streams.lock().expect("streams lock").keys().cloned());
    for inbox in inboxes {
        link.fail_inbox(&inbox);
    }
}

/// A relay id as this relay makes them (32 hex digits): safe inside a NATS subject.
fn is_relay_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

fn status(agent_id: &str, name: &str, online: bool, last_seen: i64) -> AgentStatus {
    AgentStatus {
        agent_id: agent_id.into(),
        name: name.to_string(),
        online,
        last_seen: Some(crate::time::rfc3339(last_seen)),
    }
}

/// Publishes the outbox, in order, until every sender is gone. Answers waiting for the same
/// relay go as one message when it reads batches: under load, one NATS message carries many.
async fn publish(
    client: async_nats::Client,
    mut outgoing: mpsc::Receiver<wire::Outgoing>,
    readers: wire::Readers,
) {
    let mut next: Option<wire::Outgoing> = None;
    loop {
        let message = match next.take() {
            Some(m) => m,
            None => match outgoing.recv().await {
                Some(m) => m,
                None => return,
            },
        };
        let (subject, headers, payload) = match message {
            wire::Outgoing::Flush(done) => {
                let _ = client.flush().await;
                let _ = done.send(());
                continue;
            }
            wire::Outgoing::Message {
                subject,
                headers,
                payload,
            } => (subject, headers, payload),
            wire::Outgoing::Answer(answer) => {
                if !readers
                    .lock()
                    .expect("readers lock")
                    .contains(&*answer.relay)
                {
                    answer.single()
                } else {
                    let relay = answer.relay.clone();
                    let mut batch = BytesMut::with_capacity(answer.size());
                    answer.put(&mut batch);
                    let mut count = 1;
                    while count < wire::BATCH_ENTRIES {
                        match outgoing.try_recv() {
                            Ok(wire::Outgoing::Answer(a))
                                if a.relay == relay
                                    && batch.len() + a.size() <= wire::BATCH_BYTES =>
                            {
                                a.put(&mut batch);
                                count += 1;
                            }
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    let mut headers = HeaderMap::new();
                    headers.insert(wire::ANSWERS, count.to_string().as_str());
                    (wire::relay_subject(&relay), headers, batch.freeze())
                }
            }
        };
        if let Err(e) = client.publish_with_headers(subject, headers, payload).await {
            debug!(%e, "could not publish to NATS");
        }
    }
}

/// An answer from another relay for `inbox` of a stand-in: to whoever waits on it, or, when
/// the agent left before answering (`gone`), the request fails.
fn deliver(link: &AgentLink, inbox: &str, gone: bool, data: &[u8]) {
    if gone {
        return link.fail_inbox(inbox);
    }
    match std::str::from_utf8(data) {
        Ok(data) => {
            link.touch();
            if !link.answer(inbox, data) {
                debug!(
                    inbox,
                    "answer from another relay for an expired request dropped"
                );
            }
        }
        Err(_) => link.fail_inbox(inbox),
    }
}
