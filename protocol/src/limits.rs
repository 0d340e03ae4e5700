//! Limits and timeouts every peer agrees on. Named here so that no number is repeated elsewhere.

use std::time::Duration;

use crate::error::ProtocolError;

/// Largest WebSocket message any peer accepts (1 MiB). Larger input is refused with `INVALID_REQUEST`.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;
/// Longest subject, including inboxes (`_INBOX.` + a UUID is 43 bytes).
pub const MAX_SUBJECT_LEN: usize = 128;
/// Longest agent name or user name.
pub const MAX_NAME_LEN: usize = 64;
/// Longest container reference (a 64-hex id or a Docker name, which Docker caps well below this).
pub const MAX_CONTAINER_REF_LEN: usize = 256;
/// Longest agent id (a UUID, 36 bytes, or an agent name).
pub const MAX_AGENT_REF_LEN: usize = 64;
/// Longest secret token (registration, agent or device token).
pub const MAX_TOKEN_LEN: usize = 128;
/// Longest free-text field in agent info (versions, OS names).
pub const MAX_INFO_LEN: usize = 256;
/// Longest user password accepted at login (argon2 work is bounded by this).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// `Ok` when `value` is 1 to `max` bytes; otherwise `invalid <field>: must be 1 to <max> bytes`.
pub(crate) fn check_len(field: &'static str, value: &str, max: usize) -> Result<(), ProtocolError> {
    if value.is_empty() || value.len() > max {
        return Err(ProtocolError::invalid(
            field,
            format!("must be 1 to {max} bytes"),
        ));
    }
    Ok(())
}

/// `Ok` when `value` is absent or at most `max` bytes; otherwise `invalid <field>: too long`.
pub(crate) fn check_optional(
    field: &'static str,
    value: &Option<String>,
    max: usize,
) -> Result<(), ProtocolError> {
    match value {
        Some(v) if v.len() > max => Err(ProtocolError::invalid(field, "too long")),
        _ => Ok(()),
    }
}

/// How long the relay waits for an agent to answer `container.list`.
pub const LIST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the relay waits for an agent to answer start, stop or restart.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How often an agent sends `agent.heartbeat`.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);
/// A connection silent for this long is considered dead and closed.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a new connection has to send its hello.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Seconds Docker waits after SIGTERM before SIGKILL when the agent stops or restarts a container.
pub const STOP_GRACE_SECS: i32 = 10;
