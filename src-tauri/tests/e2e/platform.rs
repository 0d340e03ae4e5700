//! End to end, the app on this desk: "Open at login" writes and removes the login entry
//! (`~/.config/autostart/ZedOps.desktop`) and reads it back after a restart; a second start hands
//! over to the running app and exits; the window comes back at its saved size; and an update of
//! the app served from a loopback HTTP server is found, downloaded, verified and installed over
//! the AppImage when signed with the app's update key, and refused — nothing installed, a plain
//! error on screen — when signed with another key.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use zedops_protocol::Role;
use zedops_testkit::TestRelay;

use crate::harness::{AppHome, Driver, require_desktop_parts, target_dir};
use crate::session;
use crate::webdriver::WebDriver;

const USER: &str = "e2e-desk-admin";
const UI_WAIT: Duration = Duration::from_secs(60);
/// The window size saved by an earlier run (the app's default is 1200×760).
const SAVED: (u64, u64) = (900, 640);

async fn sign_in(wd: &WebDriver, relay: &TestRelay) {
    session::sign_in(wd, &relay.url, USER).await;
    wd.wait_for(r#"[data-testid="nav-settings"]"#, UI_WAIT)
        .await;
}

async fn open_settings(wd: &WebDriver) {
    wd.click_when_shown(r#"[data-testid="nav-settings"]"#, UI_WAIT)
        .await;
}

fn shot(name: &str) -> PathBuf {
    let dir = target_dir().join("e2e");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Waits until "Open at login" reads `on`; fails with the error on screen if one shows.
async fn wait_toggle(wd: &WebDriver, on: bool) {
    let css = format!(r#"[data-testid="open-at-login"][aria-checked="{on}"]:enabled"#);
    let deadline = Instant::now() + UI_WAIT;
    while wd.find_all(&css).await.is_empty() {
        if let Some(error) = wd
            .find_all(r#"[data-testid="open-at-login-error"]"#)
            .await
            .first()
        {
            panic!(
                "turning open at login {on} failed: {}",
                wd.text(error).await
            );
        }
        assert!(Instant::now() < deadline, "open at login never read {on}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn open_at_login_single_instance_and_window_state() {
    let (driver_bin, app_bin) = require_desktop_parts();
    let relay = TestRelay::builder().start().await;
    relay.login(USER, Role::Admin).await;

    let home = AppHome::new();
    // auto-launch writes to $HOME/.config/autostart (not $XDG_CONFIG_HOME): a home of this run.
    let user_home = home.dir.path().join("home");
    std::fs::create_dir_all(&user_home).unwrap();
    let mut env = home.env();
    env.push(("HOME", &user_home));
    // What the window-state plugin saved when the app last quit, in the app's config directory.
    let config_dir = home.dir.path().join("config").join("dev.zedops.desktop");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(
        config_dir.join(".window-state.json"),
        serde_json::json!({"main": {
            "width": SAVED.0, "height": SAVED.1, "x": 30, "y": 20, "prev_x": 30, "prev_y": 20,
            "maximized": false, "visible": true, "decorated": true, "fullscreen": false
        }})
        .to_string(),
    )
    .unwrap();
    let driver = Driver::start(&driver_bin, &env);
    let app = app_bin.to_str().unwrap();
    let wd = WebDriver::start(&driver.url, app).await;
    sign_in(&wd, &relay).await;

    // The window came back at the saved size, not the default one.
    let size = wd
        .execute(
            "return [window.innerWidth, window.innerHeight]",
            serde_json::json!([]),
        )
        .await;
    assert_eq!(
        (size[0].as_u64(), size[1].as_u64()),
        (Some(SAVED.0), Some(SAVED.1)),
        "the window's size after a start with a saved state: {size}"
    );

    // A second start hands over to the running app and exits; the first keeps its window.
    let started = Instant::now();
    let mut second = Command::new(&app_bin);
    for (k, v) in &env {
        second.env(k, v);
    }
    let mut second = second.spawn().expect("a second start of the app");
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > UI_WAIT {
            let _ = second.kill();
            panic!("a second start of the app is still running: it did not hand over");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "the second start exited with {status}");
    wd.wait_for(r#"[data-testid="nav-settings"]"#, UI_WAIT)
        .await;
    assert_eq!(
        wd.execute("return document.title", serde_json::json!([]))
            .await
            .as_str(),
        Some("ZedOps"),
        "the first app's window is still there"
    );

    // "Open at login": off at first, on writes the login entry, off removes it.
    let entry = user_home.join(".config/autostart/ZedOps.desktop");
    open_settings(&wd).await;
    let toggle = r#"[data-testid="open-at-login"]"#;
    wd.wait_for(
        &format!(r#"{toggle}[aria-checked="false"]:enabled"#),
        UI_WAIT,
    )
    .await;
    assert!(
        !entry.exists(),
        "{} exists before it was asked for",
        entry.display()
    );
    wd.click_when_shown(toggle, UI_WAIT).await;
    wait_toggle(&wd, true).await;
    let desktop = std::fs::read_to_string(&entry)
        .unwrap_or_else(|e| panic!("the login entry {}: {e}", entry.display()));
    let app_path = std::fs::canonicalize(&app_bin).unwrap();
    assert!(
        desktop.contains("[Desktop Entry]")
            && desktop.contains(&format!("Exec={} --at-login", app_path.display())),
        "the login entry starts this app in the tray: {desktop}"
    );
    std::fs::write(shot("settings.png"), wd.screenshot().await).unwrap();

    // After a restart the setting reads back from the entry, and turning it off removes it.
    wd.quit().await;
    let wd = WebDriver::start(&driver.url, app).await;
    wd.wait_for(r#"[data-testid="nav-settings"]"#, UI_WAIT)
        .await;
    open_settings(&wd).await;
    wd.wait_for(
        &format!(r#"{toggle}[aria-checked="true"]:enabled"#),
        UI_WAIT,
    )
    .await;
    wd.click_when_shown(toggle, UI_WAIT).await;
    wait_toggle(&wd, false).await;
    assert!(
        !entry.exists(),
        "{} is still there after turning it off",
        entry.display()
    );
    wd.click_when_shown(r#"[data-testid="sign-out"]"#, UI_WAIT)
        .await;
    wd.wait_for(r#"[data-testid="sign-in"]"#, UI_WAIT).await;
    wd.quit().await;
    drop(driver);
}

/// A minimal HTTP server on loopback serving the files of a directory (a static host); counts
/// the downloads of anything but `latest.json`.
struct UpdateServer {
    url: String,
    dir: PathBuf,
    downloads: Arc<AtomicUsize>,
}

impl UpdateServer {
    fn start(dir: &Path) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let downloads = Arc::new(AtomicUsize::new(0));
        let (root, count) = (dir.to_path_buf(), downloads.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&request);
                let name = line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .trim_start_matches('/')
                    .to_string();
                let found = (!name.contains('/') && !name.is_empty())
                    .then(|| std::fs::read(root.join(&name)).ok())
                    .flatten();
                let head = match &found {
                    Some(body) => {
                        if name != "latest.json" {
                            count.fetch_add(1, Ordering::SeqCst);
                        }
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                    }
                    None => {
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_string()
                    }
                };
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(found.as_deref().unwrap_or_default());
            }
        });
        Self {
            url,
            dir: dir.to_path_buf(),
            downloads,
        }
    }

    /// Publishes `payload` as version `version` with `signature` (its `.sig`), and the manifest
    /// made by scripts/app-update-manifest from them, as a release would.
    fn publish(&self, version: &str, payload: &[u8], signature: &str) {
        for entry in std::fs::read_dir(&self.dir).unwrap().flatten() {
            std::fs::remove_file(entry.path()).unwrap();
        }
        let name = format!("ZedOps_{version}_amd64.AppImage");
        std::fs::write(self.dir.join(&name), payload).unwrap();
        std::fs::write(self.dir.join(format!("{name}.sig")), signature).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/app-update-manifest");
        let out = Command::new(&script)
            .args([
                "--version",
                version,
                "--base-url",
                &self.url,
                "--notes",
                "Test update",
            ])
            .arg(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
        assert!(
            out.status.success(),
            "scripts/app-update-manifest: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A minisign key pair as the updater takes it: the public key file's text in base64, and a
/// signer giving the `.sig` file's text in base64 (what `tauri signer sign` writes).
struct UpdateKey(minisign::KeyPair);

impl UpdateKey {
    fn new() -> Self {
        Self(minisign::KeyPair::generate_unencrypted_keypair().unwrap())
    }

    fn public(&self) -> String {
        let text = self.0.pk.to_box().unwrap().into_string();
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    fn sign(&self, data: &[u8], file: &str) -> String {
        let trusted = format!("timestamp:1764676800\tfile:{file}");
        let sig = minisign::sign(
            Some(&self.0.pk),
            &self.0.sk,
            std::io::Cursor::new(data),
            Some(&trusted),
            Some("signature from the ZedOps end-to-end test"),
        )
        .unwrap()
        .into_string();
        base64::engine::general_purpose::STANDARD.encode(sig)
    }
}

async fn wait_state(wd: &WebDriver, state: &str) {
    let css = format!(r#"[data-testid="app-update-status"][data-state="{state}"]"#);
    let deadline = Instant::now() + UI_WAIT;
    while wd.find_all(&css).await.is_empty() {
        if Instant::now() > deadline {
            let error = match wd
                .find_all(r#"[data-testid="app-update-error"]"#)
                .await
                .first()
            {
                Some(el) => wd.text(el).await,
                None => String::new(),
            };
            panic!("the update status never became {state}; error on screen: {error:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

pub async fn updates_itself_only_with_its_key() {
    let (driver_bin, app_bin) = require_desktop_parts();
    let relay = TestRelay::builder().start().await;
    relay.login(USER, Role::Admin).await;

    // The "installed AppImage" the updater replaces, and the new build (an AppImage is an ELF
    // file; the updater checks that much before it writes).
    let home = AppHome::new();
    let apps = home.dir.path().join("apps");
    std::fs::create_dir_all(&apps).unwrap();
    let appimage = apps.join("ZedOps.AppImage");
    let mut installed = b"\x7fELF\x02\x01\x01 ZedOps 0.1.0".to_vec();
    installed.resize(4096, 0);
    std::fs::write(&appimage, &installed).unwrap();
    std::fs::set_permissions(&appimage, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut payload = b"\x7fELF\x02\x01\x01 ZedOps 0.2.0".to_vec();
    payload.resize(256 * 1024, 7);

    let ours = UpdateKey::new();
    let theirs = UpdateKey::new();
    let published = tempfile::tempdir().unwrap();
    let server = UpdateServer::start(published.path());
    let endpoint = format!("{}/latest.json", server.url);
    let pubkey = ours.public();

    let mut env = home.env();
    env.push(("APPIMAGE", &appimage));
    env.push(("ZEDOPS_UPDATE_ENDPOINT", Path::new(&endpoint)));
    env.push(("ZEDOPS_UPDATE_PUBKEY", Path::new(&pubkey)));
    let driver = Driver::start(&driver_bin, &env);
    let wd = WebDriver::start(&driver.url, app_bin.to_str().unwrap()).await;
    sign_in(&wd, &relay).await;
    open_settings(&wd).await;
    let check = r#"[data-testid="check-app-update"]"#;
    let install = r#"[data-testid="install-app-update"]"#;

    // The same version as this build: nothing to do.
    server.publish(
        "0.1.0",
        &payload,
        &ours.sign(&payload, "ZedOps_0.1.0_amd64.AppImage"),
    );
    wd.click_when_shown(check, UI_WAIT).await;
    wait_state(&wd, "up-to-date").await;

    // Signed with another key: found and downloaded, then refused; nothing installed.
    server.publish(
        "0.2.0",
        &payload,
        &theirs.sign(&payload, "ZedOps_0.2.0_amd64.AppImage"),
    );
    wd.click_when_shown(check, UI_WAIT).await;
    wait_state(&wd, "available").await;
    let version = wd
        .text_when_shown(r#"[data-testid="app-update-version"]"#, UI_WAIT)
        .await;
    assert_eq!(version, "0.2.0");
    wd.click_when_shown(install, UI_WAIT).await;
    wait_state(&wd, "error").await;
    let error = wd
        .text_when_shown(r#"[data-testid="app-update-error"]"#, UI_WAIT)
        .await;
    assert!(
        error.contains("The update was refused: it is not signed with ZedOps's update key")
            && error.contains("Nothing was installed"),
        "the refusal in plain words: {error}"
    );
    assert_eq!(
        server.downloads.load(Ordering::SeqCst),
        1,
        "downloaded once"
    );
    assert_eq!(
        std::fs::read(&appimage).unwrap(),
        installed,
        "a refused update left the AppImage as it was"
    );
    std::fs::write(shot("update-refused.png"), wd.screenshot().await).unwrap();

    // Signed with the app's key: found, downloaded, verified and written over the AppImage.
    server.publish(
        "0.2.0",
        &payload,
        &ours.sign(&payload, "ZedOps_0.2.0_amd64.AppImage"),
    );
    wd.click_when_shown(check, UI_WAIT).await;
    wait_state(&wd, "available").await;
    wd.click_when_shown(install, UI_WAIT).await;
    wait_state(&wd, "installed").await;
    wd.wait_for(r#"[data-testid="restart-app"]"#, UI_WAIT).await;
    assert_eq!(server.downloads.load(Ordering::SeqCst), 2);
    assert!(
        std::fs::read(&appimage).unwrap() == payload,
        "the AppImage holds the new build"
    );
    assert_eq!(mode(&appimage), 0o755, "the AppImage is still executable");
    std::fs::write(shot("update-installed.png"), wd.screenshot().await).unwrap();
    wd.quit().await;
    drop(driver);
}
