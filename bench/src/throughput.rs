//! Routed requests per second through the release relay: clients pipelining `container.list`
//! to agents that answer at once, so the relay's routing is what is measured.

use std::path::Path;

use crate::fake_peer;
use crate::process::{UNLIMITED_ROUTING, seed_load, serve_relay};

pub async fn run(
    binary: &Path,
    clients: usize,
    agents: usize,
    window: usize,
    seconds: u64,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("relay.db").display().to_string();
    let (agent_tokens, device) = seed_load(&db, agents).await?;

    let (relay, port) = serve_relay(binary, &db, &UNLIMITED_ROUTING).await?;
    let base = format!("ws://127.0.0.1:{port}");
    for (i, token) in agent_tokens.iter().enumerate() {
        let ws = fake_peer::agent(&base, token, &format!("fast-{i}")).await?;
        tokio::spawn(fake_peer::answer_forever(ws));
    }

    let targets: Vec<String> = (0..clients)
        .map(|c| format!("fast-{}", c % agents))
        .collect();
    let rate = fake_peer::routed_per_second(&base, &device, &targets, window, seconds).await?;
    drop(relay);
    println!(
        "relay routed {rate:.0} requests/s ({clients} clients x {window} in flight, {agents} agents, {seconds} s; \
         load generator on the same cores) (target >= 100,000/s: {})",
        crate::stats::verdict(rate >= 100_000.0)
    );
    Ok(())
}
