//! The alerts the app raises (crashes, OOM kills, failing health checks, agents offline past the
//! grace period): each is listed in the app, shown as a native notification unless its agent is
//! muted, and counted on the tray and window badge until seen. The mute list is kept in the
//! settings file so it survives restarts.

pub mod commands;
mod log;

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use specta::Type;
use tauri::{AppHandle, Manager};
use tauri_specta::Event;

pub use log::{AlertKind, AlertView, MAX_ALERTS, NewAlert};

use crate::error::{AppError, ErrorCode};
use crate::settings::{self, Settings};
use crate::{notify, tray, window};

/// The alert list, the unseen count or the mutes changed. `reveal` is set when the person asked
/// to see the alerts (the tray's "N alerts — show"), so the UI opens the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, Event)]
#[serde(rename_all = "camelCase")]
pub struct AlertsChanged {
    pub state: AlertsState,
    pub reveal: bool,
}

/// What the UI shows: the recent alerts, how many are unseen, which agents are muted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct AlertsState {
    /// Newest first, at most [`MAX_ALERTS`].
    pub alerts: Vec<AlertView>,
    pub unseen: u32,
    /// Agent ids.
    pub muted_agents: Vec<String>,
}

/// The alert list and the settings behind the mutes; one per app (Tauri-managed state).
pub struct AlertCenter {
    inner: Mutex<Inner>,
}

struct Inner {
    log: log::AlertLog,
    settings: Settings,
    /// Where the settings live; `None` when the platform has no config directory (mutes then
    /// last until the app quits).
    path: Option<PathBuf>,
}

