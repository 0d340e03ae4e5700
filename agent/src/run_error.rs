//! How the agent's `run` ends when retrying cannot help, typed: the binary's exit status, tests
//! and a program embedding the agent tell a refusal from bad options without reading sentences.

use zedops_protocol::ErrorCode;

/// Why [`crate::run`] gave up. Each sentence says what a person should do; everything that can
/// heal by itself (the relay or Docker away for a while) is retried instead and never ends here.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The options cannot work: no relay URL, neither a registration token nor stored
    /// credentials, an invalid `--name`, an unreadable CA file, data directory or `--allow-bind`.
    #[error("{0:#}")]
    Options(anyhow::Error),
    /// The relay refused this agent for good (`UNAUTHORIZED`, `NAME_TAKEN`,
    /// `UNSUPPORTED_VERSION`, `INVALID_REQUEST`); `advice` names the relay's reason and the fix.
    #[error("{advice}")]
    Refused { code: ErrorCode, advice: String },
    /// The relay enrolled the agent but its credentials could not be kept: the single-use token
    /// is spent, so enrolling again needs a new one.
    #[error("{0:#}")]
    Enrolment(anyhow::Error),
}
