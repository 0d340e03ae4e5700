//! Opening the app in a home of its own and signing in through its form, as each part of the
//! end-to-end test starts.

use std::path::Path;
use std::time::Duration;

use zedops_protocol::Role;
use zedops_testkit::{TEST_PASSWORD, TestAgent, TestRelay};

use crate::harness::{AppHome, Driver};
use crate::steps::fill_form;
use crate::webdriver::WebDriver;

const FORM_WAIT: Duration = Duration::from_secs(60);

/// The app running in a fresh home of its own, driven over WebDriver. Dropping it ends the
/// driver and removes the home (fields drop in order: the session first).
pub struct OpenApp {
    pub wd: WebDriver,
    pub driver: Driver,
    pub home: AppHome,
}

impl OpenApp {
    /// Ends the session (which closes the app), then the driver, and removes the home.
    pub async fn close(self) {
        let OpenApp { wd, driver, home } = self;
        wd.quit().await;
        drop(driver);
        drop(home);
    }
}

/// The row of the agent named `agent` in the agents list.
pub fn agent_row(agent: &str) -> String {
    format!(r#"[data-testid="agent-row"][data-agent-name="{agent}"]"#)
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
    fill_form(
        wd,
        &[
            ("relay-url", relay_url),
            ("username", user),
            ("password", TEST_PASSWORD),
        ],
    )
    .await;
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
    open.wd.wait_for(&agent_row(agent), FORM_WAIT).await;
    open
}

/// A relay with the admin `user` and the agent `agent` online at it, and the app signed in as
/// `user` showing that agent: where most parts of the test begin.
pub async fn relay_agent_and_app(
    driver_bin: &Path,
    app: &Path,
    user: &str,
    agent: &str,
) -> (TestRelay, TestAgent, OpenApp) {
    let relay = TestRelay::builder().start().await;
    relay.login(user, Role::Admin).await;
    let online = TestAgent::builder(&relay).name(agent).online().await;
    let open = open_signed_in(driver_bin, app, &relay.url, user, agent).await;
    (relay, online, open)
}
