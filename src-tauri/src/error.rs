//! The one error type that crosses into the UI: `{code, message}`, where `code` is stable for
//! the UI to branch on and `message` is a sentence for people saying what happened and what to do.

use serde::Serialize;
use zedops_client::{ClientError, Code, ErrorCode as WireCode, LocalCode};

/// The app's own codes, beside the relay's and the client library's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, specta::Type)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AppCode {
    /// A form field is empty or unusable.
    InvalidInput,
}

/// Every code the UI may see: a wire code of the relay or agent, a local code of the client
/// library, or one of the app's own. It wraps the protocol's and the library's enums, so a code
/// added there reaches the UI (and its TypeScript union) without a change here. Serialises as
/// the bare code string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, specta::Type)]
#[serde(untagged)]
pub enum ErrorCode {
    Wire(WireCode),
    Local(LocalCode),
    App(AppCode),
}

impl ErrorCode {
    /// A form field is empty or unusable.
    pub const INVALID_INPUT: Self = Self::App(AppCode::InvalidInput);

    /// The wire spelling, e.g. `AGENT_OFFLINE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wire(code) => code.as_str(),
            Self::Local(code) => code.as_str(),
            Self::App(AppCode::InvalidInput) => "INVALID_INPUT",
        }
    }

    /// Every code, for tests that keep the UI complete.
    pub fn all() -> impl Iterator<Item = Self> {
        Code::all()
            .map(Self::from)
            .chain([Self::App(AppCode::InvalidInput)])
    }
}

impl From<Code> for ErrorCode {
    fn from(code: Code) -> Self {
        match code {
            Code::Wire(code) => Self::Wire(code),
            Code::Local(code) => Self::Local(code),
        }
    }
}

impl From<WireCode> for ErrorCode {
    fn from(code: WireCode) -> Self {
        Self::Wire(code)
    }
}

impl From<LocalCode> for ErrorCode {
    fn from(code: LocalCode) -> Self {
        Self::Local(code)
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

    /// A refusal by role (`FORBIDDEN`) told with `message`, which says who may do it (the
    /// relay's own sentence names no role); any other error as it is.
    pub fn when_forbidden(self, message: impl FnOnce() -> String) -> Self {
        if self.code == ErrorCode::Wire(WireCode::Forbidden) {
            Self::new(self.code, message())
        } else {
            self
        }
    }

    /// A command that needs a session was called while signed out.
    pub fn not_signed_in() -> Self {
        Self::new(
            LocalCode::NotLoggedIn.into(),
            "You are not signed in: sign in with your relay URL, user name and password.",
        )
    }

    /// The OS keyring could not be used; the sentence names the fix on a desktop.
    pub fn keyring(reason: &str) -> Self {
        Self::new(
            LocalCode::KeyringUnavailable.into(),
            format!(
                "The OS keyring is unavailable ({reason}). Start and unlock your keyring \
                 (GNOME Keyring, KWallet, macOS Keychain or Windows Credential Manager) so ZedOps can keep you signed in."
            ),
        )
    }
}

impl From<ClientError> for AppError {
    fn from(err: ClientError) -> Self {
        let code = ErrorCode::from(err.code());
        // The library's sentences point at the `zedops` command line; in the app the fix is the
        // sign-in form or the keyring, so those few are reworded.
        let message = match &err {
            ClientError::Keyring { reason } => return Self::keyring(reason),
            ClientError::NotLoggedIn { .. } => return Self::not_signed_in(),
            ClientError::Remote(reply) if code == WireCode::Unauthorized.into() => format!(
                "The relay no longer accepts this sign-in ({}): sign in again.",
                reply.error.trim_end_matches('.')
            ),
            _ => capitalise(&err.to_string()),
        };
        Self { code, message }
    }
}

/// An agent's reason (the end of a stream, a failed step) as the sentence the UI shows:
/// capitalised, or saying that there was none.
pub fn sentence(reason: &str) -> String {
    match reason.trim() {
        "" => "The agent gave no reason.".to_string(),
        reason => capitalise(reason),
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
    use zedops_client::ErrorReply;

    #[test]
    fn serialises_to_code_and_message() {
        let err = AppError::new(WireCode::AgentOffline.into(), "agent eu-1 is offline");
        assert_eq!(
            serde_json::to_string(&err).unwrap(),
            r#"{"code":"AGENT_OFFLINE","message":"agent eu-1 is offline"}"#
        );
    }

    #[test]
    fn an_agents_reason_becomes_a_sentence() {
        assert_eq!(sentence(" no such image: web\n"), "No such image: web");
        assert_eq!(sentence(" \n"), "The agent gave no reason.");
    }

    #[test]
    fn client_errors_keep_their_code() {
        let err: AppError = ClientError::Remote(ErrorReply::new(
            WireCode::DockerStopFailed,
            "container web is wedged",
        ))
        .into();
        assert_eq!(err.code, WireCode::DockerStopFailed.into());
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
    fn every_code_round_trips_as_its_bare_spelling() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::all() {
            assert!(seen.insert(code.as_str()), "{} twice", code.as_str());
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
            let back: ErrorCode = serde_json::from_value(code.as_str().into()).unwrap();
            assert_eq!(back, code);
        }
    }

    #[test]
    fn every_wire_code_reaches_the_ui_as_itself() {
        // SELF_PROTECTED once reached the UI as PROTOCOL_ERROR because the app kept its own copy.
        for &code in WireCode::ALL {
            let err: AppError = ClientError::Remote(ErrorReply::new(code, "x")).into();
            assert_eq!(err.code, ErrorCode::Wire(code));
            assert_eq!(serde_json::to_value(&err).unwrap()["code"], code.as_str());
        }
    }
}
