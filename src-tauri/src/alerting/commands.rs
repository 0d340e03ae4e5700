//! The alert commands: the list, marking it seen, muting an agent. Thin wrappers over
//! [`super::AlertCenter`], kept here so the alert feature stays in one folder.

use tauri::{AppHandle, Manager};

use super::{AlertCenter, AlertsState};
use crate::error::AppError;

fn center(app: &AppHandle) -> tauri::State<'_, AlertCenter> {
    app.state::<AlertCenter>()
}

/// The recent alerts (newest first), how many are unseen, and the muted agents' ids.
#[tauri::command]
#[specta::specta]
pub fn alert_state(app: AppHandle) -> Result<AlertsState, AppError> {
    Ok(center(&app).state())
}

/// Marks every alert seen: the tray icon and the badges go back to normal.
#[tauri::command]
#[specta::specta]
pub fn mark_alerts_seen(app: AppHandle) -> Result<AlertsState, AppError> {
    super::seen(&app);
    Ok(center(&app).state())
}

/// Mutes (or unmutes) an agent's native notifications; its alerts are still listed. Remembered
/// across restarts.
#[tauri::command]
#[specta::specta]
pub fn set_agent_muted(
    app: AppHandle,
    agent_id: String,
    muted: bool,
) -> Result<AlertsState, AppError> {
    center(&app).set_muted(&agent_id, muted)?;
    super::publish(&app, false);
    Ok(center(&app).state())
}
