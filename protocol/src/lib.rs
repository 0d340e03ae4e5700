//! ZedOps wire protocol: the JSON envelope, subjects, payloads, error codes and limits shared by
//! the relay, the agent and the client. Wire types only: no I/O, no runtime, no Docker.
//!
//! Every WebSocket text frame is one [`Envelope`]. Requests carry a `reply` inbox; the answer is
//! sent with `subject` set to that inbox. `docs/PROTOCOL.md` describes every subject.

pub mod admin;
pub mod console;
pub mod container_update;
pub mod deploy;
pub mod detail;
pub mod envelope;
pub mod error;
pub mod events;
pub mod files;
pub mod ids;
pub mod install;
pub mod limits;
pub mod message;
pub mod payload;
pub mod registry;
pub mod stream;
pub mod subject;
pub mod templates;
pub mod update;
pub mod update_check;
mod wire_enum;

pub use admin::*;
pub use console::*;
pub use container_update::*;
pub use deploy::*;
pub use detail::*;
pub use envelope::{Envelope, Frame, new_inbox_suffix};
pub use error::{ErrorCode, ErrorReply, ProtocolError};
pub use events::*;
pub use files::*;
pub use ids::*;
pub use limits::*;
pub use message::*;
pub use payload::*;
pub use registry::*;
pub use stream::*;
pub use templates::*;
pub use update::*;
pub use update_check::*;

/// Version of this protocol. Both sides send it in their hello. The relay accepts peers from
/// [`MIN_PROTOCOL_VERSION`] up to this one, and refuses to send a peer a subject newer than the
/// version it said (`UNSUPPORTED`). 2 added `agent.update` / `agent.update.install`.
pub const PROTOCOL_VERSION: u32 = 2;

/// The oldest protocol version the relay still accepts in a hello: one version back, so agents
/// keep working while a fleet is updated after the relay.
pub const MIN_PROTOCOL_VERSION: u32 = PROTOCOL_VERSION - 1;
