//! Streamed answers: a request whose answer comes as many frames to its inbox (container logs,
//! container stats), ended by a frame with `end`, and the cancel a client (and the relay, on its
//! behalf) sends to stop one early.

use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, ProtocolError};
use crate::ids::{AgentRef, ContainerRef};
use crate::limits::{MAX_AGENT_REF_LEN, MAX_SUBJECT_LEN};
use crate::payload::{Validate, check_target};

/// Most lines `tail` may ask for.
pub const MAX_LOG_TAIL: u32 = 10_000;
/// Lines longer than this are cut (and marked): a 10 MB line must not become a 10 MB frame.
pub const MAX_LOG_LINE_BYTES: usize = 16 * 1024;
/// Raw log bytes per chunk; with JSON escaping a chunk stays well under the frame limit.
pub const MAX_LOG_CHUNK_BYTES: usize = 128 * 1024;
/// Log bytes per second one stream may carry; beyond it lines are dropped and counted.
pub const MAX_LOG_BYTES_PER_SEC: usize = 4 * 1024 * 1024;
/// Streams (logs and stats together) one agent serves at once; the relay and the agent both
/// refuse more with `RATE_LIMITED`.
pub const MAX_STREAMS_PER_AGENT: usize = 32;
/// Streams one user may have open at once, over all their connections and agents.
pub const MAX_STREAMS_PER_USER: usize = 16;

/// `container.logs` request: the last `tail` lines, then (with `follow`) new ones as they come.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogsRequest {
    pub agent_id: AgentRef,
    pub container_id: ContainerRef,
    /// Lines from the end to start with (default 100, at most [`MAX_LOG_TAIL`]).
    #[serde(default)]
    pub tail: Option<u32>,
    /// Keep the stream open for new lines until the container stops or the client cancels.
    #[serde(default)]
    pub follow: bool,
    /// Prefix each line with Docker's RFC 3339 timestamp.
    #[serde(default)]
    pub timestamps: bool,
}

impl Validate for LogsRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        // Same references as an action: reuse its checks.
        check_target(&self.agent_id, &self.container_id)?;
        if self.tail.is_some_and(|t| t > MAX_LOG_TAIL) {
            return Err(ProtocolError::invalid("tail", "at most 10000 lines"));
        }
        Ok(())
    }
}

/// Which output a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// One line of a container's output, without its newline. Output that is not UTF-8 arrives with
/// replacement characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogLine {
    pub stream: LogStream,
    pub text: String,
    /// The line was longer than [`MAX_LOG_LINE_BYTES`] and was cut there.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// How a stream ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StreamEnd {
    /// `null` when it ended normally (the log was read to its end, the container stopped, or
    /// the client cancelled); otherwise what went wrong.
    #[serde(default)]
    pub error_code: Option<ErrorCode>,
    pub reason: String,
}

impl StreamEnd {
    /// A normal end (no error code), saying why.
    pub fn ended(reason: impl Into<String>) -> Self {
        Self {
            error_code: None,
            reason: reason.into(),
        }
    }
}

/// One frame of a `container.logs` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogChunk {
    #[serde(default)]
    pub lines: Vec<LogLine>,
    /// Lines left out before these because the stream was over its rate or a reader fell
    /// behind.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped: u64,
    /// Present on the last frame of the stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<StreamEnd>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Validate for LogChunk {
    fn validate(&self) -> Result<(), ProtocolError> {
        if self
            .lines
            .iter()
            .any(|l| l.text.len() > MAX_LOG_LINE_BYTES + 4)
        {
            return Err(ProtocolError::invalid("lines", "a line over the limit"));
        }
        Ok(())
    }
}

/// `container.stats` request: resource usage of a running container, once or (with `stream`)
/// about every second until cancelled or the container stops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatsRequest {
    pub agent_id: AgentRef,
    pub container_id: ContainerRef,
    #[serde(default)]
    pub stream: bool,
}

impl Validate for StatsRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_target(&self.agent_id, &self.container_id)
    }
}

/// One sample of a container's resource usage, computed as `docker stats` does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerStats {
    /// When Docker read the sample (RFC 3339).
    pub read: String,
    /// Percent of one CPU (200 = two CPUs fully used), as `docker stats` shows it.
    pub cpu_percent: f64,
    /// Memory in use without the page cache, bytes.
    pub memory_used: u64,
    /// The container's memory limit (the host's memory when it has none), bytes.
    pub memory_limit: u64,
    pub memory_percent: f64,
    /// Bytes received and sent over all networks since the container started.
    pub net_rx: u64,
    pub net_tx: u64,
    /// Bytes read from and written to block devices since the container started.
    pub block_read: u64,
    pub block_write: u64,
    pub pids: u64,
}

/// One frame of a `container.stats` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatsChunk {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<ContainerStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<StreamEnd>,
}

impl Validate for StatsChunk {}

/// `stream.cancel`: client → relay → agent, no answer. Stops the stream answering on `inbox`;
/// its last frame (with `end`) still arrives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StreamCancel {
    pub inbox: String,
}

impl Validate for StreamCancel {
    fn validate(&self) -> Result<(), ProtocolError> {
        if !crate::subject::is_inbox(&self.inbox) || self.inbox.len() > MAX_SUBJECT_LEN {
            return Err(ProtocolError::invalid("inbox", "must be a reply inbox"));
        }
        Ok(())
    }
}

/// The answer to a client's `stream.cancel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StreamCancelled {
    /// False when no stream of this connection answered on that inbox (it had ended).
    pub cancelled: bool,
}

impl Validate for StreamCancelled {}

const _: () = assert!(MAX_AGENT_REF_LEN < MAX_SUBJECT_LEN);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_requests_are_bounded() {
        let ok = LogsRequest {
            agent_id: "a".into(),
            container_id: "web".into(),
            tail: Some(100),
            follow: true,
            timestamps: false,
        };
        assert!(ok.validate().is_ok());
        let too_long = LogsRequest {
            tail: Some(MAX_LOG_TAIL + 1),
            ..ok.clone()
        };
        assert!(too_long.validate().is_err());
        let path = LogsRequest {
            container_id: "../etc".into(),
            ..ok
        };
        assert!(path.validate().is_err());
    }

    #[test]
    fn chunks_stay_small_on_the_wire() {
        let chunk = LogChunk {
            lines: vec![LogLine {
                stream: LogStream::Stdout,
                text: "1".into(),
                truncated: false,
            }],
            dropped: 0,
            end: None,
        };
        assert_eq!(
            serde_json::to_string(&chunk).unwrap(),
            r#"{"lines":[{"stream":"stdout","text":"1"}]}"#
        );
        assert!(
            StreamCancel {
                inbox: "nope".into()
            }
            .validate()
            .is_err()
        );
    }
}
