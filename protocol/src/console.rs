//! Console sessions: a command run in a container (`container.exec`), the container's main
//! process (`container.attach`), one line to its stdin (`container.send`), and the frames that
//! carry bytes both ways with credit-based flow control.
//!
//! Bytes travel base64-encoded in JSON text frames (the transport speaks text frames only, and
//! one kind of frame keeps every peer's decoder, limits and audit the same). Each direction has a
//! window: the receiver grants bytes, the sender sends only while it holds credit, so nothing on
//! the way (agent, relay, client) ever buffers more than one window per session.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;
use crate::ids::{AgentRef, ContainerRef};
use crate::limits::MAX_SUBJECT_LEN;
use crate::payload::{Validate, check_target};
use crate::stream::StreamEnd;

/// Most raw bytes one data frame carries (base64 makes it a third larger on the wire).
pub const MAX_CONSOLE_CHUNK_BYTES: usize = 32 * 1024;
/// The window a receiver grants when the request names none: 256 KiB.
pub const DEFAULT_CONSOLE_WINDOW: u32 = 256 * 1024;
/// The most credit a receiver may have outstanding at once (request windows and grants alike):
/// the bound of what one session may have in flight in one direction.
pub const MAX_CONSOLE_WINDOW: u32 = 1024 * 1024;
/// Most arguments of an exec command, and most bytes of them together.
pub const MAX_EXEC_ARGS: usize = 256;
pub const MAX_EXEC_ARGS_BYTES: usize = 64 * 1024;
/// Most `KEY=value` entries of an exec's environment.
pub const MAX_EXEC_ENV: usize = 64;
/// Longest line `container.send` takes (without its newline).
pub const MAX_SEND_LINE_BYTES: usize = 4096;
/// Largest terminal side, in cells.
pub const MAX_TERM_SIDE: u16 = 1000;
/// Console sessions (exec and attach, files transfers apart) one agent serves at once.
pub const MAX_CONSOLES_PER_AGENT: usize = 16;
/// Console sessions (exec and attach together) one user may have open at once (the relay's
/// default, `--max-console-sessions`).
pub const MAX_CONSOLES_PER_USER: usize = 4;
/// A console session with no byte either way for this long is closed (the relay's default,
/// `--console-idle-timeout`).
pub const CONSOLE_IDLE_TIMEOUT_SECS: u64 = 15 * 60;

/// A terminal's size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TermSize {
    pub cols: u16,
    pub rows: u16,
}

impl Validate for TermSize {
    fn validate(&self) -> Result<(), ProtocolError> {
        if !(1..=MAX_TERM_SIDE).contains(&self.cols) || !(1..=MAX_TERM_SIDE).contains(&self.rows) {
            return Err(ProtocolError::invalid(
                "size",
                "cols and rows must be 1 to 1000",
            ));
        }
        Ok(())
    }
}

fn check_window(window: Option<u32>) -> Result<(), ProtocolError> {
    match window {
        Some(w) if w == 0 || w > MAX_CONSOLE_WINDOW => {
            Err(ProtocolError::invalid("window", "must be 1 byte to 1 MiB"))
        }
        _ => Ok(()),
    }
}

/// `container.exec` request: run `cmd` in a running container, like `docker exec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecRequest {
    pub agent_id: AgentRef,
    pub container_id: ContainerRef,
    /// The program and its arguments (no shell unless the command names one).
    pub cmd: Vec<String>,
    /// Allocate a pseudo-terminal: output is one stream (`stdout`), input is keystrokes.
    #[serde(default)]
    pub tty: bool,
    /// Keep the process's stdin open for `stream.input` data; without it stdin is empty.
    #[serde(default)]
    pub stdin: bool,
    /// Extra `KEY=value` environment entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Working directory (absolute); the container's own when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Initial terminal size (with `tty`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<TermSize>,
    /// Output bytes the client grants at the start ([`DEFAULT_CONSOLE_WINDOW`] when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<u32>,
}

