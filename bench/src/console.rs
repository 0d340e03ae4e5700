//! Console sessions against `docker exec` on the same engine, in one run: `cat` of a large file
//! through `zedops exec` (CLI → relay → agent, base64 frames under credit) beside
//! `docker exec C cat` of the same file, timed by `farm-bench --vs` (whole processes, A B A B…);
//! and the keystroke echo round trip in a terminal session, `zedops exec -it C cat` beside
//! `docker exec -it C cat`, each under a pseudo-terminal here: a byte typed, the time until the
//! remote terminal's echo of it is read back, alternating the two sessions key by key.

use std::io::Write;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use portable_pty::CommandBuilder;
use zedops_protocol::Role;
use zedops_testkit::pty::PtyProcess;
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
    let env = [
        ("ZEDOPS_TOKEN", token.as_str()),
        ("ZEDOPS_RELAY", relay.url.as_str()),
        ("ZEDOPS_CONFIG_DIR", config.path().to_str().unwrap_or(".")),
    ];

    // `--megabytes 0`: the keystroke echo alone.
    if megabytes > 0 {
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
    }

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
    let (mut through, mut direct) = (through, direct);
    report("zedops exec -it", &mut through);
    report("docker exec -it", &mut direct);
    let (a, b) = (
        percentile(&mut through, 50.0),
        percentile(&mut direct, 50.0),
    );
    println!(
        "p50 difference (zedops - docker): {:+.2} ms (target: within 2 ms)",
        (a.as_secs_f64() - b.as_secs_f64()) * 1000.0
    );
    drop(agent);
    Ok(())
}

/// A session under a pseudo-terminal, and what it prints.
struct Session {
    name: &'static str,
    writer: Box<dyn Write + Send>,
    output: mpsc::Receiver<Vec<u8>>,
    _child: Box<dyn portable_pty::Child + Send + Sync>,
    master: Box<dyn portable_pty::MasterPty + Send>,
}

/// How long the output must stay quiet before a key is typed: whatever the session still had
/// to print (the rest of an earlier echo, a line `cat` repeats after Enter) is read first.
const QUIET: Duration = Duration::from_millis(30);

/// Below this a "round trip" through a client, an engine and a remote terminal is not one: the
/// matching is wrong (a local echo, a leftover byte), and the figure must not be quoted.
const IMPOSSIBLE: Duration = Duration::from_micros(50);

impl Session {
    fn spawn(name: &'static str, cmd: CommandBuilder) -> anyhow::Result<Self> {
        // The terminal's other end is dropped: reading ends when the client does.
        let pty = PtyProcess::spawn(cmd, 24, 80)?;
        Ok(Self {
            name,
            writer: pty.writer,
            output: pty.output,
            _child: pty.child,
            master: pty.master,
        })
    }

    /// Whether the client put its terminal (our pty) in raw mode: no local echo, no line
    /// editing. Until then the pty itself echoes a typed byte at once, which is no round trip.
    fn raw(&self) -> bool {
        // The flags by name: nix's types are portable-pty's, not a dependency of this crate.
        self.master.get_termios().is_some_and(|t| {
            !t.local_flags
                .iter_names()
                .any(|(flag, _)| flag == "ECHO" || flag == "ICANON")
        })
    }

    /// Reads until the output has been quiet for [`QUIET`]; what was read.
    fn drain(&mut self) -> anyhow::Result<Vec<u8>> {
        let mut read = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.output.recv_timeout(QUIET) {
                Ok(bytes) => read.extend_from_slice(&bytes),
                Err(mpsc::RecvTimeoutError::Timeout) => return Ok(read),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    anyhow::bail!("{}: the session ended", self.name)
                }
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{}: the session kept printing for 5 s ({} bytes)",
                self.name,
                read.len()
            );
        }
    }

    /// Types `key` (output drained and quiet first) and waits for exactly its echo: the time
    /// from the write to the last byte of it. Anything else printed in between is an error, so
    /// a figure is never made of some other output.
    fn echo(&mut self, key: u8) -> anyhow::Result<Duration> {
        self.drain()?;
        let start = Instant::now();
        self.writer.write_all(&[key])?;
        self.writer.flush()?;
        let got = self
            .output
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| anyhow::anyhow!("{}: no echo within 10 s", self.name))?;
        let elapsed = start.elapsed();
        anyhow::ensure!(
            got == [key],
            "{}: typed {:?}, read {:?}: not its echo alone",
            self.name,
            key as char,
            String::from_utf8_lossy(&got)
        );
        Ok(elapsed)
    }

    /// Waits until the client is in raw mode and the remote `cat` echoes a marker: the session
    /// is up end to end, and what it printed on the way is read.
    fn ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.raw() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "{}: the client never put its terminal in raw mode",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // Raw now: an echo can only come from the remote terminal. Typed again until it comes
        // (the client may still be connecting; it may drop early keys or send them late).
        while Instant::now() < deadline {
            self.writer.write_all(b"R")?;
            self.writer.flush()?;
            std::thread::sleep(Duration::from_millis(300));
            if self.drain()?.contains(&b'R') {
                // A line break, so the remote line buffer starts empty; its output drained.
                self.writer.write_all(b"\r")?;
                self.writer.flush()?;
                std::thread::sleep(Duration::from_millis(100));
                self.drain()?;
                return Ok(());
            }
        }
        anyhow::bail!(
            "{}: the remote terminal never echoed within 30 s",
            self.name
        )
    }
}

fn echo_latencies(
    zedops: CommandBuilder,
    docker: CommandBuilder,
    keys: usize,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let mut a = Session::spawn("zedops exec -it", zedops)?;
    let mut b = Session::spawn("docker exec -it", docker)?;
    a.ready()?;
    b.ready()?;
    let (mut through, mut direct) = (Vec::new(), Vec::new());
    // Letters only, never the same twice in a row (so a late echo of the key before could not
    // pass for this one's), with Enter now and then so the remote line stays short (`cat` in
    // canonical mode echoes each letter as typed and prints the line on Enter; not timed).
    // The first 20 warm both and are not kept. Which session goes first alternates.
    let mut letter = 0u8;
    for i in 0..keys + 20 {
        if i % 60 == 59 {
            for session in [&mut a, &mut b] {
                session.drain()?;
                session.writer.write_all(b"\r")?;
                session.writer.flush()?;
            }
            continue;
        }
        let key = b'a' + letter;
        letter = (letter + 1) % 26;
        let (t, d) = if i % 2 == 0 {
            (a.echo(key)?, b.echo(key)?)
        } else {
            let d = b.echo(key)?;
            (a.echo(key)?, d)
        };
        if i >= 20 {
            through.push(t);
            direct.push(d);
        }
    }
    // Ctrl-D ends both `cat`s.
    let _ = a.writer.write_all(&[b'\r', 4]);
    let _ = b.writer.write_all(&[b'\r', 4]);
    for (name, samples) in [("zedops exec -it", &through), ("docker exec -it", &direct)] {
        let p50 = percentile(&mut samples.clone(), 50.0);
        anyhow::ensure!(
            p50 >= IMPOSSIBLE,
            "{name}: p50 {} is no remote round trip; the echo matching is wrong, not quoting it",
            ms(p50)
        );
    }
    Ok((through, direct))
}

fn report(what: &str, samples: &mut [Duration]) {
    let n = samples.len();
    println!(
        "{what}: p50 {}, p95 {}, p99 {} (n={n})",
        ms(percentile(samples, 50.0)),
        ms(percentile(samples, 95.0)),
        ms(percentile(samples, 99.0)),
    );
}
