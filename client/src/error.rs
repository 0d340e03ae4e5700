//! The one error type of the client library: every failure carries a stable code (the wire code,
//! or a local one) and reads as a plain sentence saying what happened and what to do.

use std::time::Duration;

use zedops_protocol::{ErrorCode, ErrorReply, OperationError};
use zedops_transport::TransportError;

/// The codes of failures that happen on this side of the relay: nothing reached it, or what
/// came back could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LocalCode {
    /// The relay could not be reached (DNS, TCP, TLS, upgrade, HTTP).
    RelayUnreachable,
    /// The connection is down, or broke while a request was in flight.
    Disconnected,
    /// The OS keyring could not be used.
    KeyringUnavailable,
    /// No device token is stored for this relay.
    NotLoggedIn,
    /// The relay URL is malformed or would send the token in plaintext.
    InvalidUrl,
    /// The private CA file cannot be used.
    InvalidCaFile,
    /// The local configuration file cannot be read or written.
    ConfigError,
    /// The relay sent something this version cannot read, or a code it does not know.
    ProtocolError,
}

impl LocalCode {
    /// Every local code.
    pub const ALL: &'static [LocalCode] = &[
        Self::RelayUnreachable,
        Self::Disconnected,
        Self::KeyringUnavailable,
        Self::NotLoggedIn,
        Self::InvalidUrl,
        Self::InvalidCaFile,
        Self::ConfigError,
        Self::ProtocolError,
    ];

    /// The spelling shown to people and scripts, e.g. `RELAY_UNREACHABLE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RelayUnreachable => "RELAY_UNREACHABLE",
            Self::Disconnected => "DISCONNECTED",
            Self::KeyringUnavailable => "KEYRING_UNAVAILABLE",
            Self::NotLoggedIn => "NOT_LOGGED_IN",
            Self::InvalidUrl => "INVALID_URL",
            Self::InvalidCaFile => "INVALID_CA_FILE",
            Self::ConfigError => "CONFIG_ERROR",
            Self::ProtocolError => "PROTOCOL_ERROR",
        }
    }
}

/// The code of any [`ClientError`]: a wire code the relay or agent sent, or a local one.
/// Serialises as the bare code string either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(untagged)]
pub enum Code {
    Wire(ErrorCode),
    Local(LocalCode),
}

impl Code {
    /// The code's spelling, e.g. `AGENT_OFFLINE` or `RELAY_UNREACHABLE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wire(code) => code.as_str(),
            Self::Local(code) => code.as_str(),
        }
    }

    /// The code spelled `text`, if this build knows it.
    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(text.to_string())).ok()
    }

    /// Every code this build knows: the wire codes, then the local ones.
    pub fn all() -> impl Iterator<Item = Code> {
        ErrorCode::ALL
            .iter()
            .map(|&c| Code::Wire(c))
            .chain(LocalCode::ALL.iter().map(|&c| Code::Local(c)))
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl From<ErrorCode> for Code {
    fn from(code: ErrorCode) -> Self {
        Self::Wire(code)
    }
}

/// Everything that can go wrong talking to a relay or keeping credentials.
///
/// Callers branch on [`ClientError::code`]; [`Display`](std::fmt::Display) is meant for people.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The relay (or the agent behind it) answered with an error.
    #[error("{}", remote_sentence(.0))]
    Remote(ErrorReply),
    /// The relay refused a login (`UNAUTHORIZED`, `RATE_LIMITED`, `INVALID_REQUEST`).
    #[error("{}", login_sentence(.0))]
    LoginRefused(ErrorReply),
    /// The relay answered with an error code this version does not know.
    #[error(
        "the relay answered with error {code} ({message}), which this version of zedops does not know: update zedops"
    )]
    UnknownRemote { code: String, message: String },
    /// The relay could not be reached at all (DNS, TCP, TLS, WebSocket upgrade, HTTP).
    #[error(
        "cannot reach the relay at {url}: {reason}; check the URL, your network, and that the relay is running"
    )]
    RelayUnreachable { url: String, reason: String },
    /// There is no connection to the relay right now, or it broke while a request was in flight.
    #[error("the connection to the relay is down ({reason}); retry once it is back")]
    Disconnected { reason: String },
    /// No answer arrived within the relay's own timeout plus a grace period.
    #[error("no answer from the relay within {} s; the relay or the agent may be overloaded, retry later", .after.as_secs())]
    Timeout { after: Duration },
    /// The OS keyring (Secret Service, Keychain, Credential Manager) could not be used.
    #[error(
        "cannot use the OS keyring: {reason}; on a machine without one, set ZEDOPS_TOKEN instead"
    )]
    Keyring { reason: String },
    /// No device token is stored for this relay.
    #[error("{}", not_logged_in_sentence(.relay.as_deref()))]
    NotLoggedIn { relay: Option<String> },
    /// The relay URL is malformed or would send the token in plaintext over the network.
    #[error("{reason}")]
    InvalidUrl { reason: String },
    /// The private CA file given with `--ca-file` cannot be used.
    #[error(
        "{reason}; pass a PEM file with the CA certificate that signed the relay's certificate"
    )]
    CaFile { reason: String },
    /// The local configuration file cannot be read or written.
    #[error("cannot use the configuration file {path}: {reason}; fix or delete it")]
    Config { path: String, reason: String },
    /// The relay sent something this client cannot make sense of.
    #[error(
        "the relay sent an answer this version of zedops cannot read ({reason}); check that relay and zedops versions match"
    )]
    Protocol { reason: String },
}

