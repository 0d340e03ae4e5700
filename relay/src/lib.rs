//! ZedOps relay: accepts agents and admins over WebSockets, authenticates both, routes each
//! admin request to the right agent and its answer back, pushes agent status, enforces roles
//! and keeps an audit log, all backed by SQLite.

pub mod accept;
pub mod admin;
pub mod agent_endpoint;
pub mod client_endpoint;
pub mod connection;
pub mod download;
pub mod http_api;
pub mod hub;
pub mod login_limit;
pub mod policy;
pub mod rate_limit;
pub mod revocation;
pub mod router;
pub mod secret;
pub mod server;
pub mod socket;
pub mod store;
pub mod streams;
pub mod subscription;
pub mod time;

pub use rate_limit::Limits;
pub use server::{Guards, Options, Server, ShutdownHandle, Timeouts};
pub use store::Store;
