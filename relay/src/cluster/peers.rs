//! The cluster itself: one NATS connection per relay, the map of which relay holds which agent,
//! the stand-ins for agents held elsewhere, and the tasks that serve the other relays.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::{HeaderMap, Message};
use futures_util::StreamExt;
use tokio::sync::{Notify, mpsc, oneshot};
use tracing::{debug, info, warn};
use zedops_protocol::{AgentRequestKind, AgentStatus, ErrorCode, ErrorReply, Frame};

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
}

/// The other relays, as seen from this one (see the module docs of [`crate::cluster`]).
pub(crate) struct Cluster {
    me: Weak<Cluster>,
    relay_id: Arc<str>,
    client: async_nats::Client,
    out: Outbox,
    state: Weak<AppState>,
    presence: Mutex<HashMap<String, Held>>,
    relays: Mutex<HashMap<String, Instant>>,
    stand_ins: Mutex<HashMap<String, Arc<AgentLink>>>,
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
        let client = options
            .connect_options()
            .await?
            .event_callback(move |event| {
                let told = told.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            info!("connected to NATS");
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
            out,
            state: Arc::downgrade(state),
            presence: Mutex::default(),
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
        ] {
            subscriptions.push(client.subscribe(subject).await?);
        }
        info!(nats = %shown, relay = %relay_id, "joined the relay cluster");
        tokio::spawn(publish(client.clone(), outgoing));
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
                _ => self.on_answer(&message),
            }
        }
    }

    /// An agent's answer (or its departure) for a request this relay sent through a stand-in.
    fn on_answer(&self, message: &Message) {
        let headers = message.headers.as_ref();
        let (Some(agent), Some(inbox)) =
            (header(headers, wire::AGENT), header(headers, wire::INBOX))
        else {
            return;
        };
        let Some(link) = self
            .stand_ins
            .lock()
            .expect("stand-ins lock")
            .get(agent)
            .cloned()
        else {
            return;
        };
        if header(headers, wire::GONE).is_some() {
            link.fail_inbox(inbox);
            return;
        }
        match std::str::from_utf8(&message.payload) {
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
            {
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
                    },
                );
            }
            if let Some(link) = self
                .stand_ins
                .lock()
                .expect("stand-ins lock")
                .get(&presence.agent)
            {
                link.protocol_version
                    .store(presence.version, std::sync::atomic::Ordering::Relaxed);
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
                    let stand_in = self
                        .stand_ins
                        .lock()
                        .expect("stand-ins lock")
                        .get(&id)
                        .cloned();
                    if let Some(link) = stand_in {
                        fail_everything(&link);
                    }
                    if state.hub.local_agent(&id).is_none() {
                        state
                            .hub
                            .push_status_here(status(&id, &held.name, false, held.last_seen));
                    }
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
        loop {
            let message = tokio::select! {
                m = frames.next() => match m { Some(m) => m, None => return },
                _ = &mut stop => return,
            };
            self.to_agent(&link, message).await;
        }
    }

    /// One frame from another relay for an agent connected here.
    async fn to_agent(&self, link: &AgentLink, message: Message) {
        let headers = message.headers.as_ref();
        let Some(from) = header(headers, wire::FROM).filter(|r| is_relay_id(r)) else {
            return warn!("a frame for an agent from another relay without its id; dropped");
        };
        if let Some(inbox) = header(headers, wire::CLOSE) {
            link.forwards.lock().expect("forwards lock").remove(inbox);
            return;
        }
        let ack = |what: &'static [u8]| {
            let reply = message.reply.clone();
            let client = self.client.clone();
            async move {
                if let Some(reply) = reply {
                    let _ = client.publish(reply, bytes::Bytes::from_static(what)).await;
                }
            }
        };
        let superseded = self
            .presence
            .lock()
            .expect("presence lock")
            .get(&link.id)
            .is_some_and(|h| h.since_ms > link.connected_ms);
        if superseded || link.tx.is_closed() {
            return ack(wire::ACK_NOT_HERE).await;
        }
        let Ok(text) = String::from_utf8(message.payload.to_vec()) else {
            return warn!("a frame for an agent from another relay is not text; dropped");
        };
        let frame = match Frame::decode(&text) {
            Ok(frame) => frame,
            Err(e) => {
                return warn!(error = %e, "an unreadable frame for an agent from another relay; dropped");
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
                            out: Arc::new(self.out.clone()),
                        },
                    );
                }
                full
            };
            if full {
                warn!(agent = %link.name, "too many requests from other relays waiting on this agent; refused");
                return ack(wire::ACK_NOT_HERE).await;
            }
        }
        match tokio::time::timeout(ACK_TIMEOUT, link.tx.send(text)).await {
            Ok(Ok(())) => ack(wire::ACK_QUEUED).await,
            _ => {
                if let Some(inbox) = &frame.reply {
                    link.forwards.lock().expect("forwards lock").remove(inbox);
                }
                ack(wire::ACK_NOT_HERE).await
            }
        }
    }

    fn stand_in(&self, id: &str, held: &Held) -> Arc<AgentLink> {
        let mut stand_ins = self.stand_ins.lock().expect("stand-ins lock");
        if let Some(link) = stand_ins.get(id) {
            return link.clone();
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
        stand_ins.insert(id.to_string(), link.clone());
        if let Some(me) = self.me.upgrade() {
            tokio::spawn(me.send_frames(Arc::downgrade(&link), rx));
        }
        link
    }

    /// Carries the frames queued on a stand-in to the relay holding its agent, in order.
    async fn send_frames(self: Arc<Self>, link: Weak<AgentLink>, mut rx: mpsc::Receiver<String>) {
        let Some(agent_id) = link.upgrade().map(|l| l.id.clone()) else {
            return;
        };
        let subject = wire::agent_subject(&agent_id);
        while let Some(text) = rx.recv().await {
            let mut headers = HeaderMap::new();
            headers.insert(wire::FROM, &*self.relay_id);
            if let Some(inbox) = text.strip_prefix(CLOSE_MARK) {
                headers.insert(wire::CLOSE, inbox);
                let _ = self
                    .client
                    .publish_with_headers(subject.clone(), headers, bytes::Bytes::new())
                    .await;
                continue;
            }
            let inbox = Frame::decode(&text).ok().and_then(|f| f.reply);
            if !self.nats_up() {
                // Without NATS nothing reaches the other relays: say so at once.
                if let (Some(inbox), Some(link)) = (&inbox, link.upgrade()) {
                    unavailable(&link, inbox);
                }
                continue;
            }
            let payload = bytes::Bytes::from(text);
            let mut delivered = false;
            for attempt in 0..=MOVED_RETRIES {
                let asked = self.client.request_with_headers(
                    subject.clone(),
                    headers.clone(),
                    payload.clone(),
                );
                match tokio::time::timeout(ACK_TIMEOUT, asked).await {
                    Ok(Ok(ack)) if &*ack.payload == wire::ACK_QUEUED => {
                        delivered = true;
                        break;
                    }
                    // It reached the relay the agent just left (not sent): offer it again.
                    Ok(Ok(_)) if attempt < MOVED_RETRIES => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Ok(Ok(_)) => break,
                    Ok(Err(e)) => {
                        if e.kind() != async_nats::RequestErrorKind::NoResponders {
                            warn!(error = %e, agent = %agent_id, "could not reach the relay holding the agent");
                        }
                        break;
                    }
                    Err(_) => {
                        warn!(agent = %agent_id, "the relay holding the agent did not take a frame in time");
                        break;
                    }
                }
            }
            if !delivered && let (Some(inbox), Some(link)) = (inbox, link.upgrade()) {
                if self.nats_up() {
                    // Nobody holds the agent: AGENT_OFFLINE at once rather than a timeout.
                    link.fail_inbox(&inbox);
                } else {
                    unavailable(&link, &inbox);
                }
            }
        }
    }
}

impl Peers for Cluster {
    fn connected(&self, link: &Arc<AgentLink>) {
        let (stop_tx, stop_rx) = oneshot::channel();
        self.holding
            .lock()
            .expect("holding lock")
            .insert(link.id.clone(), (link.conn_id, stop_tx));
        if let Some(me) = self.me.upgrade() {
            tokio::spawn(me.hold(link.clone(), stop_rx));
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
            .presence
            .lock()
            .expect("presence lock")
            .get(&link.id)
            .is_some_and(|h| h.since_ms >= link.connected_ms);
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
        agent_id: agent_id.to_string(),
        name: name.to_string(),
        online,
        last_seen: Some(crate::time::rfc3339(last_seen)),
    }
}

/// Publishes the outbox, in order, until every sender is gone.
async fn publish(client: async_nats::Client, mut outgoing: mpsc::Receiver<wire::Outgoing>) {
    while let Some(m) = outgoing.recv().await {
        if let Err(e) = client
            .publish_with_headers(m.subject, m.headers, m.payload)
            .await
        {
            debug!(%e, "could not publish to NATS");
        }
    }
}
