//! Routed requests per second through the release relay: clients pipelining `container.list`
//! to agents that answer at once, so the relay's routing is what is measured.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::fake_peer;
use crate::stats::free_port;

pub async fn run(
    binary: &Path,
    clients: usize,
    agents: usize,
    window: usize,
    seconds: u64,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("relay.db").display().to_string();
    let store = zedops_relay::Store::open(&db).await?;
    let mut agent_tokens = vec![];
    for _ in 0..agents {
        agent_tokens.push(
            store
                .create_registration_token(Duration::from_secs(3600))
                .await?,
        );
    }
    store
        .add_user("load", "load-password", zedops_protocol::Role::Viewer)
        .await?;
    let (_, device) = store
        .login("load", "load-password", None)
        .await?
        .expect("login");
    store.close().await;

    let port = free_port();
    let mut child = Command::new(binary)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--db",
            &db,
            // Routing is what is measured: a few pipelined connections would otherwise hit the
            // per-connection message limit and the per-agent in-flight cap within a second.
            "--max-messages-per-sec",
            "0",
            "--max-agent-messages-per-sec",
            "0",
            "--max-agent-requests",
            "1000000",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()?;
    let base = format!("ws://127.0.0.1:{port}");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (i, token) in agent_tokens.iter().enumerate() {
        let ws = fake_peer::agent(&base, token, &format!("fast-{i}")).await?;
        tokio::spawn(fake_peer::answer_forever(ws));
    }

    let answered = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = vec![];
    for c in 0..clients {
        let ws = fake_peer::client(&base, &device).await?;
        let (answered, stop) = (answered.clone(), stop.clone());
        let agent = format!("fast-{}", c % agents);
        tasks.push(tokio::spawn(async move {
            pipeline(ws, &agent, window, answered, stop).await
        }));
    }
    // Let the pipelines fill before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (start_count, start) = (answered.load(Ordering::Relaxed), Instant::now());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let done = answered.load(Ordering::Relaxed) - start_count;
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let rate = done as f64 / elapsed.as_secs_f64();
    println!(
        "relay routed {rate:.0} requests/s ({clients} clients x {window} in flight, {agents} agents, {seconds} s; \
         load generator on the same cores) (target >= 100,000/s: {})",
        crate::stats::verdict(rate >= 100_000.0)
    );
    Ok(())
}

/// Keeps `window` requests in flight on one client connection until `stop`.
async fn pipeline(
    ws: fake_peer::Ws,
    agent: &str,
    window: usize,
    answered: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let (mut tx, mut rx) = ws.split();
    let request = |n: u64| {
        format!(
            r#"{{"subject":"container.list","reply":"_INBOX.{n}","data":{{"agentId":"{agent}"}}}}"#
        )
    };
    let mut next = 0u64;
    for _ in 0..window {
        next += 1;
        if tx.send(Message::text(request(next))).await.is_err() {
            return;
        }
    }
    while let Some(Ok(msg)) = rx.next().await {
        if !matches!(msg, Message::Text(_)) {
            continue;
        }
        answered.fetch_add(1, Ordering::Relaxed);
        if stop.load(Ordering::Relaxed) {
            return;
        }
        next += 1;
        if tx.send(Message::text(request(next))).await.is_err() {
            return;
        }
    }
}
