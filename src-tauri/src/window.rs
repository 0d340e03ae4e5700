//! The main window: closing it hides it (the app keeps running in the tray), and the tray or a
//! second start brings it back.

use tauri::{AppHandle, Manager, Window, WindowEvent};

pub const MAIN: &str = "main";

/// Shows, unminimises and focuses the main window. The app shows it through
/// [`crate::alerting::show_window`], which also marks the alerts seen.
pub fn show(app: &AppHandle) {
    if let Some(window) = app.get_webview_window(MAIN) {
        let _ = window.show();
        let _ = window.unminimize();
        let _ = window.set_focus();
    }
}

/// Hides the main window if it is visible, shows it with `show` otherwise. `show` comes from
/// the caller so that this module needs nothing from the alerts that showing it marks seen.
pub fn toggle(app: &AppHandle, show: impl FnOnce(&AppHandle)) {
    if let Some(window) = app.get_webview_window(MAIN) {
        match window.is_visible() {
            Ok(true) => {
                let _ = window.hide();
            }
            _ => show(app),
        }
    }
}

/// Keeps the app alive in the tray when the window is closed; Quit in the tray menu ends it.
pub fn on_event(window: &Window, event: &WindowEvent) {
    if let WindowEvent::CloseRequested { api, .. } = event {
        if window.label() == MAIN && crate::tray::is_present(window.app_handle()) {
            api.prevent_close();
            let _ = window.hide();
        }
    }
}
