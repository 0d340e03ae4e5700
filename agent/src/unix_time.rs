//! The wall clock in Unix seconds, as the agent's records (journal, update state, installed
//! builds) and the archives it writes into containers keep time.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch; 0 on a clock set before it.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
