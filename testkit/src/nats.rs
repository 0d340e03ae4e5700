//! A real NATS server for tests: Debian's `nats-server` on a free loopback port, with a config
//! of its own in a temporary directory, or a cluster of several routed to each other. Killed
//! when dropped. Under `CI=true` a missing `nats-server` fails the test.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::server::{free_port, wait_started};

/// A running `nats-server`.
pub struct TestNats {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// The server's monitoring port (`/connz`, `/routez`), to see who is connected to it.
    monitor: u16,
    child: Mutex<Option<Child>>,
}

impl TestNats {
    /// A new server of its own, or `None` (after saying why) when `nats-server` is not installed
    /// outside CI.
    pub fn start() -> Option<Self> {
        let bin = find_bin()?;
        Some(Self::launch(bin, String::new()))
    }

    /// A server of its own with `config` added to its configuration file (e.g. an `operator`
    /// and its accounts), or `None` as [`start`](Self::start).
    pub fn start_with_config(config: &str) -> Option<Self> {
        let bin = find_bin()?;
        Some(Self::launch(bin, config.to_string()))
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default()
    }

    /// A NATS cluster of `n` servers routed to each other (each a [`TestNats`]: stop one to
    /// test failover), started once every server has a route to all the others.
    pub fn start_cluster(n: usize) -> Option<Vec<Self>> {
        let bin = find_bin()?;
        let routes: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let list = routes
            .iter()
            .map(|p| format!("nats-route://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(", ");
        let nodes: Vec<Self> = routes
            .iter()
            .enumerate()
            .map(|(i, port)| {
                let cluster = format!(
                    "server_name: node-{i}\ncluster {{\n  name: zedops-test\n  listen: 127.0.0.1:{port}\n  routes: [{list}]\n}}\n"
                );
                Self::launch(bin.clone(), cluster)
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !nodes.iter().all(|node| node.routes() >= n - 1) {
            assert!(
                Instant::now() < deadline,
                "the NATS servers did not form a cluster within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(nodes)
    }

    fn launch(bin: PathBuf, extra: String) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (port, monitor) = (free_port(), free_port());
        // The relay's frames go up to 1 MiB (plus headers): above NATS's 1 MB default.
        std::fs::write(
            dir.path().join("nats.conf"),
            format!(
                "listen: 127.0.0.1:{port}\nhttp: 127.0.0.1:{monitor}\nmax_payload: 4MB\n{extra}"
            ),
        )
        .expect("nats config");
        let nats = Self {
            bin,
            dir,
            port,
            monitor,
            child: Mutex::new(None),
        };
        nats.resume();
        nats
    }

    /// How many clients (relays, tests) are connected to this server now.
    pub fn connections(&self) -> usize {
        self.monitored("/connz", "num_connections")
    }

    /// How many routes to other servers of its cluster this server has now.
    pub fn routes(&self) -> usize {
        self.monitored("/routez", "num_routes")
    }

    /// A number from the server's monitoring endpoint (0 while it is stopped).
    fn monitored(&self, path: &str, field: &str) -> usize {
        use std::io::{Read, Write};
        let Ok(mut tcp) = std::net::TcpStream::connect(("127.0.0.1", self.monitor)) else {
            return 0;
        };
        let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
        let request = format!("GET {path} HTTP/1.0\r\nHost: nats\r\n\r\n");
        let mut text = String::new();
        if tcp.write_all(request.as_bytes()).is_err() || tcp.read_to_string(&mut text).is_err() {
            return 0;
        }
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
        serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v[field].as_u64())
            .unwrap_or(0) as usize
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (as a crash would) and waits until it is gone.
    pub fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port after [`stop`](Self::stop); waits until it
    /// accepts connections.
    pub fn resume(&self) {
        let mut child = self.child.lock().unwrap();
        if child.is_some() {
            return;
        }
        let log = std::fs::File::create(self.dir.path().join("nats.log")).expect("nats log");
        *child = Some(
            Command::new(&self.bin)
                .arg("-c")
                .arg(self.dir.path().join("nats.conf"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("start nats-server"),
        );
        drop(child);
        wait_started(
            "nats-server",
            Duration::from_secs(20),
            Duration::from_millis(20),
            &self.dir.path().join("nats.log"),
            || std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok(),
        );
    }
}

impl Drop for TestNats {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `nats-server` on the PATH, in /usr/sbin (Debian), or `ZEDOPS_NATS_SERVER`; `None` (after
/// saying why) when it is not installed outside CI.
fn find_bin() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("ZEDOPS_NATS_SERVER") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join("nats-server"))
        .find(|bin| bin.is_file());
    if found.is_none() {
        let problem =
            "nats-server is not installed (Debian package nats-server); run scripts/setup";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{problem}");
        }
        eprintln!("skipping: {problem}");
    }
    found
}
