//! The tray icon and its menu: a one-line fleet summary, the unseen alerts ("3 alerts — show",
//! and a red dot on the icon), show/hide, quit.
//!
//! Which image the tray shows on which system is decided in [`TrayIcon::for_os`]: the app's
//! tile (and the tile with a red dot) on Linux and Windows; on macOS a template image, the Z
//! alone that the menu bar tints for light and dark mode, and the coloured tile with the dot
//! while there are unseen alerts (a template cannot carry a red dot).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager};

use crate::state::AppState;

const TRAY_ID: &str = "main";
const ICON: &[u8] = include_bytes!("../../icons/tray.png");
/// The same icon with a red dot: there are unseen alerts.
const ICON_ALERT: &[u8] = include_bytes!("../../icons/tray-alert.png");
/// macOS's menu bar image: black on transparent, tinted by the system.
const ICON_TEMPLATE: &[u8] = include_bytes!("../../icons/tray-template.png");

/// The tray image for a system and alert state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TrayIcon {
    png: &'static [u8],
    /// A macOS template image (the system draws it in the menu bar's colour).
    template: bool,
}

impl TrayIcon {
    /// The image for the operating system `os` (a value of `std::env::consts::OS`).
    fn for_os(os: &str, alerting: bool) -> Self {
        let (png, template) = match (os, alerting) {
            ("macos", false) => (ICON_TEMPLATE, true),
            (_, true) => (ICON_ALERT, false),
            (_, false) => (ICON, false),
        };
        Self { png, template }
    }

    fn current(alerting: bool) -> Self {
        Self::for_os(std::env::consts::OS, alerting)
    }
}

/// The menu items whose text changes, which icon is up (to swap it only on a change: refresh
/// runs on every container event), and the unseen alerts last told by [`show_unseen`].
struct Items {
    summary: MenuItem<tauri::Wry>,
    alerts: MenuItem<tauri::Wry>,
    alert_icon: AtomicBool,
    unseen: AtomicU32,
}

/// What the menu's entries do, given by the app: the tray sits below the alerts and the
/// window, so it names none of their functions itself.
pub struct MenuActions {
    /// "N alerts — show": the window with the alert list open.
    pub show_alerts: fn(&AppHandle),
    /// "Show / hide ZedOps".
    pub toggle_window: fn(&AppHandle),
}