impl ClientError {
    /// The error code: the wire code (`AGENT_OFFLINE`, `UNAUTHORIZED`, …) for errors the relay
    /// reported, or a [`LocalCode`] for failures that never reached it (`TIMEOUT` here is the
    /// wire code: the same meaning, seen from this side).
    pub fn code(&self) -> Code {
        match self {
            Self::Remote(reply) | Self::LoginRefused(reply) => Code::Wire(reply.error_code),
            Self::Timeout { .. } => Code::Wire(ErrorCode::Timeout),
            Self::UnknownRemote { .. } | Self::Protocol { .. } => {
                Code::Local(LocalCode::ProtocolError)
            }
            Self::RelayUnreachable { .. } => Code::Local(LocalCode::RelayUnreachable),
            Self::Disconnected { .. } => Code::Local(LocalCode::Disconnected),
            Self::Keyring { .. } => Code::Local(LocalCode::KeyringUnavailable),
            Self::NotLoggedIn { .. } => Code::Local(LocalCode::NotLoggedIn),
            Self::InvalidUrl { .. } => Code::Local(LocalCode::InvalidUrl),
            Self::CaFile { .. } => Code::Local(LocalCode::InvalidCaFile),
            Self::Config { .. } => Code::Local(LocalCode::ConfigError),
        }
    }

    /// The wire error code, when the relay or agent reported this error.
    pub fn error_code(&self) -> Option<ErrorCode> {
        match self {
            Self::Remote(reply) | Self::LoginRefused(reply) => Some(reply.error_code),
            _ => None,
        }
    }

    /// Seconds to wait before retrying, when the relay said so (`RATE_LIMITED`).
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::Remote(reply) | Self::LoginRefused(reply) => reply.retry_after_secs,
            _ => None,
        }
    }

    pub(crate) fn protocol(reason: impl std::fmt::Display) -> Self {
        Self::Protocol {
            reason: reason.to_string(),
        }
    }

    pub(crate) fn disconnected(reason: impl Into<String>) -> Self {
        Self::Disconnected {
            reason: reason.into(),
        }
    }
}

