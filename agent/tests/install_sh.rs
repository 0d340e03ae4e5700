//! The relay's `/install.sh` run with `sh`, the way the README's one command runs it, against
//! the real relay (port 0) serving the real `zedops-agent` binary from a `--downloads`
//! directory: it downloads, verifies the SHA-256 and installs into a temporary root, and the
//! installed configuration enrols the agent; a binary that no longer matches the published
//! checksum, and an unknown architecture, are refused with nothing installed.

use std::collections::HashMap;
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use installer::{AGENT, assert_token_only_in, require_tool, text, verify_unit, walk};
use tokio::process::Command;
use update::Relay;

mod installer;
mod update;

/// The environment that systemd hands the installed service (`EnvironmentFile=`): the
/// `KEY=value` lines of the installed `config_path`.
fn installed_env(config_path: &Path) -> HashMap<String, String> {
    fs::read_to_string(config_path)
        .unwrap()
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `<binary> run` with `env` as its whole environment, as the installed unit starts it.
fn run_installed(binary: &Path, env: &HashMap<String, String>) -> tokio::process::Child {
    Command::new(binary)
        .arg("run")
        .env_clear()
        .envs(env)
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Waits up to 20 s, while the installed agent `service` runs, until `done`; fails with
/// `never` when the time is up and with `exited` when the agent exits first.
async fn wait_while_running(
    service: &mut tokio::process::Child,
    done: impl Fn() -> bool,
    never: &str,
    exited: &str,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{never}");
        if let Some(status) = service.try_wait().unwrap() {
            panic!("{exited}: {status}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A downloads directory holding the real agent binary under this machine's platform name.
fn downloads() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir
        .path()
        .join(format!("zedops-agent-linux-{}", std::env::consts::ARCH));
    fs::copy(AGENT, &file).unwrap();
    (dir, file)
}

/// `curl -fsSL RELAY/install.sh | ZEDOPS_TOKEN=TOKEN SHELL -s -- ARGS…`, as a person pastes the
/// printed command (without sudo: `--root` needs none). Returns success and stderr.
async fn pipe_install(
    shell: &str,
    relay: &str,
    token: &str,
    args: &[&str],
    path: Option<&str>,
) -> (bool, String) {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!(
            r#"curl -fsSL "$0/install.sh" | ZEDOPS_TOKEN="$ZEDOPS_TEST_TOKEN" {shell} -s -- "$@""#
        ))
        .arg(relay)
        .args(args)
        .env("ZEDOPS_TEST_TOKEN", token)
        .env_remove("ZEDOPS_TOKEN");
    if let Some(path) = path {
        command.env("PATH", path);
    }
    let out = command.output().await.expect("sh runs");
    (out.status.success(), text(&out.stderr))
}

#[tokio::test(flavor = "multi_thread")]
async fn install_sh_verifies_installs_and_the_installed_service_enrols() {
    if !require_tool("curl", "curl") {
        return;
    }
    let (dir, _) = downloads();
    let relay = Relay::start(dir.path()).await;
    let token = relay.registration_token().await;
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("root");

    // The script as served: this relay's URL filled in, and lint-clean POSIX sh.
    let script = scratch.path().join("install.sh");
    let out = Command::new("curl")
        .args(["-fsSL", "-o"])
        .arg(&script)
        .arg(format!("{}/install.sh", relay.url))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let served = fs::read_to_string(&script).unwrap();
    assert!(
        served.contains(&format!("RELAY_URL='{}'", relay.url)),
        "{served}"
    );
    if require_tool("shellcheck", "shellcheck") {
        let out = Command::new("shellcheck")
            .args(["-s", "sh"])
            .arg(&script)
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "shellcheck: {}", text(&out.stdout));
    }

    let root_arg = root.to_str().unwrap();
    let (ok, said) = pipe_install(
        "sh",
        &relay.url,
        &token,
        &["--name", "web-1", "--root", root_arg],
        None,
    )
    .await;
    assert!(ok, "{said}");
    assert!(said.contains("checksum verified"), "{said}");
    assert!(!said.contains(&token), "the token was printed: {said}");

    let binary = root.join("usr/local/bin/zedops-agent");
    assert_eq!(fs::read(&binary).unwrap(), fs::read(AGENT).unwrap());
    let config_path = root.join("etc/zedops-agent/agent.env");
    assert_eq!(
        fs::metadata(&config_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_token_only_in(&root, &config_path, &token);
    verify_unit(&root);

    // What systemd would hand the service (EnvironmentFile=) enrols it with the relay.
    let mut env = installed_env(&config_path);
    assert_eq!(env.get("ZEDOPS_RELAY"), Some(&relay.url));
    assert_eq!(env.get("ZEDOPS_TOKEN"), Some(&token));
    // Under the root, not the real /var/lib.
    let data_dir = root.join(env["ZEDOPS_DATA_DIR"].trim_start_matches('/'));
    env.insert("ZEDOPS_DATA_DIR".into(), data_dir.display().to_string());
    let mut service = run_installed(&binary, &env);
    let credentials = data_dir.join("credentials.json");
    wait_while_running(
        &mut service,
        || credentials.exists(),
        "the installed agent did not enrol",
        "the installed agent exited",
    )
    .await;
    service.kill().await.unwrap();
    let agents = relay.store.agents().await.unwrap();
    assert!(
        agents.iter().any(|a| a.name == "web-1"),
        "web-1 is not enrolled"
    );

    // uninstall --purge tells the relay to forget the agent (its own credentials) before it
    // deletes them: the relay lists it no more, and the name enrols again.
    let out = installer::agent(&["uninstall", "--purge", "--root", root_arg]);
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("the relay forgot agent web-1"), "{said}");
    assert!(!credentials.exists());
    assert!(
        !relay
            .store
            .agents()
            .await
            .unwrap()
            .iter()
            .any(|a| a.name == "web-1"),
        "web-1 is still listed at the relay"
    );
    let audit = relay.store.audit_list(None, None, 10).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.operation == "agent.forget" && e.target.as_deref() == Some("web-1")),
        "{audit:?}"
    );
    let again = relay.registration_token().await;
    let (ok, said) = pipe_install(
        "sh",
        &relay.url,
        &again,
        &["--name", "web-1", "--root", root_arg],
        None,
    )
    .await;
    assert!(ok, "{said}");
    let mut env = installed_env(&config_path);
    env.insert("ZEDOPS_DATA_DIR".into(), data_dir.display().to_string());
    let mut service = run_installed(&binary, &env);
    // Connected, not just enrolled: the uninstall below names the agent from its status file,
    // which the agent writes a moment after it has stored its credentials.
    wait_while_running(
        &mut service,
        || {
            zedops_agent::status::read(&data_dir)
                .is_some_and(|s| s.state == "connected" && s.name.as_deref() == Some("web-1"))
        },
        "web-1 did not enrol again",
        "the reinstalled agent exited (NAME_TAKEN?)",
    )
    .await;
    service.kill().await.unwrap();

    // A relay that cannot be reached: the uninstall still purges, says so and prints the
    // command that revokes the agent at the relay.
    relay.shutdown();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let out = installer::agent(&["uninstall", "--purge", "--root", root_arg]);
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("could not tell the relay to forget this agent"),
        "{said}"
    );
    assert!(said.contains("zedops agent revoke web-1"), "{said}");
    assert!(!credentials.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn install_sh_refuses_a_changed_binary_and_an_unknown_architecture() {
    if !require_tool("curl", "curl") {
        return;
    }
    let (dir, file) = downloads();
    let relay = Relay::start(dir.path()).await;
    // The relay has published the checksum; now the binary on disk changes (same length).
    let mut handle = fs::OpenOptions::new().write(true).open(&file).unwrap();
    handle.seek(SeekFrom::Start(4096)).unwrap();
    handle.write_all(b"tampered").unwrap();
    drop(handle);

    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("root");
    let root_arg = root.to_str().unwrap();
    let token = relay.registration_token().await;
    // Also under busybox's sh when it is there, a second POSIX shell.
    let shell = if installer::require_tool("busybox", "busybox-static") {
        "busybox sh"
    } else {
        "sh"
    };
    let (ok, said) = pipe_install(shell, &relay.url, &token, &["--root", root_arg], None).await;
    assert!(!ok, "a tampered binary was accepted: {said}");
    assert!(
        said.contains("checksum mismatch, nothing was installed"),
        "{said}"
    );
    assert!(!root.exists(), "files were installed: {:?}", walk(&root));

    // An architecture without an agent: a clear refusal before any download.
    let bin = scratch.path().join("bin");
    fs::create_dir(&bin).unwrap();
    let uname = bin.join("uname");
    fs::write(
        &uname,
        "#!/bin/sh\ncase \"$1\" in -m) echo riscv64 ;; *) echo Linux ;; esac\n",
    )
    .unwrap();
    fs::set_permissions(&uname, fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let (ok, said) =
        pipe_install("sh", &relay.url, &token, &["--root", root_arg], Some(&path)).await;
    assert!(!ok, "{said}");
    assert!(
        said.contains("no ZedOps agent for the riscv64 architecture"),
        "{said}"
    );
    assert!(!said.contains("downloading"), "{said}");
    assert!(!root.exists());

    // A relay without a binary for this platform says what its admin must do.
    let empty = tempfile::tempdir().unwrap();
    let bare = Relay::start(empty.path()).await;
    let (ok, said) = pipe_install("sh", &bare.url, &token, &["--root", root_arg], None).await;
    assert!(!ok, "{said}");
    assert!(said.contains("--downloads DIR"), "{said}");
    assert!(!root.exists());
}
