//! The one error type that crosses into the UI: `{code, message}`, where `code` is stable for
//! the UI to branch on and `message` is a sentence for people saying what happened and what to do.

use serde::Serialize;
use zedops_client::ClientError;

/// Every code the UI may see: the relay's and agent's wire codes, the client library's local
/// codes, and the few the app adds. Exported to TypeScript as a string union.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, specta::Type)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    // Wire codes (relay and agent).
    DockerNotAvailable,
    DockerListFailed,
    DockerStartFailed,
    DockerStopFailed,
    DockerRestartFailed,
    ContainerNotFound,
    InvalidRequest,
    Unauthorized,
    Forbidden,
    AgentOffline,
    Timeout,
    RateLimited,
    NotFound,
    UnsupportedVersion,
    NameTaken,
    Internal,
    // Local codes of the client library.
    RelayUnreachable,
    Disconnected,
    KeyringUnavailable,
    NotLoggedIn,
    InvalidUrl,
    InvalidCaFile,
    ConfigError,
    ProtocolError,
    // The app's own.
    /// A form field is empty or unusable.
    InvalidInput,
}

impl ErrorCode {
    /// The code for a client library code string; codes this build does not know (the library
    /// added one) become `PROTOCOL_ERROR`, and the message still says what happened.
    pub fn parse(code: &str) -> Self {
        serde_json::from_value(serde_json::Value::String(code.to_string()))
            .unwrap_or(Self::ProtocolError)
    }
}

/// Every code, for parsing and for tests.
pub const ALL: [ErrorCode; 25] = {
    use ErrorCode::*;
    [
        DockerNotAvailable,
        DockerListFailed,
        DockerStartFailed,
        DockerStopFailed,
        DockerRestartFailed,
        ContainerNotFound,
        InvalidRequest,
        Unauthorized,
        Forbidden,
        AgentOffline,
        Timeout,
        RateLimited,
        NotFound,
        UnsupportedVersion,
        NameTaken,
        Internal,
        RelayUnreachable,
        Disconnected,
        KeyringUnavailable,
        NotLoggedIn,
        InvalidUrl,
        InvalidCaFile,
        ConfigError,
        ProtocolError,
        InvalidInput,
    ]
};

impl ErrorCode {
    /// The wire spelling, e.g. `AGENT_OFFLINE`.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            DockerNotAvailable => "DOCKER_NOT_AVAILABLE",
            DockerListFailed => "DOCKER_LIST_FAILED",
            DockerStartFailed => "DOCKER_START_FAILED",
            DockerStopFailed => "DOCKER_STOP_FAILED",
            DockerRestartFailed => "DOCKER_RESTART_FAILED",
            ContainerNotFound => "CONTAINER_NOT_FOUND",
            InvalidRequest => "INVALID_REQUEST",
            Unauthorized => "UNAUTHORIZED",
            Forbidden => "FORBIDDEN",
            AgentOffline => "AGENT_OFFLINE",
            Timeout => "TIMEOUT",
            RateLimited => "RATE_LIMITED",
            NotFound => "NOT_FOUND",
            UnsupportedVersion => "UNSUPPORTED_VERSION",
            NameTaken => "NAME_TAKEN",
            Internal => "INTERNAL",
            RelayUnreachable => "RELAY_UNREACHABLE",
            Disconnected => "DISCONNECTED",
            KeyringUnavailable => "KEYRING_UNAVAILABLE",
            NotLoggedIn => "NOT_LOGGED_IN",
            InvalidUrl => "INVALID_URL",
            InvalidCaFile => "INVALID_CA_FILE",
            ConfigError => "CONFIG_ERROR",
            ProtocolError => "PROTOCOL_ERROR",
            InvalidInput => "INVALID_INPUT",
        }
    }
}

/// An error as the UI receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type, thiserror::Error)]
#[error("{message}")]
pub struct AppError {
    pub code: ErrorCode,
    pub message: String,
}

impl AppError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// A command that needs a session was called while signed out.
    pub fn not_signed_in() -> Self {
        Self::new(
            ErrorCode::NotLoggedIn,
            "You are not signed in: sign in with your relay URL, user name and password.",
        )
    }

    /// The OS keyring could not be used; the sentence names the fix on a desktop.
    pub fn keyring(reason: &str) -> Self {
        Self::new(
            ErrorCode::KeyringUnavailable,
            format!(
                "The OS keyring is unavailable ({reason}). Start and unlock your keyring \
                 (GNOME Keyring, KWallet, macOS Keychain or Windows Credential Manager) so ZedOps can keep you signed in."
            ),
        )
    }
}

