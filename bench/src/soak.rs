//! The soak: the agent as shipped and the release relay, each its own process, with 50 running
//! containers, a container event every second and the stats of every container streamed for one
//! minute in ten; the RSS of both is sampled every minute, and the growth from minute 10 to the
//! end is reported (a leak shows as a steady climb, which an hour of this traffic makes visible).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bollard::query_parameters::{KillContainerOptions, StartContainerOptions};
use zedops_client::{ClientEvent, ConnectOptions};
use zedops_protocol::Role;
use zedops_testkit::{TestContainers, require_docker};

use crate::process::{run_agent, serve_relay};
use crate::stats::{rss_kib, rss_parts_kib, verdict};

/// Growth from minute 10 to the end that still counts as flat: allocator noise (a freed page not
/// yet returned, a buffer that grew once for a burst) moves RSS by tens of KiB; a leak of even a
/// hundred bytes per event would add about 290 KiB over the 50 minutes measured.
const FLAT_KIB: u64 = 128;
/// First minute of the comparison: start-up, the first stats window and the allocator's pools
/// filling are behind it.
const BASELINE_MINUTE: u64 = 10;
const AGENT: &str = "soak";

pub struct Options<'a> {
    pub agent: &'a Path,
    pub relay: &'a Path,
    pub containers: usize,
    pub minutes: u64,
    /// How long one "minute" of the schedule lasts: 60 for the real soak; less compresses the
    /// schedule (samples, stats windows) for a quick check, while events stay one a second.
    pub minute_seconds: u64,
}

