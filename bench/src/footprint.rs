//! Memory and size: the release agent idle on a relay, and the release relay's cost per idle
//! agent connection. Both run as separate processes so their RSS is theirs alone.

use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use zedops_testkit::process::KillOnDrop;
use zedops_testkit::{TestRelay, require_docker};

use crate::fake_peer;
use crate::process::{run_agent, serve_relay};
use crate::stats::{rss_kib, verdict};

/// The release agent as its own process, enrolled on `relay` as `name` with its data in `dir`;
/// returns once the relay counts it online.
pub async fn spawn_agent(
    binary: &Path,
    relay: &TestRelay,
    name: &str,
    dir: &Path,
) -> anyhow::Result<KillOnDrop> {
    let token_file = dir.join("token");
    std::fs::write(&token_file, relay.registration_token().await)?;
    let child = run_agent(binary, &relay.url, name, &token_file, &dir.join("data"))?;
    relay.wait_agent(name, true).await;
    Ok(child)
}

pub async fn agent(binary: &Path) -> anyhow::Result<()> {
    let size = std::fs::metadata(binary)
        .map_err(|e| {
            anyhow::anyhow!(
                "{}: {e}; build it with scripts/check-agent-size (the static agent as shipped)",
                binary.display()
            )
        })?
        .len();
    let docker = require_docker().await;
    let relay = TestRelay::builder().start().await;
    let dir = tempfile::tempdir()?;
    let child = spawn_agent(binary, &relay, "footprint", dir.path()).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle = rss_kib(child.0.id())?;
    println!(
        "agent binary as shipped (profile agent, stripped): {:.2} MB (target <= 5 MB: {})",
        size as f64 / 1e6,
        verdict(size as f64 / 1e6 <= 5.0)
    );
    println!(
        "agent idle RSS, connected to a relay: {:.2} MB (target <= 5 MB: {})",
        idle as f64 * 1024.0 / 1e6,
        verdict(idle as f64 * 1024.0 / 1e6 <= 5.0)
    );
    if docker.is_some() {
        let client = relay
            .client("footprint", zedops_protocol::Role::Viewer)
            .await;
        for _ in 0..20 {
            client.containers("footprint").await?;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        println!(
            "agent RSS after 20 container lists: {:.2} MB",
            rss_kib(child.0.id())? as f64 * 1024.0 / 1e6
        );
    }
    Ok(())
}

pub async fn relay(binary: &Path, connections: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("relay.db").display().to_string();
    let store = zedops_relay::Store::open(&db).await?;
    let mut tokens = Vec::with_capacity(connections);
    for _ in 0..connections {
        tokens.push(
            store
                .create_registration_token(Duration::from_secs(3600))
                .await?,
        );
    }
    store.close().await;

    // Every simulated agent dials from 127.0.0.1; real ones come from their own addresses.
    let unlimited = ["--max-connections-per-address", "1000000"];
    let (child, port) = serve_relay(binary, &db, &unlimited).await?;
    let base = format!("ws://127.0.0.1:{port}");
    // One connection first, so one-time allocations are in the baseline, not the per-connection figure.
    let first = fake_peer::agent(&base, &tokens[0], "idle-0").await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(child.0.id())?;

    let mut open = vec![first];
    let mut pending = FuturesUnordered::new();
    for (i, token) in tokens.iter().enumerate().skip(1) {
        let base = base.clone();
        pending.push(async move { fake_peer::agent(&base, token, &format!("idle-{i}")).await });
        if pending.len() >= 64 {
            open.push(pending.next().await.expect("pending")?);
        }
    }
    while let Some(ws) = pending.next().await {
        open.push(ws?);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(child.0.id())?;
    let added = open.len() - 1;
    println!(
        "relay RSS with 1 agent: {:.2} MB; with {}: {:.2} MB",
        before as f64 / 1024.0,
        open.len(),
        after as f64 / 1024.0
    );
    let per_connection = (after.saturating_sub(before)) as f64 / added as f64;
    println!(
        "relay RSS per idle agent connection: {per_connection:.1} KiB (target <= 16 KiB: {})",
        verdict(per_connection <= 16.0)
    );
    drop(open);
    Ok(())
}
