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

#[cfg(test)]
mod tests {
    /// Windows shows a toast under the app's name only when the AppUserModelID the notification
    /// plugin sends (the config's `identifier`) is the one Tauri's installers stamp on the
    /// shortcuts (the same `identifier`); Windows takes it only when it is well formed.
    #[test]
    fn the_identifier_is_a_valid_app_user_model_id() {
        let config: serde_json::Value =
            serde_json::from_str(include_str!("../tauri.conf.json")).unwrap();
        let id = config["identifier"].as_str().unwrap();
        assert_eq!(id, "dev.zedops.desktop", "docs/RELEASE.md names it");
        assert!(id.len() <= 128, "at most 128 characters");
        let parts: Vec<&str> = id.split('.').collect();
        assert!(
            (2..=4).contains(&parts.len()),
            "Company.Product[.SubProduct[.Version]]"
        );
        assert!(
            parts
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')),
            "no spaces or other punctuation: {id}"
        );
    }
}