impl Validate for ExecRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_target(&self.agent_id, &self.container_id)?;
        if self.cmd.is_empty() || self.cmd[0].is_empty() {
            return Err(ProtocolError::invalid("cmd", "must name a program"));
        }
        let bytes: usize = self.cmd.iter().map(String::len).sum();
        if self.cmd.len() > MAX_EXEC_ARGS || bytes > MAX_EXEC_ARGS_BYTES {
            return Err(ProtocolError::invalid(
                "cmd",
                "at most 256 arguments and 64 KiB",
            ));
        }
        if self.cmd.iter().any(|a| a.contains('\0')) {
            return Err(ProtocolError::invalid("cmd", "no NUL bytes"));
        }
        if self.env.len() > MAX_EXEC_ENV
            || self.env.iter().any(|e| {
                e.len() > 4096
                    || e.contains('\0')
                    || e.split_once('=').is_none_or(|(k, _)| k.is_empty())
            })
        {
            return Err(ProtocolError::invalid(
                "env",
                "at most 64 KEY=value entries of up to 4096 bytes",
            ));
        }
        if let Some(dir) = &self.working_dir
            && (!dir.starts_with('/') || dir.len() > 4096 || dir.contains('\0'))
        {
            return Err(ProtocolError::invalid(
                "workingDir",
                "must be an absolute path",
            ));
        }
        if let Some(size) = &self.size {
            size.validate()?;
        }
        check_window(self.window)
    }
}

/// `container.attach` request: the container's main process, its output from now on and (with
/// `stdin`) its input, like `docker attach`. Detaching is the client's business: it cancels the
/// stream, and the process goes on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttachRequest {
    pub agent_id: AgentRef,
    pub container_id: ContainerRef,
    #[serde(default)]
    pub stdin: bool,
    /// Terminal size to set (containers with a TTY only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<TermSize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<u32>,
}

impl Validate for AttachRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_target(&self.agent_id, &self.container_id)?;
        if let Some(size) = &self.size {
            size.validate()?;
        }
        check_window(self.window)
    }
}

/// Which output bytes came from. With a TTY everything is `stdout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum ConsoleStream {
    Stdout,
    Stderr,
}

/// The first frame of a console session: it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsoleStarted {
    /// The session has a terminal (for attach: the container was created with one).
    pub tty: bool,
    /// Input bytes the agent grants at the start (0 without stdin).
    pub window: u32,
}

/// How the process of an exec ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExitStatus {
    /// The exit code; `null` when Docker could not tell (the process was killed with the
    /// session, or attach to a container that is still running).
    pub code: Option<i64>,
}

/// One frame of a console session's answer (agent → relay → client, on the request's inbox).
/// Every field is optional; a frame has at least one.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsoleOutput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<ConsoleStarted>,
    /// With `data`: which output it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<ConsoleStream>,
    /// Output bytes, base64 (standard alphabet, padded), at most [`MAX_CONSOLE_CHUNK_BYTES`]
    /// decoded. Counted against the client's grants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// More input credit: the agent has passed this many more bytes on to the process.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub grant: u32,
    /// The process ended (last frame, beside `end`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<StreamEnd>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Longest base64 text that decodes to at most [`MAX_CONSOLE_CHUNK_BYTES`].
pub const MAX_CONSOLE_CHUNK_BASE64: usize = MAX_CONSOLE_CHUNK_BYTES.div_ceil(3) * 4;

