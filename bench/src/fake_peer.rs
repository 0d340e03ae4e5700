//! Minimal protocol peers for loading the relay: agents that enrol and then idle or answer at
//! once, and clients that pipeline requests. They speak the real protocol over real WebSockets;
//! only Docker is left out, because these benchmarks measure the relay alone.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use zedops_protocol::PROTOCOL_VERSION;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// An agent enrolled with `token` under `name`, connected and welcomed.
pub async fn agent(base: &str, token: &str, name: &str) -> anyhow::Result<Ws> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{base}/ws/agent")).await?;
    let hello = json!({"subject": "agent.register", "data": {
        "protocolVersion": PROTOCOL_VERSION, "registrationToken": token, "name": name,
        "info": {"version": "bench", "os": "linux", "arch": std::env::consts::ARCH}}});
    ws.send(Message::text(hello.to_string())).await?;
    expect_subject(&mut ws, "agent.welcome").await?;
    Ok(ws)
}

/// A client signed in with a device token.
pub async fn client(base: &str, token: &str) -> anyhow::Result<Ws> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{base}/ws/client")).await?;
    let hello = json!({"subject": "client.hello", "data": {"protocolVersion": PROTOCOL_VERSION, "token": token}});
    ws.send(Message::text(hello.to_string())).await?;
    expect_subject(&mut ws, "client.welcome").await?;
    Ok(ws)
}

async fn expect_subject(ws: &mut Ws, subject: &str) -> anyhow::Result<()> {
    while let Some(msg) = ws.next().await {
        if let Message::Text(text) = msg? {
            let frame: Value = serde_json::from_str(text.as_str())?;
            anyhow::ensure!(
                frame["subject"] == subject,
                "expected {subject}, got {frame}"
            );
            return Ok(());
        }
    }
    anyhow::bail!("closed before {subject}")
}

/// Answers every request with an empty container list until the connection ends.
pub async fn answer_forever(ws: Ws) {
    let (mut tx, mut rx) = ws.split();
    while let Some(Ok(msg)) = rx.next().await {
        let Message::Text(text) = msg else { continue };
        let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        if let Some(reply) = frame["reply"].as_str() {
            let answer = format!(r#"{{"subject":"{reply}","data":{{"containers":[],"count":0}}}}"#);
            if tx.send(Message::text(answer)).await.is_err() {
                return;
            }
        }
    }
}

/// Requests answered per second while one client per entry of `targets` (an agent's name)
/// keeps `window` `container.list` requests in flight to it, for `seconds` (counted after half
/// a second to fill the pipelines).
pub async fn routed_per_second(
    base: &str,
    device: &str,
    targets: &[String],
    window: usize,
    seconds: u64,
) -> anyhow::Result<f64> {
    let answered = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = vec![];
    for agent in targets {
        let ws = client(base, device).await?;
        let (answered, stop, agent) = (answered.clone(), stop.clone(), agent.clone());
        tasks.push(tokio::spawn(async move {
            pipeline(ws, &agent, window, answered, stop).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (start_count, start) = (answered.load(Ordering::Relaxed), Instant::now());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let done = answered.load(Ordering::Relaxed) - start_count;
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    Ok(done as f64 / elapsed.as_secs_f64())
}

/// Keeps `window` requests in flight on one client connection until `stop`.
pub async fn pipeline(
    ws: Ws,
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
