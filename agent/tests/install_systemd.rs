//! The installer on a real systemd (PID 1): a Debian 12 root filesystem made with `debootstrap`,
//! imported into Docker and booted in a container with host networking, so that the relay on
//! this machine's 127.0.0.1 serves it `/install.sh` and the real agent binary. The exact command
//! `zedops-relay token create --install-command` prints is run inside, as root on a host without
//! sudo and as a user through sudo, and the test checks what an admin relies on: the service is
//! active and online at the relay, the registration token is on no command line and in no
//! journal line, the files have their modes, a second run changes nothing, the agent comes back
//! after `systemctl restart` and after the machine restarts, a wrong token fails the install with
//! UNAUTHORIZED, a tampered download is refused, and `uninstall --purge` makes the relay forget
//! the agent so that the same host installs again.
//!
//! The image (`zedops-sysd:bookworm`) is built once and kept; its root filesystem is cached as a
//! tarball under `target/zedops-sysd/` so a fresh engine imports it without debootstrap.

use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use installer::{AGENT, require_tool, text};
use sysd::{Machine, image};
use update::Relay;
use zedops_relay::download::install_command;

mod installer;
mod sysd;
mod update;

/// What the installer tests ask of the relay serving the agent binary.
impl Relay {
    /// The install command exactly as `zedops-relay token create --install-command` prints it,
    /// and its token.
    async fn install_command(&self) -> (String, String) {
        let token = self.registration_token().await;
        (install_command(&self.url, &token), token)
    }

    /// Waits until the one live agent is connected, and returns its name and id.
    async fn wait_online(&self) -> (String, String) {
        self.wait_reconnected(None).await
    }

