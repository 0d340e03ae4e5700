//! ZedOps relay client: log in, list agents and containers, start/stop/restart containers, and
//! follow agent status pushes, over one reconnecting WebSocket. Used by the desktop app and by
//! the `zedops` command line.
//!
//! ```no_run
//! # async fn demo() -> Result<(), zedops_client::ClientError> {
//! use zedops_client::{Client, ConnectOptions, Operation, login, store};
//!
//! let session = login("https://relay.example", "alice", "secret", None, false).await?;
//! let client = Client::connect(ConnectOptions {
//!     relay: "https://relay.example".into(),
//!     token: session.token,
//!     ca_file: None,
//!     insecure: false,
//! })
//! .await?;
//! for agent in client.agents().await? {
//!     println!("{} online={}", agent.name, agent.online);
//! }
//! client.action("web-1", "nginx", Operation::Restart).await?;
//! client.close().await;
//! # Ok(()) }
//! ```
//!
//! Credentials are kept with [`store`]: the device token in the OS keyring, never on disk.

mod admin;
pub mod agent_update;
mod client;
mod connection;
pub mod console;
mod container_update;
mod deploy;
mod error;
mod files;
pub mod fleet_update;
mod http;
mod registry;
pub mod store;
mod streams;
mod update_check;

pub use client::{Client, ConnectOptions, REQUEST_GRACE};
pub use connection::{CLIENT_WS_PATH, ClientEvent, EVENT_BUFFER};
pub use container_update::{ContainerUpdate, UpdateOptions};
pub use deploy::{Deploy, load_template};
pub use error::{ClientError, Code, LocalCode};
pub use http::{LOGIN_PATH, LOGOUT_PATH, agent_release, login, logout};
pub use streams::{Logs, LogsOptions, Stats, StreamChunk, StreamReader};
/// The wire types callers see in answers and events.
pub use zedops_protocol::{
    AgentInfo, AgentStatus, AgentSummary, Container, ContainerAction, ContainerDetail,
    ContainerEvent, ContainerStats, ContainerSync, ErrorCode, ErrorReply, EventSubscribed,
    LogChunk, LogLine, LogStream, LoginResponse, Operation, OperationSuccess, Port, Role,
    StatsChunk, StreamEnd,
};
