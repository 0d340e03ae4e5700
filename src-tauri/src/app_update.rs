//! In-app updates of the desktop app itself (agents' updates are `update.rs`), through the Tauri
//! updater plugin: a manifest (`latest.json`) names the newest version, and per system the
//! download's URL and its minisign signature; the plugin downloads the build, checks the
//! signature against the app's own update key (`plugins.updater.pubkey` in tauri.conf.json)
//! and only then installs it — on Linux over the running AppImage (a `.deb` install would run
//! `pkexec dpkg -i`), on Windows by running the NSIS or MSI installer, on macOS by replacing the
//! `.app`. docs/RELEASE.md says how releases are signed and where the manifest is served.
//!
//! A build made without an update key (the default outside the release workflow) says so and
//! never downloads anything.

use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use tauri::AppHandle;
use tauri::Manager;
use tauri_plugin_updater::{Error as UpdaterError, Update, Updater, UpdaterExt};
use zedops_client::ErrorCode as WireCode;

use crate::error::AppError;

/// How long checking the manifest may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a download may take (the plugin holds the download in memory; this bounds it).
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The update found by the last check, installed by [`install_app_update`]; one install at a time.
#[derive(Default)]
pub struct PendingUpdate {
    found: Mutex<Option<Update>>,
    installing: tokio::sync::Mutex<()>,
}

/// What a check found.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct AppUpdateCheck {
    /// The version running now.
    pub current_version: String,
    /// A newer version, when there is one.
    pub available: Option<AvailableAppUpdate>,
}

#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct AvailableAppUpdate {
    pub version: String,
    /// Release notes from the manifest.
    pub notes: Option<String>,
}

/// An installed update: the new version runs after a restart.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct AppUpdateInstalled {
    pub version: String,
}

/// The update key and endpoints from tauri.conf.json. Debug builds (and only they) take
/// `ZEDOPS_UPDATE_PUBKEY` and `ZEDOPS_UPDATE_ENDPOINT` instead, so the end-to-end test can
/// serve an update signed with a key it made; a release build trusts its own key alone.
fn updater(app: &AppHandle) -> Result<Updater, AppError> {
    let configured = app
        .config()
        .plugins
        .0
        .get("updater")
        .and_then(|u| u.get("pubkey"))
        .and_then(|k| k.as_str())
        .unwrap_or_default()
        .to_string();
    let mut builder = app.updater_builder();
    #[allow(unused_mut)]
    let mut pubkey = configured;
    #[cfg(debug_assertions)]
    {
        if let Ok(key) = std::env::var("ZEDOPS_UPDATE_PUBKEY") {
            builder = builder.pubkey(key.clone());
            pubkey = key;
        }
        if let Ok(url) = std::env::var("ZEDOPS_UPDATE_ENDPOINT") {
            let url = url.parse().map_err(|e| failed(format!("{e}")))?;
            builder = builder.endpoints(vec![url]).map_err(plain)?;
        }
    }
    if pubkey.trim().is_empty() {
        return Err(AppError::new(
            WireCode::Unsupported.into(),
            "This build of ZedOps was made without an update key, so it cannot update itself. \
             Download new versions from where you got this one.",
        ));
    }
    builder.timeout(CHECK_TIMEOUT).build().map_err(plain)
}

fn failed(detail: String) -> AppError {
    AppError::new(
        WireCode::UpdateFailed.into(),
        format!("Could not update ZedOps: {detail}. ZedOps was left as it was; try again later."),
    )
}

/// The updater's errors in plain words. A signature that does not verify is a refusal, not a
/// failure: the download is thrown away and nothing is installed.
fn plain(err: UpdaterError) -> AppError {
    tracing::warn!(error = ?err.to_string(), "app update failed");
    match err {
        UpdaterError::Minisign(_) | UpdaterError::Base64(_) | UpdaterError::SignatureUtf8(_) => {
            AppError::new(
                WireCode::UpdateRefused.into(),
                format!(
                    "The update was refused: it is not signed with ZedOps's update key ({err}). \
                     Nothing was installed. Tell whoever publishes your ZedOps updates; do not \
                     install this build by hand."
                ),
            )
        }
        UpdaterError::EmptyEndpoints => AppError::new(
            WireCode::Unsupported.into(),
            "This build of ZedOps has no update address, so it cannot update itself. \
             Download new versions from where you got this one.",
        ),
        UpdaterError::Reqwest(_) | UpdaterError::Network(_) | UpdaterError::ReleaseNotFound => {
            AppError::new(
                WireCode::UpdateFailed.into(),
                format!(
                    "Could not reach ZedOps's update server ({err}). Check your connection and \
                     try again."
                ),
            )
        }
        UpdaterError::TargetNotFound(_) | UpdaterError::TargetsNotFound(_) => AppError::new(
            WireCode::UpdateFailed.into(),
            format!("The update server offers no build of ZedOps for this system ({err})."),
        ),
        other => failed(other.to_string()),
    }
}

/// Asks the update server whether a newer ZedOps exists.
#[tauri::command]
#[specta::specta]
pub async fn check_app_update(app: AppHandle) -> Result<AppUpdateCheck, AppError> {
    let current_version = app.package_info().version.to_string();
    let found = updater(&app)?.check().await.map_err(plain)?;
    let available = found.as_ref().map(|u| AvailableAppUpdate {
        version: u.version.clone(),
        notes: u.body.clone(),
    });
    match &available {
        Some(a) => tracing::info!(version = %a.version, "an update of the app is available"),
        None => tracing::info!("the app is up to date"),
    }
    *app.state::<PendingUpdate>()
        .found
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = found;
    Ok(AppUpdateCheck {
        current_version,
        available,
    })
}

/// Downloads the update found by the last check, verifies its signature and installs it. On
/// Windows the installer takes over and the app exits; elsewhere it runs after a restart.
#[tauri::command]
#[specta::specta]
pub async fn install_app_update(app: AppHandle) -> Result<AppUpdateInstalled, AppError> {
    let pending = app.state::<PendingUpdate>();
    let Ok(_one) = pending.installing.try_lock() else {
        return Err(AppError::new(
            WireCode::UpdateInProgress.into(),
            "An update of ZedOps is already being installed; wait for it to finish.",
        ));
    };
    let found = pending
        .found
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    let mut update = match found {
        Some(update) => update,
        None => match updater(&app)?.check().await.map_err(plain)? {
            Some(update) => update,
            None => {
                return Err(AppError::new(
                    WireCode::UpdateFailed.into(),
                    "There is no newer ZedOps to install: this is the newest version.",
                ));
            }
        },
    };
    update.timeout = Some(DOWNLOAD_TIMEOUT);
    let version = update.version.clone();
    tracing::info!(%version, "downloading an update of the app");
    // The plugin verifies the signature before it hands the bytes back.
    let bytes = update.download(|_, _| {}, || {}).await.map_err(plain)?;
    tracing::info!(%version, bytes = bytes.len(), "the app update's signature is good; installing");
    update.install(bytes).map_err(plain)?;
    tracing::info!(%version, "the app update is installed");
    Ok(AppUpdateInstalled { version })
}

/// Restarts the app (after an update).
#[tauri::command]
#[specta::specta]
pub fn restart_app(app: AppHandle) {
    app.restart();
}
