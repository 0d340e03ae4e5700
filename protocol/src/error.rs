//! Error codes carried on the wire, the generic error answer, and decoding errors.

use serde::{Deserialize, Serialize};

/// Every error code a peer may send. One meaning per code; never reuse one for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The agent cannot reach its Docker engine (not running, socket missing, permission denied).
    DockerNotAvailable,
    /// Docker refused or failed to list containers.
    DockerListFailed,
    /// Docker refused or failed to start the container.
    DockerStartFailed,
    /// Docker refused or failed to stop the container.
    DockerStopFailed,
    /// Docker refused or failed to restart the container.
    DockerRestartFailed,
    /// No container with that id or name exists on the agent.
    ContainerNotFound,
    /// The frame or its payload is malformed, too large, or has unknown fields or subjects.
    InvalidRequest,
    /// Missing, wrong, expired, used or revoked credentials.
    Unauthorized,
    /// Authenticated, but the role does not allow this.
    Forbidden,
    /// The agent is known but not connected right now.
    AgentOffline,
    /// The agent is connected but did not answer in time.
    Timeout,
    /// Too many attempts or requests; retry later.
    RateLimited,
    /// No such agent (or other named thing) at the relay.
    NotFound,
    /// The peer speaks a different protocol version.
    UnsupportedVersion,
    /// An agent asked to enrol under a name another agent already has.
    NameTaken,
    /// The agent refuses to stop or restart the container it runs in.
    SelfProtected,
    /// Something unexpected failed inside the relay or agent; see its log.
    Internal,
}

impl ErrorCode {
    /// The wire spelling, e.g. `AGENT_OFFLINE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DockerNotAvailable => "DOCKER_NOT_AVAILABLE",
            Self::DockerListFailed => "DOCKER_LIST_FAILED",
            Self::DockerStartFailed => "DOCKER_START_FAILED",
            Self::DockerStopFailed => "DOCKER_STOP_FAILED",
            Self::DockerRestartFailed => "DOCKER_RESTART_FAILED",
            Self::ContainerNotFound => "CONTAINER_NOT_FOUND",
            Self::InvalidRequest => "INVALID_REQUEST",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::Forbidden => "FORBIDDEN",
            Self::AgentOffline => "AGENT_OFFLINE",
            Self::Timeout => "TIMEOUT",
            Self::RateLimited => "RATE_LIMITED",
            Self::NotFound => "NOT_FOUND",
            Self::UnsupportedVersion => "UNSUPPORTED_VERSION",
            Self::NameTaken => "NAME_TAKEN",
            Self::SelfProtected => "SELF_PROTECTED",
            Self::Internal => "INTERNAL",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The answer to any request that failed, and the data of an `error` frame:
/// `{"errorCode": "AGENT_OFFLINE", "error": "agent web-1 is not connected"}`.
///
/// `container.operation.error` answers carry the same two fields plus the container and
/// operation, so a client recognises any failed answer by the presence of `errorCode`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorReply {
    pub error_code: ErrorCode,
    pub error: String,
    /// Seconds until a retry may succeed (with `RATE_LIMITED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
}

impl ErrorReply {
    pub fn new(error_code: ErrorCode, error: impl Into<String>) -> Self {
        Self {
            error_code,
            error: error.into(),
            retry_after_secs: None,
        }
    }
}

impl std::fmt::Display for ErrorReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error_code, self.error)
    }
}

impl std::error::Error for ErrorReply {}

impl crate::payload::Validate for ErrorReply {}

/// Why an incoming frame or payload was refused. Always answered with `INVALID_REQUEST`.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("frame of {len} bytes exceeds the {max} byte limit", max = crate::MAX_FRAME_BYTES)]
    TooLarge { len: usize },
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("invalid {field}: {reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
}

impl ProtocolError {
    pub fn invalid(field: &'static str, reason: &'static str) -> Self {
        Self::Invalid { field, reason }
    }

    /// The answer a peer sends back for this error.
    pub fn to_reply(&self) -> ErrorReply {
        ErrorReply::new(ErrorCode::InvalidRequest, self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialise_as_their_wire_names() {
        for code in [
            ErrorCode::DockerNotAvailable,
            ErrorCode::AgentOffline,
            ErrorCode::UnsupportedVersion,
        ] {
            assert_eq!(
                serde_json::to_string(&code).unwrap(),
                format!("\"{}\"", code.as_str())
            );
        }
        let reply = ErrorReply::new(ErrorCode::Timeout, "agent did not answer");
        assert_eq!(
            serde_json::to_string(&reply).unwrap(),
            r#"{"errorCode":"TIMEOUT","error":"agent did not answer"}"#
        );
    }
}
