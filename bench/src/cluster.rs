//! The relay cluster (issue 18): N simulated agents across two release relays sharing one
//! PostgreSQL database and one NATS server, all on this machine. Measures relay RSS per agent,
//! routed requests per second through the cluster, and the latency of a request client →
//! relay B → NATS → relay A → agent beside client → relay A → agent, interleaved in one run
//! with a bare NATS request and reply through the same server: the floor under the first.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::stream::FuturesUnordered;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use zedops_testkit::free_port;
use zedops_testkit::{TestNats, TestPostgres};

use crate::fake_peer;
use crate::process::{UNLIMITED_ROUTING, seed_load};
use crate::stats::{ms, percentile, rss_kib, verdict};

/// What to run: `agents` simulated agents, `rounds` timed requests of each kind, `seconds` of
/// pipelined load on each path.
pub struct Options<'a> {
    pub binary: &'a Path,
    pub agents: usize,
    pub rounds: usize,
    pub seconds: u64,
}

/// A release relay process, killed when dropped.
struct Relay {
    child: Child,
    base: String,
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Relay {
    async fn start(binary: &Path, database: &str, nats: &str) -> anyhow::Result<Self> {
        let port = free_port();
        let child = Command::new(binary)
            .args(["--database", database, "serve", "--nats", nats])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            // Every simulated peer dials from 127.0.0.1, and routing is what is measured:
            // the per-address, per-connection and per-agent limits would stop the load.
            .args(["--max-connections-per-address", "1000000"])
            .args(UNLIMITED_ROUTING)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| {
                format!(
                    "{}: build it with cargo build --release -p zedops-relay",
                    binary.display()
                )
            })?;
        let relay = Self {
            child,
            base: format!("ws://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready(port).await {
            if Instant::now() > deadline {
                bail!("a relay was not ready (database and NATS) within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(relay)
    }

    fn rss(&self) -> anyhow::Result<u64> {
        rss_kib(self.child.id())
    }
}

/// Whether `/readyz` answers 200.
async fn ready(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut tcp) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let request = "GET /readyz HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n";
    if tcp.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut text = String::new();
    let _ = tcp.read_to_string(&mut text).await;
    text.starts_with("HTTP/1.1 200")
}

pub async fn run(options: Options<'_>) -> anyhow::Result<()> {
    let Options {
        binary,
        agents,
        rounds,
        seconds,
    } = options;
    anyhow::ensure!(
        agents >= 2,
        "--agents must be at least 2 (one on each relay)"
    );
    let postgres = TestPostgres::start()
        .context("PostgreSQL is not installed (Debian postgresql); run scripts/setup")?;
    let nats = TestNats::start()
        .context("nats-server is not installed (Debian nats-server); run scripts/setup")?;
    let database = postgres.database();

    let (tokens, device) = seed_load(&database, agents).await?;

    let a = Relay::start(binary, &database, &nats.url()).await?;
    let b = Relay::start(binary, &database, &nats.url()).await?;
    // One agent on each first, so one-time allocations are in the baseline.
    let mut open = Vec::with_capacity(agents);
    open.push(fake_peer::agent(&a.base, &tokens[0], "sim-0").await?);
    open.push(fake_peer::agent(&b.base, &tokens[1], "sim-1").await?);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = (a.rss()?, b.rss()?);

    // The rest, even ones on A and odd ones on B, 64 enrolling at a time.
    let started = Instant::now();
    let mut pending = FuturesUnordered::new();
    for (i, token) in tokens.iter().enumerate().skip(2) {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        pending.push(async move { fake_peer::agent(base, token, &format!("sim-{i}")).await });
        if pending.len() >= 64 {
            open.push(pending.next().await.expect("pending")?);
        }
    }
    while let Some(ws) = pending.next().await {
        open.push(ws?);
    }
    drop(pending);
    let enrolled = started.elapsed();
    for ws in open {
        tokio::spawn(fake_peer::answer_forever(ws));
    }
    // Presence of every agent reaches the other relay over NATS.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = (a.rss()?, b.rss()?);
    let added = (agents - 2) as f64;
    let per_agent =
        (after.0.saturating_sub(before.0) + after.1.saturating_sub(before.1)) as f64 / added;
    println!(
        "cluster: 2 relays, one PostgreSQL, one NATS; {agents} agents enrolled in {:.1} s",
        enrolled.as_secs_f64()
    );
    println!(
        "relay RSS: A {:.1} → {:.1} MB, B {:.1} → {:.1} MB; per agent (each relay also tracks the other's agents): {per_agent:.1} KiB",
        before.0 as f64 / 1024.0,
        after.0 as f64 / 1024.0,
        before.1 as f64 / 1024.0,
        after.1 as f64 / 1024.0,
    );

    // Latency: one request at a time to sim-0 (on A), from a client on A and from one on B,
    // and, as the floor under the second, a bare NATS request and reply through the same
    // nats-server; interleaved so all three see the same machine.
    let mut same = fake_peer::client(&a.base, &device).await?;
    let mut cross = fake_peer::client(&b.base, &device).await?;
    let floor = NatsFloor::start(&nats.url()).await?;
    for n in 0..50 {
        round_trip(&mut same, "sim-0", n).await?;
        round_trip(&mut cross, "sim-0", n).await?;
        floor.round_trip().await?;
    }
    let (mut same_times, mut cross_times, mut floor_times) = (Vec::new(), Vec::new(), Vec::new());
    for n in 0..rounds as u64 {
        same_times.push(round_trip(&mut same, "sim-0", n).await?);
        cross_times.push(round_trip(&mut cross, "sim-0", n).await?);
        floor_times.push(floor.round_trip().await?);
    }
    let (same_p50, cross_p50) = (
        percentile(&mut same_times, 50.0),
        percentile(&mut cross_times, 50.0),
    );
    let ratio = cross_p50.as_secs_f64() / same_p50.as_secs_f64();
    println!(
        "container.list latency, {rounds} each: client → relay A → agent p50 {} p99 {}; \
         client → relay B → NATS → relay A → agent p50 {} p99 {}; cross/same p50 {ratio:.2}x (target <= 1.5x: {})",
        ms(same_p50),
        ms(percentile(&mut same_times, 99.0)),
        ms(cross_p50),
        ms(percentile(&mut cross_times, 99.0)),
        verdict(ratio <= 1.5)
    );
    let floor_p50 = percentile(&mut floor_times, 50.0);
    let added = cross_p50.saturating_sub(same_p50);
    println!(
        "bare NATS request/reply (two connections of this process, the same nats-server, a \
         request-sized payload) p50 {} p99 {}: of the {} a request gains across relays (p50), \
         NATS itself is {} and the relays' own hops the other {}",
        ms(floor_p50),
        ms(percentile(&mut floor_times, 99.0)),
        ms(added),
        ms(floor_p50.min(added)),
        ms(added.saturating_sub(floor_p50))
    );

    // Throughput: 4 clients × 64 in flight to 4 agents on A, from clients on A, then on B.
    let targets: Vec<String> = (0..4).map(|i| format!("sim-{}", 2 * i)).collect();
    let same_rate = fake_peer::routed_per_second(&a.base, &device, &targets, 64, seconds).await?;
    let cross_rate = fake_peer::routed_per_second(&b.base, &device, &targets, 64, seconds).await?;
    println!(
        "requests/s (4 clients x 64 in flight, {seconds} s each, load generator on the same cores): \
         same relay {same_rate:.0}/s, across the cluster (B → NATS → A) {cross_rate:.0}/s"
    );
    drop((a, b));
    Ok(())
}

/// Two NATS connections of this process, one answering every request on a subject with its
/// payload: the least a request from relay B to relay A and its answer can take.
struct NatsFloor {
    requester: async_nats::Client,
    replier: tokio::task::JoinHandle<()>,
}

const FLOOR_SUBJECT: &str = "bench.floor";

impl NatsFloor {
    async fn start(url: &str) -> anyhow::Result<Self> {
        let answering = async_nats::connect(url).await?;
        let mut requests = answering.subscribe(FLOOR_SUBJECT).await?;
        answering.flush().await?;
        let replier = tokio::spawn(async move {
            while let Some(request) = requests.next().await {
                if let Some(reply) = request.reply {
                    let _ = answering.publish(reply, request.payload).await;
                }
            }
        });
        Ok(Self {
            requester: async_nats::connect(url).await?,
            replier,
        })
    }

    async fn round_trip(&self) -> anyhow::Result<Duration> {
        // About the size of a routed container.list frame.
        let payload = r#"{"subject":"container.list","reply":"_INBOX.a1b2c3d4e5f6a7b8.t1","data":{"agentId":"sim-0"}}"#;
        let started = Instant::now();
        self.requester
            .request(FLOOR_SUBJECT, payload.into())
            .await?;
        Ok(started.elapsed())
    }
}

impl Drop for NatsFloor {
    fn drop(&mut self) {
        self.replier.abort();
    }
}

/// One `container.list` to `agent` and its answer.
async fn round_trip(ws: &mut fake_peer::Ws, agent: &str, n: u64) -> anyhow::Result<Duration> {
    let inbox = format!("_INBOX.t{n}");
    let request = format!(
        r#"{{"subject":"container.list","reply":"{inbox}","data":{{"agentId":"{agent}"}}}}"#
    );
    let started = Instant::now();
    ws.send(Message::text(request)).await?;
    while let Some(msg) = ws.next().await {
        let Message::Text(text) = msg? else { continue };
        let frame: Value = serde_json::from_str(text.as_str())?;
        if frame["subject"] == inbox.as_str() {
            anyhow::ensure!(
                frame["data"]["errorCode"].is_null(),
                "the request failed: {frame}"
            );
            return Ok(started.elapsed());
        }
    }
    bail!("the relay closed the connection")
}