/// Encodes bytes for a `data` field.
pub fn encode_bytes(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// Decodes a `data` field, refusing more than [`MAX_CONSOLE_CHUNK_BYTES`] or bad base64.
pub fn decode_bytes(data: &str) -> Result<Vec<u8>, ProtocolError> {
    if data.len() > MAX_CONSOLE_CHUNK_BASE64 {
        return Err(ProtocolError::invalid("data", "at most 32 KiB per frame"));
    }
    let bytes = BASE64
        .decode(data)
        .map_err(|_| ProtocolError::invalid("data", "must be base64"))?;
    // The text's length bounds the bytes to within 2 of the limit; this makes it exact.
    if bytes.len() > MAX_CONSOLE_CHUNK_BYTES {
        return Err(ProtocolError::invalid("data", "at most 32 KiB per frame"));
    }
    Ok(bytes)
}

fn check_data(data: &Option<String>) -> Result<(), ProtocolError> {
    match data {
        Some(d) if d.len() > MAX_CONSOLE_CHUNK_BASE64 => {
            Err(ProtocolError::invalid("data", "at most 32 KiB per frame"))
        }
        _ => Ok(()),
    }
}

impl ConsoleOutput {
    /// A frame of output bytes.
    pub fn data(stream: ConsoleStream, bytes: &[u8]) -> Self {
        Self {
            stream: Some(stream),
            data: Some(encode_bytes(bytes)),
            ..Self::default()
        }
    }

    /// The decoded bytes of `data` (empty without).
    pub fn bytes(&self) -> Result<Vec<u8>, ProtocolError> {
        self.data.as_deref().map_or(Ok(Vec::new()), decode_bytes)
    }
}

impl Validate for ConsoleOutput {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_data(&self.data)?;
        if self.grant > MAX_CONSOLE_WINDOW {
            return Err(ProtocolError::invalid("grant", "at most 1 MiB"));
        }
        Ok(())
    }
}

/// `stream.input` (client → relay → agent, no answer): bytes, end of input, a terminal size or
/// output credit for the session (or upload) answering on `inbox`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StreamInput {
    /// The client's inbox of the session (the relay rewrites it to the agent's).
    pub inbox: String,
    /// Input bytes, base64, at most [`MAX_CONSOLE_CHUNK_BYTES`] decoded; counted against the
    /// agent's grants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// No more input: the process's stdin is closed (after any `data` of this frame).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub eof: bool,
    /// The client's terminal changed size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resize: Option<TermSize>,
    /// More output credit: the client has consumed this many more bytes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub grant: u32,
}

impl StreamInput {
    /// The decoded bytes of `data` (empty without).
    pub fn bytes(&self) -> Result<Vec<u8>, ProtocolError> {
        self.data.as_deref().map_or(Ok(Vec::new()), decode_bytes)
    }
}

impl Validate for StreamInput {
    fn validate(&self) -> Result<(), ProtocolError> {
        if !crate::subject::is_inbox(&self.inbox) || self.inbox.len() > MAX_SUBJECT_LEN {
            return Err(ProtocolError::invalid("inbox", "must be a reply inbox"));
        }
        check_data(&self.data)?;
        if let Some(size) = &self.resize {
            size.validate()?;
        }
        if self.grant > MAX_CONSOLE_WINDOW {
            return Err(ProtocolError::invalid("grant", "at most 1 MiB"));
        }
        Ok(())
    }
}

/// `container.send` request: one line to the stdin of a container's main process (a game
/// server's console command). The agent adds the newline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendRequest {
    pub agent_id: AgentRef,
    pub container_id: ContainerRef,
    pub line: String,
}

impl Validate for SendRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_target(&self.agent_id, &self.container_id)?;
        if self.line.len() > MAX_SEND_LINE_BYTES || self.line.contains(['\n', '\r', '\0']) {
            return Err(ProtocolError::invalid(
                "line",
                "one line of at most 4096 bytes, without CR, LF or NUL",
            ));
        }
        Ok(())
    }
}

/// The answer to `container.send`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendResult {
    /// Bytes written, the newline included.
    pub bytes: u64,
}

impl Validate for SendResult {}

/// Credit one direction of a session holds: what the receiver has granted and the sender not yet
/// used. Both ends keep one per direction; a receiver refuses a peer that sends beyond it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credit {
    available: u64,
}

impl Credit {
    pub fn new(window: u32) -> Self {
        Self {
            available: u64::from(window),
        }
    }

    /// Bytes that may be sent now.
    pub fn available(&self) -> u64 {
        self.available
    }

    /// Adds a grant; the total stays within [`MAX_CONSOLE_WINDOW`] of credit outstanding, so a
    /// peer cannot grant its way past the bound.
    pub fn grant(&mut self, bytes: u32) {
        self.available = (self.available + u64::from(bytes)).min(u64::from(MAX_CONSOLE_WINDOW));
    }

