//! The main window: closing it hides it (the app keeps running in the tray), and the tray or a
//! second start brings it back.

use tauri::{AppHandle, Manager, Window, WindowEvent};

pub const MAIN: &str = "main";

/// Shows, unminimises and focuses the main window; the alerts count as seen once it is up.
pub fn show(app: &AppHandle) {
    if let Some(window) = app.get_webview_window(MAIN) {
        let _ = window.show();
        let _ = window.unminimize();
        let _ = window.set_focus();
    }
    crate::alerting::seen(app);
}

/// Hides the main window if it is visible, shows it otherwise.
pub fn toggle(app: &AppHandle) {
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
