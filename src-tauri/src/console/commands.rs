//! The console commands: open a session, type, resize, ack output, close. Thin wrappers over
//! [`super`], kept here so the console feature stays in one folder.

use tauri::ipc::Channel;
use tauri::{AppHandle, Manager};

use super::{ConsoleEvent, ConsoleKind, Consoles};
use crate::error::AppError;
use crate::state::client;

fn consoles(app: &AppHandle) -> tauri::State<'_, Consoles> {
    app.state::<Consoles>()
}

/// Opens a console on a container: its main process (`attach`) or a `shell` (one of
/// `/bin/sh`, `/bin/bash`, `/bin/ash`; `null` is `/bin/sh`) with a terminal of `cols`×`rows`.
/// Events arrive on `on_event`; returns the session id for the other console commands.
#[tauri::command]
#[specta::specta]
#[allow(clippy::too_many_arguments)]
pub async fn open_console(
    app: AppHandle,
    agent_id: String,
    container_id: String,
    kind: ConsoleKind,
    shell: Option<String>,
    cols: u16,
    rows: u16,
    on_event: Channel<ConsoleEvent>,
) -> Result<u32, AppError> {
    let client = client(&app).await?;
    let session = super::open(
        &client,
        &agent_id,
        &container_id,
        kind,
        shell.as_deref(),
        super::term_size(cols, rows),
    )
    .await?;
    Ok(consoles(&app).start(session, move |event| on_event.send(event).is_ok()))
}

/// Keystrokes or pasted text for a session.
#[tauri::command]
#[specta::specta]
pub fn console_input(app: AppHandle, id: u32, text: String) -> Result<(), AppError> {
    consoles(&app).input(id, &text)
}

/// The terminal changed size.
#[tauri::command]
#[specta::specta]
pub fn console_resize(app: AppHandle, id: u32, cols: u16, rows: u16) -> Result<(), AppError> {
    consoles(&app).resize(id, cols, rows)
}

/// The terminal wrote `bytes` of output: the agent may send that much more.
#[tauri::command]
#[specta::specta]
pub fn console_ack(app: AppHandle, id: u32, bytes: u32) -> Result<(), AppError> {
    consoles(&app).ack(id, bytes)
}

/// Ends a session; a shell's process ends with it. Unknown ids are ignored.
#[tauri::command]
#[specta::specta]
pub fn close_console(app: AppHandle, id: u32) {
    consoles(&app).close(id)
}
