//! What the app holds between commands: the live session (if any) and its picture of the fleet.

use std::sync::{Mutex, MutexGuard};

use tauri::async_runtime::JoinHandle;
use tauri::{AppHandle, Manager};
use zedops_client::Client;

use crate::error::AppError;
use crate::fleet::Fleet;
use crate::session::Session;

/// The live connection, for a command (`NOT_SIGNED_IN` when nobody is signed in).
pub async fn client(app: &AppHandle) -> Result<Client, AppError> {
    app.state::<AppState>().client().await
}

#[derive(Default)]
pub struct AppState {
    active: tokio::sync::Mutex<Option<Active>>,
    fleet: Mutex<Fleet>,
}

struct Active {
    session: Session,
    /// Forwards the session's pushes to the UI; stopped when the session ends.
    forwarder: JoinHandle<()>,
}

impl AppState {
    /// A handle on the live connection (cheap clone), so no lock is held during a request.
    pub async fn client(&self) -> Result<Client, AppError> {
        self.active
            .lock()
            .await
            .as_ref()
            .map(|a| a.session.client.clone())
            .ok_or_else(AppError::not_signed_in)
    }

    /// Makes `session` the live one; a previous session is closed (not signed out).
    pub async fn activate(&self, session: Session, forwarder: JoinHandle<()>) {
        let old = self
            .active
            .lock()
            .await
            .replace(Active { session, forwarder });
        if let Some(old) = old {
            old.forwarder.abort();
            old.session.client.close().await;
        }
        self.fleet().clear();
    }

    /// Ends the live session here and hands it over (to be signed out, or just dropped).
    pub async fn take(&self) -> Option<Session> {
        let active = self.active.lock().await.take()?;
        active.forwarder.abort();
        self.fleet().clear();
        Some(active.session)
    }

    pub fn fleet(&self) -> MutexGuard<'_, Fleet> {
        // Nothing panics while holding it; a poisoned picture is still a usable picture.
        self.fleet.lock().unwrap_or_else(|p| p.into_inner())
    }
}
