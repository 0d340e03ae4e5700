//! ZedOps agent: dials out to a relay over WebSocket, enrols with a one-time token (or
//! authenticates with stored credentials), then lists, starts, stops and restarts containers on
//! the local Docker engine for the relay. It never listens on a port.

pub mod console;
pub mod container_update;
pub mod credentials;
pub mod deploy;
pub mod docker;
pub mod files;
pub mod forget;
mod handlers;
mod info;
#[cfg(unix)]
pub mod install;
mod live;
mod outbox;
pub mod pacing;
pub mod policy;
mod replace;
mod rows;
mod run_error;
#[cfg(unix)]
pub mod selfupdate;
mod session;
pub mod status;
mod streams;
mod text;
pub mod unix_time;
pub mod update_check;

use std::future::Future;
use std::path::PathBuf;

use tracing::Instrument;

pub use pacing::PushBudget;
pub use run_error::RunError;

/// This agent's version: `ZEDOPS_BUILD_VERSION` at build time (release and test builds set it),
/// else the crate's. It is what the hello reports and what updates are compared with.
pub const VERSION: &str = match option_env!("ZEDOPS_BUILD_VERSION") {
    Some(version) => version,
    None => env!("CARGO_PKG_VERSION"),
};

/// Everything [`run`] needs; the binary fills it from flags and `ZEDOPS_…` variables.
#[derive(Clone)]
pub struct AgentOptions {
    /// Relay base URL (`https://…`, `wss://…`; plaintext only to loopback unless `insecure`).
    pub relay_url: String,
    /// Single-use registration token, needed only until the agent has enrolled.
    pub registration_token: Option<String>,
    /// Name to enrol under; defaults to the host name.
    pub name: Option<String>,
    /// Where the credentials are kept.
    pub data_dir: PathBuf,
    /// Docker engine address (`unix:///path`, `tcp://host:port`); defaults to `DOCKER_HOST`,
    /// then the local socket.
    pub docker_host: Option<String>,
    /// Extra CA certificate (PEM) to trust for the relay.
    pub ca_file: Option<PathBuf>,
    /// Allow plaintext `ws://` to a relay that is not on this machine.
    pub insecure: bool,
    /// Directories under which created containers may bind-mount server paths
    /// (`--allow-bind`); none by default. See [`policy`].
    pub allow_bind: Vec<PathBuf>,
    /// Largest file one `file.get` or `file.put` may move (`--max-file-size`).
    pub max_file_size: u64,
    /// How often the images of this server's containers are checked for updates
    /// (`--update-check-interval`); zero turns the periodic check off (the relay's
    /// `updates.check` still works).
    pub update_check_interval: std::time::Duration,
}

impl std::fmt::Debug for AgentOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentOptions")
            .field("relay_url", &self.relay_url)
            .field(
                "registration_token",
                &self.registration_token.as_ref().map(|_| "<redacted>"),
            )
            .field("name", &self.name)
            .field("data_dir", &self.data_dir)
            .field("docker_host", &self.docker_host)
            .field("ca_file", &self.ca_file)
            .field("insecure", &self.insecure)
            .field("allow_bind", &self.allow_bind)
            .field("max_file_size", &self.max_file_size)
            .field("update_check_interval", &self.update_check_interval)
            .finish()
    }
}

/// Runs the agent until `shutdown` completes (then `Ok`), reconnecting to the relay whenever the
/// connection is lost. Returns an error, already logged, when the agent cannot run at all: bad
/// options, or a refusal that retrying cannot fix (token used or expired, agent revoked, name
/// taken, protocol version not supported).
pub async fn run(
    options: AgentOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), RunError> {
    run_paced(options, PushBudget::default(), shutdown).await
}

/// Like [`run`], with live-state pushes kept within `budget` instead of the default
/// (`zedops-agent run --max-pushes-per-sec`): it must stay at or under half of the relay's
/// per-agent message limit (see [`pacing`]).
pub async fn run_paced(
    options: AgentOptions,
    budget: PushBudget,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), RunError> {
    #[cfg(unix)]
    selfupdate::remember_relay(&options);
    let span = tracing::info_span!("agent", relay = %options.relay_url);
    let result = session::run(options, budget, shutdown)
        .instrument(span)
        .await;
    if let Err(err) = &result {
        tracing::error!("{err:#}");
    }
    result
}
