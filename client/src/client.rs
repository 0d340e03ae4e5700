//! The typed API of a relay connection: connect, list agents and containers, act on
//! containers, open streams, follow pushes. The connection itself (dialling, reconnecting,
//! matching answers to requests) is in [`connection`](crate::connection).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use zedops_protocol::payload::Validate;
use zedops_protocol::{
    AgentListRequest, AgentListResponse, AgentSummary, ClientRequest, Container,
    ContainerActionRequest, ContainerDetail, ContainerListRequest, ContainerListResponse,
    EventSubscribe, EventSubscribed, LIST_TIMEOUT, LogsRequest, OPERATION_TIMEOUT, Operation,
    OperationSuccess, Role, StatsRequest, new_inbox_suffix,
};

use crate::connection::{self, ClientEvent, Shared};
use crate::error::{ClientError, decode_error_answer, is_error_answer};
use crate::streams::{Logs, LogsOptions, Stats, StreamReader};

/// How much longer than the relay's own timeout a request waits before giving up locally. The
/// relay answers `TIMEOUT` itself when an agent is slow; this only covers a relay that is stuck.
pub const REQUEST_GRACE: Duration = Duration::from_secs(5);

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Relay base URL: `https://relay.example`, `wss://…`, or `http://127.0.0.1:7878` for a local relay.
    pub relay: String,
    /// Device token from [`login`](crate::login) (or `ZEDOPS_TOKEN`).
    pub token: String,
    /// PEM file with a private CA to trust besides the system roots.
    pub ca_file: Option<PathBuf>,
    /// Allow plaintext `http://`/`ws://` to a relay that is not on this machine.
    pub insecure: bool,
}

/// A connection to one relay, reconnecting in the background. Cheap to clone; all clones share
/// the connection. The connection ends when [`close`](Client::close) is called or the last clone
/// is dropped.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

/// Owned by the `Client` clones only (not by the tasks), so that dropping the last clone stops
/// the tasks.
struct Inner {
    shared: Arc<Shared>,
    user: String,
    supervisor: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.shut_down("the client was dropped");
    }
}

impl Client {
    /// Dials the relay and authenticates with the device token. Fails at once (no retry) when the
    /// relay cannot be reached or refuses the token (`UNAUTHORIZED`); later drops reconnect.
    pub async fn connect(opts: ConnectOptions) -> Result<Client, ClientError> {
        let (shared, supervisor, welcome) = connection::connect(
            &opts.relay,
            opts.token,
            opts.ca_file.as_deref(),
            opts.insecure,
        )
        .await?;
        Ok(Client {
            inner: Arc::new(Inner {
                shared,
                user: welcome.user,
                supervisor: Mutex::new(Some(supervisor)),
            }),
        })
    }

    /// The relay user this device session belongs to.
    pub fn user(&self) -> &str {
        &self.inner.user
    }

    /// Receives `container.event` and `container.sync` of these agents (ids or names), or of the
    /// whole fleet with `None`, as [`ClientEvent`]s. Replaces an earlier subscription and is
    /// renewed on every reconnect, so a caller subscribes once. Pushes that arrive between this
    /// answer and a later list are newer than that list's start: apply them after it.
    pub async fn subscribe(
        &self,
        agents: Option<Vec<String>>,
    ) -> Result<EventSubscribed, ClientError> {
        let request = EventSubscribe { agents };
        let answer: EventSubscribed = self
            .quick_request(ClientRequest::EventSubscribe(request))
            .await?;
        // Renewed by id, so a renamed agent stays watched after a reconnect.
        self.inner.shared.set_subscription(EventSubscribe {
            agents: answer.agents.clone(),
        });
        Ok(answer)
    }

    /// The user's role, as of the latest (re)connection.
    pub fn role(&self) -> Role {
        self.inner.shared.role()
    }

    /// The relay's canonical URL (`https://host:port/prefix`), the key used for stored credentials.
    pub fn relay(&self) -> String {
        self.inner.shared.relay.canonical()
    }

    /// True once the client stopped for good: closed, dropped, or refused by the relay.
    pub fn is_closed(&self) -> bool {
        self.inner.shared.is_closed()
    }

    /// True while the WebSocket is up.
    pub fn is_connected(&self) -> bool {
        self.inner.shared.is_connected()
    }

    /// True while the WebSocket is up and a [`Client::subscribe`] of this client holds: container
    /// changes then arrive as pushes, and a caller need not list again after an action.
    pub fn is_subscribed(&self) -> bool {
        self.inner.shared.is_subscribed()
    }

    /// The agents the relay knows, online or not.
    pub async fn agents(&self) -> Result<Vec<AgentSummary>, ClientError> {
        let list: AgentListResponse = self
            .quick_request(ClientRequest::AgentList(AgentListRequest {}))
            .await?;
        Ok(list.agents)
    }

    /// All containers, running and stopped, on `agent` (an agent id or name).
    pub async fn containers(&self, agent: &str) -> Result<Vec<Container>, ClientError> {
        let request = ContainerListRequest {
            agent_id: agent.into(),
        };
        let list: ContainerListResponse = self
            .quick_request(ClientRequest::ContainerList(request))
            .await?;
        Ok(list.containers)
    }

