//! What the cluster tests that run relays as processes share: a relay process (the built
//! binary, so a kill is a real one), plain HTTP probes, and HAProxy in front of relays.
// Each test file uses a part of this module.
#![allow(dead_code)]

pub mod clients;
pub mod haproxy;

#[allow(unused_imports)]
pub use clients::*;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use zedops_testkit::free_port;

/// A relay running as a process of its own (the built binary), so that a kill is a real one:
/// no goodbye to its agents, clients or the other relays.
pub struct RelayProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    dir: tempfile::TempDir,
}

impl RelayProcess {
    /// Starts `zedops-relay serve` on `database` and `nats`, and waits until `/readyz` is 200
    /// (database reached, NATS connected).
    pub async fn start(database: &str, nats: &str) -> Self {
        Self::start_with(database, nats, &[]).await
    }

    /// [`start`](Self::start) with more options for `serve`.
    pub async fn start_with(database: &str, nats: &str, extra: &[&str]) -> Self {
        let relay = Self::spawn(database, nats, extra);
        let deadline = Instant::now() + Duration::from_secs(20);
        while http_status(&relay.addr, "/readyz").await != 200 {
            assert!(
                Instant::now() < deadline,
                "the relay process was not ready within 20 s; its log:\n{}",
                relay.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        relay
    }

    /// Starts `zedops-relay serve` without waiting for anything.
    pub fn spawn(database: &str, nats: &str, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("relay.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_zedops-relay"))
            .args(["--database", database, "serve", "--nats", nats])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start zedops-relay");
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            addr: format!("127.0.0.1:{port}"),
            dir,
        }
    }

    /// What the relay logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("relay.log")).unwrap_or_default()
    }

    /// How many agents are connected to this relay itself (its `/healthz`).
    pub async fn agents_here(&self) -> u64 {
        let (_, body) = http_get(&self.addr, "/healthz").await;
        serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["agentsOnline"].as_u64())
            .unwrap_or(0)
    }

    /// SIGSTOP: the process freezes (its connections stay open, nothing is answered).
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// SIGTERM: the relay drains (finishes what is in flight, sends everyone elsewhere) and exits.
    pub fn terminate(&self) {
        self.signal("-TERM");
    }

    /// Sends the process a signal with `kill` (`-STOP`, `-TERM`).
    fn signal(&self, which: &str) {
        let status = Command::new("kill")
            .args([which, &self.child.id().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("run kill {which}: {e}"));
        assert!(status.success(), "kill {which}");
    }

    /// SIGKILL, and waits until the process is gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Status code of a plain GET (0 when nothing answers).
pub async fn http_status(addr: &str, path: &str) -> u16 {
    http_get(addr, path).await.0
}

/// Status code and body of a plain GET (0 and nothing when nothing answers).
pub async fn http_get(addr: &str, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut tcp) = tokio::net::TcpStream::connect(addr).await else {
        return (0, String::new());
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n");
    if tcp.write_all(request.as_bytes()).await.is_err() {
        return (0, String::new());
    }
    let mut text = String::new();
    let _ = tcp.read_to_string(&mut text).await;
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A protocol-level agent registered at `relay` (a process) with `registration` token.
pub async fn enrol_at(
    relay: &RelayProcess,
    registration: &str,
    name: &str,
) -> zedops_testkit::wire::FakeAgent {
    let url = format!("{}/ws/agent", relay.url.replacen("http://", "ws://", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket to the relay process");
    let frame = serde_json::json!({"subject": "agent.register", "data": {
        "protocolVersion": zedops_protocol::PROTOCOL_VERSION,
        "registrationToken": registration, "name": name,
        "info": {"version": "0", "os": "linux", "arch": "x86_64"}}});
    let answer = zedops_testkit::wire::hello(&mut ws, frame, "agent.welcome").await;
    zedops_testkit::wire::FakeAgent {
        ws,
        id: answer["data"]["agentId"].as_str().unwrap().to_string(),
        token: answer["data"]["token"].as_str().unwrap().to_string(),
    }
}

impl RelayProcess {
    /// Waits up to `within` for the process to exit by itself; its exit status, or `None` when
    /// it still runs.
    pub async fn exited(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// What a test needs from a database its relays run as processes on: an admin's device token
/// (the user `user` is made) and a registration token for an agent.
pub struct Seeded {
    pub device: String,
    pub registration: String,
}

/// Makes the admin `user` and a registration token straight in `database`.
pub async fn seed(database: &str, user: &str) -> Seeded {
    let store = zedops_relay::Store::open(database).await.unwrap();
    let password = format!("{user}-password-1");
    store
        .add_user(user, &password, zedops_protocol::Role::Admin)
        .await
        .unwrap();
    let (_, device) = store
        .login(user, &password, None)
        .await
        .unwrap()
        .expect("login");
    let registration = store
        .create_registration_token(Duration::from_secs(600))
        .await
        .unwrap();
    store.close().await;
    Seeded {
        device,
        registration,
    }
}