    /// Waits until the one live agent is connected over another connection than `old` (when
    /// given), and returns its name and id.
    async fn wait_reconnected(&self, old: Option<u64>) -> (String, String) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            let agents = self.store.agents().await.unwrap();
            if let [agent] = agents.as_slice()
                && let Some(conn) = self.connection(&agent.id)
                && Some(conn) != old
            {
                return (agent.name.clone(), agent.id.clone());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no agent online at the relay within 90 s (live agents: {:?})",
                agents.iter().map(|a| &a.name).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Watches every process's command line on this machine (the container's processes are this
/// machine's too) for `needle` until dropped; `seen` says whether it ever showed up.
struct ArgvWatch {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl ArgvWatch {
    fn start(needle: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let needle = needle.to_string();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                    if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
                        let line = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                        if line.contains(&needle) {
                            seen.push(line);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            seen
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Command lines that held the needle.
    fn finish(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

/// Pastes the install command into a shell inside as `user`, watching all command lines of the
/// machine for the token meanwhile.
async fn install(machine: &Machine, user: Option<&str>, command: &str, token: &str) -> Output {
    let watch = ArgvWatch::start(token);
    let out = machine.paste(user, command).await;
    let mut seen = watch.finish();
    seen.sort();
    seen.dedup();
    assert!(
        seen.is_empty(),
        "the registration token was on a command line: {seen:?}"
    );
    out
}

/// The checks every good install must pass.
async fn check_installed(machine: &Machine, relay: &Relay, token: &str) -> (String, String) {
    assert_eq!(
        machine.sh("systemctl is-active zedops-agent").await.trim(),
        "active"
    );
    let online = relay.wait_online().await;
    // Modes and owners: settings (with the token until enrolment) root's only; the data
    // directory and credentials the service user's only.
    let stat = machine
        .sh(
            "stat -c '%n %a %U' /etc/zedops-agent/agent.env /var/lib/zedops-agent \
             /var/lib/zedops-agent/credentials.json /etc/systemd/system/zedops-agent.service \
             /usr/local/bin/zedops-agent",
        )
        .await;
    let expected = [
        "/etc/zedops-agent/agent.env 600 root",
        "/var/lib/zedops-agent 700 zedops-agent",
        "/var/lib/zedops-agent/credentials.json 600 zedops-agent",
        "/etc/systemd/system/zedops-agent.service 644 root",
        "/usr/local/bin/zedops-agent 755 root",
    ];
    assert_eq!(stat.lines().collect::<Vec<_>>(), expected, "{stat}");
    // No journal line of any unit (sudo's included) holds the token.
    let journal = machine.sh("journalctl --no-pager -o cat").await;
    assert!(!journal.is_empty(), "the journal is empty");
    assert!(
        !journal.contains(token),
        "the registration token is in the journal"
    );
    online
}

async fn uninstall_purge(machine: &Machine) -> String {
    let out = machine
        .exec(None, "/usr/local/bin/zedops-agent uninstall --purge")
        .await;
    let said = text(&out.stderr);
    assert!(out.status.success(), "uninstall --purge: {said}");
    said
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installs_under_systemd_as_root_and_through_sudo() {
    if !require_tool("docker", "docker.io") || !require_tool("debootstrap", "debootstrap") {
        return;
    }
    let image = image().await;
    let downloads = tempfile::tempdir().unwrap();
    let served = downloads
        .path()
        .join(format!("zedops-agent-linux-{}", std::env::consts::ARCH));
    std::fs::copy(AGENT, &served).unwrap();
    let relay = Relay::start(downloads.path()).await;
    let machine = Machine::boot(image).await;
    machine.add_docker_group().await;

    // --- As root, on a host without sudo ------------------------------------------------------
    machine.sh("mv /usr/bin/sudo /usr/bin/sudo.hidden").await;
    let (command, token) = relay.install_command().await;
    assert!(
        command.starts_with("curl -fsSL ") && !command.contains("sudo"),
        "{command}"
    );
    let out = install(&machine, None, &command, &token).await;
    let said = text(&out.stderr);
    eprintln!("--- install as root said:\n{said}");
    assert!(out.status.success(), "install as root: {said}");
    assert!(said.contains("connected to the relay as"), "{said}");
    assert!(!said.contains(&token), "{said}");
    let (name, id) = check_installed(&machine, &relay, &token).await;

    // The same command again changes nothing and still reports the connection.
    let out = install(&machine, None, &command, &token).await;
    let said = text(&out.stderr);
    assert!(out.status.success(), "second run: {said}");
    assert!(said.contains("nothing changed"), "{said}");
    assert!(said.contains("connected to the relay"), "{said}");

    // A service restart and a machine restart: the agent comes back as itself.
    let before = relay.connection(&id);
    machine.sh("systemctl restart zedops-agent").await;
    assert_eq!(
        relay.wait_reconnected(before).await,
        (name.clone(), id.clone())
    );
    let before = relay.connection(&id);
    machine.restart().await;
    assert_eq!(
        relay.wait_reconnected(before).await,
        (name.clone(), id.clone())
    );

    // uninstall --purge: the relay forgets the agent, the same host installs again.
    let said = uninstall_purge(&machine).await;
    assert!(said.contains("the relay forgot agent"), "{said}");
    assert!(relay.store.agents().await.unwrap().is_empty());
    let (command, token) = relay.install_command().await;
    let out = install(&machine, None, &command, &token).await;
    assert!(out.status.success(), "reinstall: {}", text(&out.stderr));
    let (again, new_id) = relay.wait_online().await;
    assert_eq!(again, name, "the name was enrolled again");
    assert_ne!(new_id, id);
    uninstall_purge(&machine).await;

    // A wrong token: the install fails with the relay's reason and the journal.
    let wrong = "zr_wrongwrongwrongwrongwrongwrongwrongwrong";
    let command = install_command(&relay.url, wrong);
    let out = install(&machine, None, &command, wrong).await;
    let said = text(&out.stderr);
    eprintln!("--- install with a wrong token said:\n{said}");
    assert!(
        !out.status.success(),
        "a wrong token was reported as success: {said}"
    );
    assert!(said.contains("UNAUTHORIZED"), "{said}");
    assert!(said.contains("Last lines of its journal"), "{said}");
    let said = uninstall_purge(&machine).await;
    assert!(!said.contains("forgot"), "{said}");
    let failed = machine
        .sh("systemctl list-units --failed --no-legend --plain")
        .await;
    assert!(
        !failed.contains("zedops-agent"),
        "the uninstalled unit is still listed as failed: {failed}"
    );

    // --- As a user with sudo ------------------------------------------------------------------
    machine.sh("mv /usr/bin/sudo.hidden /usr/bin/sudo").await;
    machine
        .sh("useradd --create-home --shell /bin/sh tester && \
             echo 'tester ALL=(ALL) NOPASSWD: ALL' >/etc/sudoers.d/tester && \
             chmod 0440 /etc/sudoers.d/tester")
        .await;
    let (command, token) = relay.install_command().await;
    let out = install(&machine, Some("tester"), &command, &token).await;
    let said = text(&out.stderr);
    eprintln!("--- install through sudo said:\n{said}");
    assert!(out.status.success(), "install through sudo: {said}");
    assert!(said.contains("through sudo"), "{said}");
    assert!(said.contains("connected to the relay as"), "{said}");
    check_installed(&machine, &relay, &token).await;
    let journal = machine.sh("journalctl --no-pager -o cat").await;
    assert!(
        journal.contains("zedops-agent install"),
        "sudo's journal line for the install is missing"
    );
    uninstall_purge(&machine).await;
    assert!(relay.store.agents().await.unwrap().is_empty());

    // A download that no longer matches the published checksum is refused, nothing installed.
    let mut binary = std::fs::read(&served).unwrap();
    binary[4096] ^= 0xff;
    std::fs::write(&served, binary).unwrap();
    let (command, token) = relay.install_command().await;
    let out = install(&machine, None, &command, &token).await;
    let said = text(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("checksum mismatch, nothing was installed"),
        "{said}"
    );
    let left = machine
        .exec(
            None,
            "test -e /usr/local/bin/zedops-agent || test -e /etc/zedops-agent",
        )
        .await;
    assert!(!left.status.success(), "files were installed");
}
