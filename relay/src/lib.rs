//! ZedOps relay: accepts agents and admins over WebSockets, authenticates both, routes each
//! admin request to the right agent and its answer back, pushes agent status, enforces roles
//! and keeps an audit log, all backed by SQLite.
//!
//! Public are the modules the relay binary, the test kit, the fuzz targets and benchmarks use;
//! the endpoints, handlers and their helpers are the crate's own.

pub mod accept;
pub(crate) mod addressed;
pub(crate) mod admin;
pub(crate) mod agent_endpoint;
pub(crate) mod client_endpoint;
pub mod cluster;
pub mod connection;
pub mod console_limits;
pub mod download;
pub mod drain;
pub(crate) mod draining;
mod failure;
pub(crate) mod http_api;
pub mod hub;
pub mod login_limit;
pub(crate) mod lookup;
pub(crate) mod peer_link;
pub mod policy;
pub mod rate_limit;
pub(crate) mod registry;
pub mod registry_key;
pub(crate) mod revocation;
pub mod router;
pub(crate) mod secret;
pub mod server;
pub mod shutdown;
pub(crate) mod socket;
pub mod state;
pub mod store;
pub(crate) mod streams;
pub(crate) mod subscription;
pub mod templates;
pub mod time;
pub mod update;
pub(crate) mod update_states;
pub mod update_watch;
pub(crate) mod updates;

pub use rate_limit::Limits;
pub use server::{Guards, Options, Server, ShutdownHandle};
pub use state::{AppState, Timeouts};
pub use store::Store;
