//! Running the real `zedops` binary in tests: a clean environment, stdin, captured output;
//! and the engine with a registry for the tests that pull.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

/// The binary with a clean environment: no token, relay or config from the machine running the tests.
pub fn zedops(config_dir: &std::path::Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_zedops"));
    for (key, _) in std::env::vars() {
        if key.starts_with("ZEDOPS_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("ZEDOPS_CONFIG_DIR", config_dir)
        .env_remove("RUST_LOG");
    cmd
}

/// `zedops ARGS` signed in headless (`ZEDOPS_TOKEN`) against `relay`, with `stdin`.
pub async fn headless(
    relay: &str,
    token: &str,
    config: &std::path::Path,
    args: &[&str],
    stdin: &str,
) -> std::process::Output {
    run(
        zedops(config)
            .env("ZEDOPS_TOKEN", token)
            .env("ZEDOPS_RELAY", relay)
            .args(args),
        stdin,
    )
    .await
}

/// One person's `zedops` at a relay: signed in headless with a token, its own config dir.
pub struct Zed {
    relay: String,
    token: String,
    config: tempfile::TempDir,
}

impl Zed {
    /// The CLI at `relay` (its URL) signed in with `token`.
    pub fn new(relay: &str, token: &str) -> Self {
        Self {
            relay: relay.to_string(),
            token: token.to_string(),
            config: tempfile::tempdir().unwrap(),
        }
    }

    /// `zedops ARGS` with nothing on stdin.
    pub async fn run(&self, args: &[&str]) -> std::process::Output {
        self.run_with(args, "").await
    }

    /// `zedops ARGS` with `stdin`.
    pub async fn run_with(&self, args: &[&str], stdin: &str) -> std::process::Output {
        headless(&self.relay, &self.token, self.config.path(), args, stdin).await
    }
}

/// Asserts the run succeeded; its stderr is the message otherwise.
pub fn assert_ok(out: &std::process::Output) {
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Asserts the run's stderr says `part`.
pub fn assert_stderr_says(out: &std::process::Output, part: &str) {
    let stderr = text(&out.stderr);
    assert!(stderr.contains(part), "not {part:?} in: {stderr}");
}

/// A successful run's stdout as JSON.
pub fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("JSON on stdout ({e}): {}", text(&out.stdout)))
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

pub async fn run(cmd: &mut tokio::process::Command, stdin: &str) -> std::process::Output {
    use tokio::io::AsyncWriteExt;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    child.wait_with_output().await.unwrap()
}

/// A running container (`TestContainers::sleeper(suffix)`) on the engine and a fresh relay with
/// the real agent `agent` online on it: the start of the tests that act on one container. The
/// container's name is the second; the rest must live as long as the test. `None` (the test
/// skips) when the engine is missing outside CI, a failure under `CI=true`.
pub async fn sleeper_and_agent(
    suffix: &str,
    agent: &str,
) -> Option<(
    zedops_testkit::TestContainers,
    String,
    zedops_testkit::TestRelay,
    zedops_testkit::TestAgent,
)> {
    let docker = zedops_testkit::require_docker().await?;
    let mut containers = zedops_testkit::TestContainers::new(&docker);
    let name = containers.sleeper(suffix).await;
    let relay = zedops_testkit::TestRelay::builder().start().await;
    let online = zedops_testkit::TestAgent::builder(&relay)
        .name(agent)
        .online()
        .await;
    Some((containers, name, relay, online))
}
