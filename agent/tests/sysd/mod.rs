//! A real systemd (PID 1) in a container, for the tests that need one (the installer, agent
//! self-update): a Debian 12 root filesystem made with `debootstrap`, imported into Docker as
//! `zedops-sysd:bookworm` and booted with host networking, so that a relay on this machine's
//! 127.0.0.1 is reachable from inside. The image is built once and kept; its root filesystem is
//! cached as a tarball under `target/zedops-sysd/` so a fresh engine imports it without
//! debootstrap.

#![allow(dead_code)]

use std::process::Output;
use std::time::Duration;

use tokio::process::Command;
use zedops_testkit::build::target_dir;

/// Bytes as text, for messages.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub const IMAGE: &str = "zedops-sysd:bookworm";
/// What the image holds beyond debootstrap's minimal base: systemd as PID 1, curl for the
/// install command, sudo for the second case, ps for a person debugging it.
pub const PACKAGES: &str = "systemd,systemd-sysv,dbus,curl,ca-certificates,sudo,procps";

/// A booted container running systemd; removed on drop.
pub struct Machine {
    pub name: String,
}

impl Machine {
    pub async fn boot(image: &str) -> Self {
        let name = format!(
            "zedops-test-sysd-{}-{:x}",
            std::process::id(),
            rand::random::<u32>()
        );
        // A private cgroup namespace: with the host's cgroups mounted, this systemd would
        // reshape them and `docker stats` would read zeros for every container on the host.
        let out = docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "--label",
            "zedops-test",
            "--cap-add",
            "ALL",
            "--cap-drop",
            "SYS_RESOURCE",
            "--security-opt",
            "seccomp=unconfined",
            "--security-opt",
            "apparmor=unconfined",
            "--stop-signal",
            "RTMIN+3",
            "--network",
            "host",
            "--cgroupns=private",
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
            "--tmpfs",
            "/run",
            "--tmpfs",
            "/run/lock",
            image,
            "/lib/systemd/systemd",
        ])
        .await;
        assert!(out.status.success(), "docker run: {}", text(&out.stderr));
        let machine = Self { name };
        machine.wait_booted().await;
        machine
    }

    pub async fn wait_booted(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            let out = self.exec(None, "systemctl is-system-running").await;
            let state = text(&out.stdout);
            if matches!(state.trim(), "running" | "degraded") {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "systemd did not finish booting within 90 s: {state}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// `sh -c script` inside, as `user` (root when `None`), from that user's home.
    pub async fn exec(&self, user: Option<&str>, script: &str) -> Output {
        let mut args = vec!["exec"];
        if let Some(user) = user {
            args.extend(["-u", user, "-w", "/home/tester"]);
        }
        args.extend([self.name.as_str(), "sh", "-c", script]);
        docker(&args).await
    }

    /// Runs `script` as root and returns its stdout; fails the test when it fails.
    pub async fn sh(&self, script: &str) -> String {
        let out = self.exec(None, script).await;
        assert!(
            out.status.success(),
            "`{script}` failed: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Docker as on any server: a `docker` group owning the engine's socket (its id may already
    /// name another group inside, hence --non-unique).
    pub async fn add_docker_group(&self) {
        let gid = self.sh("stat -c %g /var/run/docker.sock").await;
        if gid.trim() != "0" {
            let gid = gid.trim();
            self.sh(&format!("groupadd --non-unique --gid {gid} docker"))
                .await;
        }
    }

    /// Types `line` into a shell inside, as a person pastes a command into a terminal: the line
    /// reaches the shell on its input, so no process (docker exec included) has it in its
    /// arguments. As `user` (root when `None`), from that user's home.
    pub async fn paste(&self, user: Option<&str>, line: &str) -> Output {
        use tokio::io::AsyncWriteExt;
        let mut args = vec!["exec", "-i"];
        if let Some(user) = user {
            args.extend(["-u", user, "-w", "/home/tester"]);
        }
        args.extend([self.name.as_str(), "sh"]);
        let mut child = Command::new("docker")
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("docker runs");
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        drop(stdin);
        child.wait_with_output().await.unwrap()
    }

    pub async fn restart(&self) {
        let out = docker(&["restart", "-t", "20", &self.name]).await;
        assert!(
            out.status.success(),
            "docker restart: {}",
            text(&out.stderr)
        );
        self.wait_booted().await;
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", "-v", &self.name])
            .output();
    }
}

pub async fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .await
        .expect("docker runs")
}

/// The image, built once: imported from the cached root filesystem, or made with debootstrap
/// from the Debian mirror apt uses here.
pub async fn image() -> &'static str {
    if docker(&["image", "inspect", IMAGE]).await.status.success() {
        return IMAGE;
    }
    let cache = target_dir().join("zedops-sysd");
    std::fs::create_dir_all(&cache).unwrap();
    let tarball = cache.join("bookworm-rootfs.tar");
    if !tarball.exists() {
        let root = tempfile::tempdir_in(&cache).unwrap();
        let mirror = debian_mirror();
        eprintln!(
            "building the systemd test image with debootstrap from {mirror} (about a minute, once)"
        );
        let out = Command::new("debootstrap")
            .args([
                "--variant=minbase",
                &format!("--include={PACKAGES}"),
                "bookworm",
            ])
            .arg(root.path())
            .arg(&mirror)
            .output()
            .await
            .expect("debootstrap runs");
        assert!(
            out.status.success(),
            "debootstrap failed: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let partial = cache.join("bookworm-rootfs.tar.partial");
        let out = Command::new("tar")
            .arg("-C")
            .arg(root.path())
            .args(["-cf"])
            .arg(&partial)
            .arg(".")
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "tar: {}", text(&out.stderr));
        std::fs::rename(&partial, &tarball).unwrap();
    }
    let out = Command::new("docker")
        .args(["import"])
        .arg(&tarball)
        .arg(IMAGE)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "docker import: {}", text(&out.stderr));
    IMAGE
}

/// The Debian mirror apt is configured with here (deb822 `URIs:` or a one-line `deb` entry).
fn debian_mirror() -> String {
    let mut texts = vec![std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default()];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        for entry in dir.flatten() {
            texts.push(std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
    for text in &texts {
        for line in text.lines() {
            // `URIs: http://…` (deb822) or `deb [options] http://… suite …`.
            let uri = match line.strip_prefix("URIs:") {
                Some(rest) => rest.split_whitespace().next(),
                None if line.starts_with("deb ") => {
                    line.split_whitespace().skip(1).find(|w| w.contains("://"))
                }
                None => None,
            };
            if let Some(uri) = uri
                && uri.trim_end_matches('/').ends_with("/debian")
            {
                return uri.to_string();
            }
        }
    }
    "http://deb.debian.org/debian".to_string()
}
