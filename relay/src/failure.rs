//! How the relay's own failures reach a peer: a database error becomes `INTERNAL` with a
//! sentence saying where to look (`UNAVAILABLE` when the database cannot be reached), and the
//! error itself goes to the relay's log only (it may hold paths or SQL, which are no business
//! of a client or an agent). Also the one shape of a `RATE_LIMITED` refusal.

use zedops_protocol::{ErrorCode, ErrorReply};

use crate::store::StoreError;

/// What a peer is told when the database fails.
pub const DATABASE_FAILED: &str = "the relay could not use its database; see the relay's log";
/// What a peer is told when the database server cannot be reached (PostgreSQL down).
pub const DATABASE_UNAVAILABLE: &str =
    "the relay's database cannot be reached right now; try again in a moment";

/// `RATE_LIMITED` saying `message`, to be retried after `secs` seconds.
pub(crate) fn rate_limited(message: impl Into<String>, secs: u64) -> ErrorReply {
    let mut reply = ErrorReply::new(ErrorCode::RateLimited, message);
    reply.retry_after_secs = Some(secs);
    reply
}

/// An audit entry could not be written, so `what` was not done: `UNAVAILABLE` (retry) when the
/// database cannot be reached, else `INTERNAL` with `internal` (see the relay's log).
pub(crate) fn audit_failed(e: &StoreError, what: &str, internal: &str) -> ErrorReply {
    if e.is_unavailable() {
        return ErrorReply::new(
            ErrorCode::Unavailable,
            format!(
                "{what}: the relay's database cannot be reached right now; try again in a moment"
            ),
        );
    }
    ErrorReply::new(ErrorCode::Internal, internal)
}

impl From<StoreError> for ErrorReply {
    /// Logs the failure with the place it happened (the `?` or `map_err` that converted it),
    /// so `store.x().await?` needs no log line of its own.
    #[track_caller]
    fn from(e: StoreError) -> Self {
        let at = std::panic::Location::caller();
        tracing::error!(%e, %at, "store failure");
        if e.is_unavailable() {
            // Distinct from INTERNAL: nothing is wrong with the request, and it can be retried.
            return ErrorReply::new(ErrorCode::Unavailable, DATABASE_UNAVAILABLE);
        }
        ErrorReply::new(ErrorCode::Internal, DATABASE_FAILED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_failure_is_internal_without_its_detail() {
        let reply = ErrorReply::from(StoreError::Hash("secret detail".into()));
        assert_eq!(reply.error_code, ErrorCode::Internal);
        assert!(!reply.error.contains("secret"), "{}", reply.error);
    }
}
