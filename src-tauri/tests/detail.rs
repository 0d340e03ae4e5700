//! The container detail view's backend against a real relay, a real agent and real containers:
//! the inspected container with secrets masked, a log watch that gets history then live lines
//! in order with stderr told apart, a stats watch with real samples, refusals as a sentence in
//! the last item, and watches that stop when closed.

use std::time::Duration;

use bollard::models::ContainerCreateBody;
use zedops_desktop::detail::views::{LogBatch, StatsUpdate};
use zedops_desktop::detail::{self, Watches};
use zedops_desktop::error::ErrorCode;
use zedops_testkit::{Served, TestContainers};

#[tokio::test]
async fn detail_shows_the_container_with_secrets_masked() {
    let body = ContainerCreateBody {
        env: Some(vec![
            "SERVER_NAME=pz-eu".into(),
            "ADMIN_PASSWORD=hunter2".into(),
        ]),
        ..TestContainers::sleeper_body()
    };
    let Some((served, game)) = Served::open("detail-app-1", async |c| {
        c.create_with("game", body, true).await
    })
    .await
    else {
        return;
    };

    let view = detail::inspect(&served.client, "detail-app-1", &game)
        .await
        .unwrap();
    assert_eq!(view.name, game);
    assert_eq!(view.state, "running");
    assert_eq!(view.command, TestContainers::SLEEP_CMD);
    assert_eq!(view.image, zedops_testkit::docker::TEST_IMAGE);
    let env = |name: &str| view.env.iter().find(|e| e.name == name).cloned().unwrap();
    assert_eq!(env("SERVER_NAME").value.as_deref(), Some("pz-eu"));
    let secret = env("ADMIN_PASSWORD");
    assert!(secret.masked && secret.value.is_none(), "{secret:?}");
    assert!(
        !serde_json::to_string(&view).unwrap().contains("hunter2"),
        "the secret never reaches the window"
    );

    let err = detail::inspect(&served.client, "detail-app-1", "no-such-container")
        .await
        .unwrap_err();
    assert_eq!(
        err.code,
        ErrorCode::Wire(zedops_client::ErrorCode::ContainerNotFound)
    );
}

#[tokio::test]
async fn a_log_watch_gets_history_then_live_lines_in_order() {
    // 300 lines at once, one on stderr, then one more line later (live, while followed). Docker
    // reads stdout and stderr from two pipes, so the stderr line waits a moment to come after
    // line 300 in the log, not beside it.
    let script = "for i in $(seq 1 300); do echo line $i; done; sleep 0.5; echo oops >&2; sleep 2; \
                  echo later; trap 'exit 0' TERM; sleep 100000 & wait";
    let Some((served, talker)) = Served::open("detail-app-2", async |c| {
        c.create("talker", &["/bin/sh", "-c", script], true).await
    })
    .await
    else {
        return;
    };
    // The first 301 lines are history once Docker has the last of them.
    served.containers.wait_log(&talker, "oops").await;

    let mut lines = Vec::new();
    let watch = detail::pump_logs(
        &served.client,
        "detail-app-2",
        &talker,
        None,
        |batch: LogBatch| {
            assert!(
                batch.end.is_none(),
                "the stream ended early: {:?}",
                batch.end
            );
            lines.extend(batch.lines);
            // Stop listening once the live line arrived: the pump returns.
            !lines.iter().any(|l| l.text == "later")
        },
    );
    tokio::time::timeout(Duration::from_secs(20), watch)
        .await
        .expect("the live line arrives while following");

    let stdout: Vec<&str> = lines
        .iter()
        .filter(|l| !l.stderr)
        .map(|l| l.text.as_str())
        .collect();
    let expected: Vec<String> = (1..=300).map(|i| format!("line {i}")).collect();
    assert_eq!(
        &stdout[..300],
        expected.as_slice(),
        "history complete and in order"
    );
    assert_eq!(stdout.last(), Some(&"later"));
    let stderr: Vec<&str> = lines
        .iter()
        .filter(|l| l.stderr)
        .map(|l| l.text.as_str())
        .collect();
    assert_eq!(stderr, ["oops"], "stderr told apart");

    // A short tail gives only the last lines.
    let mut tail = Vec::new();
    detail::pump_logs(&served.client, "detail-app-2", &talker, Some(2), |batch| {
        tail.extend(batch.lines.into_iter().map(|l| l.text));
        tail.len() < 2
    })
    .await;
    assert_eq!(tail, ["oops", "later"]);
}

