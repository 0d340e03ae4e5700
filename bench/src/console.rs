//! Console sessions against `docker exec` on the same engine, in one run: `cat` of a large file
//! through `zedops exec` (CLI → relay → agent, base64 frames under credit) beside
//! `docker exec C cat` of the same file, timed by `farm-bench --vs` (whole processes, A B A B…);
//! and the keystroke echo round trip in a terminal session, `zedops exec -it C cat` beside
//! `docker exec -it C cat`, each under a pseudo-terminal here: a byte typed, the time until the
//! remote terminal's echo of it is read back, alternating the two sessions key by key.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};
use zedops_protocol::Role;
use zedops_testkit::{TestAgent, TestContainers, TestRelay, require_docker};

use crate::stats::{ms, percentile};

pub async fn run(zedops: &Path, megabytes: usize, keys: usize, runs: usize) -> anyhow::Result<()> {
    let docker = require_docker()
        .await
        .ok_or_else(|| anyhow::anyhow!("a Docker engine is needed"))?;
    let zedops = std::fs::canonicalize(zedops).map_err(|e| {
        anyhow::anyhow!(
            "{} ({e}); build it with cargo build --release -p zedops-client",
            zedops.display()
        )
    })?;
    let mut containers = TestContainers::new(&docker);
    let container = containers.sleeper("console-bench").await;
    let relay = TestRelay::builder().start().await;
    let agent = TestAgent::builder(&relay).name("bench").online().await;
    let token = relay.login("bench-admin", Role::Admin).await;
    let config = tempfile::tempdir()?;
    // The file both read, made in the container once.
    let made = tokio::process::Command::new("docker")
        .args(["exec", &container, "sh", "-c"])
        .arg(format!(
            // The test image has no /tmp of its own.
            "mkdir -p /tmp && head -c {} /dev/urandom > /tmp/bench.bin",
            megabytes * 1_000_000
        ))
        .status()
        .await?;
    anyhow::ensure!(made.success(), "could not write the file in the container");
    let env = [
        ("ZEDOPS_TOKEN", token.as_str()),
        ("ZEDOPS_RELAY", relay.url.as_str()),
        ("ZEDOPS_CONFIG_DIR", config.path().to_str().unwrap_or(".")),
    ];

    println!("== cat of {megabytes} MB: zedops exec (A) vs docker exec (B), farm-bench --vs");
    let through = format!(
        "exec {} exec --agent bench {container} -- cat /tmp/bench.bin >/dev/null",
        zedops.display()
    );
    let direct = format!("sh -c 'exec docker exec {container} cat /tmp/bench.bin >/dev/null'");
    let mut farm = tokio::process::Command::new("farm-bench");
    farm.args([
        "-n",
        &runs.to_string(),
        "--timeout",
        "600",
        "--vs",
        &direct,
        "--",
    ])
    .args(["sh", "-c", &through]);
    for (key, value) in env {
        farm.env(key, value);
    }
    let status = farm.status().await?;
    anyhow::ensure!(status.success(), "farm-bench failed");

    println!(
        "== keystroke echo in a terminal session: zedops exec -it vs docker exec -it, {keys} keys"
    );
    let zedops_cmd = {
        let mut cmd = CommandBuilder::new(&zedops);
        cmd.args(["exec", "-it", "--agent", "bench", &container, "--", "cat"]);
        for (key, value) in env {
            cmd.env(key, value);
        }
        cmd
    };
    let mut docker_cmd = CommandBuilder::new("docker");
    docker_cmd.args(["exec", "-it", &container, "cat"]);
    let (through, direct) =
        tokio::task::spawn_blocking(move || echo_latencies(zedops_cmd, docker_cmd, keys)).await??;
    report("zedops exec -it", through);
    report("docker exec -it", direct);
    drop(agent);
    Ok(())
}

/// A session under a pseudo-terminal, and what it prints.
struct Session {
    writer: Box<dyn Write + Send>,
    output: mpsc::Receiver<Vec<u8>>,
    _child: Box<dyn portable_pty::Child + Send + Sync>,
    _master: Box<dyn portable_pty::MasterPty + Send>,
}

impl Session {
    fn spawn(cmd: CommandBuilder) -> anyhow::Result<Self> {
        let pair = native_pty_system().openpty(PtySize {
            rows: 24,
            cols: 80,
            pixel_width: 0,
            pixel_height: 0,
        })?;
        let child = pair.slave.spawn_command(cmd)?;
        let mut reader = pair.master.try_clone_reader()?;
        let writer = pair.master.take_writer()?;
        let (tx, output) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            writer,
            output,
            _child: child,
            _master: pair.master,
        })
    }

    /// Types `key` and waits for it to come back; the round trip.
    fn echo(&mut self, key: u8) -> anyhow::Result<Duration> {
        // Nothing left over from before counts.
        while self.output.try_recv().is_ok() {}
        let start = Instant::now();
        self.writer.write_all(&[key])?;
        self.writer.flush()?;
        loop {
            let bytes = self
                .output
                .recv_timeout(Duration::from_secs(10))
                .map_err(|_| anyhow::anyhow!("no echo within 10 s"))?;
            if bytes.contains(&key) {
                return Ok(start.elapsed());
            }
        }
    }

    /// Types until the session echoes (it is up).
    fn ready(&mut self) -> anyhow::Result<()> {
        for _ in 0..100 {
            self.writer.write_all(b"r")?;
            self.writer.flush()?;
            if let Ok(bytes) = self.output.recv_timeout(Duration::from_millis(300))
                && bytes.contains(&b'r')
            {
                return Ok(());
            }
        }
        anyhow::bail!("the session did not start")
    }
}

fn echo_latencies(
    zedops: CommandBuilder,
    docker: CommandBuilder,
    keys: usize,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let mut a = Session::spawn(zedops)?;
    let mut b = Session::spawn(docker)?;
    a.ready()?;
    b.ready()?;
    let (mut through, mut direct) = (Vec::new(), Vec::new());
    // Letters only (a line of them; `cat` in canonical mode echoes each as typed), a newline
    // now and then so the remote line buffer stays short. The first 20 warm both and are not kept.
    for i in 0..keys + 20 {
        let key = if i % 60 == 59 {
            b'\r'
        } else {
            b'a' + (i % 26) as u8
        };
        let (t, d) = if i % 2 == 0 {
            (a.echo(key)?, b.echo(key)?)
        } else {
            let d = b.echo(key)?;
            (a.echo(key)?, d)
        };
        if i >= 20 && key != b'\r' {
            through.push(t);
            direct.push(d);
        }
    }
    // Ctrl-D ends both `cat`s.
    let _ = a.writer.write_all(&[b'\r', 4]);
    let _ = b.writer.write_all(&[b'\r', 4]);
    Ok((through, direct))
}

fn report(what: &str, mut samples: Vec<Duration>) {
    let n = samples.len();
    println!(
        "{what}: p50 {}, p90 {}, p99 {} (n={n})",
        ms(percentile(&mut samples, 50.0)),
        ms(percentile(&mut samples, 90.0)),
        ms(percentile(&mut samples, 99.0)),
    );
}
