//! End to end: the real app under a real X display, driven over WebDriver (tauri-driver +
//! WebKitWebDriver), against a real relay, a real agent and real Docker containers, with a real
//! Secret Service (gnome-keyring) and a real notification daemon (dunst).
//!
//! Needs all of that around it, so it is `#[ignore]`d in plain `cargo test` and run by
//! `scripts/test-desktop`, which provides them: `cargo test -p zedops-desktop --test e2e -- --ignored`.
//! Every missing part fails the test with what to do; nothing is skipped.

mod agent_updates;
mod deploy;
mod files;
#[allow(dead_code)]
mod harness;
mod images_templates_fleet;
mod observe;
mod platform;
mod session;
mod steps;
mod updates;
#[allow(dead_code)]
mod webdriver;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use harness::{
    AppHome, Driver, require, require_desktop_parts, require_dunst, run, wait_notification,
};
use steps::{filter_fleet, shot};
use webdriver::WebDriver;
use zedops_protocol::Role;
use zedops_testkit::{TEST_PASSWORD, TestAgent, TestContainers, TestRelay};

const AGENT: &str = "e2e-agent";
const USER: &str = "e2e-admin";
/// Generous: a cold WebKit start under Xvfb on 2 cores takes seconds.
const UI_WAIT: Duration = Duration::from_secs(60);
const ACTION_WAIT: Duration = Duration::from_secs(30);
/// The app's offline grace period in this test (30 s by default): short, yet longer than an
/// agent takes to reconnect after a blip.
const GRACE: Duration = Duration::from_secs(5);

