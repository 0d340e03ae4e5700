//! Error codes carried on the wire, the generic error answer, and decoding errors.

use serde::{Deserialize, Serialize};

use crate::wire_enum::wire_enum;

wire_enum! {
    /// Every error code a peer may send. One meaning per code; never reuse one for another.
    #[cfg_attr(feature = "specta", derive(specta::Type))]
    // The type's name (not its values): the app's own `ErrorCode` wraps this one, and
    // TypeScript needs two names. JSON never shows it.
    #[serde(rename = "WireCode", rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum ErrorCode {
        /// The agent cannot reach its Docker engine (not running, socket missing, permission denied).
        DockerNotAvailable = "DOCKER_NOT_AVAILABLE",
        /// Docker refused or failed to list containers.
        DockerListFailed = "DOCKER_LIST_FAILED",
        /// Docker refused or failed to start the container.
        DockerStartFailed = "DOCKER_START_FAILED",
        /// Docker refused or failed to stop the container.
        DockerStopFailed = "DOCKER_STOP_FAILED",
        /// Docker refused or failed to restart the container.
        DockerRestartFailed = "DOCKER_RESTART_FAILED",
        /// No container with that id or name exists on the agent.
        ContainerNotFound = "CONTAINER_NOT_FOUND",
        /// The frame or its payload is malformed, too large, or has unknown fields or subjects.
        InvalidRequest = "INVALID_REQUEST",
        /// Missing, wrong, expired, used or revoked credentials.
        Unauthorized = "UNAUTHORIZED",
        /// Authenticated, but the role does not allow this.
        Forbidden = "FORBIDDEN",
        /// The agent is known but not connected right now.
        AgentOffline = "AGENT_OFFLINE",
        /// The agent is connected but did not answer in time.
        Timeout = "TIMEOUT",
        /// Too many attempts or requests; retry later.
        RateLimited = "RATE_LIMITED",
        /// No such agent (or other named thing) at the relay.
        NotFound = "NOT_FOUND",
        /// The peer speaks a different protocol version.
        UnsupportedVersion = "UNSUPPORTED_VERSION",
        /// An agent asked to enrol under a name another agent already has.
        NameTaken = "NAME_TAKEN",
        /// The agent refuses to stop or restart the container it runs in.
        SelfProtected = "SELF_PROTECTED",
        /// The agent's local policy forbids a setting of the request (privileged, capabilities,
        /// host namespaces, devices, a bind outside `--allow-bind`, the Docker socket); the message
        /// names the field.
        PolicyDenied = "POLICY_DENIED",
        /// The container is labelled `zedops.protected=true`; the agent does not remove it.
        Protected = "PROTECTED",
        /// A container with that name already exists on the agent.
        ContainerNameInUse = "CONTAINER_NAME_IN_USE",
        /// A host port the container asks for is already taken on the server.
        PortInUse = "PORT_IN_USE",
        /// The registry has no such image or tag (or the local image to remove does not exist).
        ImageNotFound = "IMAGE_NOT_FOUND",
        /// The image is used by a container; remove that first or force.
        ImageInUse = "IMAGE_IN_USE",
        /// The registry could not be reached (down, wrong address, DNS, TLS).
        RegistryUnreachable = "REGISTRY_UNREACHABLE",
        /// The registry refused the credentials, or the image needs credentials.
        RegistryAuthFailed = "REGISTRY_AUTH_FAILED",
        /// Docker refused or failed to pull the image for another reason.
        DockerPullFailed = "DOCKER_PULL_FAILED",
        /// Docker refused or failed to create the container for another reason.
        DockerCreateFailed = "DOCKER_CREATE_FAILED",
        /// Docker refused or failed to remove the container or image for another reason.
        DockerRemoveFailed = "DOCKER_REMOVE_FAILED",
        /// The deploy sets a variable the template does not declare.
        UnknownVariable = "UNKNOWN_VARIABLE",
        /// The deploy leaves a required template variable without a value.
        MissingVariable = "MISSING_VARIABLE",
        /// A template file or its resolution is not a valid container specification; the message
        /// names the field.
        TemplateInvalid = "TEMPLATE_INVALID",
        /// A template with that name already exists (use update).
        TemplateExists = "TEMPLATE_EXISTS",
        /// Something unexpected failed inside the relay or agent; see its log.
        Internal = "INTERNAL",
        /// The relay cannot reach what it needs for this right now (its PostgreSQL database, or
        /// the NATS servers joining a cluster of relays): retry in a moment, or on another relay.
        Unavailable = "UNAVAILABLE",
        /// Docker refused or failed to run a command in the container, or to attach to it.
        ExecFailed = "EXEC_FAILED",
        /// No file or directory at that path in the container.
        FileNotFound = "FILE_NOT_FOUND",
        /// The transfer is over the agent's `--max-file-size` limit.
        FileTooLarge = "FILE_TOO_LARGE",
        /// The path climbs above the container's root with `..`.
        PathOutside = "PATH_OUTSIDE",
        /// Docker refused or failed a file operation (not a directory, permission, disk full).
        FileFailed = "FILE_FAILED",
        /// The peer does not know this subject (an older agent asked for something newer).
        Unsupported = "UNSUPPORTED",
        /// An agent update was refused before anything was replaced: bad signature, SHA-256 or
        /// size, a downgrade without `allowDowngrade`, or no build for the agent's platform.
        UpdateRefused = "UPDATE_REFUSED",
        /// Another update of this agent holds the update lock.
        UpdateInProgress = "UPDATE_IN_PROGRESS",
        /// An agent update failed after it was accepted (download cut short, disk full); nothing
        /// was replaced, or the old binary was put back.
        UpdateFailed = "UPDATE_FAILED",
        /// A container update failed (pull, create, start, unhealthy, exited, timed out, hook) and
        /// the old container was put back under its name; the reason and the new container's last
        /// log lines come with it.
        UpdateRolledBack = "UPDATE_ROLLED_BACK",
    }
}

