//! The release binaries as separate processes, so what is measured of them is theirs alone: the
//! relay serving a prepared database on a free loopback port, and a kill when the benchmark ends
//! however it ends.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use zedops_testkit::free_port;
use zedops_testkit::process::KillOnDrop;

/// Relay options that lift the per-connection message rate and the per-agent limits, for the
/// benchmarks whose load is routing itself: a few pipelined connections would otherwise hit
/// them within a second.
pub const UNLIMITED_ROUTING: [&str; 6] = [
    "--max-messages-per-sec",
    "0",
    "--max-agent-messages-per-sec",
    "0",
    "--max-agent-requests",
    "1000000",
];

/// Fills the relay database `database` (a SQLite path or a PostgreSQL URL) before any relay
/// opens it: `agents` registration tokens, made 32 at a time, and the viewer `load`, signed in.
/// Returns the registration tokens and `load`'s device token.
pub async fn seed_load(database: &str, agents: usize) -> anyhow::Result<(Vec<String>, String)> {
    let store = zedops_relay::Store::open(database).await?;
    let mut tokens = Vec::with_capacity(agents);
    let mut pending = FuturesUnordered::new();
    for _ in 0..agents {
        pending.push(store.create_registration_token(Duration::from_secs(3600)));
        if pending.len() >= 32 {
            tokens.push(pending.next().await.expect("pending")?);
        }
    }
    while let Some(token) = pending.next().await {
        tokens.push(token?);
    }
    drop(pending);
    store
        .add_user("load", "load-password", zedops_protocol::Role::Viewer)
        .await?;
    let (_, device) = store
        .login("load", "load-password", None)
        .await?
        .context("login")?;
    store.close().await;
    Ok((tokens, device))
}

/// Starts the relay `binary` serving the SQLite database `db` on a free loopback port, with
/// `args` after the usual ones and warnings only in its log, and waits (up to 10 s) until it
/// listens. Returns the process and its port.
pub async fn serve_relay(
    binary: &Path,
    db: &str,
    args: &[&str],
) -> anyhow::Result<(KillOnDrop, u16)> {
    let port = free_port();
    let child = Command::new(binary)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--db",
            db,
        ])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!(
                "{}: {e}; build it with cargo build --release -p zedops-relay",
                binary.display()
            )
        })?;
    let relay = KillOnDrop(child);
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((relay, port))
}

/// Starts the agent `binary` as `name` on the relay at `relay_url`, enrolling with the token in
/// `token_file` and keeping its data in `data_dir`, warnings only in its log.
pub fn run_agent(
    binary: &Path,
    relay_url: &str,
    name: &str,
    token_file: &Path,
    data_dir: &Path,
) -> anyhow::Result<KillOnDrop> {
    let child = Command::new(binary)
        .args(["run", "--relay", relay_url, "--name", name, "--token-file"])
        .arg(token_file)
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!(
                "{}: {e}; build it with scripts/check-agent-size (the static agent as shipped)",
                binary.display()
            )
        })?;
    Ok(KillOnDrop(child))
}
