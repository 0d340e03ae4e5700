//! The real `zedops-relay` binary as a separate process for tests that measure it from outside
//! (its resident memory): a database seeded before it starts, the process killed when the test
//! ends however it ends, `VmRSS` read from /proc, and its administration commands run with
//! their input on stdin.

use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use zedops_protocol::Role;

/// A spawned process, killed and reaped when dropped.
pub struct KillOnDrop(pub Child);

impl KillOnDrop {
    /// The process id.
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the relay administration command `args` against the SQLite database `db`; `relay`
/// starts the binary (directly, or through a launcher). `stdin` is written to its standard
/// input (a password for `--password-stdin`), which is then closed.
pub fn run_admin(mut relay: Command, db: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = relay
        .arg("--db")
        .arg(db)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("zedops-relay runs");
    if let Some(input) = stdin {
        // A relay that exits before reading (a refused command) closes the pipe: what it
        // printed, returned below, says why, where a broken pipe here would not.
        let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    }
    child.wait_with_output().unwrap()
}

/// The resident memory of process `pid` in KiB (`VmRSS` in /proc/PID/status).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("process {pid} runs: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Fills the SQLite database `db` before a relay process opens it: user `user` with `password`
/// and `role`, signed in. Returns that session's token and a registration token good for 15
/// minutes.
pub async fn seed_database(db: &str, user: &str, password: &str, role: Role) -> (String, String) {
    let store = zedops_relay::Store::open(db).await.unwrap();
    store.add_user(user, password, role).await.unwrap();
    let (_, token) = store
        .login(user, password, Some("test"))
        .await
        .unwrap()
        .unwrap();
    let registration = store
        .create_registration_token(Duration::from_secs(900))
        .await
        .unwrap();
    store.close().await;
    (token, registration)
}

/// Starts `binary` (`zedops-relay`) serving database `db` on a free loopback port, quiet, and
/// waits up to `within` until it listens. Returns the process and its `127.0.0.1:PORT`.
pub async fn serve_relay(
    binary: &std::path::Path,
    db: &str,
    within: Duration,
) -> (KillOnDrop, String) {
    let addr = format!("127.0.0.1:{}", crate::server::free_port());
    let relay = KillOnDrop(
        Command::new(binary)
            .args(["--db", db, "serve", "--listen", &addr])
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("zedops-relay starts"),
    );
    let deadline = tokio::time::Instant::now() + within;
    while tokio::net::TcpStream::connect(&addr).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "the relay listens");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (relay, addr)
}
