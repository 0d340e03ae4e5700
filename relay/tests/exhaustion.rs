//! Attacks without credentials against the real `zedops-relay` binary on loopback, each bounded
//! in count and time: a login flood (memory and correctness), idle and slowloris connections at a
//! 1,024-descriptor limit, lock-out attempts, log forging, database file modes under umask 022,
//! device session expiry, and invalid UTF-8 on a WebSocket. Attackers use other loopback
//! addresses (127.0.0.2 and up) than the legitimate user (127.0.0.1).
// /proc, prlimit and loopback addresses beyond 127.0.0.1 are Linux.
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use zedops_client::{Client, ConnectOptions};
use zedops_protocol::PROTOCOL_VERSION;
use zedops_testkit::process::run_admin;

const PASSWORD: &str = "right-password-1";
const BIN: &str = env!("CARGO_BIN_EXE_zedops-relay");

/// A relay process with its own database; killed on drop.
struct Relay {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    log: Arc<Mutex<Vec<String>>>,
}

impl Relay {
    /// Creates the admin user `alice`, then runs `prefix… zedops-relay serve args…`.
    fn start(prefix: &[&str], args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("data").join("relay.db");
        Self::start_in(dir, &db, prefix, args)
    }

    fn start_in(dir: tempfile::TempDir, db: &Path, prefix: &[&str], args: &[&str]) -> Self {
        let db = db.display().to_string();
        if !Path::new(&db).exists() {
            admin(&db, &ALICE_ADMIN);
        }
        let mut child = relay_command(prefix)
            .args(["--db", &db, "serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("zedops-relay starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find("relay listening addr=") {
                    let rest = &line[at + "relay listening addr=".len()..];
                    let addr = rest.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(addr.parse::<SocketAddr>().ok());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("relay did not start: {:?}", log.lock().unwrap()));
        Self {
            child,
            addr,
            dir,
            log,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("data").join("relay.db")
    }

    /// Peak resident memory of the relay process, in MiB.
    fn peak_rss_mib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status");
        kib / 1024
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The relay binary started through `launcher` (a program and its arguments that run the
/// binary given last, e.g. a shell that sets the umask first); empty: directly.
fn relay_command(launcher: &[&str]) -> Command {
    match launcher {
        [] => Command::new(BIN),
        [program, rest @ ..] => {
            let mut command = Command::new(program);
            command.args(rest).arg(BIN);
            command
        }
    }
}

/// The admin command that adds admin `alice` (with [`PASSWORD`] on stdin).
const ALICE_ADMIN: [&str; 6] = [
    "user",
    "add",
    "alice",
    "--role",
    "admin",
    "--password-stdin",
];

/// Runs an administration command against `db` (the password on stdin) and returns stdout.
fn admin(db: &str, args: &[&str]) -> String {
    admin_through(&[], db, args)
}

/// [`admin`] started through `launcher` (see [`relay_command`]).
fn admin_through(launcher: &[&str], db: &str, args: &[&str]) -> String {
    let password = format!("{PASSWORD}\n");
    let out = run_admin(relay_command(launcher), db, args, Some(&password));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn loopback(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

/// Asserts the relay still serves the legitimate user (127.0.0.1) `when`: `/healthz` answers
/// 200 and a real client lists agent `agent` online.
async fn assert_serving(relay: &Relay, agent: &str, when: &str) {
    let (status, body) = http(loopback(1), relay.addr, "GET", "/healthz", &[], "")
        .await
        .unwrap_or_else(|| panic!("/healthz answers {when}"));
    assert_eq!(status, 200, "{body}");
    let agents = real_client(relay).await;
    assert!(
        agents.iter().any(|a| a.name == agent && a.online),
        "{agents:?}"
    );
}

/// A TCP connection to `to` from the loopback address `from`.
async fn dial_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(to).await
}

/// One HTTP/1.1 request from `from`; the status and body, or `None` if the relay did not answer
/// within 20 s.
async fn http(
    from: IpAddr,
    to: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<(u16, String)> {
    let exchange = async {
        let mut tcp = dial_from(from, to).await.ok()?;
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        tcp.write_all(request.as_bytes()).await.ok()?;
        let mut answer = Vec::new();
        tcp.read_to_end(&mut answer).await.ok()?;
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let status = answer.split_whitespace().nth(1)?.parse().ok()?;
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Some((status, body))
    };
    tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .ok()
        .flatten()
}

async fn login_from(
    from: IpAddr,
    to: SocketAddr,
    user: &str,
    password: &str,
    headers: &[(&str, &str)],
) -> Option<(u16, String)> {
    let body = json!({"username": user, "password": password}).to_string();
    http(from, to, "POST", "/api/login", headers, &body).await
}

/// Logs in as alice with the real client library (from 127.0.0.1), retrying while the relay
/// says it is busy, and lists agents over a real WebSocket connection.
async fn real_client(relay: &Relay) -> Vec<zedops_protocol::AgentSummary> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let token = loop {
        match zedops_client::login(&relay.url(), "alice", PASSWORD, None, false).await {
            Ok(answer) => break answer.token,
            Err(e) if e.code() == "RATE_LIMITED" && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("the right user could not log in: {e}"),
        }
    };
    let client = Client::connect(ConnectOptions {
        relay: relay.url(),
        token,
        ca_file: None,
        insecure: false,
    })
    .await
    .expect("the client connects");
    let agents = client.agents().await.expect("the client lists agents");
    client.close().await;
    agents
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws(relay: &Relay, path: &str) -> Ws {
    tokio_tungstenite::connect_async(format!("ws://{}{path}", relay.addr))
        .await
        .expect("websocket connects")
        .0
}

/// An agent enrolled over a raw WebSocket, kept answering pings in the background.
async fn enrol_agent(relay: &Relay, name: &str) -> tokio::task::JoinHandle<()> {
    let token = admin(
        &relay.db().display().to_string(),
        &["token", "create", "--ttl", "10m"],
    );
    let mut socket = ws(relay, "/ws/agent").await;
    let hello = json!({"subject": "agent.register", "data": {"protocolVersion": PROTOCOL_VERSION,
        "registrationToken": token, "name": name, "info": {"version": "0", "os": "linux", "arch": "x86_64"}}});
    socket.send(Message::text(hello.to_string())).await.unwrap();
    let welcome = socket.next().await.unwrap().unwrap();
    assert!(
        welcome.to_text().unwrap().contains("agent.welcome"),
        "{welcome}"
    );
    tokio::spawn(async move { while let Some(Ok(_)) = socket.next().await {} })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_flood_stays_within_memory_and_never_lets_a_wrong_password_in() {
    // Four checks at once (the default is twice the cores), each in a reused ~19 MiB buffer.
    let relay = Relay::start(&[], &["--max-login-checks", "4"]);
    let before = relay.peak_rss_mib();
    let addr = relay.addr;
    // Three waves of 200 concurrent wrong logins, from 200 addresses so that the per-address
    // limits do not stop them before their passwords would be checked; some guess alice.
    for wave in 0..3u32 {
        let guesses: Vec<_> = (0..200u32)
            .map(|i| {
                let user = if i % 2 == 0 {
                    "alice".to_string()
                } else {
                    format!("user{i}")
                };
                let from = loopback(2 + i as u8);
                tokio::spawn(async move {
                    login_from(from, addr, &user, &format!("wrong-{wave}-{i}"), &[]).await
                })
            })
            .collect();
        let legit = real_client(&relay);
        let (answers, _) = tokio::join!(futures_util::future::join_all(guesses), legit);
        let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
        for answer in answers {
            let (status, body) = answer.unwrap().expect("the relay answers every login");
            assert_ne!(status, 200, "a wrong password was accepted: {body}");
            assert!(
                [401, 429, 503].contains(&status),
                "unexpected answer {status}: {body}"
            );
            if status == 503 {
                assert!(body.contains("RATE_LIMITED"), "{body}");
            }
            *statuses.entry(status).or_default() += 1;
        }
        eprintln!("wave {wave}: {statuses:?}");
        assert!(
            statuses.get(&503).copied().unwrap_or(0) > 0,
            "200 concurrent logins must find the password checks busy: {statuses:?}"
        );
    }
    let peak = relay.peak_rss_mib();
    eprintln!("relay peak RSS: {before} MiB at start, {peak} MiB after the login flood");
    assert!(
        peak < 200,
        "the relay grew to {peak} MiB under a login flood (bound: 4 checks x 19 MiB + its own ~30 MiB)"
    );
    real_client(&relay).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lockout_attempts_do_not_stop_the_right_user_elsewhere_and_proxies_are_believed_only_when_trusted()
 {
    let relay = Relay::start(&[], &["--trusted-proxy", "127.0.0.3"]);
    let addr = relay.addr;
    let mut refused = false;
    for i in 0..30 {
        let (status, _) = login_from(loopback(2), addr, "alice", &format!("guess{i}"), &[])
            .await
            .unwrap();
        assert_ne!(status, 200);
        refused |= status == 429;
    }
    assert!(refused, "guessing from one address is slowed down");
    // The right password from another address works at once.
    real_client(&relay).await;
    let (status, _) = login_from(loopback(4), addr, "alice", PASSWORD, &[])
        .await
        .unwrap();
    assert_eq!(status, 200);

    // Behind a trusted proxy each client is counted by the address the proxy names.
    let mut refused = false;
    for i in 0..30 {
        let (status, _) = login_from(
            loopback(3),
            addr,
            "alice",
            &format!("guess{i}"),
            &[("X-Forwarded-For", "198.51.100.7")],
        )
        .await
        .unwrap();
        assert_ne!(status, 200);
        refused |= status == 429;
    }
    assert!(refused, "guessing through the proxy is slowed down");
    let (status, body) = login_from(
        loopback(3),
        addr,
        "alice",
        PASSWORD,
        &[("Forwarded", "for=198.51.100.8;proto=https")],
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "another client behind the same proxy: {body}");

    // An untrusted peer cannot pick a fresh address per guess with the header.
    let mut refused = false;
    for i in 0..30 {
        let fake = format!("203.0.113.{i}");
        let (status, _) = login_from(
            loopback(5),
            addr,
            "alice",
            &format!("guess{i}"),
            &[("X-Forwarded-For", &fake)],
        )
        .await
        .unwrap();
        assert_ne!(status, 200);
        refused |= status == 429;
    }
    assert!(
        refused,
        "a forged X-Forwarded-For from an untrusted peer is ignored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_and_slowloris_connections_at_a_1024_descriptor_limit_leave_the_relay_serving() {
    let header_timeout = Duration::from_secs(4);
    let relay = Relay::start(
        &["prlimit", "--nofile=1024:1024", "--"],
        &["--header-timeout", "4s"],
    );
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", relay.child.id())).unwrap();
    let nofile = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_string();
    assert!(nofile.contains("1024"), "{nofile}");
    let _agent = enrol_agent(&relay, "busy-server").await;
    let addr = relay.addr;

    // 2,000 connections that never send a byte, from one address.
    let mut idle = Vec::new();
    for _ in 0..2000 {
        if let Ok(tcp) = dial_from(loopback(2), addr).await {
            idle.push(tcp);
        }
    }
    // 600 that send a request head one byte a second and never finish it, from another.
    let mut slow = Vec::new();
    for _ in 0..600 {
        if let Ok(mut tcp) = dial_from(loopback(3), addr).await
            && tcp
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .await
                .is_ok()
        {
            slow.push(tcp);
        }
    }
    let opened = Instant::now();
    let drip = tokio::spawn(async move {
        let mut closed_at = vec![None; slow.len()];
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            for (tcp, closed) in slow.iter_mut().zip(closed_at.iter_mut()) {
                if closed.is_none() {
                    let mut buf = [0u8; 256];
                    let gone =
                        match tokio::time::timeout(Duration::from_millis(1), tcp.read(&mut buf))
                            .await
                        {
                            Ok(Ok(0)) | Ok(Err(_)) => true,
                            Ok(Ok(_)) => false,
                            Err(_) => tcp.write_all(b"X").await.is_err(),
                        };
                    if gone {
                        *closed = Some(start.elapsed());
                    }
                }
            }
            if closed_at.iter().all(Option::is_some) {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        closed_at
    });

    // Meanwhile the relay answers health checks and serves a real user.
    assert_serving(&relay, "busy-server", "during the attack").await;

    // Every slowloris connection is closed by the relay soon after the header timeout.
    let closed_at = drip.await.unwrap();
    let open = closed_at.iter().filter(|c| c.is_none()).count();
    assert_eq!(
        open, 0,
        "{open} slowloris connections still open after 20 s"
    );
    let latest = closed_at
        .iter()
        .flatten()
        .max()
        .copied()
        .unwrap_or_default();
    eprintln!(
        "slowloris: all 600 closed within {latest:?} (header timeout {header_timeout:?}); opened in {:?}",
        opened.elapsed()
    );
    // And the idle ones too.
    let mut still_open = 0;
    for tcp in &mut idle {
        let mut buf = [0u8; 16];
        if tokio::time::timeout(Duration::from_millis(20), tcp.read(&mut buf))
            .await
            .is_err()
        {
            still_open += 1;
        }
    }
    assert_eq!(
        still_open, 0,
        "idle connections outlived the header timeout"
    );
    let (status, _) = http(loopback(1), addr, "GET", "/healthz", &[], "")
        .await
        .expect("/healthz answers after the attack");
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn silent_connections_from_many_addresses_make_room_for_real_users() {
    // A header timeout of a minute: what lets the user in is not the timeout.
    let relay = Relay::start(
        &["prlimit", "--nofile=1024:1024", "--"],
        &["--header-timeout", "60s"],
    );
    let _agent = enrol_agent(&relay, "crowded-server").await;
    let addr = relay.addr;
    // 2,000 silent connections from 8 addresses, each under the per-address cap (256): more
    // than the 896 connections 1,024 descriptors allow.
    let mut silent = Vec::new();
    for i in 0..2000u32 {
        if let Ok(tcp) = dial_from(loopback(2 + (i % 8) as u8), addr).await {
            silent.push(tcp);
        }
    }
    assert_serving(
        &relay,
        "crowded-server",
        "while silent connections fill the cap",
    )
    .await;
    let descriptors = std::fs::read_dir(format!("/proc/{}/fd", relay.child.id()))
        .unwrap()
        .count();
    eprintln!("relay descriptors with 2,000 silent connections: {descriptors}");
    assert!(descriptors < 1024, "{descriptors}");
}

#[tokio::test]
async fn a_peer_that_stops_reading_is_closed_after_the_send_timeout() {
    let downloads = tempfile::tempdir().unwrap();
    let size = 64 * 1024 * 1024;
    std::fs::write(
        downloads.path().join("zedops-agent-linux-x86_64"),
        vec![0u8; size],
    )
    .unwrap();
    let dir = downloads.path().display().to_string();
    let relay = Relay::start(&[], &["--downloads", &dir, "--send-timeout", "2s"]);
    let mut tcp = dial_from(loopback(2), relay.addr).await.unwrap();
    let request = format!(
        "GET /download/agent/linux-x86_64 HTTP/1.1\r\nHost: {}\r\n\r\n",
        relay.addr
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    // Read nothing for longer than the send timeout, then everything the relay still sends.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut received = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received += n,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the connection was not closed");
    eprintln!("a stalled download got {received} of {size} bytes before the relay closed it");
    assert!(
        received < size,
        "the relay kept the stalled connection and sent all {size} bytes"
    );
}

#[tokio::test]
async fn newlines_from_the_wire_cannot_forge_log_lines() {
    let mut relay = Relay::start(&[], &[]);
    let addr = relay.addr;
    let (status, _) = login_from(loopback(1), addr, "x\nFORGED line", "nope", &[])
        .await
        .unwrap();
    assert_eq!(status, 401);
    let body = "{\"username\":\"a\",\"password\":\"b\",\"x\\nFORGED field\":1}";
    let (status, _) = http(loopback(1), addr, "POST", "/api/login", &[], body)
        .await
        .unwrap();
    assert_eq!(status, 400);
    let mut hello = ws(&relay, "/ws/client").await;
    let frame = json!({"subject": "client.hello", "data": {"protocolVersion": PROTOCOL_VERSION,
        "token": "zd_x", "x\nFORGED hello": 1}});
    hello.send(Message::text(frame.to_string())).await.unwrap();
    while let Some(Ok(_)) = hello.next().await {}
    let mut agent = ws(&relay, "/ws/agent").await;
    let frame = json!({"subject": "agent.register", "data": {"protocolVersion": PROTOCOL_VERSION,
        "registrationToken": "zr_x", "name": "n", "info": {"version": "0", "os": "linux", "arch": "x86_64"},
        "y\nFORGED agent": 1}});
    agent.send(Message::text(frame.to_string())).await.unwrap();
    while let Some(Ok(_)) = agent.next().await {}
    tokio::time::sleep(Duration::from_millis(300)).await;
    relay.stop();
    std::thread::sleep(Duration::from_millis(100));
    let log = relay.log.lock().unwrap().clone();
    let text = log.join("\n");
    for needle in [
        "FORGED line",
        "FORGED field",
        "FORGED hello",
        "FORGED agent",
    ] {
        assert!(
            text.contains(needle),
            "the attempt with {needle:?} was logged (escaped): {text}"
        );
    }
    for line in &log {
        assert!(
            line.len() > 20
                && line.as_bytes()[..4].iter().all(u8::is_ascii_digit)
                && line.as_bytes()[4] == b'-',
            "a log line that is not the relay's own: {line:?}\n{text}"
        );
        assert!(!line.starts_with("FORGED"), "{line:?}");
    }
}

#[cfg(unix)]
#[tokio::test]
async fn the_database_is_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state").join("relay.db");
    let db_arg = db.display().to_string();
    // Created by an admin command and by the relay, both under umask 022.
    let script = "umask 022; exec \"$0\" \"$@\"";
    admin_through(&["sh", "-c", script], &db_arg, &ALICE_ADMIN);
    let relay = Relay::start_in(dir, &db, &["sh", "-c", script], &[]);
    real_client(&relay).await;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(db.parent().unwrap()), 0o700, "directory");
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", db.display()));
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
}

#[tokio::test]
async fn device_sessions_expire_when_idle_and_at_their_maximum_age() {
    let relay = Relay::start(
        &[],
        &["--session-idle-timeout", "3s", "--session-max-age", "7s"],
    );
    let connect = |token: String| {
        Client::connect(ConnectOptions {
            relay: relay.url(),
            token,
            ca_file: None,
            insecure: false,
        })
    };
    let url = relay.url();
    let login = || zedops_client::login(&url, "alice", PASSWORD, None, false);

    // Used every second, a session outlives its idle time, but not its maximum age; a
    // connection open all along is closed then too.
    let started = Instant::now();
    let token = login().await.unwrap().token;
    let open_all_along = connect(token.clone()).await.unwrap();
    while started.elapsed() < Duration::from_secs(5) {
        connect(token.clone())
            .await
            .expect("a session in use is renewed")
            .close()
            .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::sleep(Duration::from_secs(8).saturating_sub(started.elapsed())).await;
    let err = connect(token.clone())
        .await
        .expect_err("past its maximum age");
    assert!(
        err.to_string()
            .contains("your session expired; log in again"),
        "{err}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_all_along.agents().await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "a connection outlived its session's maximum age"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Left unused, it ends after the idle time.
    let token = login().await.unwrap().token;
    connect(token.clone()).await.unwrap().close().await;
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let err = connect(token).await.expect_err("past its idle time");
    assert!(
        err.to_string()
            .contains("your session expired; log in again"),
        "{err}"
    );
    assert_eq!(err.code().to_string(), "UNAUTHORIZED");
}

#[tokio::test]
async fn invalid_utf8_in_a_text_frame_closes_with_1007() {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    let relay = Relay::start(&[], &[]);
    for path in ["/ws/client", "/ws/agent"] {
        let mut socket = ws(&relay, path).await;
        let frame = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
        socket.send(Message::Frame(frame)).await.unwrap();
        let code = loop {
            match tokio::time::timeout(Duration::from_secs(10), socket.next())
                .await
                .expect("the relay reacts within 10 s")
            {
                Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                other => panic!("{path}: closed without a close frame: {other:?}"),
            }
        };
        assert_eq!(code, Some(1007), "{path}");
    }
}
