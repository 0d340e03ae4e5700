//! Native notifications (Secret-Service-style desktop notifications on Linux, via D-Bus).

use tauri::AppHandle;
use tauri_plugin_notification::NotificationExt;

/// Shows a notification; a desktop without a notification service only loses the popup.
pub fn show(app: &AppHandle, title: &str, body: &str) {
    if let Err(err) = app.notification().builder().title(title).body(body).show() {
        tracing::warn!(%err, title, "could not show a notification");
    }
}
