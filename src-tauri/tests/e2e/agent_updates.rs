//! End to end, "Update agents" in the app (issue 17): two real agent processes on the
//! workspace's version (0.1.0) and a relay serving a signed 0.99.0 build (a release key made by
//! the test, the agents trusting it). The view shows both agents behind the relay's version; "Update all behind" updates the
//! canary first, then the other, and the page shows each agent's state live (recorded by a
//! MutationObserver: downloading, verifying, then online with the new version); afterwards the
//! relay lists both agents online on 0.99.0 and the rows say they are current.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use zedops_protocol::Role;
use zedops_testkit::TestRelay;
use zedops_testkit::build::{build_agent, stripped_agent};

use crate::harness::{require_desktop_parts, target_dir};
use crate::observe::{record, recorded};
use crate::session::{open_app, sign_in};
use crate::steps::shot;

const USER: &str = "e2e-agent-update-admin";
const NAMES: [&str; 2] = ["e2e-upd-a", "e2e-upd-b"];
const NEW: &str = "0.99.0";
const UI_WAIT: Duration = Duration::from_secs(60);
/// Two agents one after the other: a download of the build, its check, a restart and a new
/// hello each, on 2 busy cores.
const UPDATE_WAIT: Duration = Duration::from_secs(120);

/// `<os>-<arch>` as the relay names builds.
fn platform() -> String {
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}

/// A `zedops-agent run` in the foreground from its own copy of the 0.1.0 binary (an update
/// replaces that copy and execs it), trusting `key_file`; its log in `<dir>/<name>.log`.
fn spawn_agent(
    old: &Path,
    dir: &Path,
    name: &str,
    relay: &str,
    token: &str,
    key_file: &Path,
) -> tokio::process::Child {
    let launcher = dir.join(format!("{name}-bin"));
    std::fs::copy(old, &launcher).unwrap();
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    tokio::process::Command::new(&launcher)
        .args(["run", "--relay", relay, "--name", name])
        .arg("--data-dir")
        .arg(dir.join(name))
        .arg("--trusted-key-file")
        .arg(key_file)
        .env_remove("INVOCATION_ID")
        .env_remove("ZEDOPS_UPDATE_LAUNCHED")
        .env("ZEDOPS_TOKEN", token)
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("the agent starts")
}

/// The agents' logs, for a failure's message.
fn logs(dir: &Path) -> String {
    NAMES
        .iter()
        .map(|n| {
            let log = std::fs::read_to_string(dir.join(format!("{n}.log"))).unwrap_or_default();
            format!("--- {n}\n{log}")
        })
        .collect()
}