/// Maps dialling and handshake failures; `url` names the endpoint for the user.
pub(crate) fn from_transport(err: TransportError, url: &str) -> ClientError {
    match err {
        TransportError::InvalidUrl { .. } | TransportError::PlaintextRefused { .. } => {
            ClientError::InvalidUrl {
                reason: err.to_string(),
            }
        }
        TransportError::CaFile { .. } => ClientError::CaFile {
            reason: err.to_string(),
        },
        TransportError::Connect { source, .. } => ClientError::RelayUnreachable {
            url: url.to_string(),
            reason: source.to_string(),
        },
        TransportError::NoTls { .. } => ClientError::InvalidUrl {
            reason: err.to_string(),
        },
        TransportError::Timeout(after) => ClientError::RelayUnreachable {
            url: url.to_string(),
            reason: format!("no answer within {} s", after.as_secs()),
        },
        TransportError::WebSocket(e) => ClientError::disconnected(e.to_string()),
        TransportError::Closed => ClientError::disconnected("the relay closed the connection"),
        TransportError::Protocol(e) => ClientError::protocol(e),
        TransportError::Refused(reply) => ClientError::Remote(reply),
    }
}

/// Decodes the `data` of an answer that has an `errorCode` key: an [`ErrorReply`], or the
/// `container.operation.error` shape (which carries the same two fields plus more).
pub(crate) fn decode_error_answer(raw: &str) -> ClientError {
    if let Ok(op) = serde_json::from_str::<OperationError>(raw) {
        return ClientError::Remote(ErrorReply::new(op.error_code, op.error));
    }
    if let Ok(reply) = serde_json::from_str::<ErrorReply>(raw) {
        return ClientError::Remote(reply);
    }
    // A code added to the protocol after this version: keep what the relay said.
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Loose {
        error_code: serde_json::Value,
        #[serde(default)]
        error: Option<String>,
    }
    match serde_json::from_str::<Loose>(raw) {
        Ok(loose) => ClientError::UnknownRemote {
            code: match loose.error_code {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            },
            message: loose.error.unwrap_or_default(),
        },
        Err(e) => ClientError::protocol(format!("unreadable error answer: {e}")),
    }
}

/// True when the answer's `data` is an error: it is an object with an `errorCode` key.
/// Scans without building a tree, so a large container list costs one pass.
pub(crate) fn is_error_answer(raw: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "errorCode")]
        error_code: Option<serde::de::IgnoredAny>,
    }
    // serde would also read a struct from an array; only an object can be an error answer.
    raw.trim_start().starts_with('{')
        && serde_json::from_str::<Probe>(raw).is_ok_and(|p| p.error_code.is_some())
}

/// The relay phrases its messages "what happened; what to do". A message that already has the
/// second half is shown as it is; a bare one (often from Docker, via the agent) gets a hint.
fn has_advice(message: &str) -> bool {
    message.contains("; ")
}

fn remote_sentence(reply: &ErrorReply) -> String {
    let what = reply.error.trim_end_matches('.');
    if has_advice(what) {
        return what.to_string();
    }
    let hint = match reply.error_code {
        ErrorCode::Unauthorized => "log in again with `zedops login`",
        ErrorCode::Forbidden => "ask a relay admin for a role that allows this",
        ErrorCode::AgentOffline => "check that the agent is running and can reach the relay",
        ErrorCode::Timeout => {
            "the agent is connected but slow to answer; retry, or check the agent's Docker engine"
        }
        ErrorCode::NotFound => "`zedops agents` lists the agents the relay knows",
        ErrorCode::ContainerNotFound => {
            "`zedops ps --agent AGENT` lists the containers on that agent"
        }
        ErrorCode::RateLimited => return rate_limited(what, reply.retry_after_secs),
        ErrorCode::DockerNotAvailable => {
            "check that Docker is running on that server and the agent may use its socket"
        }
        ErrorCode::DockerListFailed
        | ErrorCode::DockerStartFailed
        | ErrorCode::DockerStopFailed
        | ErrorCode::DockerRestartFailed => {
            "Docker on that server refused; check the container there"
        }
        // The message names the value that is wrong; nothing to add but to correct it.
        ErrorCode::InvalidRequest => "correct it and try again",
        ErrorCode::DockerPullFailed
        | ErrorCode::DockerCreateFailed
        | ErrorCode::DockerRemoveFailed
        | ErrorCode::ExecFailed
        | ErrorCode::FileFailed => "that is Docker's answer on that server; check there",
        ErrorCode::UnsupportedVersion => "update zedops to the relay's version",
        ErrorCode::SelfProtected => "stop or restart the agent itself on that server instead",
        ErrorCode::Unavailable => "retry in a moment",
        ErrorCode::Internal => "the relay's log says more; retry, or report it",
        // Other codes' messages stand alone (the relay and agent phrase them with the remedy).
        _ => return what.to_string(),
    };
    format!("{what}: {hint}")
}

