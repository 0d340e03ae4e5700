//! Container stats end to end on the real engine: a busy container shows CPU use, memory, and
//! processes; streaming sends a sample about every second until cancelled; `zedops stats
//! --no-stream --json` prints one sample.

mod support;

use std::time::Duration;

use serde_json::Value;
use zedops_testkit::{TestContainers, require_docker};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn stats_show_a_busy_container_and_stream_until_cancelled() {
    let Some(docker) = require_docker().await else {
        return;
    };
    let mut containers = TestContainers::new(&docker);
    let busy = containers
        .create(
            "busy",
            &["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do :; done"],
            true,
        )
        .await;
    let served = support::Served::start("stats-1").await;
    let (relay, client, token) = (&served.relay, &served.client, &served.token);
    let mut samples = client.stats("stats-1", &busy, true).await.unwrap();
    let mut seen = Vec::new();
    tokio::time::timeout(WAIT, async {
        while seen.len() < 2 {
            let chunk = samples.next().await.expect("open").expect("readable");
            seen.extend(chunk.stats);
        }
    })
    .await
    .expect("two samples");
    let last = seen.last().unwrap();
    assert!(last.cpu_percent > 5.0, "a busy loop uses CPU: {last:?}");
    assert!(
        last.memory_used > 0 && last.memory_limit >= last.memory_used,
        "{last:?}"
    );
    assert!(last.pids >= 1, "{last:?}");
    assert!(!last.read.is_empty());
    samples.cancel();
    let end = tokio::time::timeout(WAIT, async {
        loop {
            let chunk = samples.next().await.expect("open").expect("readable");
            if let Some(end) = chunk.end {
                return end;
            }
        }
    })
    .await
    .expect("the stream ends after cancel");
    assert_eq!((end.error_code, end.reason.as_str()), (None, "cancelled"));
    client.close().await;

    let config = tempfile::tempdir().unwrap();
    let out = support::zedops(config.path())
        .env("ZEDOPS_TOKEN", token)
        .args([
            "stats",
            "--agent",
            "stats-1",
            &busy,
            "--no-stream",
            "--json",
            "--relay",
            &relay.url,
        ])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", support::text(&out.stderr));
    let stdout = support::text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let sample: Value = serde_json::from_str(&stdout).unwrap();
    assert!(sample["cpuPercent"].as_f64().unwrap() > 0.0, "{sample}");
    assert!(sample["memoryLimit"].as_u64().unwrap() > 0, "{sample}");
}
