//! Agent self-update under a real systemd (PID 1 in a container, the installer test's machine):
//! the agent installed as the hardened service (`zedops-agent install`) is told `agent.update`
//! by a relay on this machine. A signed build that starts but never connects is reverted by the
//! guard within the deadline (15 s here) and systemd brings the agent back on the old version;
//! then a real newer build is installed, the agent exits with 75, systemd restarts it through the
//! packaged binary, and it comes back online reporting the new version from the data directory.

use std::time::Duration;

use installer::{AGENT, require_tool};
use sysd::{Machine, image};
use update::{Admin, Relay, ReleaseKey, platform, publish};
use zedops_testkit::build::stripped_agent;

mod installer;
mod sysd;
mod update;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_itself_under_systemd_and_comes_back_from_a_build_that_cannot_connect() {
    if !require_tool("docker", "docker.io") || !require_tool("debootstrap", "debootstrap") {
        return;
    }
    let image = image().await;
    let key = ReleaseKey::generate();
    let new = stripped_agent("0.99.0");
    let packaged = env!("CARGO_PKG_VERSION");

    // The relay first serves a properly signed build that starts and never connects.
    let broken = b"#!/bin/sh\n# starts, never connects\nexec sleep 600\n".to_vec();
    let broken_downloads = tempfile::tempdir().unwrap();
    publish(
        broken_downloads.path(),
        &broken,
        &key.sign(&broken, "0.99.1", &platform()),
    );
    let relay = Relay::start(broken_downloads.path()).await;
    let machine = Machine::boot(image).await;
    machine.add_docker_group().await;

    // Installed as a server admin would: the binary copied over, `install` with a token file
    // and the release key pinned (`--trusted-key`, into the root-owned configuration).
    let copied = std::process::Command::new("docker")
        .args(["cp", AGENT, &format!("{}:/root/zedops-agent", machine.name)])
        .output()
        .unwrap();
    assert!(copied.status.success(), "docker cp failed");
    let token = relay
        .store
        .create_registration_token(Duration::from_secs(900))
        .await
        .unwrap();
    machine
        .sh(&format!(
            "umask 077 && printf '%s\\n' '{token}' >/root/token && \
             printf '%s' '{}' >/root/release.pub && \
             /root/zedops-agent install --relay {} --token-file /root/token --name sysd-updater \
               --trusted-key /root/release.pub",
            key.public_file(),
            relay.url
        ))
        .await;
    let pinned = machine
        .sh("stat -c '%a %U' /etc/zedops-agent/release-key.pub && grep TRUSTED_KEY /etc/zedops-agent/agent.env")
        .await;
    assert_eq!(
        pinned.lines().collect::<Vec<_>>(),
        [
            "644 root",
            "ZEDOPS_TRUSTED_KEY_FILE=/etc/zedops-agent/release-key.pub"
        ]
    );
    // A short deadline for the test (60 s by default).
    machine
        .sh(
            "printf 'ZEDOPS_UPDATE_REVERT_AFTER=15\\n' >>/etc/zedops-agent/agent.env && \
             systemctl restart zedops-agent",
        )
        .await;
    let id = relay
        .wait_version(None, packaged, Duration::from_secs(60))
        .await;

    // The build that cannot connect: installed, restarted into, reverted by the guard, and the
    // agent is back on the packaged version.
    let mut admin = Admin::connect(&relay).await;
    let before = relay.connection(&id);
    let answer = admin.update("sysd-updater").await;
    assert_eq!(answer["to"], "0.99.1", "{answer}");
    assert_eq!(answer["revertAfterSecs"], 15, "{answer}");
    let started = tokio::time::Instant::now();
    relay
        .wait_version(before, packaged, Duration::from_secs(60))
        .await;
    let took = started.elapsed();
    let journal = machine
        .sh("journalctl -u zedops-agent --no-pager -o cat")
        .await;
    assert!(
        journal.contains("reverted the agent update"),
        "no revert in the journal: {journal}"
    );
    assert!(
        took >= Duration::from_secs(10) && took < Duration::from_secs(45),
        "back on the old version after {took:?}; the deadline was 15 s: {journal}"
    );
    let rollback = machine
        .sh("cat /var/lib/zedops-agent/update/rollback.json")
        .await;
    assert!(rollback.contains("\"version\":\"0.99.1\""), "{rollback}");
    assert!(
        !machine
            .exec(None, "test -e /var/lib/zedops-agent/update/zedops-agent")
            .await
            .status
            .success(),
        "the build that did not connect is still installed"
    );

    // A real newer build: the relay restarted to serve it (same database and address).
    let downloads = tempfile::tempdir().unwrap();
    publish(
        downloads.path(),
        &new,
        &key.sign(&new, "0.99.0", &platform()),
    );
    let relay = relay.restart_serving(downloads.path()).await;
    let before = relay.connection(
        &relay
            .wait_version(None, packaged, Duration::from_secs(60))
            .await,
    );
    let mut admin = Admin::connect_as(&relay, "root2", zedops_protocol::PROTOCOL_VERSION).await;
    let answer = admin.update("sysd-updater").await;
    assert_eq!(answer["from"], packaged, "{answer}");
    assert_eq!(answer["to"], "0.99.0", "{answer}");
    relay
        .wait_version(before, "0.99.0", Duration::from_secs(60))
        .await;
    // systemd restarted it (exit 75), and the running binary is the installed update, started
    // by the packaged one.
    let restarts = machine
        .sh("systemctl show -p NRestarts --value zedops-agent")
        .await;
    assert!(restarts.trim().parse::<u32>().unwrap() >= 1, "{restarts}");
    let exe = machine
        .sh("readlink /proc/$(systemctl show -p MainPID --value zedops-agent)/exe")
        .await;
    assert_eq!(exe.trim(), "/var/lib/zedops-agent/update/zedops-agent");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let state = machine
            .sh("cat /var/lib/zedops-agent/update/state.json")
            .await;
        if state.contains("\"confirmed\":true") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the update did not confirm itself: {state}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