impl AlertCenter {
    /// Loads the mutes from `path`. An unreadable file is logged and ignored: starting with no
    /// agent muted is better than not starting.
    pub fn load(path: Option<PathBuf>) -> Self {
        let settings = match &path {
            Some(p) => Settings::load(p).unwrap_or_else(|err| {
                tracing::warn!(%err, path = %p.display(), "could not read the settings; no agent is muted until they are saved again");
                Settings::default()
            }),
            None => Settings::default(),
        };
        Self {
            inner: Mutex::new(Inner {
                log: log::AlertLog::default(),
                settings,
                path,
            }),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while holding it; a poisoned list is still a usable list.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_muted(&self, agent_id: &str) -> bool {
        self.inner().settings.is_muted(agent_id)
    }

    /// Lists an alert raised at `at` (Unix seconds), noting whether its agent is muted.
    pub fn record(&self, alert: NewAlert, at: u32) -> AlertView {
        let mut inner = self.inner();
        let muted = inner.settings.is_muted(&alert.agent_id);
        inner.log.push(alert, muted, at)
    }

    /// Marks every alert seen; returns whether the count changed.
    pub fn mark_seen(&self) -> bool {
        self.inner().log.mark_seen()
    }

    pub fn unseen(&self) -> u32 {
        self.inner().log.unseen()
    }

    /// Mutes or unmutes an agent and saves the list. When it cannot be saved nothing changes,
    /// and the error says where and what to check.
    pub fn set_muted(&self, agent_id: &str, muted: bool) -> Result<(), AppError> {
        let mut inner = self.inner();
        if !inner.settings.set_muted(agent_id, muted) {
            return Ok(());
        }
        let Some(path) = inner.path.clone() else {
            return Ok(());
        };
        if let Err(err) = inner.settings.save(&path) {
            inner.settings.set_muted(agent_id, !muted);
            return Err(AppError::new(
                ErrorCode::Local(zedops_client::LocalCode::ConfigError),
                format!(
                    "Could not save the {} setting to {} ({err}), so nothing changed. Check that the folder exists and is writable, then try again.",
                    if muted { "mute" } else { "unmute" },
                    path.display()
                ),
            ));
        }
        Ok(())
    }

    pub fn state(&self) -> AlertsState {
        let inner = self.inner();
        AlertsState {
            alerts: inner.log.list(),
            unseen: inner.log.unseen(),
            muted_agents: inner.settings.muted_agents.iter().cloned().collect(),
        }
    }

    /// Forgets the alerts (they belong to the session that raised them); mutes stay.
    pub fn clear(&self) {
        self.inner().log.clear();
    }
}

/// Sets up the alert center with the mutes saved in the app's config directory.
pub fn init(app: &AppHandle) {
    let path = match app.path().app_config_dir() {
        Ok(dir) => Some(dir.join(settings::FILE_NAME)),
        Err(err) => {
            tracing::warn!(%err, "no config directory: mutes last until the app quits");
            None
        }
    };
    app.manage(AlertCenter::load(path));
}

fn now_secs() -> u32 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    secs.min(u32::MAX.into()) as u32
}

/// Raises an alert: lists it, shows a native notification unless its agent is muted, and
/// updates the UI, the tray and the window badge.
pub fn raise(app: &AppHandle, alert: NewAlert) {
    let Some(center) = app.try_state::<AlertCenter>() else {
        notify::show(app, &alert.title, &alert.body);
        return;
    };
    let view = center.record(alert, now_secs());
    if view.muted {
        tracing::debug!(agent = %view.agent_name, title = %view.title, "agent muted: alert listed, not notified");
    } else {
        notify::show(app, &view.title, &view.body);
    }
    publish(app, false);
}

/// Pushes the alert state to the UI (`reveal`: open the alert list) and redraws tray and badge.
pub fn publish(app: &AppHandle, reveal: bool) {
    let Some(center) = app.try_state::<AlertCenter>() else {
        return;
    };
    let state = center.state();
    let unseen = state.unseen;
    let _ = AlertsChanged { state, reveal }.emit(app);
    tray::show_unseen(app, unseen);
    badge(app, unseen);
}

/// The window's badge count (the dock on macOS, launchers that implement the Unity launcher API
/// on Linux); Windows has no such badge, and the tray icon says it there.
fn badge(app: &AppHandle, unseen: u32) {
    #[cfg(not(target_os = "windows"))]
    if let Some(window) = app.get_webview_window(window::MAIN) {
        let count = (unseen > 0).then_some(i64::from(unseen));
        if let Err(err) = window.set_badge_count(count) {
            tracing::debug!(%err, "could not set the window badge");
        }
    }
    #[cfg(target_os = "windows")]
    let _ = (app, unseen);
}

/// The person has seen the alerts (the window was shown, or they said so).
pub fn seen(app: &AppHandle) {
    if app
        .try_state::<AlertCenter>()
        .is_some_and(|c| c.mark_seen())
    {
        publish(app, false);
    }
}

/// Shows, unminimises and focuses the main window; the alerts count as seen once it is up.
/// Here rather than in the `window` module so the window (and the tray) sit below the alerts.
pub fn show_window(app: &AppHandle) {
    window::show(app);
    seen(app);
}

/// Hides the main window if it is visible, shows it as [`show_window`] does otherwise (the
/// tray's "Show / hide").
pub fn toggle_window(app: &AppHandle) {
    window::toggle(app, show_window);
}

/// Shows the window with the alert list open (the tray's "N alerts — show").
pub fn reveal(app: &AppHandle) {
    // Showing the window marks the alerts seen.
    show_window(app);
    publish(app, true);
}

/// Forgets the alerts, at sign-out.
pub fn clear(app: &AppHandle) {
    if let Some(center) = app.try_state::<AlertCenter>() {
        center.clear();
        publish(app, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crash(agent: &str) -> NewAlert {
        NewAlert {
            kind: AlertKind::Crashed,
            agent_id: agent.into(),
            agent_name: format!("name-{agent}"),
            container: Some("web".into()),
            title: "web stopped".into(),
            body: String::new(),
        }
    }

    #[test]
    fn mutes_persist_and_mark_alerts_muted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(settings::FILE_NAME);
        let center = AlertCenter::load(Some(path.clone()));
        center.set_muted("a", true).unwrap();
        assert!(center.record(crash("a"), 1).muted);
        assert!(!center.record(crash("b"), 2).muted);
        let state = center.state();
        assert_eq!(state.unseen, 1, "only the unmuted agent's alert counts");
        assert_eq!(state.muted_agents, ["a"]);
        assert_eq!(state.alerts.len(), 2, "both are listed");

        // The next start remembers the mute, not the alerts.
        let restarted = AlertCenter::load(Some(path.clone()));
        assert!(restarted.is_muted("a"));
        assert!(restarted.state().alerts.is_empty());
        restarted.set_muted("a", false).unwrap();
        assert!(!AlertCenter::load(Some(path)).is_muted("a"));
    }

    #[test]
    fn a_mute_that_cannot_be_saved_changes_nothing_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the config directory should be: nothing can be written below it.
        let blocker = dir.path().join("config");
        std::fs::write(&blocker, "").unwrap();
        let center = AlertCenter::load(Some(blocker.join(settings::FILE_NAME)));
        let err = center.set_muted("a", true).unwrap_err();
        assert_eq!(
            err.code,
            ErrorCode::Local(zedops_client::LocalCode::ConfigError)
        );
        assert!(
            err.message.contains("nothing changed") && err.message.contains("writable"),
            "{}",
            err.message
        );
        assert!(!center.is_muted("a"));
    }

    #[test]
    fn seen_and_cleared_alerts_stop_counting() {
        let center = AlertCenter::load(None);
        center.record(crash("a"), 1);
        center.record(crash("a"), 2);
        assert_eq!(center.unseen(), 2);
        assert!(center.mark_seen());
        assert_eq!(center.unseen(), 0);
        assert_eq!(center.state().alerts.len(), 2, "seen alerts stay listed");
        center.set_muted("a", true).unwrap();
        center.clear();
        assert!(center.state().alerts.is_empty());
        assert!(center.is_muted("a"), "mutes outlive the alerts");
    }
}
