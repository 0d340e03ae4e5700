//! The workspace's target directory, and the agent binary built by cargo with a version of its
//! own for the tests of its self-update (the agent's own tests and the desktop app's end-to-end
//! test make it the same way, in the same place, so one build serves both).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace's target directory (`CARGO_TARGET_DIR` when set).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// Runs `cargo build` of the agent into the target directory `dir` (with
/// `ZEDOPS_BUILD_VERSION=version` when given) and returns the binary's path; cargo finds it
/// fresh after the first time.
pub fn build_agent(dir: &Path, version: Option<&str>) -> PathBuf {
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args(["build", "-q", "-p", "zedops-agent", "--bin", "zedops-agent"])
        .env("CARGO_TARGET_DIR", dir)
        .env_remove("ZEDOPS_BUILD_VERSION")
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if let Some(version) = version {
        cargo.env("ZEDOPS_BUILD_VERSION", version);
    }
    let out = cargo.output().expect("cargo runs");
    assert!(
        out.status.success(),
        "building the agent {version:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("debug/zedops-agent")
}

/// The agent built with `ZEDOPS_BUILD_VERSION=version` (debug profile) in target/selfupdate,
/// so that the tests' own agent binary is left alone. Returns the binary's bytes without its
/// debug information (over 100 MB of it), as a release build ships: an agent downloads at most
/// 64 MiB.
pub fn stripped_agent(version: &str) -> Vec<u8> {
    // Tests of one binary run in parallel: one build at a time, and the stripped copy is
    // written only while nobody reads it.
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = target_dir().join("selfupdate");
    let binary = build_agent(&dir, Some(version));
    let stripped = dir.join(format!("zedops-agent-{version}"));
    let out = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&stripped)
        .arg(binary)
        .output()
        .expect("strip (binutils) runs");
    assert!(
        out.status.success(),
        "strip: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(stripped).unwrap()
}
