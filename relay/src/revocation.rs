//! Closes the live connections of agents and device sessions revoked by another process
//! (`zedops-relay agent revoke` on the same database), within about a second.
//! Revocations made through the relay itself close connections at once and need no watching.
//! It also ends device sessions past their lifetimes, which closes their connections the same way.

use std::sync::Arc;
use std::time::Duration;

use crate::state::AppState;
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
    // Expired device sessions are ended every quarter of the shorter lifetime (at most a
    // minute apart); the revocation check below then closes their connections.
    let sweep_every = (state.sessions.idle.min(state.sessions.max_age) / 4)
        .clamp(Duration::from_secs(1), Duration::from_secs(60));
    let mut last_sweep = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if last_sweep.elapsed() >= sweep_every {
            last_sweep = tokio::time::Instant::now();
            let live = state.hub.live_sessions();
            match state
                .store
                .end_expired_sessions(&state.sessions, &live)
                .await
            {
                Ok(0) => {}
                Ok(ended) => tracing::info!(ended, "device sessions expired"),
                Err(e) => tracing::warn!(%e, "could not end expired device sessions"),
            }
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