impl From<ClientError> for AppError {
    fn from(err: ClientError) -> Self {
        let code = ErrorCode::parse(err.code());
        // The library's sentences point at the `zedops` command line; in the app the fix is the
        // sign-in form or the keyring, so those few are reworded.
        let message = match &err {
            ClientError::Keyring { reason } => return Self::keyring(reason),
            ClientError::NotLoggedIn { .. } => return Self::not_signed_in(),
            ClientError::Remote(reply) if code == ErrorCode::Unauthorized => format!(
                "The relay no longer accepts this sign-in ({}): sign in again.",
                reply.error.trim_end_matches('.')
            ),
            _ => capitalise(&err.to_string()),
        };
        Self { code, message }
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zedops_client::{ErrorCode as WireCode, ErrorReply};

    #[test]
    fn serialises_to_code_and_message() {
        let err = AppError::new(ErrorCode::AgentOffline, "agent eu-1 is offline");
        assert_eq!(
            serde_json::to_string(&err).unwrap(),
            r#"{"code":"AGENT_OFFLINE","message":"agent eu-1 is offline"}"#
        );
    }

    #[test]
    fn client_errors_keep_their_code() {
        let err: AppError = ClientError::Remote(ErrorReply::new(
            WireCode::DockerStopFailed,
            "container web is wedged",
        ))
        .into();
        assert_eq!(err.code, ErrorCode::DockerStopFailed);
        assert!(
            err.message.starts_with("Container web is wedged"),
            "{}",
            err.message
        );
        let json = serde_json::to_value(&err).unwrap();
        assert_eq!(json["code"], "DOCKER_STOP_FAILED");

        let err: AppError = ClientError::RelayUnreachable {
            url: "http://127.0.0.1:1".into(),
            reason: "connection refused".into(),
        }
        .into();
        assert_eq!(
            serde_json::to_value(&err).unwrap()["code"],
            "RELAY_UNREACHABLE"
        );
        assert!(err.message.contains("check the URL"), "{}", err.message);
    }

    #[test]
    fn keyring_and_session_errors_name_the_desktop_fix() {
        let err: AppError = ClientError::Keyring {
            reason: "no Secret Service".into(),
        }
        .into();
        assert_eq!(
            serde_json::to_value(&err).unwrap()["code"],
            "KEYRING_UNAVAILABLE"
        );
        assert!(
            err.message.contains("no Secret Service")
                && err.message.contains("unlock your keyring"),
            "{}",
            err.message
        );
        assert!(!err.message.contains("ZEDOPS_TOKEN"));

        let err: AppError =
            ClientError::Remote(ErrorReply::new(WireCode::Unauthorized, "session revoked")).into();
        assert_eq!(
            err.message,
            "The relay no longer accepts this sign-in (session revoked): sign in again."
        );
        let err: AppError = ClientError::NotLoggedIn { relay: None }.into();
        assert!(!err.message.contains("zedops login"), "{}", err.message);
    }

    #[test]
    fn every_code_round_trips_and_unknown_codes_fall_back() {
        for code in ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), code);
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
        assert_eq!(ErrorCode::parse("SOMETHING_NEW"), ErrorCode::ProtocolError);
    }

    #[test]
    fn every_client_library_code_is_known() {
        let wire = [
            WireCode::DockerNotAvailable,
            WireCode::DockerListFailed,
            WireCode::DockerStartFailed,
            WireCode::DockerStopFailed,
            WireCode::DockerRestartFailed,
            WireCode::ContainerNotFound,
            WireCode::InvalidRequest,
            WireCode::Unauthorized,
            WireCode::Forbidden,
            WireCode::AgentOffline,
            WireCode::Timeout,
            WireCode::RateLimited,
            WireCode::NotFound,
            WireCode::UnsupportedVersion,
            WireCode::NameTaken,
            WireCode::Internal,
        ];
        for code in wire {
            let err: AppError = ClientError::Remote(ErrorReply::new(code, "x")).into();
            assert_eq!(err.code.as_str(), code.as_str());
        }
    }
}
