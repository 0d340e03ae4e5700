//! A real NATS server for tests: Debian's `nats-server` on a free loopback port, with a config
//! of its own in a temporary directory. Killed when dropped. Under `CI=true` a missing
//! `nats-server` fails the test.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A running `nats-server`.
pub struct TestNats {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    child: Mutex<Option<Child>>,
}

impl TestNats {
    /// A new server of its own, or `None` (after saying why) when `nats-server` is not installed
    /// outside CI.
    pub fn start() -> Option<Self> {
        let Some(bin) = find_bin() else {
            let problem =
                "nats-server is not installed (Debian package nats-server); run scripts/setup";
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{problem}");
            }
            eprintln!("skipping: {problem}");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        // The relay's frames go up to 1 MiB (plus headers): above NATS's 1 MB default.
        std::fs::write(
            dir.path().join("nats.conf"),
            format!("listen: 127.0.0.1:{port}\nmax_payload: 4MB\n"),
        )
        .expect("nats config");
        let nats = Self {
            bin,
            dir,
            port,
            child: Mutex::new(None),
        };
        nats.resume();
        Some(nats)
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
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default();
                panic!("nats-server did not start within 20 s; its log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestNats {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `nats-server` on the PATH, in /usr/sbin (Debian), or `ZEDOPS_NATS_SERVER`.
fn find_bin() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("ZEDOPS_NATS_SERVER") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join("nats-server"))
        .find(|bin| bin.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}