pub async fn run(o: Options<'_>) -> anyhow::Result<()> {
    anyhow::ensure!(
        o.minutes > BASELINE_MINUTE,
        "--minutes must be more than {BASELINE_MINUTE}: growth is measured from minute {BASELINE_MINUTE} to the end"
    );
    let docker = require_docker()
        .await
        .ok_or_else(|| anyhow::anyhow!("a Docker engine is needed"))?;
    let mut containers = TestContainers::new(&docker);
    let mut names = Vec::with_capacity(o.containers);
    for i in 0..o.containers {
        names.push(containers.sleeper(&format!("soak{i}")).await);
    }

    // The relay's database is prepared before it starts: the agent's registration token and a
    // viewer's device token, as `zedops-relay token create` and `zedops login` would make them.
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("relay.db").display().to_string();
    let store = zedops_relay::Store::open(&db).await?;
    let registration = store
        .create_registration_token(Duration::from_secs(3600))
        .await?;
    store
        .add_user("soak", zedops_testkit::TEST_PASSWORD, Role::Viewer)
        .await?;
    let (_, device_token) = store
        .login("soak", zedops_testkit::TEST_PASSWORD, Some("soak"))
        .await?
        .ok_or_else(|| anyhow::anyhow!("login refused"))?;
    store.close().await;

    let (relay, port) = serve_relay(o.relay, &db, &[]).await?;
    let url = format!("ws://127.0.0.1:{port}");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, registration)?;
    let agent = run_agent(o.agent, &url, AGENT, &token_file, &dir.path().join("agent"))?;

    let client = zedops_client::Client::connect(ConnectOptions {
        relay: url,
        token: device_token,
        ca_file: None,
        insecure: false,
    })
    .await?;
    let mut online = false;
    for _ in 0..100 {
        if client
            .agents()
            .await?
            .iter()
            .any(|a| a.name == AGENT && a.online)
        {
            online = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::ensure!(online, "the agent did not come online within 10 s");

    // Every container event the client receives is counted, so none lost shows too.
    let received = Arc::new(AtomicU64::new(0));
    let mut pushed = client.events();
    client.subscribe(Some(vec![AGENT.into()])).await?;
    let counter = received.clone();
    let listener = tokio::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match pushed.recv().await {
                Ok(ClientEvent::Container(_)) => {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            }
        }
    });

    // One Docker action a second, round the containers: kill one (kill, die), a second later
    // start it again (start). So at most one of the 50 is down at a time.
    let actions = Arc::new(AtomicU64::new(0));
    let events_docker = docker.clone();
    let cycled = names.clone();
    let done = actions.clone();
    let producer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for k in 0u64.. {
            tick.tick().await;
            let name = &cycled[(k / 2) as usize % cycled.len()];
            let result = if k % 2 == 0 {
                events_docker
                    .kill_container(name, None::<KillContainerOptions>)
                    .await
            } else {
                events_docker
                    .start_container(name, None::<StartContainerOptions>)
                    .await
            };
            if let Err(e) = result {
                eprintln!("soak: docker action on {name}: {e}");
            } else {
                done.fetch_add(1, Ordering::Relaxed);
            }
        }
    });

    let minute = Duration::from_secs(o.minute_seconds);
    let start = tokio::time::Instant::now();
    let mut samples: Vec<(u64, u64, u64)> = Vec::new();
    // The anonymous part of each sample (heap and stacks), minute by minute.
    let mut parts: Vec<(u64, u64, u64)> = Vec::new();
    let mut streams = Vec::new();
    let stats_samples = Arc::new(AtomicU64::new(0));
    println!(
        "soak: {} containers, an event a second, stats of all streamed in minutes 5, 15, …; a minute is {} s",
        o.containers, o.minute_seconds
    );
    println!("  minute  agent RSS (anon, file)        relay RSS (anon, file)");
    for m in 0..=o.minutes {
        tokio::time::sleep_until(start + minute * m as u32).await;
        // A stats window closes on the minute after it opened: aborting a reader drops its
        // stream, which cancels it at the agent.
        streams.clear();
        let (a, r) = (rss_kib(agent.0.id())?, rss_kib(relay.0.id())?);
        let (a_parts, r_parts) = (rss_parts_kib(agent.0.id())?, rss_parts_kib(relay.0.id())?);
        samples.push((m, a, r));
        parts.push((m, a_parts.0, r_parts.0));
        let streaming = m % 10 == 5 && m < o.minutes;
        let mb = |kib: u64| kib as f64 / 1024.0;
        println!(
            "  {m:>6}  {:>6.2} MB ({:.2}, {:.2})  {:>6.2} MB ({:.2}, {:.2}){}",
            mb(a),
            mb(a_parts.0),
            mb(a_parts.1),
            mb(r),
            mb(r_parts.0),
            mb(r_parts.1),
            if streaming {
                "  (stats streams open for this minute)"
            } else {
                ""
            }
        );
        if streaming {
            for name in &names {
                // The container stopped this second has no stats; the other 49 do.
                if let Ok(mut s) = client.stats(AGENT, name, true).await {
                    let count = stats_samples.clone();
                    streams.push(AbortOnDrop(tokio::spawn(async move {
                        while let Some(Ok(chunk)) = s.next().await {
                            if chunk.stats.is_some() {
                                count.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    })));
                }
            }
        }
    }
    drop(streams);
    producer.abort();
    // The last events still on their way.
    tokio::time::sleep(Duration::from_secs(2)).await;
    client.close().await;
    listener.abort();

    let at = |samples: &[(u64, u64, u64)], m: u64| {
        samples
            .iter()
            .find(|s| s.0 == m)
            .copied()
            .unwrap_or_default()
    };
    let (base, end) = (at(&samples, BASELINE_MINUTE), at(&samples, o.minutes));
    let (anon_base, anon_end) = (at(&parts, BASELINE_MINUTE), at(&parts, o.minutes));
    let growth = |from: u64, to: u64| to as i64 - from as i64;
    let actions = actions.load(Ordering::Relaxed);
    println!(
        "soak over {} minutes: {actions} Docker actions (about {} container events), {} events reached the client, {} stats samples delivered",
        o.minutes,
        actions / 2 * 3,
        received.load(Ordering::Relaxed),
        stats_samples.load(Ordering::Relaxed)
    );
    // Each process's RSS at the baseline minute and at the end, its growth and its peak.
    let mb = |kib: u64| kib as f64 / 1024.0;
    let max = |rss: fn(&(u64, u64, u64)) -> u64| samples.iter().map(rss).max().unwrap_or(0);
    let within = format!("flat = within {FLAT_KIB} KiB");
    for (who, from, to, peak, flat) in [
        ("agent", base.1, end.1, max(|s| s.1), within.as_str()),
        ("relay", base.2, end.2, max(|s| s.2), "flat"),
    ] {
        let grew = growth(from, to);
        println!(
            "  {who} RSS: minute {BASELINE_MINUTE} {:.2} MB, minute {} {:.2} MB: {grew:+} KiB (max {:.2} MB) ({flat}: {})",
            mb(from),
            o.minutes,
            mb(to),
            mb(peak),
            verdict(grew <= FLAT_KIB as i64)
        );
    }
    println!(
        "  of which anonymous (heap, stacks): agent {:+} KiB, relay {:+} KiB; the rest is pages of the binaries run for the first time",
        growth(anon_base.1, anon_end.1),
        growth(anon_base.2, anon_end.2)
    );
    drop(agent);
    drop(relay);
    drop(containers);
    Ok(())
}

/// A stats reader that is stopped when its window closes.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