fn login_sentence(reply: &ErrorReply) -> String {
    let what = reply.error.trim_end_matches('.');
    if has_advice(what) {
        return format!("login refused: {what}");
    }
    match reply.error_code {
        ErrorCode::Unauthorized => {
            format!("login refused ({what}): check the user name and password")
        }
        ErrorCode::RateLimited => {
            rate_limited(&format!("login refused ({what})"), reply.retry_after_secs)
        }
        _ => format!("login refused ({what})"),
    }
}

fn rate_limited(what: &str, retry_after: Option<u64>) -> String {
    match retry_after {
        Some(secs) => format!("{what}: too many attempts, retry in {secs} s"),
        None => format!("{what}: too many attempts, retry later"),
    }
}

fn not_logged_in_sentence(relay: Option<&str>) -> String {
    match relay {
        Some(url) => format!(
            "not logged in to {url}: run `zedops login --relay {url} --user NAME --password-stdin`"
        ),
        None => "not logged in and no relay given: run `zedops login --relay URL --user NAME --password-stdin`, \
                 or pass --relay URL (ZEDOPS_RELAY) with ZEDOPS_TOKEN"
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_one_spelling_that_parses_back() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::all() {
            assert!(seen.insert(code.as_str()), "{code} spelled twice");
            assert_eq!(Code::parse(code.as_str()), Some(code));
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
        assert_eq!(Code::parse("SOMETHING_NEW"), None);
    }

    #[test]
    fn an_answer_is_an_error_when_it_has_an_error_code() {
        assert!(is_error_answer(
            r#"{"errorCode":"AGENT_OFFLINE","error":"agent a is offline"}"#
        ));
        assert!(is_error_answer(
            r#"{"success":false,"containerId":"web","operation":"stop","error":"boom","errorCode":"DOCKER_STOP_FAILED"}"#
        ));
        assert!(!is_error_answer(r#"{"agents":[],"count":0}"#));
        assert!(!is_error_answer(
            r#"{"success":true,"containerId":"web","operation":"stop"}"#
        ));
        assert!(!is_error_answer("null"));
        assert!(!is_error_answer("[1,2]"));
        // A nested errorCode (a container label, say) is not the answer's own.
        assert!(!is_error_answer(
            r#"{"containers":[{"labels":{"errorCode":"x"}}],"count":1}"#
        ));
    }

    #[test]
    fn error_replies_keep_code_and_message() {
        let err = decode_error_answer(
            r#"{"errorCode":"AGENT_OFFLINE","error":"agent web-1 is not connected"}"#,
        );
        assert_eq!(err.code(), "AGENT_OFFLINE");
        assert_eq!(err.error_code(), Some(ErrorCode::AgentOffline));
        let text = err.to_string();
        assert!(
            text.starts_with("agent web-1 is not connected: check that the agent"),
            "{text}"
        );

        let err = decode_error_answer(
            r#"{"errorCode":"RATE_LIMITED","error":"slow down","retryAfterSecs":7}"#,
        );
        assert_eq!(err.code(), "RATE_LIMITED");
        assert_eq!(err.retry_after_secs(), Some(7));
        assert!(err.to_string().contains("retry in 7 s"), "{err}");

        // The relay's own advice is not repeated.
        let err = decode_error_answer(
            r#"{"errorCode":"UNAUTHORIZED","error":"the device token is unknown or was revoked; log in again"}"#,
        );
        assert_eq!(
            err.to_string(),
            "the device token is unknown or was revoked; log in again"
        );
    }

    #[test]
    fn each_kind_of_refusal_gets_advice_that_fits_it() {
        let said = |code: &str, error: &str| {
            decode_error_answer(&serde_json::json!({"errorCode": code, "error": error}).to_string())
                .to_string()
        };
        // An invalid value is not blamed on agent or container names.
        assert_eq!(
            said("INVALID_REQUEST", "ttlSecs must be at most 31536000"),
            "ttlSecs must be at most 31536000: correct it and try again"
        );
        assert_eq!(
            said("DOCKER_REMOVE_FAILED", "image is being used by a container"),
            "image is being used by a container: that is Docker's answer on that server; check there"
        );
        // A code without advice of its own shows the message as it is, not a pointer to logs
        // that say nothing more.
        assert_eq!(
            said("PORT_IN_USE", "port 8080 is taken"),
            "port 8080 is taken"
        );
    }

    #[test]
    fn operation_errors_become_remote_errors() {
        let err = decode_error_answer(
            r#"{"success":false,"containerId":"web","operation":"stop","error":"container web is wedged","errorCode":"DOCKER_STOP_FAILED"}"#,
        );
        assert_eq!(err.code(), "DOCKER_STOP_FAILED");
        assert!(
            err.to_string().starts_with("container web is wedged"),
            "{err}"
        );
    }

    #[test]
    fn unknown_codes_and_garbage_are_protocol_errors() {
        let err = decode_error_answer(r#"{"errorCode":"QUOTA_EXCEEDED","error":"too many"}"#);
        assert_eq!(err.code(), "PROTOCOL_ERROR");
        assert!(
            err.to_string().contains("QUOTA_EXCEEDED") && err.to_string().contains("too many"),
            "{err}"
        );
        let err = decode_error_answer(r#"{"errorCode":"#);
        assert_eq!(err.code(), "PROTOCOL_ERROR");
    }

    #[test]
    fn local_errors_have_local_codes_and_say_what_to_do() {
        let err = ClientError::NotLoggedIn {
            relay: Some("https://relay.example".into()),
        };
        assert_eq!(err.code(), "NOT_LOGGED_IN");
        assert_eq!(
            err.to_string(),
            "not logged in to https://relay.example: run `zedops login --relay https://relay.example --user NAME --password-stdin`"
        );
        assert_eq!(ClientError::disconnected("x").code(), "DISCONNECTED");
        assert_eq!(
            ClientError::Timeout {
                after: Duration::from_secs(15)
            }
            .code(),
            "TIMEOUT"
        );
        assert_eq!(
            ClientError::Keyring {
                reason: "locked".into()
            }
            .code(),
            "KEYRING_UNAVAILABLE"
        );
        let login = ClientError::LoginRefused(ErrorReply::new(
            ErrorCode::Unauthorized,
            "wrong user name or password",
        ));
        assert_eq!(login.code(), "UNAUTHORIZED");
        assert!(
            login
                .to_string()
                .contains("check the user name and password"),
            "{login}"
        );
    }

    #[test]
    fn url_errors_map_to_invalid_url() {
        let err = zedops_transport::RelayUrl::parse("http://relay.example", false).unwrap_err();
        let err = from_transport(err, "http://relay.example");
        assert_eq!(err.code(), "INVALID_URL");
        assert!(err.to_string().contains("--insecure"), "{err}");
        let err = from_transport(
            zedops_transport::RelayUrl::parse("ftp://x", true).unwrap_err(),
            "ftp://x",
        );
        assert_eq!(err.code(), "INVALID_URL");
    }
}
