//! Closes the live connections of agents and device sessions revoked by another process
//! (`zedops-relay agent revoke` on the same database), within about a second.
//! Revocations made through the relay itself close connections at once and need no watching.

use std::sync::Arc;
use std::time::Duration;

use crate::server::AppState;
use crate::store::now;

/// How often the database is checked for new revocations.
pub const CHECK_EVERY: Duration = Duration::from_millis(500);

/// Runs until the relay shuts down.
pub async fn watch(state: Arc<AppState>) {
    let mut shutdown = state.shutdown.clone();
    let mut tick = tokio::time::interval(CHECK_EVERY);
    // Times are whole seconds: look one second back so a revocation in the same second as the
    // previous check is not missed (kicking twice is harmless).
    let mut since = now() - 1;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let checked_at = now();
        match state.store.revoked_since(since).await {
            Ok((agents, sessions)) => {
                for id in agents {
                    state.hub.kick_agent(&id);
                }
                for id in sessions {
                    state.hub.kick_session(&id);
                }
                since = checked_at - 1;
            }
            Err(e) => tracing::warn!(%e, "could not check for revocations"),
        }
    }
}
