//! Native notifications, through the notification plugin on every system: the freedesktop
//! notification service over D-Bus on Linux (GNOME Shell, KDE, dunst), the user notification
//! centre on macOS, and toasts on Windows, which show the app's name when the installer has
//! registered its AppUserModelID (a build started by hand shows them as PowerShell's). Nothing
//! here differs by system; where the system has no notification service the popup is lost and
//! the alert list in the window still has it.

use tauri::AppHandle;
use tauri_plugin_notification::NotificationExt;

/// Shows a notification; a desktop without a notification service only loses the popup.
pub fn show(app: &AppHandle, title: &str, body: &str) {
    if let Err(err) = app.notification().builder().title(title).body(body).show() {
        tracing::warn!(%err, title, "could not show a notification");
    }
}