    /// Uses `bytes` of credit; false (and nothing used) when there is not that much.
    pub fn take(&mut self, bytes: usize) -> bool {
        match self.available.checked_sub(bytes as u64) {
            Some(left) => {
                self.available = left;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec() -> ExecRequest {
        ExecRequest {
            agent_id: "a".into(),
            container_id: "web".into(),
            cmd: vec!["sh".into()],
            tty: true,
            stdin: true,
            env: vec![],
            working_dir: None,
            size: Some(TermSize { cols: 80, rows: 24 }),
            window: None,
        }
    }

    #[test]
    fn exec_requests_are_bounded() {
        assert!(exec().validate().is_ok());
        let bad = [
            ExecRequest {
                cmd: vec![],
                ..exec()
            },
            ExecRequest {
                cmd: vec!["a\0".into()],
                ..exec()
            },
            ExecRequest {
                cmd: vec!["x".repeat(70_000)],
                ..exec()
            },
            ExecRequest {
                env: vec!["=x".into()],
                ..exec()
            },
            ExecRequest {
                env: vec!["NOEQUALS".into()],
                ..exec()
            },
            ExecRequest {
                working_dir: Some("rel".into()),
                ..exec()
            },
            ExecRequest {
                size: Some(TermSize { cols: 0, rows: 24 }),
                ..exec()
            },
            ExecRequest {
                window: Some(MAX_CONSOLE_WINDOW + 1),
                ..exec()
            },
            ExecRequest {
                container_id: "../x".into(),
                ..exec()
            },
        ];
        for request in bad {
            assert!(request.validate().is_err(), "{request:?}");
        }
    }

    #[test]
    fn frames_carry_binary_as_base64_within_the_chunk_limit() {
        let bytes: Vec<u8> = (0..=255).collect();
        let frame = ConsoleOutput::data(ConsoleStream::Stderr, &bytes);
        assert!(frame.validate().is_ok());
        assert_eq!(frame.bytes().unwrap(), bytes);
        let full = encode_bytes(&vec![7; MAX_CONSOLE_CHUNK_BYTES]);
        assert_eq!(decode_bytes(&full).unwrap().len(), MAX_CONSOLE_CHUNK_BYTES);
        let over = encode_bytes(&vec![7; MAX_CONSOLE_CHUNK_BYTES + 1]);
        assert!(decode_bytes(&over).is_err());
        assert!(decode_bytes("not base64!").is_err());
        // Validation bounds the text; decoding (above) bounds the bytes exactly.
        let input = StreamInput {
            inbox: "_INBOX.1".into(),
            data: Some(encode_bytes(&vec![7; MAX_CONSOLE_CHUNK_BYTES + 3])),
            ..StreamInput::default()
        };
        assert!(input.validate().is_err());
        assert_eq!(
            serde_json::to_string(&StreamInput {
                inbox: "_INBOX.1".into(),
                grant: 5,
                ..StreamInput::default()
            })
            .unwrap(),
            r#"{"inbox":"_INBOX.1","grant":5}"#
        );
    }

    #[test]
    fn credit_never_exceeds_the_window_bound() {
        let mut credit = Credit::new(10);
        assert!(credit.take(10));
        assert!(!credit.take(1));
        credit.grant(MAX_CONSOLE_WINDOW);
        credit.grant(MAX_CONSOLE_WINDOW);
        assert_eq!(credit.available(), u64::from(MAX_CONSOLE_WINDOW));
    }

    #[test]
    fn send_takes_one_line() {
        let ok = SendRequest {
            agent_id: "a".into(),
            container_id: "pz".into(),
            line: "servermsg \"hello\"".into(),
        };
        assert!(ok.validate().is_ok());
        for line in ["a\nb", "a\r", &"x".repeat(MAX_SEND_LINE_BYTES + 1)] {
            let bad = SendRequest {
                line: line.to_string(),
                ..ok.clone()
            };
            assert!(bad.validate().is_err());
        }
    }
}
