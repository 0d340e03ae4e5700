//! What the end-to-end test and the desktop benchmark share: the parts they need (display,
//! D-Bus, WebKitWebDriver, tauri-driver, the built app), tauri-driver itself, and the app's own
//! private directories.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use zedops_testkit::build::target_dir;

/// Panics with what to do when a part the test needs is missing.
pub fn require(ok: bool, what: &str) {
    assert!(
        ok,
        "the desktop end-to-end test needs {what}; scripts/test-desktop sets everything up"
    );
}

pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Checks the display, D-Bus session, WebKitWebDriver, tauri-driver and the built app; returns
/// the paths of tauri-driver and of the app.
pub fn require_desktop_parts() -> (PathBuf, PathBuf) {
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
    (driver_bin, app_bin)
}

/// Eight hex digits that differ between runs, for names of this run's own.
pub fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{:08x}",
        (nanos as u64 ^ u64::from(std::process::id())) as u32
    )
}

/// The Docker engine with the test image; the test fails when it is missing.
pub async fn docker() -> bollard::Docker {
    let docker = zedops_testkit::require_docker().await;
    require(
        docker.is_some(),
        "a Docker engine with the test image (scripts/setup)",
    );
    docker.unwrap()
}

/// A registry on loopback; the test fails when docker-registry is missing.
pub async fn registry() -> zedops_testkit::registry::TestRegistry {
    let registry = zedops_testkit::registry::TestRegistry::start().await;
    require(
        registry.is_some(),
        "docker-registry (Debian package docker-registry; scripts/setup)",
    );
    registry.unwrap()
}

/// Checks that the notification daemon (dunst) runs in this D-Bus session.
pub fn require_dunst() {
    require(
        run("dunstctl", &["is-paused"]).trim() == "false",
        "dunst running in this D-Bus session",
    );
}

/// Waits (up to `within`) until dunst's history contains `needle`; the history.
pub async fn wait_notification(needle: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let history = run("dunstctl", &["history"]);
        if history.contains(needle) {
            return history;
        }
        assert!(
            Instant::now() < deadline,
            "no notification {needle:?} in dunst's history: {history}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The app's own configuration, data and cache directories, so a run neither reads nor leaves
/// anything in the real ones. Removed on drop.
pub struct AppHome {
    pub dir: tempfile::TempDir,
    dirs: Vec<(&'static str, PathBuf)>,
}

impl AppHome {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let dirs = [
            ("XDG_CONFIG_HOME", "config"),
            ("XDG_DATA_HOME", "data"),
            ("XDG_CACHE_HOME", "cache"),
            ("ZEDOPS_CONFIG_DIR", "zedops"),
        ]
        .into_iter()
        .map(|(var, sub)| (var, dir.path().join(sub)))
        .collect();
        Self { dir, dirs }
    }

    pub fn env(&self) -> Vec<(&str, &Path)> {
        self.dirs.iter().map(|(k, v)| (*k, v.as_path())).collect()
    }
}

/// tauri-driver, killed on drop (it takes WebKitWebDriver and the app with it).
pub struct Driver {
    child: Child,
    pub url: String,
}

impl Driver {
    pub fn start(bin: &Path, env: &[(&str, &Path)]) -> Self {
        let (port, native) = (zedops_testkit::free_port(), zedops_testkit::free_port());
        let mut cmd = Command::new(bin);
        cmd.args([
            "--port",
            &port.to_string(),
            "--native-port",
            &native.to_string(),
        ])
        .args(["--native-driver", "/usr/bin/WebKitWebDriver"])
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        // A process group of its own, so that dropping it also ends the app WebKitWebDriver
        // started: an app left running after a failed part would take over (single instance)
        // every later part's app start, and each would fail for that instead of its own cause.
        .process_group(0);
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
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Whatever of its group is left (the app, when the session was not closed because the
        // test failed part-way).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
    }
}