#[tokio::test]
async fn a_stats_watch_gets_samples_and_refusals_end_it_with_a_sentence() {
    let Some((served, sleeper)) =
        Served::open("detail-app-3", async |c| c.sleeper("busy").await).await
    else {
        return;
    };

    let mut samples = Vec::new();
    let watch = detail::pump_stats(
        &served.client,
        "detail-app-3",
        &sleeper,
        |u: StatsUpdate| {
            assert!(u.end.is_none(), "ended early: {:?}", u.end);
            samples.extend(u.sample);
            samples.len() < 2
        },
    );
    tokio::time::timeout(Duration::from_secs(20), watch)
        .await
        .expect("two samples within seconds");
    let last = samples.last().unwrap();
    assert!(last.memory_used > 0.0, "{last:?}");
    assert!(last.memory_limit >= last.memory_used, "{last:?}");
    assert!(last.pids >= 1.0, "{last:?}");
    assert!(last.cpu_percent >= 0.0, "{last:?}");

    // Unknown container: one last update that says so.
    let mut updates = Vec::new();
    detail::pump_stats(&served.client, "detail-app-3", "no-such-container", |u| {
        updates.push(u);
        true
    })
    .await;
    let [only] = updates.as_slice() else {
        panic!("one update: {updates:?}")
    };
    let end = only.end.as_ref().expect("the update ends the watch");
    assert_eq!(
        end.code,
        Some(ErrorCode::Wire(zedops_client::ErrorCode::ContainerNotFound)),
        "{end:?}"
    );
    assert!(end.reason.contains("no-such-container"), "{}", end.reason);
}

#[tokio::test]
async fn closing_a_watch_stops_it() {
    let Some((served, sleeper)) =
        Served::open("detail-app-4", async |c| c.sleeper("quiet").await).await
    else {
        return;
    };
    let watches = Watches::default();

    let client = served.client.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let id = watches.start(async move {
        detail::pump_stats(&client, "detail-app-4", &sleeper, |u| tx.send(u).is_ok()).await
    });
    rx.recv().await.expect("a first sample");
    assert_eq!(watches.running(), 1);

    watches.close(id);
    // The task is gone, so the sender is dropped and nothing more arrives.
    tokio::time::timeout(Duration::from_secs(5), async {
        while rx.recv().await.is_some() {}
    })
    .await
    .expect("the closed watch stops sending");
    assert_eq!(watches.running(), 0);
}

/// The documented longest tail, 10,000 lines, reaches the app's log watch whole and in order
/// (the viewer then keeps the newest 5,000, `ui/src/lib/detail.test.ts`), with nothing dropped.
#[tokio::test]
async fn a_10000_line_tail_reaches_the_log_watch_complete_and_in_order() {
    let script = "i=1; while [ $i -le 10000 ]; do echo \"line $i\"; i=$((i+1)); done; \
                  trap 'exit 0' TERM; sleep 100000 & wait";
    let Some((served, printer)) = Served::open("detail-app-5", async |c| {
        c.create("tail10k", &["/bin/sh", "-c", script], true).await
    })
    .await
    else {
        return;
    };
    let expected: Vec<String> = (1..=10_000).map(|i| format!("line {i}")).collect();
    // Until Docker has all 10,000 lines, a tail may be short; ask again until it is whole.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (lines, dropped) = loop {
        let mut lines = Vec::new();
        let mut dropped = 0;
        let watch = detail::pump_logs(
            &served.client,
            "detail-app-5",
            &printer,
            Some(10_000),
            |batch: LogBatch| {
                assert!(batch.end.is_none(), "ended: {:?}", batch.end);
                // Handing a batch to the window takes a moment; the stream must not lose
                // lines meanwhile.
                std::thread::sleep(Duration::from_millis(5));
                dropped += batch.dropped;
                lines.extend(batch.lines.into_iter().map(|l| l.text));
                lines.last().map(String::as_str) != Some("line 10000")
            },
        );
        tokio::time::timeout(Duration::from_secs(20), watch)
            .await
            .expect("the tail arrives");
        if lines.len() >= 10_000 || tokio::time::Instant::now() > deadline {
            break (lines, dropped);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(dropped, 0);
    assert_eq!(lines, expected, "complete and in order");
}
