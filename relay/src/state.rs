//! What every connection task shares ([`AppState`]) and the timeouts it applies. A module of its
//! own, below the endpoints and handlers that use it and the server that builds it, so that no
//! relay module imports the one that imports it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::accept::Counter;
use crate::hub::Hub;
use crate::store::{SessionLifetimes, Store};

/// Timeouts the relay applies; defaults from the protocol, shorter in tests.
#[derive(Debug, Clone)]
pub struct Timeouts {
    pub list: Duration,
    pub operation: Duration,
    pub heartbeat_interval: Duration,
    pub heartbeat_timeout: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            list: zedops_protocol::LIST_TIMEOUT,
            operation: zedops_protocol::OPERATION_TIMEOUT,
            heartbeat_interval: zedops_protocol::HEARTBEAT_INTERVAL,
            heartbeat_timeout: zedops_protocol::HEARTBEAT_TIMEOUT,
        }
    }
}

/// What every connection task shares.
pub struct AppState {
    pub store: Store,
    pub hub: Hub,
    pub timeouts: Timeouts,
    /// Flips to `true` when the relay shuts down; connection tasks close their sockets.
    pub shutdown: watch::Receiver<bool>,
    /// Every connection task, so shutdown can wait for them.
    pub tasks: TaskTracker,
    /// Failed logins, for brute-force protection.
    pub login_limit: crate::login_limit::LoginLimiter,
    /// Per-connection message rate and per-agent request limits.
    pub limits: crate::rate_limit::Limits,
    /// Proxies whose `Forwarded` / `X-Forwarded-For` name the client's address.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How long device sessions live.
    pub sessions: SessionLifetimes,
    /// Open TCP connections, counted from accept to close.
    pub connections: Arc<Counter>,
    /// The agent builds served at /download (what `agent.update` installs).
    pub installer: Arc<crate::download::Installer>,
    /// Seals the registry passwords kept in the database (see [`crate::registry_key`]).
    pub registry_key: crate::registry_key::RegistryKey,
    /// Agent updates in flight and their live state for admins (`agent.update.progress`).
    pub agent_updates: crate::update_watch::UpdateWatch,
}