    /// Streams a container's output: the last lines, then (with `follow`) new ones until the
    /// container stops, [`Logs::cancel`] is called or the [`Logs`] is dropped. Refusals
    /// (`FORBIDDEN`, `AGENT_OFFLINE`, `CONTAINER_NOT_FOUND`) arrive as the first item.
    pub async fn logs(
        &self,
        agent: &str,
        container: &str,
        options: LogsOptions,
    ) -> Result<Logs, ClientError> {
        let request = LogsRequest {
            agent_id: agent.into(),
            container_id: container.into(),
            tail: options.tail,
            follow: options.follow,
            timestamps: options.timestamps,
        };
        self.open_stream(ClientRequest::ContainerLogs(request))
            .await
    }

    /// A running container's resource usage: one sample, or with `stream` one about every
    /// second until the container stops or the [`Stats`] is cancelled or dropped.
    pub async fn stats(
        &self,
        agent: &str,
        container: &str,
        stream: bool,
    ) -> Result<Stats, ClientError> {
        let request = StatsRequest {
            agent_id: agent.into(),
            container_id: container.into(),
            stream,
        };
        self.open_stream(ClientRequest::ContainerStats(request))
            .await
    }

    /// Sends a request whose answer is a stream of frames to its inbox.
    pub(crate) async fn open_stream<T>(
        &self,
        request: ClientRequest,
    ) -> Result<StreamReader<T>, ClientError> {
        let shared = &self.inner.shared;
        let inbox = new_inbox_suffix(uuid::Uuid::new_v4());
        let text = request.to_frame(Some(&inbox));
        let (outgoing, rx) = shared.start_stream(&inbox)?;
        let reader = StreamReader {
            shared: shared.clone(),
            inbox,
            rx,
            finished: false,
            kind: std::marker::PhantomData,
        };
        if outgoing.send(text).await.is_err() {
            return Err(ClientError::disconnected(shared.down_reason()));
        }
        Ok(reader)
    }

    /// One container in detail; environment values whose names look secret come masked.
    pub async fn inspect(
        &self,
        agent: &str,
        container: &str,
    ) -> Result<ContainerDetail, ClientError> {
        let request = ContainerActionRequest {
            agent_id: agent.into(),
            container_id: container.into(),
        };
        self.quick_request(ClientRequest::ContainerInspect(request))
            .await
    }

    /// Starts, stops or restarts `container` (a name, id or id prefix) on `agent` (an id or name).
    /// A Docker failure comes back as a [`ClientError::Remote`] with the agent's code
    /// (`DOCKER_STOP_FAILED`, …) and message.
    pub async fn action(
        &self,
        agent: &str,
        container: &str,
        op: Operation,
    ) -> Result<OperationSuccess, ClientError> {
        let request = ContainerActionRequest {
            agent_id: agent.into(),
            container_id: container.into(),
        };
        let request = match op {
            Operation::Start => ClientRequest::ContainerStart(request),
            Operation::Stop => ClientRequest::ContainerStop(request),
            Operation::Restart => ClientRequest::ContainerRestart(request),
        };
        self.operation_request(request).await
    }

    /// Sends any request and returns the answer's `data` as JSON, for tests and tools. An answer
    /// with an `errorCode` comes back as an error, like for the typed calls.
    pub async fn request_raw(
        &self,
        subject: &str,
        data: serde_json::Value,
    ) -> Result<serde_json::Value, ClientError> {
        let timeout = match Operation::from_subject(subject) {
            Some(_) => OPERATION_TIMEOUT + REQUEST_GRACE,
            None => LIST_TIMEOUT + REQUEST_GRACE,
        };
        let frame = self
            .inner
            .shared
            .request_frame_raw(subject, &data, timeout)
            .await?;
        let raw = frame.raw_data();
        if is_error_answer(raw) {
            return Err(decode_error_answer(raw));
        }
        serde_json::from_str(raw).map_err(ClientError::protocol)
    }

    /// A new receiver of [`ClientEvent`]s from now on.
    pub fn events(&self) -> broadcast::Receiver<ClientEvent> {
        self.inner.shared.subscribe_events()
    }

    /// Closes the connection and stops reconnecting. Requests still waiting fail with
    /// `DISCONNECTED`. Affects every clone.
    pub async fn close(&self) {
        self.inner
            .shared
            .shut_down("the connection was closed by this client");
        let supervisor = self
            .inner
            .supervisor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(task) = supervisor {
            let _ = task.await;
        }
    }

    /// Sends one request and decodes its answer as `Resp` (an error answer as the error).
    /// [`Client::request`] with a quick request's timeout (a list, a lookup, a change at the
    /// relay): the relay's list timeout and the grace for the answer's way back.
    pub(crate) async fn quick_request<Resp: DeserializeOwned + Validate>(
        &self,
        request: ClientRequest,
    ) -> Result<Resp, ClientError> {
        self.request(request, LIST_TIMEOUT + REQUEST_GRACE).await
    }

    /// [`Client::request`] with an operation's timeout (the agent acts, or a store writes):
    /// the relay's operation timeout and the grace for the answer's way back.
    pub(crate) async fn operation_request<Resp: DeserializeOwned + Validate>(
        &self,
        request: ClientRequest,
    ) -> Result<Resp, ClientError> {
        self.request(request, OPERATION_TIMEOUT + REQUEST_GRACE)
            .await
    }

    pub(crate) async fn request<Resp: DeserializeOwned + Validate>(
        &self,
        request: ClientRequest,
        timeout: Duration,
    ) -> Result<Resp, ClientError> {
        let frame = self.inner.shared.request_frame(&request, timeout).await?;
        let raw = frame.raw_data();
        if is_error_answer(raw) {
            return Err(decode_error_answer(raw));
        }
        frame.payload().map_err(ClientError::protocol)
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("relay", &self.inner.shared.relay.canonical())
            .field("user", &self.inner.user)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}