/// The answer to any request that failed, and the data of an `error` frame:
/// `{"errorCode": "AGENT_OFFLINE", "error": "agent web-1 is not connected"}`.
///
/// `container.operation.error` answers carry the same two fields plus the container and
/// operation, so a client recognises any failed answer by the presence of `errorCode`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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

/// Why an incoming frame or payload was refused. Always answered with `INVALID_REQUEST`.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("frame of {len} bytes exceeds the {max} byte limit", max = crate::MAX_FRAME_BYTES)]
    TooLarge { len: usize },
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The subject is not one this receiver takes from this peer (the subject as sent; shown
    /// escaped, as untrusted text).
    #[error("unknown subject {0:?}")]
    UnknownSubject(String),
    #[error("invalid {field}: {reason}")]
    Invalid {
        field: &'static str,
        /// A fixed rule, or one that names its limit (see [`crate::limits::check_len`]).
        reason: std::borrow::Cow<'static, str>,
    },
}

impl ProtocolError {
    pub fn invalid(field: &'static str, reason: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
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
        // Serde's spelling and `as_str` come from two places; every code must agree, and
        // decode back to itself.
        for &code in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_string(&code).unwrap(),
                format!("\"{}\"", code.as_str())
            );
            let back: ErrorCode =
                serde_json::from_value(serde_json::Value::String(code.as_str().into())).unwrap();
            assert_eq!(back, code);
        }
        let mut seen = std::collections::HashSet::new();
        assert!(ErrorCode::ALL.iter().all(|c| seen.insert(c.as_str())));
        let reply = ErrorReply::new(ErrorCode::Timeout, "agent did not answer");
        assert_eq!(
            serde_json::to_string(&reply).unwrap(),
            r#"{"errorCode":"TIMEOUT","error":"agent did not answer"}"#
        );
    }
}
