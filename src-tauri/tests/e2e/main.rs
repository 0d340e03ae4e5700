//! End to end: the real app under a real X display, driven over WebDriver (tauri-driver +
//! WebKitWebDriver), against a real relay, a real agent and real Docker containers, with a real
//! Secret Service (gnome-keyring) and a real notification daemon (dunst).
//!
//! Needs all of that around it, so it is `#[ignore]`d in plain `cargo test` and run by
//! `scripts/test-desktop`, which provides them: `cargo test -p zedops-desktop --test e2e -- --ignored`.
//! Every missing part fails the test with what to do; nothing is skipped.

mod webdriver;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use webdriver::WebDriver;
use zedops_protocol::Role;
use zedops_testkit::{TEST_PASSWORD, TestAgent, TestContainers, TestRelay, require_docker};

const AGENT: &str = "e2e-agent";
const USER: &str = "e2e-admin";
/// Generous: a cold WebKit start under Xvfb on 2 cores takes seconds.
const UI_WAIT: Duration = Duration::from_secs(60);
const ACTION_WAIT: Duration = Duration::from_secs(30);

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// Panics with what to do when a part the test needs is missing.
fn require(ok: bool, what: &str) {
    assert!(
        ok,
        "the desktop end-to-end test needs {what}; scripts/test-desktop sets everything up"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// tauri-driver, killed on drop (it takes WebKitWebDriver and the app with it).
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start(bin: &Path, env: &[(&str, &Path)]) -> Self {
        let (port, native) = (free_port(), free_port());
        let mut cmd = Command::new(bin);
        cmd.args([
            "--port",
            &port.to_string(),
            "--native-port",
            &native.to_string(),
        ])
        .args(["--native-driver", "/usr/bin/WebKitWebDriver"])
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        // tauri-driver forwards to WebKitWebDriver, which it starts itself: both must listen.
        let deadline = Instant::now() + Duration::from_secs(20);
        for p in [port, native] {
            while std::net::TcpStream::connect(("127.0.0.1", p)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "tauri-driver or WebKitWebDriver did not listen on {p}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // SIGTERM first: tauri-driver then stops the WebKitWebDriver it started (SIGKILL would
        // leave that running).
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

/// The row of the container named `name`.
fn row(name: &str) -> String {
    format!(r#"[data-testid="container-row"][data-container-name="{name}"]"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a display, tauri-driver, a keyring and dunst: run scripts/test-desktop"]
async fn the_desktop_app_controls_real_containers() {
    // Every part first, so a missing one says so before anything starts.
    require(
        std::env::var_os("DISPLAY").is_some(),
        "an X display (DISPLAY), e.g. Xvfb",
    );
    require(
        std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some(),
        "a D-Bus session (dbus-run-session)",
    );
    require(
        Path::new("/usr/bin/WebKitWebDriver").exists(),
        "/usr/bin/WebKitWebDriver (Debian package webkit2gtk-driver)",
    );
    let driver_bin = std::env::var_os("TAURI_DRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo/bin/tauri-driver")
        });
    require(
        driver_bin.exists(),
        "tauri-driver (cargo install tauri-driver --locked)",
    );
    let app_bin = std::env::var_os("ZEDOPS_DESKTOP_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("debug/zedops-desktop"));
    require(
        app_bin.exists(),
        "the app built first (cargo build -p zedops-desktop)",
    );
    require(
        run("dunstctl", &["is-paused"]).trim() == "false",
        "dunst running in this D-Bus session",
    );
    require(
        run("secret-tool", &["--version"]).contains("secret-tool"),
        "secret-tool (libsecret-tools)",
    );
    let docker = require_docker().await;
    require(
        docker.is_some(),
        "a Docker engine with the test image (scripts/setup)",
    );
    let docker = docker.unwrap();

    // The real relay, agent and containers.
    let relay = TestRelay::start().await;
    relay.login(USER, Role::Admin).await;
    let mut containers = TestContainers::new(&docker);
    let web = containers.sleeper("web").await;
    // Company for the screenshot: another running container and one never started.
    containers.sleeper("db").await;
    containers
        .create("batch", &TestContainers::SLEEP_CMD, false)
        .await;
    let agent_dir = tempfile::tempdir().unwrap();
    let agent = TestAgent::spawn(
        &relay.url,
        Some(relay.registration_token().await),
        AGENT,
        agent_dir.path(),
    );
    relay.wait_agent(AGENT, true).await;

    // The app's own places, so the test neither reads nor leaves anything in the real ones.
    let home = tempfile::tempdir().unwrap();
    let dirs: Vec<(&str, PathBuf)> = ["config", "data", "cache", "zedops"]
        .iter()
        .map(|d| (*d, home.path().join(d)))
        .collect();
    let env: Vec<(&str, &Path)> = vec![
        ("XDG_CONFIG_HOME", &dirs[0].1),
        ("XDG_DATA_HOME", &dirs[1].1),
        ("XDG_CACHE_HOME", &dirs[2].1),
        ("ZEDOPS_CONFIG_DIR", &dirs[3].1),
    ];
    let driver = Driver::start(&driver_bin, &env);
    let app = app_bin.to_str().unwrap();

    // Sign in.
    let wd = WebDriver::start(&driver.url, app).await;
    let relay_field = wd.wait_for(r#"[data-testid="relay-url"]"#, UI_WAIT).await;
    wd.type_into(&relay_field, &relay.url).await;
    wd.type_into(
        &wd.wait_for(r#"[data-testid="username"]"#, UI_WAIT).await,
        USER,
    )
    .await;
    wd.type_into(
        &wd.wait_for(r#"[data-testid="password"]"#, UI_WAIT).await,
        TEST_PASSWORD,
    )
    .await;
    wd.click(&wd.wait_for(r#"[data-testid="sign-in"]"#, UI_WAIT).await)
        .await;
    let agent_row = wd
        .wait_for(
            &format!(r#"[data-testid="agent-row"][data-agent-name="{AGENT}"]"#),
            UI_WAIT,
        )
        .await;
    let users = keyring_users();
    assert!(
        users.contains(&relay.url),
        "the device token is in the keyring under {}: {users}",
        relay.url
    );
    assert_eq!(
        found_on_disk(home.path(), TEST_PASSWORD),
        None,
        "the password must be nowhere on disk"
    );

    // The agent's container table shows the real container.
    // WebKitWebDriver does not click table rows themselves, only what is inside them.
    wd.click(&wd.find_in(&agent_row, "td").await).await;
    let web_row = wd
        .wait_for(&format!(r#"{}[data-state="running"]"#, row(&web)), UI_WAIT)
        .await;
    let shots = target_dir().join("e2e");
    std::fs::create_dir_all(&shots).unwrap();
    std::fs::write(shots.join("container-table.png"), wd.screenshot().await).unwrap();

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
    std::fs::write(shots.join("after-stop.png"), wd.screenshot().await).unwrap();

    // The fleet view lists it too, with its agent, and filters by text.
    wd.click(&wd.wait_for(r#"[data-testid="nav-fleet"]"#, UI_WAIT).await)
        .await;
    let filter = wd
        .wait_for(r#"[data-testid="fleet-filter"]"#, UI_WAIT)
        .await;
    wd.type_into(&filter, &web).await;
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
    std::fs::write(shots.join("fleet.png"), wd.screenshot().await).unwrap();

    // A new start signs in silently from the keyring.
    wd.quit().await;
    let wd = WebDriver::start(&driver.url, app).await;
    wd.wait_for(
        &format!(r#"[data-testid="agent-row"][data-agent-name="{AGENT}"]"#),
        UI_WAIT,
    )
    .await;
    assert!(
        wd.find_all(r#"[data-testid="sign-in"]"#).await.is_empty(),
        "no sign-in form on a silent sign-in"
    );

    // The agent dies: a native notification says it is offline.
    agent.kill().await;
    let deadline = Instant::now() + UI_WAIT;
    loop {
        let history = run("dunstctl", &["history"]);
        if history.contains(&format!("{AGENT} is offline")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no offline notification in dunst's history: {history}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let offline = format!(
        r#"[data-testid="agent-row"][data-agent-name="{AGENT}"] [data-testid="agent-status"]"#
    );
    let status = wd.wait_for(&offline, UI_WAIT).await;
    let deadline = Instant::now() + UI_WAIT;
    while wd.text(&status).await != "offline" {
        assert!(Instant::now() < deadline, "the agent row still says online");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Sign-out removes the keyring entry.
    wd.click(&wd.wait_for(r#"[data-testid="sign-out"]"#, UI_WAIT).await)
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