pub fn create(app: &AppHandle, actions: MenuActions) -> tauri::Result<()> {
    let summary = MenuItem::with_id(app, "summary", "Not signed in", false, None::<&str>)?;
    let alerts = MenuItem::with_id(app, "alerts", alert_line(0), false, None::<&str>)?;
    let toggle = MenuItem::with_id(app, "toggle", "Show / hide ZedOps", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit ZedOps", true, None::<&str>)?;
    let separator = PredefinedMenuItem::separator(app)?;
    let menu = Menu::with_items(app, &[&summary, &alerts, &separator, &toggle, &quit])?;
    let icon = TrayIcon::current(false);
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(Image::from_bytes(icon.png)?)
        .icon_as_template(icon.template)
        .tooltip("ZedOps")
        .menu(&menu)
        .show_menu_on_left_click(true)
        .on_menu_event(move |app, event| match event.id().as_ref() {
            "alerts" => (actions.show_alerts)(app),
            "toggle" => (actions.toggle_window)(app),
            "quit" => app.exit(0),
            _ => {}
        })
        .build(app)?;
    app.manage(Items {
        summary,
        alerts,
        alert_icon: AtomicBool::new(false),
        unseen: AtomicU32::new(0),
    });
    Ok(())
}

/// True once the tray exists (without one, closing the window must quit, or the app would be
/// unreachable).
pub fn is_present(app: &AppHandle) -> bool {
    app.tray_by_id(TRAY_ID).is_some()
}

/// The alerts line of the menu.
fn alert_line(unseen: u32) -> String {
    match unseen {
        0 => "No new alerts".to_string(),
        1 => "1 alert — show".to_string(),
        n => format!("{n} alerts — show"),
    }
}

/// The tooltip: the fleet summary, and the unseen alerts when there are any.
fn tooltip(summary: &str, unseen: u32) -> String {
    match unseen {
        0 => format!("ZedOps — {summary}"),
        1 => format!("ZedOps — 1 unseen alert · {summary}"),
        n => format!("ZedOps — {n} unseen alerts · {summary}"),
    }
}

/// The alerts tell how many are unseen now (they change only through the alert center, which
/// calls this after each change); the tray redraws with it.
pub fn show_unseen(app: &AppHandle, unseen: u32) {
    let Some(items) = app.try_state::<Items>() else {
        return;
    };
    items.unseen.store(unseen, Ordering::Relaxed);
    refresh(app);
}

/// Rewrites the summary and alert lines, the tooltip and the icon from the app's picture of the
/// fleet and the unseen alerts last told by [`show_unseen`].
pub fn refresh(app: &AppHandle) {
    let Some(items) = app.try_state::<Items>() else {
        return;
    };
    let signed_in = app.state::<AppState>().fleet().summary();
    let unseen = items.unseen.load(Ordering::Relaxed);
    if let Err(err) = items.summary.set_text(&signed_in) {
        tracing::debug!(%err, "could not update the tray summary");
    }
    let _ = items.alerts.set_text(alert_line(unseen));
    let _ = items.alerts.set_enabled(unseen > 0);
    if let Some(tray) = app.tray_by_id(TRAY_ID) {
        let _ = tray.set_tooltip(Some(tooltip(&signed_in, unseen)));
        let alerting = unseen > 0;
        if items.alert_icon.swap(alerting, Ordering::Relaxed) != alerting {
            let icon = TrayIcon::current(alerting);
            let image = Image::from_bytes(icon.png);
            // Image and template flag together: set one after the other, macOS flickers.
            if let Err(err) =
                image.and_then(|image| tray.set_icon_with_as_template(Some(image), icon.template))
            {
                tracing::debug!(%err, "could not change the tray icon");
            }
        }
    }
}

/// Back to the signed-out look (the caller clears the session's alerts, which redraws their
/// count).
pub fn signed_out(app: &AppHandle) {
    if let Some(items) = app.try_state::<Items>() {
        let _ = items.summary.set_text("Not signed in");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_menu_and_tooltip_count_unseen_alerts() {
        assert_eq!(alert_line(0), "No new alerts");
        assert_eq!(alert_line(1), "1 alert — show");
        assert_eq!(alert_line(3), "3 alerts — show");
        assert_eq!(tooltip("No agents yet", 0), "ZedOps — No agents yet");
        assert_eq!(
            tooltip("1 of 1 agents online", 2),
            "ZedOps — 2 unseen alerts · 1 of 1 agents online"
        );
    }

    /// The icon `png` and the plain tray icon, decoded; every variant is drawn at the plain
    /// one's size, so the tray does not jump when it changes.
    fn beside_the_plain_icon(png: &'static [u8]) -> (Image<'static>, Image<'static>) {
        let plain = Image::from_bytes(ICON).unwrap();
        let icon = Image::from_bytes(png).unwrap();
        assert_eq!(
            (icon.width(), icon.height()),
            (plain.width(), plain.height())
        );
        (icon, plain)
    }

    #[test]
    fn the_alert_icon_is_the_tray_icon_with_a_dot() {
        let (alert, plain) = beside_the_plain_icon(ICON_ALERT);
        assert_ne!(alert.rgba(), plain.rgba());
    }

    #[test]
    fn macos_gets_a_template_icon_until_there_are_alerts() {
        for os in ["linux", "windows"] {
            assert_eq!(
                TrayIcon::for_os(os, false),
                TrayIcon {
                    png: ICON,
                    template: false
                }
            );
            assert_eq!(
                TrayIcon::for_os(os, true),
                TrayIcon {
                    png: ICON_ALERT,
                    template: false
                }
            );
        }
        assert_eq!(
            TrayIcon::for_os("macos", false),
            TrayIcon {
                png: ICON_TEMPLATE,
                template: true
            }
        );
        // A template is drawn in one colour: the red dot needs the coloured tile.
        assert_eq!(
            TrayIcon::for_os("macos", true),
            TrayIcon {
                png: ICON_ALERT,
                template: false
            }
        );
    }

    #[test]
    fn the_template_icon_is_black_on_transparent() {
        let (template, _) = beside_the_plain_icon(ICON_TEMPLATE);
        let pixels: Vec<&[u8]> = template.rgba().chunks(4).collect();
        // macOS uses only the alpha channel of a template: colour would be thrown away.
        assert!(pixels.iter().all(|p| p[..3] == [0, 0, 0]));
        let opaque = pixels.iter().filter(|p| p[3] == 255).count();
        let clear = pixels.iter().filter(|p| p[3] == 0).count();
        assert!(
            opaque > pixels.len() / 5 && clear > pixels.len() / 3,
            "{opaque} {clear}"
        );
    }
}