/// Waits until the relay lists every agent of `NAMES` connected with `version`.
async fn wait_versions(relay: &TestRelay, version: &str, within: Duration, dir: &Path) {
    let deadline = Instant::now() + within;
    loop {
        let agents = relay.store.agents().await.unwrap();
        let on: Vec<_> = agents
            .iter()
            .filter(|a| {
                relay.state.hub.agent(&a.id).is_some()
                    && a.info.as_ref().is_some_and(|i| i.version == version)
            })
            .map(|a| a.name.as_str())
            .collect();
        if NAMES.iter().all(|n| on.contains(n)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not every agent online on {version} within {within:?}: {:?}\n{}",
            agents
                .iter()
                .map(|a| (&a.name, a.info.as_ref().map(|i| &i.version)))
                .collect::<Vec<_>>(),
            logs(dir)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn row(name: &str) -> String {
    format!(r#"[data-testid="update-row"][data-agent-name="{name}"]"#)
}

pub async fn update_agents_live() {
    let (driver_bin, app_bin) = require_desktop_parts();
    let started = Instant::now();

    // The builds: the agents' own (0.1.0) and the signed new one the relay serves.
    let old = build_agent(&target_dir(), None);
    // The version it says in its hello: the workspace's, whatever it is now.
    let said = Command::new(&old).arg("--version").output().unwrap();
    let old_version = String::from_utf8_lossy(&said.stdout)
        .trim()
        .strip_prefix("zedops-agent ")
        .expect("zedops-agent --version says its version")
        .to_string();
    assert_ne!(old_version, NEW);
    let new = stripped_agent(NEW);
    let key = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let signature = minisign::sign(
        Some(&key.pk),
        &key.sk,
        std::io::Cursor::new(&new),
        Some(&format!("zedops-agent {NEW} {}", platform())),
        None,
    )
    .unwrap()
    .into_string();
    let downloads = tempfile::tempdir().unwrap();
    let binary = downloads
        .path()
        .join(format!("zedops-agent-{}", platform()));
    std::fs::write(&binary, &new).unwrap();
    std::fs::write(
        downloads
            .path()
            .join(format!("zedops-agent-{}.minisig", platform())),
        signature,
    )
    .unwrap();
    let relay = TestRelay::builder()
        .downloads(downloads.path().to_path_buf())
        .start()
        .await;
    relay.login(USER, Role::Admin).await;

    let site = tempfile::tempdir().unwrap();
    let key_file = site.path().join("release.pub");
    std::fs::write(
        &key_file,
        format!(
            "untrusted comment: zedops e2e release key\n{}\n",
            key.pk.to_base64()
        ),
    )
    .unwrap();
    let mut agents = vec![];
    for name in NAMES {
        let token = relay.registration_token().await;
        agents.push(spawn_agent(
            &old,
            site.path(),
            name,
            &relay.url,
            &token,
            &key_file,
        ));
    }
    wait_versions(&relay, &old_version, UI_WAIT, site.path()).await;
    let ready = started.elapsed();

    // Signed in, the Update agents view shows both behind the relay's version.
    let app = open_app(&driver_bin, &app_bin).await;
    let wd = &app.wd;
    sign_in(wd, &relay.url, USER).await;
    wd.click_when_shown(r#"[data-testid="nav-fleet"]"#, UI_WAIT)
        .await;
    wd.click_when_shown(r#"[data-testid="update-agents"]"#, UI_WAIT)
        .await;
    let offered = wd
        .wait_for(r#"[data-testid="offered-version"]"#, UI_WAIT)
        .await;
    let deadline = Instant::now() + UI_WAIT;
    loop {
        let text = wd.text(&offered).await;
        if text == format!("The relay offers agent {NEW}") {
            break;
        }
        assert!(Instant::now() < deadline, "the view says {text:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for name in NAMES {
        let behind = wd
            .wait_for(
                &format!(r#"{}[data-standing="behind"]"#, row(name)),
                UI_WAIT,
            )
            .await;
        let text = wd.text(&behind).await;
        assert!(
            text.contains(&old_version) && text.contains("behind") && text.contains(NEW),
            "{name}'s row: {text}"
        );
    }
    let all = wd.wait_for(r#"[data-testid="update-all"]"#, UI_WAIT).await;
    assert_eq!(wd.text(&all).await, "Update all behind (2)");
    shot(wd, "agents-behind.png").await;

    // Update all: every state each row shows, and every value of the download's bar.
    record(
        wd,
        "agent-rows",
        r#"[data-testid="update-row"]"#,
        &["data-agent-name", "data-state", "data-standing"],
    )
    .await;
    record(
        wd,
        "agent-bars",
        r#"[data-testid="update-progress"]"#,
        &["value", "max"],
    )
    .await;
    let clicked = Instant::now();
    wd.click(&all).await;
    let toast = wd.wait_for(r#"[data-testid="toast"]"#, UPDATE_WAIT).await;
    let text = wd.text(&toast).await;
    assert!(
        text.starts_with(&format!("Updated 2 agents to {NEW}")),
        "toast {text:?}\n{}",
        logs(site.path())
    );
    let took = clicked.elapsed();
    for name in NAMES {
        wd.wait_for(
            &format!(
                r#"{}[data-state="online"][data-standing="current"]"#,
                row(name)
            ),
            UI_WAIT,
        )
        .await;
    }
    shot(wd, "agents-updated.png").await;

    // What the page showed, per agent: its states in order (repeats folded).
    let seen = recorded(wd, "agent-rows").await;
    let states = |name: &str| -> Vec<String> {
        let mut out: Vec<String> = vec![];
        for change in &seen {
            for el in change {
                if el["data-agent-name"] == name {
                    let state = el["data-state"].as_str().unwrap_or("").to_string();
                    if out.last() != Some(&state) {
                        out.push(state);
                    }
                }
            }
        }
        out
    };
    // The index of the first change in which `name` shows `state`.
    let first = |name: &str, state: &str| -> Option<usize> {
        seen.iter().position(|change| {
            change
                .iter()
                .any(|el| el["data-agent-name"] == name && el["data-state"] == state)
        })
    };
    for name in NAMES {
        let shown = states(name);
        let at = |s: &str| shown.iter().position(|x| x == s);
        let (downloading, verifying, online) = (at("downloading"), at("verifying"), at("online"));
        // Verifying a small build's signature can be over within one frame, when the page folds
        // it into the state after it: shown or not, it never comes out of order.
        assert!(
            downloading.is_some()
                && online > downloading
                && verifying.is_none_or(|v| Some(v) > downloading && online > Some(v))
                && shown.last().map(String::as_str) == Some("online"),
            "{name}'s row showed {shown:?}: downloading, verifying (unless too brief to draw), then online expected"
        );
        assert!(
            !shown.iter().any(|s| s == "failed" || s == "rolled-back"),
            "{name}: {shown:?}"
        );
    }
    // Canary first: the other agent was asked only once the canary was back online.
    let (canary, other) = if first(NAMES[0], "downloading") < first(NAMES[1], "downloading") {
        (NAMES[0], NAMES[1])
    } else {
        (NAMES[1], NAMES[0])
    };
    let left_queue = seen.iter().position(|change| {
        change.iter().any(|el| {
            el["data-agent-name"] == other
                && !matches!(el["data-state"].as_str(), Some("" | "queued"))
        })
    });
    assert!(
        left_queue > first(canary, "online"),
        "{other} was updated before the canary {canary} was back online: {seen:?}"
    );
    // The online rows say the new version in words and number.
    for name in NAMES {
        let text = wd.text_when_shown(&row(name), UI_WAIT).await;
        assert!(
            text.contains("online with the new version") && text.contains(NEW),
            "{name}'s row: {text}"
        );
    }
    // The download's bar measured the build the relay serves, never beyond it.
    let bars: Vec<(u64, u64)> = recorded(wd, "agent-bars")
        .await
        .iter()
        .flatten()
        .map(|el| {
            let n = |k: &str| el[k].as_str().and_then(|v| v.parse().ok()).unwrap_or(0);
            (n("value"), n("max"))
        })
        .collect();
    assert!(
        bars.iter()
            .all(|&(v, max)| max == new.len() as u64 && v <= max),
        "bars {bars:?} of a {}-byte build",
        new.len()
    );

    // The relay lists both online on the new version.
    wait_versions(&relay, NEW, Duration::from_secs(10), site.path()).await;
    for name in NAMES {
        eprintln!("agent update e2e: {name}'s row showed {:?}", states(name));
    }
    eprintln!(
        "agent update e2e: agents ready in {ready:?}, Update all took {took:?} \
         ({} page changes, {} bar values), step {:?}",
        seen.len(),
        bars.len(),
        started.elapsed()
    );
    app.close().await;
    drop(agents);
}
