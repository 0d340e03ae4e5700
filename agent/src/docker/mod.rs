//! The local Docker engine behind one `DockerClient`: bollard stays inside this module, and
//! everything leaving it is a protocol type or a `DockerError` carrying a protocol error code.
//!
//! Docker being down is not fatal. The engine connection is opened (and its API version
//! negotiated) lazily, and forgotten after a connection failure, so the next request dials
//! again and the agent recovers on its own when Docker comes back.

pub mod archive;
mod convert;
pub mod create;
pub mod distribution;
mod events;
pub mod exec;
pub mod images;
mod logs;
pub mod own_container;
mod ports;
pub mod recreate;
pub mod registry_auth;
mod stats;

pub use events::DockerEvent;
pub use logs::LogPiece;

use std::future::Future;

use bollard::errors::Error as BollardError;
use bollard::query_parameters::{
    InspectContainerOptions, ListContainersOptionsBuilder, RestartContainerOptionsBuilder,
    StartContainerOptions, StopContainerOptionsBuilder,
};
use bollard::{API_DEFAULT_VERSION, Docker};
use tokio::sync::Mutex;
use zedops_protocol::{Container, ContainerDetail, ErrorCode, ErrorReply, STOP_GRACE_SECS};
use zedops_transport::error_chain as chain;

/// Docker's socket when neither `--docker-host` nor `DOCKER_HOST` names one.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// How long one Docker API call may take. Longer than any stop grace, so a slow stop is not cut
/// short here; the relay stops waiting earlier anyway.
const REQUEST_TIMEOUT_SECS: u64 = 60;

/// A Docker call that failed, with the code the agent answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DockerError {
    code: ErrorCode,
    message: String,
}

impl DockerError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The protocol error code for this failure.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// Docker closed its event stream (the engine restarted or shut down).
    pub fn stream_ended() -> Self {
        Self::new(
            ErrorCode::DockerNotAvailable,
            "Docker closed its event stream",
        )
    }
}

/// The answer to a request a failed Docker call ends: its code and message.
impl From<DockerError> for ErrorReply {
    fn from(err: DockerError) -> Self {
        ErrorReply::new(err.code, err.message)
    }
}

/// Engine version details reported in the agent's hello.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineInfo {
    pub version: Option<String>,
    pub id: Option<String>,
}

/// The local Docker engine.
pub struct DockerClient {
    host: String,
    /// The container the agent runs in, which it never stops or restarts.
    own_container: Option<String>,
    /// The negotiated connection; `None` until Docker answers, and again after it stops answering.
    engine: Mutex<Option<Docker>>,
    /// Stops and restarts of ZedOps' own, so their events are not mistaken for crashes.
    requested: events::Requested,
    /// Pulls running now, at most [`zedops_protocol::MAX_PULLS_PER_AGENT`].
    pulls: tokio::sync::Semaphore,
    /// What this server allows a created container (the last gate; see [`crate::policy`]).
    policy: crate::policy::LocalPolicy,
    /// Largest file one `file.get` or `file.put` may move.
    max_file_size: u64,
    /// Private registry logins from the relay (memory only).
    logins: registry_auth::Logins,
}

