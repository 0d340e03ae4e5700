//! The tray icon and its menu: a one-line fleet summary, show/hide, quit.

use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager};

use crate::state::AppState;

const TRAY_ID: &str = "main";

/// The summary line's menu item, kept to update its text.
struct Summary(MenuItem<tauri::Wry>);

pub fn create(app: &AppHandle) -> tauri::Result<()> {
    let summary = MenuItem::with_id(app, "summary", "Not signed in", false, None::<&str>)?;
    let toggle = MenuItem::with_id(app, "toggle", "Show / hide ZedOps", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit ZedOps", true, None::<&str>)?;
    let separator = PredefinedMenuItem::separator(app)?;
    let menu = Menu::with_items(app, &[&summary, &separator, &toggle, &quit])?;
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(Image::from_bytes(include_bytes!("../../icons/tray.png"))?)
        .tooltip("ZedOps")
        .menu(&menu)
        .show_menu_on_left_click(true)
        .on_menu_event(|app, event| match event.id().as_ref() {
            "toggle" => crate::window::toggle(app),
            "quit" => app.exit(0),
            _ => {}
        })
        .build(app)?;
    app.manage(Summary(summary));
    Ok(())
}

/// True once the tray exists (without one, closing the window must quit, or the app would be
/// unreachable).
pub fn is_present(app: &AppHandle) -> bool {
    app.tray_by_id(TRAY_ID).is_some()
}

/// Rewrites the summary line from the app's picture of the fleet.
pub fn refresh(app: &AppHandle) {
    let Some(summary) = app.try_state::<Summary>() else {
        return;
    };
    let signed_in = app.state::<AppState>().fleet().summary();
    if let Err(err) = summary.0.set_text(&signed_in) {
        tracing::debug!(%err, "could not update the tray summary");
    }
    if let Some(tray) = app.tray_by_id(TRAY_ID) {
        let _ = tray.set_tooltip(Some(format!("ZedOps — {signed_in}")));
    }
}

/// Back to the signed-out line.
pub fn signed_out(app: &AppHandle) {
    if let Some(summary) = app.try_state::<Summary>() {
        let _ = summary.0.set_text("Not signed in");
    }
}
