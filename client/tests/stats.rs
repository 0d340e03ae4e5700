//! Container stats end to end on the real engine: a busy container shows CPU use, memory, and
//! processes; streaming sends a sample about every second until cancelled; `zedops stats
//! --no-stream --json` prints one sample; a stopped container has no stats (refused, not zero).

mod support;

use std::time::Duration;

use serde_json::Value;
use zedops_testkit::Served;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn stats_show_a_busy_container_and_stream_until_cancelled() {
    let script = "trap 'exit 0' TERM; while :; do :; done";
    let Some((served, busy)) = Served::open("stats-1", async |c| {
        c.create("busy", &["/bin/sh", "-c", script], true).await
    })
    .await
    else {
        return;
    };
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

#[tokio::test]
async fn stats_of_a_stopped_container_are_refused_not_zero() {
    let Some((served, stopped)) =
        Served::open("stats-2", async |c| c.created_sleeper("idle").await).await
    else {
        return;
    };
    let mut samples = served
        .client
        .stats("stats-2", &stopped, false)
        .await
        .unwrap();
    let first = tokio::time::timeout(WAIT, samples.next())
        .await
        .expect("answered")
        .expect("one item");
    // The refusal arrives as the stream's end (no sample before it), never as a zero sample.
    let (code, message) = match first {
        Err(err) => (err.code().as_str(), err.to_string()),
        Ok(chunk) => {
            assert!(
                chunk.stats.is_none(),
                "a sample of a stopped container: {chunk:?}"
            );
            let end = chunk.end.expect("the end");
            (end.error_code.expect("an error code").as_str(), end.reason)
        }
    };
    assert_eq!(code, "INVALID_REQUEST", "{message}");
    assert!(message.contains("not running"), "{message}");
}
