//! The release agent's CPU and memory while it streams the stats of many running containers to
//! a client: the agent runs as its own process, so its figures are its alone.

use std::path::Path;
use std::time::{Duration, Instant};

use zedops_protocol::Role;
use zedops_testkit::{TestContainers, TestRelay, require_docker};

use crate::footprint::spawn_agent;
use crate::stats::rss_kib;

/// CPU seconds (user + system) a process has used, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 = fields.get(11).unwrap_or(&"0").parse::<u64>()?
        + fields.get(12).unwrap_or(&"0").parse::<u64>()?;
    // USER_HZ is 100 on Linux.
    Ok(ticks as f64 / 100.0)
}

pub async fn run(binary: &Path, count: usize, seconds: u64) -> anyhow::Result<()> {
    let docker = require_docker()
        .await
        .ok_or_else(|| anyhow::anyhow!("a Docker engine is needed"))?;
    let mut containers = TestContainers::new(&docker);
    let mut names = Vec::with_capacity(count);
    for i in 0..count {
        names.push(containers.sleeper(&format!("s{i}")).await);
    }
    let relay = TestRelay::builder().start().await;
    let dir = tempfile::tempdir()?;
    let child = spawn_agent(binary, &relay, "stats-load", dir.path()).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = child.0.id();
    let idle_rss = rss_kib(pid)?;

    let client = relay.client("bench", Role::Viewer).await;
    let mut streams = Vec::with_capacity(count);
    for name in &names {
        streams.push(client.stats("stats-load", name, true).await?);
    }
    // Readers drain every stream, counting samples.
    let readers: Vec<_> = streams
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                let mut samples = 0u64;
                while let Some(Ok(chunk)) = s.next().await {
                    samples += u64::from(chunk.stats.is_some());
                }
                samples
            })
        })
        .collect();
    // Let every stream start (Docker needs two readings for the first sample).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (cpu0, t0) = (cpu_seconds(pid)?, Instant::now());
    let mut rss = Vec::new();
    while t0.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss.push(rss_kib(pid)?);
    }
    let cpu = (cpu_seconds(pid)? - cpu0) / t0.elapsed().as_secs_f64() * 100.0;
    client.close().await;
    let mut samples = 0;
    for reader in readers {
        samples += reader.await.unwrap_or(0);
    }
    rss.sort_unstable();
    println!("agent streaming the stats of {count} running containers for {seconds} s:");
    println!(
        "  CPU {cpu:.1}% of one core; RSS median {:.2} MB, max {:.2} MB (idle before: {:.2} MB); {samples} samples delivered",
        rss[rss.len() / 2] as f64 / 1024.0,
        rss[rss.len() - 1] as f64 / 1024.0,
        idle_rss as f64 / 1024.0
    );
    drop(child);
    drop(containers);
    Ok(())
}
