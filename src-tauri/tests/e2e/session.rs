//! Opening the app in a home of its own and signing in through its form, as each part of the
//! end-to-end test starts.

use std::path::Path;
use std::time::Duration;

use zedops_testkit::TEST_PASSWORD;

use crate::harness::{AppHome, Driver};
use crate::webdriver::WebDriver;

const FORM_WAIT: Duration = Duration::from_secs(60);

/// The app running in a fresh home of its own, driven over WebDriver. Dropping it ends the
/// driver and removes the home (fields drop in order: the session first).
pub struct OpenApp {
    pub wd: WebDriver,
    pub driver: Driver,
    pub home: AppHome,
}

/// Starts `app` under tauri-driver (`driver_bin`) with a home of its own.
pub async fn open_app(driver_bin: &Path, app: &Path) -> OpenApp {
    let home = AppHome::new();
    let driver = Driver::start(driver_bin, &home.env());
    let wd = WebDriver::start(&driver.url, app.to_str().unwrap()).await;
    OpenApp { wd, driver, home }
}

/// Fills in the sign-in form (relay address, user, the test password) and presses Sign in.
pub async fn sign_in(wd: &WebDriver, relay_url: &str, user: &str) {
    for (field, value) in [
        ("relay-url", relay_url),
        ("username", user),
        ("password", TEST_PASSWORD),
    ] {
        let css = format!(r#"[data-testid="{field}"]"#);
        wd.type_into(&wd.wait_for(&css, FORM_WAIT).await, value)
            .await;
    }
    wd.click_when_shown(r#"[data-testid="sign-in"]"#, FORM_WAIT)
        .await;
}

/// Opens the app, signs in as `user` and waits until the agent `agent` is listed.
pub async fn open_signed_in(
    driver_bin: &Path,
    app: &Path,
    relay_url: &str,
    user: &str,
    agent: &str,
) -> OpenApp {
    let open = open_app(driver_bin, app).await;
    sign_in(&open.wd, relay_url, user).await;
    open.wd
        .wait_for(
            &format!(r#"[data-testid="agent-row"][data-agent-name="{agent}"]"#),
            FORM_WAIT,
        )
        .await;
    open
}