impl DockerClient {
    /// Prepares a client for `host` (`unix:///path` or `tcp://host:port`), else `DOCKER_HOST`,
    /// else the local socket. Never fails: an unreachable engine is retried on each request.
    pub async fn connect(host: Option<&str>) -> Self {
        let host = host
            .map(str::to_string)
            .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| DEFAULT_HOST.to_string());
        let client = Self::unconnected(host, own_container::detect());
        if let Some(id) = &client.own_container {
            tracing::info!(container = %&id[..12], "running in a container; it will not be stopped or restarted");
        }
        if let Err(err) = client.engine().await {
            tracing::warn!(%err, "Docker is not available yet; will retry on every request");
        }
        client
    }

    /// A client for `host` that has not dialled yet, with the default policy and limits.
    fn unconnected(host: String, own_container: Option<String>) -> Self {
        Self {
            host,
            own_container,
            engine: Mutex::new(None),
            requested: events::Requested::default(),
            pulls: tokio::sync::Semaphore::new(zedops_protocol::MAX_PULLS_PER_AGENT),
            policy: crate::policy::LocalPolicy::default(),
            max_file_size: zedops_protocol::DEFAULT_MAX_FILE_SIZE,
            logins: Default::default(),
        }
    }

    /// Docker's summary of every container, running and stopped.
    async fn all_containers(&self) -> Result<Vec<bollard::models::ContainerSummary>, DockerError> {
        let options = ListContainersOptionsBuilder::new().all(true).build();
        self.call(ErrorCode::DockerListFailed, None, |d| async move {
            d.list_containers(Some(options)).await
        })
        .await
    }

    /// All containers, running and stopped.
    pub async fn list(&self) -> Result<Vec<Container>, DockerError> {
        let summaries = self.all_containers().await?;
        let mut rows = Vec::with_capacity(summaries.len());
        for summary in summaries {
            rows.push(self.row(summary).await);
        }
        Ok(rows)
    }

    /// One container in detail, by name, id or id prefix; secret-looking environment values
    /// are masked before they leave this module.
    pub async fn inspect(&self, id: &str) -> Result<ContainerDetail, DockerError> {
        let name = bare(id);
        let inspected = self
            .call(ErrorCode::DockerListFailed, Some(id), |d| async move {
                d.inspect_container(name, None::<InspectContainerOptions>)
                    .await
            })
            .await?;
        Ok(convert::detail(inspected))
    }

    /// Starts a container; one already running counts as started.
    pub async fn start(&self, id: &str) -> Result<(), DockerError> {
        let name = bare(id);
        self.call(ErrorCode::DockerStartFailed, Some(id), |d| async move {
            d.start_container(name, None::<StartContainerOptions>).await
        })
        .await
    }

    /// Sets what this server allows created containers (`--allow-bind`); the default allows
    /// no bind mounts.
    pub fn set_policy(&mut self, policy: crate::policy::LocalPolicy) {
        self.policy = policy;
    }

    /// What this server allows created containers.
    pub fn policy(&self) -> &crate::policy::LocalPolicy {
        &self.policy
    }

    /// Replaces the private registry logins (`registry.logins` from the relay); returns how
    /// many are held.
    pub fn set_registry_logins(&self, logins: Vec<zedops_protocol::RegistryLogin>) -> usize {
        self.logins.replace(logins)
    }

    /// Sets the largest file one transfer may move (`--max-file-size`).
    pub fn set_max_file_size(&mut self, bytes: u64) {
        self.max_file_size = bytes;
    }

    /// The largest file one transfer may move.
    pub fn max_file_size(&self) -> u64 {
        self.max_file_size
    }

    /// Treats `id` as the agent's own container (tests; detection reads /proc otherwise).
    pub fn protect_container(&mut self, id: &str) {
        self.own_container = Some(id.to_string());
    }

    /// Refuses when `reference` (name, id or id prefix) is the container the agent runs in.
    async fn refuse_self(&self, reference: &str, failure: ErrorCode) -> Result<(), DockerError> {
        let Some(own) = &self.own_container else {
            return Ok(());
        };
        let name = bare(reference);
        let inspected = self
            .call(failure, Some(reference), |d| async move {
                d.inspect_container(name, None::<InspectContainerOptions>)
                    .await
            })
            .await?;
        if inspected.id.as_deref() == Some(own.as_str()) {
            return Err(DockerError::new(
                ErrorCode::SelfProtected,
                format!(
                    "{reference} is the container this agent runs in; stopping it would cut the server off from ZedOps"
                ),
            ));
        }
        Ok(())
    }

    /// Stops a container, giving it [`STOP_GRACE_SECS`] after SIGTERM; one already stopped counts
    /// as stopped.
    pub async fn stop(&self, id: &str) -> Result<(), DockerError> {
        self.halt(id, Halt::Stop).await
    }

    /// Counts the deaths of container `id` as ZedOps' own while the guard lives (and a grace
    /// after): an update watching its new container reports that one's exit itself, so the
    /// event must not read as a crash "without a stop from ZedOps".
    pub(crate) fn watched_by_us(&self, id: &str) -> events::RequestedGuard<'_> {
        self.requested.begin(id)
    }

    /// Restarts a container with the same grace as [`stop`](Self::stop).
    pub async fn restart(&self, id: &str) -> Result<(), DockerError> {
        self.halt(id, Halt::Restart).await
    }

    /// A stop or restart of `id`, with [`STOP_GRACE_SECS`] after SIGTERM: refused for the
    /// agent's own container, and its deaths meanwhile count as asked for by ZedOps.
    async fn halt(&self, id: &str, how: Halt) -> Result<(), DockerError> {
        let failure = match how {
            Halt::Stop => ErrorCode::DockerStopFailed,
            Halt::Restart => ErrorCode::DockerRestartFailed,
        };
        self.refuse_self(id, failure).await?;
        let _ours = self.requested.begin(id);
        let name = bare(id).to_string();
        self.call(failure, Some(id), |d| async move {
            match how {
                Halt::Stop => {
                    let options = StopContainerOptionsBuilder::new().t(STOP_GRACE_SECS);
                    d.stop_container(&name, Some(options.build())).await
                }
                Halt::Restart => {
                    let options = RestartContainerOptionsBuilder::new().t(STOP_GRACE_SECS);
                    d.restart_container(&name, Some(options.build())).await
                }
            }
        })
        .await
    }

    /// The engine's version and id, or empty when Docker does not answer.
    pub async fn engine_info(&self) -> EngineInfo {
        let Ok(docker) = self.engine().await else {
            return EngineInfo::default();
        };
        let (version, info) = tokio::join!(docker.version(), docker.info());
        EngineInfo {
            version: version.ok().and_then(|v| v.version),
            id: info.ok().and_then(|i| i.id).filter(|id| !id.is_empty()),
        }
    }

    /// The negotiated engine connection, dialling and negotiating if there is none.
    async fn engine(&self) -> Result<Docker, DockerError> {
        let mut slot = self.engine.lock().await;
        if let Some(docker) = slot.as_ref() {
            return Ok(docker.clone());
        }
        // Bollard speaks a newer API than older engines (20.10 is 1.41) accept, so the version is
        // negotiated before any other call.
        let docker = open(&self.host)
            .map_err(|e| self.unavailable(&e))?
            .negotiate_version()
            .await
            .map_err(|e| self.unavailable(&e))?;
        let api = docker.client_version();
        tracing::info!(host = %self.host, api = %format_args!("{}.{}", api.major_version, api.minor_version), "connected to Docker");
        *slot = Some(docker.clone());
        Ok(docker)
    }

    /// Runs one API call, mapping its error and forgetting the engine if it stopped answering.
    async fn call<T, F, Fut>(
        &self,
        failure: ErrorCode,
        container: Option<&str>,
        call: F,
    ) -> Result<T, DockerError>
    where
        F: FnOnce(Docker) -> Fut,
        Fut: Future<Output = Result<T, BollardError>>,
    {
        let docker = self.engine().await?;
        let err = match call(docker).await {
            Ok(value) => return Ok(value),
            Err(err) => err,
        };
        if is_connection_failure(&err) && self.engine.lock().await.take().is_some() {
            tracing::warn!(host = %self.host, err = %chain(&err), "lost the connection to Docker");
        }
        Err(self.classify(err, failure, container))
    }

    /// The answer for a failed call: the operation's `failure` code with Docker's message, except
    /// for a missing container or an engine that does not answer.
    fn classify(
        &self,
        err: BollardError,
        failure: ErrorCode,
        container: Option<&str>,
    ) -> DockerError {
        match (err, container) {
            (
                BollardError::DockerResponseServerError {
                    status_code: 404, ..
                },
                Some(id),
            ) => {
                let message = format!("no container named or with id {id} on this server");
                DockerError::new(ErrorCode::ContainerNotFound, message)
            }
            (BollardError::DockerResponseServerError { message, .. }, _) => {
                DockerError::new(failure, message)
            }
            (BollardError::RequestTimeoutError, _) => DockerError::new(
                failure,
                format!("Docker did not answer within {REQUEST_TIMEOUT_SECS} s"),
            ),
            (err, _) if is_connection_failure(&err) => self.unavailable(&err),
            (other, _) => DockerError::new(failure, chain(&other)),
        }
    }

    fn unavailable(&self, err: &BollardError) -> DockerError {
        DockerError::new(
            ErrorCode::DockerNotAvailable,
            format!("Docker is not available at {}: {}", self.host, chain(err)),
        )
    }
}

