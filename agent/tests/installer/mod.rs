//! Shared by the installer tests: running `zedops-agent`, the tools the checks need (a missing
//! one fails under `CI=true`, else skips), snapshots of an install root, and `systemd-analyze`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const AGENT: &str = env!("CARGO_BIN_EXE_zedops-agent");

/// Whether `tool` can run. Under `CI=true` a missing tool fails the test instead.
pub fn require_tool(tool: &str, package: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "{tool} is required under CI=true: install the Debian package {package} (scripts/setup does)"
            );
        }
        eprintln!("skipping: {tool} is not installed (Debian package {package})");
    }
    found
}

/// Runs `zedops-agent args…`.
pub fn agent(args: &[&str]) -> Output {
    Command::new(AGENT)
        .args(args)
        .env_remove("ZEDOPS_TOKEN")
        .output()
        .expect("zedops-agent runs")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts that `token` is in no file under `root` but the private configuration `config`.
pub fn assert_token_only_in(root: &Path, config: &Path, token: &str) {
    for path in walk(root) {
        if path.is_file() && path != config {
            assert!(
                !text(&fs::read(&path).unwrap()).contains(token),
                "the token leaked into {}",
                path.display()
            );
        }
    }
}

/// A path's mode, mtime (seconds, nanoseconds) and, for a file, content.
pub type Entry = (u32, i64, i64, Option<Vec<u8>>);

/// Every path under `root` with its mode, mtime and content (files) — what "changes nothing"
/// compares.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut all = BTreeMap::new();
    for path in walk(root) {
        let meta = fs::symlink_metadata(&path).unwrap();
        let content = meta.is_file().then(|| fs::read(&path).unwrap());
        all.insert(
            path,
            (
                meta.permissions().mode(),
                meta.mtime(),
                meta.mtime_nsec(),
                content,
            ),
        );
    }
    all
}

/// Every file and directory under `root` (not `root` itself).
pub fn walk(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(root) else {
        return found;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            found.extend(walk(&path));
        }
        found.push(path);
    }
    found
}

pub fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// `systemd-analyze verify` (and an offline security review) of the unit installed under
/// `root`, in a copy of the root that also holds the host's system units it refers to
/// (multi-user.target, network-online.target…). Must pass without a single warning.
pub fn verify_unit(root: &Path) {
    verify_units(root, &["zedops-agent.service"]);
}

/// [`verify_unit`] for any units under `root`.
pub fn verify_units(root: &Path, units: &[&str]) {
    if !require_tool("systemd-analyze", "systemd") {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let copy = scratch.path().join("root");
    let status = Command::new("cp")
        .arg("-a")
        .arg(root)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    let unit_dir = copy.join("usr/lib/systemd");
    fs::create_dir_all(&unit_dir).unwrap();
    let system_units = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .into_iter()
        .find(|dir| Path::new(dir).join("multi-user.target").exists())
        .expect("the systemd package's units (multi-user.target) are installed");
    let status = Command::new("cp")
        .arg("-r")
        .arg(system_units)
        .arg(&unit_dir)
        .status()
        .unwrap();
    assert!(status.success());

    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", copy.display()))
        .args(units)
        .output()
        .unwrap();
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );

    // Exposure on systemd's 0-10 scale (times 10 here): the hardening must stay in place.
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=20", "--no-pager"])
        .arg(format!("--root={}", copy.display()))
        .args(units)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "exposure above 2.0: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}