/// The keyring entries `secret-tool` finds for the service `zedops`.
fn keyring_users() -> String {
    run("secret-tool", &["search", "--all", "service", "zedops"])
        .lines()
        .filter(|l| l.starts_with("attribute.username"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// True when any file under `dir` contains `needle`.
fn found_on_disk(dir: &Path, needle: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(hit) = found_on_disk(&path, needle) {
                return Some(hit);
            }
        } else if std::fs::read(&path)
            .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
        {
            return Some(path);
        }
    }
    None
}

/// Waits until the element's text is `want`.
async fn wait_text(wd: &WebDriver, css: &str, want: &str) {
    let deadline = Instant::now() + UI_WAIT;
    loop {
        let found = wd.find_all(css).await;
        let text = match found.first() {
            Some(el) => wd.text(el).await,
            None => String::new(),
        };
        if text == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{css} says {text:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One app at a time: the app is single-instance, so a second start would hand over to the first.
static ONE_APP: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a display, tauri-driver, a keyring, Docker and docker-registry: run scripts/test-desktop"]
async fn the_desktop_app_deploys_opens_a_console_and_files_and_removes() {
    let _one = ONE_APP.lock().await;
    deploy::deploy_console_files_and_remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a display, tauri-driver and a keyring: run scripts/test-desktop"]
async fn the_desktop_app_opens_at_login_runs_once_and_keeps_its_window_size() {
    let _one = ONE_APP.lock().await;
    platform::open_at_login_single_instance_and_window_state().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a display, tauri-driver and a keyring: run scripts/test-desktop"]
async fn the_desktop_app_updates_itself_only_with_its_own_key() {
    let _one = ONE_APP.lock().await;
    platform::updates_itself_only_with_its_key().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a display, tauri-driver, a keyring and Docker: run scripts/test-desktop"]
async fn the_desktop_app_edits_uploads_and_removes_files_and_attaches() {
    let _one = ONE_APP.lock().await;
    files::edit_upload_mkdir_delete_and_attach().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a display, tauri-driver, dunst, Docker and docker-registry: run scripts/test-desktop"]
async fn the_desktop_app_shows_image_updates_updates_and_rolls_back() {
    let _one = ONE_APP.lock().await;
    updates::badge_update_and_rollback().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a display, tauri-driver, a keyring, Docker and docker-registry: run scripts/test-desktop"]
async fn the_desktop_app_pulls_and_removes_images_writes_a_template_in_the_form_and_updates_all() {
    let _one = ONE_APP.lock().await;
    images_templates_fleet::images_template_form_and_update_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a display, tauri-driver and a keyring: run scripts/test-desktop"]
async fn the_desktop_app_updates_agents_showing_each_state_live() {
    let _one = ONE_APP.lock().await;
    agent_updates::update_agents_live().await;
}

/// The agent row's mute toggle.
const MUTE: &str =
    r#"[data-testid="agent-row"][data-agent-name="e2e-agent"] [data-testid="mute-agent"]"#;

/// The row of the container named `name`.
fn row(name: &str) -> String {
    format!(r#"[data-testid="container-row"][data-container-name="{name}"]"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a display, tauri-driver, a keyring and dunst: run scripts/test-desktop"]
async fn the_desktop_app_controls_real_containers() {
    let _one = ONE_APP.lock().await;
    // Every part first, so a missing one says so before anything starts.
    let (driver_bin, app_bin) = require_desktop_parts();
    require_dunst();
    require(
        run("secret-tool", &["--version"]).contains("secret-tool"),
        "secret-tool (libsecret-tools)",
    );
    let docker = harness::docker().await;

    // The real relay, agent and containers.
    let relay = TestRelay::builder().start().await;
    relay.login(USER, Role::Admin).await;
    let mut containers = TestContainers::new(&docker);
    let web = containers.sleeper("web").await;
    // Company for the screenshot: another running container and one never started.
    let db = containers.sleeper("db").await;
    // Killed while their agent is muted, and after it is unmuted.
    let quiet = containers.sleeper("quiet").await;
    let loud = containers.sleeper("loud").await;
    // Talks, for the detail view's log viewer: 20 numbered lines and one on stderr.
    let talk = containers
        .create(
            "talk",
            &[
                "/bin/sh",
                "-c",
                "for i in $(seq 1 20); do echo talk line $i; done; echo talk trouble >&2; \
                 trap 'exit 0' TERM; sleep 100000 & wait",
            ],
            true,
        )
        .await;
    containers
        .create("batch", &TestContainers::SLEEP_CMD, false)
        .await;
    let agent_dir = tempfile::tempdir().unwrap();
    let agent = TestAgent::builder(&relay)
        .name(AGENT)
        .data_dir(agent_dir.path())
        .online()
        .await;

    // The app's own places, so the test neither reads nor leaves anything in the real ones.
    let home = AppHome::new();
    let mut env = home.env();
    let grace = GRACE.as_secs().to_string();
    env.push(("ZEDOPS_OFFLINE_GRACE_SECS", Path::new(&grace)));
    let driver = Driver::start(&driver_bin, &env);
    let app = app_bin.to_str().unwrap();

    // Sign in.
    let wd = WebDriver::start(&driver.url, app).await;
    session::sign_in(&wd, &relay.url, USER).await;
    let agent_row = wd.wait_for(&session::agent_row(AGENT), UI_WAIT).await;
    let users = keyring_users();
    assert!(
        users.contains(&relay.url),
        "the device token is in the keyring under {}: {users}",
        relay.url
    );
    assert_eq!(
        found_on_disk(home.dir.path(), TEST_PASSWORD),
        None,
        "the password must be nowhere on disk"
    );

    // The agent's container table shows the real container.
    // WebKitWebDriver does not click table rows themselves, only what is inside them.
    wd.click(&wd.find_in(&agent_row, "td").await).await;
    let web_row = wd
        .wait_for(&format!(r#"{}[data-state="running"]"#, row(&web)), UI_WAIT)
        .await;
    shot(&wd, "container-table.png").await;

    // Stop stops the real container, and the row changes by itself.
    let stop = wd.find_in(&web_row, r#"[data-testid="action-stop"]"#).await;
    assert!(
        wd.enabled(&stop).await,
        "Stop is enabled for a running container"
    );
    wd.click(&stop).await;
    wd.wait_for(
        &format!(r#"{}[data-state="exited"]"#, row(&web)),
        ACTION_WAIT,
    )
    .await;
    assert_eq!(
        containers.state(&web).await,
        "exited",
        "Docker itself says the container stopped"
    );
    let toast = wd.wait_for(r#"[data-testid="toast"]"#, UI_WAIT).await;
    let text = wd.text(&toast).await;
    assert!(
        text.contains("Stopped") && text.contains(&web),
        "toast: {text}"
    );
    shot(&wd, "after-stop.png").await;

    // The fleet view lists it too, with its agent, and filters by text.
    let filter = filter_fleet(&wd, &web).await;
    wd.wait_for(
        &format!(
            r#"{}[data-agent-name="{AGENT}"][data-state="exited"]"#,
            row(&web)
        ),
        UI_WAIT,
    )
    .await;
    assert_eq!(
        wd.find_all(r#"[data-testid="container-row"]"#).await.len(),
        1,
        "the filter leaves one row"
    );
    shot(&wd, "fleet.png").await;

    // A container's detail: what Docker says of it, live stats and its log, searchable.
    wd.clear(&filter).await;
    wd.type_into(&filter, &talk).await;
    let talk_row = wd
        .wait_for(&format!(r#"{}[data-state="running"]"#, row(&talk)), UI_WAIT)
        .await;
    wd.click(
        &wd.find_in(&talk_row, r#"[data-testid="open-container"]"#)
            .await,
    )
    .await;
    wd.wait_for(
        &format!(
            r#"[data-testid="container-detail"][data-container-name="{talk}"][data-state="running"]"#
        ),
        UI_WAIT,
    )
    .await;
    wait_text(
        &wd,
        r#"[data-testid="detail-image"]"#,
        zedops_testkit::docker::TEST_IMAGE,
    )
    .await;
    // Two samples: the charts draw a line, and the memory is the container's own.
    wd.wait_for(
        r#"[data-testid="stats-cpu"]:not([data-points="0"]):not([data-points="1"])"#,
        UI_WAIT,
    )
    .await;
    let memory = wd
        .text_when_shown(r#"[data-testid="stats-memory-value"]"#, UI_WAIT)
        .await;
    assert!(memory.contains("iB"), "memory in bytes: {memory}");
    shot(&wd, "container-detail.png").await;
    wd.click_when_shown(r#"[data-testid="tab-logs"]"#, UI_WAIT)
        .await;
    wd.wait_for(r#"[data-testid="log-count"][data-count="21"]"#, UI_WAIT)
        .await;
    assert_eq!(
        wd.find_all(r#"[data-testid="log-line"][data-stream="stderr"]"#)
            .await
            .len(),
        1,
        "stderr told apart"
    );
    wd.type_when_shown(r#"[data-testid="log-search"]"#, "line 2", UI_WAIT)
        .await;
    // "talk line 2", "talk line 12" and "talk line 20" have both words.
    wd.wait_for(r#"[data-testid="log-count"][data-count="3"]"#, UI_WAIT)
        .await;
    shot(&wd, "logs.png").await;
    wd.click_when_shown(r#"[data-testid="detail-back"]"#, UI_WAIT)
        .await;
    let filter = wd
        .wait_for(r#"[data-testid="fleet-filter"]"#, UI_WAIT)
        .await;

    // Killed outside ZedOps: the row changes from the pushed event alone, and a native
    // notification names server and container.
    wd.clear(&filter).await;
    wd.type_into(&filter, &db).await;
    wd.wait_for(&format!(r#"{}[data-state="running"]"#, row(&db)), UI_WAIT)
        .await;
    containers.kill(&db).await;
    wd.wait_for(&format!(r#"{}[data-state="exited"]"#, row(&db)), UI_WAIT)
        .await;
    let history = wait_notification(&format!("{db} stopped on {AGENT}"), UI_WAIT).await;
    assert!(history.contains("exited with code 137"), "{history}");
    // The header counts that unseen alert.
    wait_text(&wd, r#"[data-testid="alerts-count"]"#, "1").await;

    // Muted: the agent's next crash is listed in the app but raises no notification.
    wd.click_when_shown(r#"[data-testid="nav-agents"]"#, UI_WAIT)
        .await;
    wd.click_when_shown(MUTE, UI_WAIT).await;
    wd.wait_for(&format!(r#"{MUTE}[aria-pressed="true"]"#), UI_WAIT)
        .await;
    containers.kill(&quiet).await;
    // Opening the list marks the alerts seen.
    wd.click_when_shown(r#"[data-testid="alerts-badge"]"#, UI_WAIT)
        .await;
    wd.wait_for(
        &format!(r#"[data-testid="alert-item"][data-container-name="{quiet}"][data-muted="true"]"#),
        UI_WAIT,
    )
    .await;
    wd.wait_gone(r#"[data-testid="alerts-count"]"#, UI_WAIT)
        .await;
    shot(&wd, "alerts.png").await;
    // The alert is listed after the decision not to notify; a moment more for dunst all the same.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let history = run("dunstctl", &["history"]);
    assert!(
        !history.contains(&format!("{quiet} stopped on")),
        "a muted agent notified: {history}"
    );
    wd.click_when_shown(r#"[data-testid="alerts-close"]"#, UI_WAIT)
        .await;

    // Add server (admin): the install command's token enrols a real agent.
    wd.click_when_shown(r#"[data-testid="nav-add-server"]"#, UI_WAIT)
        .await;
    wd.click_when_shown(r#"[data-testid="create-token"]"#, UI_WAIT)
        .await;
    let command = wd
        .text_when_shown(r#"[data-testid="install-command"]"#, UI_WAIT)
        .await;
    let prefix = format!(
        "curl -fsSL {}/install.sh | ZEDOPS_TOKEN=",
        relay.url.trim_end_matches('/')
    );
    let token = command
        .strip_prefix(&prefix)
        .and_then(|rest| rest.trim().strip_suffix(" sh"))
        .unwrap_or_else(|| panic!("install command {command:?} is not {prefix}… sh"))
        .to_string();
    let expiry = wd
        .wait_for(r#"[data-testid="token-expiry"]"#, UI_WAIT)
        .await;
    assert!(!wd.text(&expiry).await.is_empty(), "the expiry is shown");
    // Copy, then paste into the address field: what the clipboard holds is the command.
    let copy = wd
        .wait_for(r#"[data-testid="copy-install-command"]"#, UI_WAIT)
        .await;
    wd.click(&copy).await;
    let deadline = Instant::now() + UI_WAIT;
    while wd.text(&copy).await != "Copied" {
        assert!(
            Instant::now() < deadline,
            "the copy button never said Copied"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let field = wd.wait_for(r#"[data-testid="public-url"]"#, UI_WAIT).await;
    wd.clear(&field).await;
    wd.send_keys(&field, "\u{E009}v\u{E009}").await;
    let pasted = wd
        .execute(
            r#"return document.querySelector('[data-testid="public-url"]').value"#,
            serde_json::json!([]),
        )
        .await;
    assert_eq!(
        pasted.as_str(),
        Some(command.as_str()),
        "the clipboard holds the command"
    );
    shot(&wd, "add-server.png").await;
    let added = TestAgent::builder(&relay)
        .name("e2e-added")
        .token(token)
        .online()
        .await;
    wd.click_when_shown(r#"[data-testid="nav-agents"]"#, UI_WAIT)
        .await;
    wd.wait_for(
        r#"[data-testid="agent-row"][data-agent-name="e2e-added"]"#,
        UI_WAIT,
    )
    .await;
    added.kill().await;

    // The audit view (admin) shows the Stop done above.
    wd.click_when_shown(r#"[data-testid="nav-audit"]"#, UI_WAIT)
        .await;
    let stop_row = wd
        .wait_for(
            r#"[data-testid="audit-row"][data-operation="stop"][data-result="ok"]"#,
            UI_WAIT,
        )
        .await;
    let text = wd.text(&stop_row).await;
    assert!(
        text.contains(USER) && text.contains(AGENT) && text.contains(&web),
        "audit row of the Stop: {text}"
    );
    shot(&wd, "audit.png").await;

    // A new start signs in silently from the keyring.
    wd.quit().await;
    let wd = WebDriver::start(&driver.url, app).await;
    wd.wait_for(&session::agent_row(AGENT), UI_WAIT).await;
    assert!(
        wd.find_all(r#"[data-testid="sign-in"]"#).await.is_empty(),
        "no sign-in form on a silent sign-in"
    );

    // The mute survived the restart; unmuted, the next crash notifies and is counted.
    wd.wait_for(&format!(r#"{MUTE}[aria-pressed="true"]"#), UI_WAIT)
        .await;
    wd.click_when_shown(MUTE, UI_WAIT).await;
    wd.wait_for(&format!(r#"{MUTE}[aria-pressed="false"]"#), UI_WAIT)
        .await;
    containers.kill(&loud).await;
    wait_notification(&format!("{loud} stopped on {AGENT}"), UI_WAIT).await;
    wait_text(&wd, r#"[data-testid="alerts-count"]"#, "1").await;

    // A blip shorter than the grace period raises nothing: the agent drops and comes back.
    let dropped = Instant::now();
    agent.kill().await;
    let agent = TestAgent::builder(&relay)
        .name(AGENT)
        .stored_credentials()
        .data_dir(agent_dir.path())
        .online()
        .await;
    assert!(
        dropped.elapsed() < GRACE,
        "the agent took {:?} to come back, longer than the grace period",
        dropped.elapsed()
    );
    tokio::time::sleep(
        (dropped + GRACE + Duration::from_secs(1)).saturating_duration_since(Instant::now()),
    )
    .await;
    let history = run("dunstctl", &["history"]);
    assert!(
        !history.contains(&format!("{AGENT} is offline")) && !history.contains("is back online"),
        "a blip shorter than the grace period notified: {history}"
    );

    // The agent dies: past the grace period, a native notification says it is offline.
    agent.kill().await;
    wait_notification(&format!("{AGENT} is offline"), UI_WAIT).await;
    let offline = format!(
        r#"[data-testid="agent-row"][data-agent-name="{AGENT}"] [data-testid="agent-status"]"#
    );
    let status = wd.wait_for(&offline, UI_WAIT).await;
    let deadline = Instant::now() + UI_WAIT;
    while wd.text(&status).await != "offline" {
        assert!(Instant::now() < deadline, "the agent row still says online");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And its return, since its going away was reported.
    let agent = TestAgent::builder(&relay)
        .name(AGENT)
        .stored_credentials()
        .data_dir(agent_dir.path())
        .spawn()
        .await;
    wait_notification(&format!("{AGENT} is back online"), UI_WAIT).await;
    agent.kill().await;

    // Sign-out removes the keyring entry.
    wd.click_when_shown(r#"[data-testid="sign-out"]"#, UI_WAIT)
        .await;
    wd.wait_for(r#"[data-testid="sign-in"]"#, UI_WAIT).await;
    wd.wait_gone(r#"[data-testid="agent-row"]"#, UI_WAIT).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while keyring_users().contains(&relay.url) {
        assert!(
            Instant::now() < deadline,
            "the keyring entry is still there after sign-out"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wd.quit().await;
    drop(driver);
    drop(containers);
}