/// A bollard client for `host`; dialling happens on the first request.
fn open(host: &str) -> Result<Docker, BollardError> {
    if host.starts_with("unix://") || host.starts_with('/') {
        Docker::connect_with_unix(host, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION)
    } else if host.starts_with("tcp://") || host.starts_with("http://") {
        Docker::connect_with_http(host, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION)
    } else {
        Err(BollardError::UnsupportedURISchemeError {
            uri: host.to_string(),
        })
    }
}

/// Errors that mean the engine did not answer at all (socket missing, refused, reset).
fn is_connection_failure(err: &BollardError) -> bool {
    matches!(
        err,
        BollardError::IOError { .. }
            | BollardError::HyperResponseError { .. }
            | BollardError::HyperLegacyError { .. }
            | BollardError::SocketNotFoundError(_)
            | BollardError::UnsupportedURISchemeError { .. }
    )
}

/// A container reference without the leading `/` Docker names carry, so it fits in a URL path.
fn bare(id: &str) -> &str {
    id.strip_prefix('/').unwrap_or(id)
}

/// What [`DockerClient::halt`] does to a container.
#[derive(Debug, Clone, Copy)]
enum Halt {
    Stop,
    Restart,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> DockerClient {
        DockerClient::unconnected("unix:///x.sock".into(), None)
    }

    fn server_error(status_code: u16) -> BollardError {
        BollardError::DockerResponseServerError {
            status_code,
            message: "from docker".into(),
        }
    }

    #[test]
    fn maps_docker_errors_to_protocol_codes() {
        let c = client();
        let not_found = c.classify(server_error(404), ErrorCode::DockerStopFailed, Some("web"));
        assert_eq!(not_found.code(), ErrorCode::ContainerNotFound);
        assert_eq!(
            not_found.to_string(),
            "no container named or with id web on this server"
        );
        let refused = c.classify(server_error(409), ErrorCode::DockerStartFailed, Some("web"));
        assert_eq!(
            (refused.code(), refused.to_string().as_str()),
            (ErrorCode::DockerStartFailed, "from docker")
        );
        let list = c.classify(server_error(500), ErrorCode::DockerListFailed, None);
        assert_eq!(list.code(), ErrorCode::DockerListFailed);
        let gone = c.classify(
            BollardError::SocketNotFoundError("/x.sock".into()),
            ErrorCode::DockerStopFailed,
            None,
        );
        assert_eq!(gone.code(), ErrorCode::DockerNotAvailable);
        assert!(
            gone.to_string()
                .starts_with("Docker is not available at unix:///x.sock: "),
            "{gone}"
        );
    }
}
