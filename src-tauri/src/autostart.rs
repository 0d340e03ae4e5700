//! "Open at login": the app's entry in the system's list of programs started at login, kept by
//! the autostart plugin — `~/.config/autostart/ZedOps.desktop` on Linux, a LaunchAgent plist in
//! `~/Library/LaunchAgents` on macOS, a value under `HKCU\…\CurrentVersion\Run` on Windows.
//!
//! The entry itself is the setting: it is read back from the system every time, so turning it
//! off in the system's own settings shows in the app, and there is no second copy to disagree.
//! Started at login, the app comes up in the tray with its window hidden.

use tauri::plugin::TauriPlugin;
use tauri::{AppHandle, Manager, Runtime};
use tauri_plugin_autostart::ManagerExt;
use zedops_client::LocalCode;

use crate::error::AppError;

/// The argument the login entry starts the app with.
pub const AT_LOGIN_ARG: &str = "--at-login";

/// The plugin, with the one choice that differs by system: macOS gets a LaunchAgent (no
/// AppleScript permission prompt); Linux and Windows have a single mechanism.
pub fn plugin<R: Runtime>() -> TauriPlugin<R> {
    let builder = tauri_plugin_autostart::Builder::new().arg(AT_LOGIN_ARG);
    #[cfg(target_os = "macos")]
    let builder = builder.macos_launcher(tauri_plugin_autostart::MacosLauncher::LaunchAgent);
    builder.build()
}

/// True when this run was started by the login entry.
pub fn started_at_login() -> bool {
    std::env::args().skip(1).any(|a| a == AT_LOGIN_ARG)
}

/// Hides the main window of a run started at login when the tray can bring it back.
pub fn hide_if_started_at_login(app: &AppHandle) {
    if started_at_login() && crate::tray::is_present(app) {
        if let Some(window) = app.get_webview_window(crate::window::MAIN) {
            let _ = window.hide();
        }
    }
}

fn failed(doing: &str, err: impl std::fmt::Display) -> AppError {
    tracing::warn!(error = ?err.to_string(), "could not {doing} the login entry");
    AppError::new(
        LocalCode::ConfigError.into(),
        format!(
            "Could not {doing} ZedOps's entry among the programs started at login ({err}). \
             Check that your user's autostart folder is writable (on Linux \
             ~/.config/autostart), then try again."
        ),
    )
}

/// Whether ZedOps starts when you log in.
#[tauri::command]
#[specta::specta]
pub fn open_at_login(app: AppHandle) -> Result<bool, AppError> {
    app.autolaunch().is_enabled().map_err(|e| failed("read", e))
}

/// Turns "Open at login" on or off; answers the state read back from the system.
#[tauri::command]
#[specta::specta]
pub fn set_open_at_login(app: AppHandle, enabled: bool) -> Result<bool, AppError> {
    let manager = app.autolaunch();
    if enabled {
        // The plugin creates ~/.config/autostart but not ~/.config itself, which a fresh home
        // may lack.
        #[cfg(target_os = "linux")]
        if let Some(home) = std::env::var_os("HOME") {
            let dir = std::path::Path::new(&home).join(".config/autostart");
            std::fs::create_dir_all(&dir).map_err(|e| failed("add", e))?;
        }
        manager.enable().map_err(|e| failed("add", e))?;
    } else {
        manager.disable().map_err(|e| failed("remove", e))?;
    }
    tracing::info!(enabled, "open at login changed");
    manager.is_enabled().map_err(|e| failed("read", e))
}
