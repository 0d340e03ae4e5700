//! Container logs end to end on the real engine through the real agent and relay: numbered
//! lines arrive complete and in order while following; a 10 MB line and binary output do not
//! break the stream or the relay; cancel ends a follow; refusals are clear; `zedops logs`
//! prints the lines, and says so in one line when the relay stops under a follow.

mod support;

use std::time::Duration;

use zedops_client::{LogChunk, LogStream, Logs, LogsOptions};
use zedops_testkit::Served;

const WAIT: Duration = Duration::from_secs(30);

/// Every chunk until the end, which must come within the deadline.
async fn read_to_end(logs: &mut Logs) -> Vec<LogChunk> {
    let mut chunks = Vec::new();
    tokio::time::timeout(WAIT, async {
        while let Some(chunk) = logs.next().await {
            chunks.push(chunk.expect("a readable chunk"));
        }
    })
    .await
    .expect("the stream ended");
    chunks
}

fn texts(chunks: &[LogChunk], stream: LogStream) -> Vec<String> {
    chunks
        .iter()
        .flat_map(|c| &c.lines)
        .filter(|l| l.stream == stream)
        .map(|l| l.text.clone())
        .collect()
}

/// Waits until Docker counts `container` exited, within the deadline: then its log is whole.
async fn wait_exited(s: &Served, container: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while s.containers.state(container).await != "exited" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{container} did not exit"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn numbered_lines_arrive_complete_and_in_order_while_following() {
    let script = "seq 1 2000; sleep 2; seq 2001 4000; echo done >&2; trap 'exit 0' TERM; sleep 100000 & wait";
    let Some((s, counter)) = Served::open("logs-1", async |c| {
        c.create("counter", &["/bin/sh", "-c", script], true).await
    })
    .await
    else {
        return;
    };
    let mut logs = s
        .client
        .logs(
            "logs-1",
            &counter,
            LogsOptions {
                tail: Some(10_000),
                follow: true,
                timestamps: false,
            },
        )
        .await
        .unwrap();
    // Lines keep coming while following; once all are there, the container is stopped, which
    // ends the stream.
    let mut chunks = Vec::new();
    tokio::time::timeout(WAIT, async {
        while texts(&chunks, LogStream::Stdout).len() < 4000
            || texts(&chunks, LogStream::Stderr).is_empty()
        {
            chunks.push(logs.next().await.expect("still open").expect("readable"));
        }
    })
    .await
    .expect("all lines arrived");
    s.containers
        .docker()
        .stop_container(
            &counter,
            None::<bollard::query_parameters::StopContainerOptions>,
        )
        .await
        .unwrap();
    chunks.extend(read_to_end(&mut logs).await);

    let expected: Vec<String> = (1..=4000).map(|i| i.to_string()).collect();
    assert_eq!(
        texts(&chunks, LogStream::Stdout),
        expected,
        "complete and in order"
    );
    assert_eq!(texts(&chunks, LogStream::Stderr), ["done"]);
    assert!(chunks.iter().all(|c| c.dropped == 0));
    let end = chunks.last().unwrap().end.clone().expect("an end");
    assert_eq!(end.error_code, None, "{end:?}");
    assert_eq!(end.reason, "the container stopped");
}

#[tokio::test]
async fn a_huge_line_and_binary_output_do_not_break_the_stream() {
    let script = "busybox head -c 10485760 /dev/zero | busybox tr '\\0' x; echo; echo after; \
                  busybox head -c 4096 /dev/urandom; echo; echo end; trap 'exit 0' TERM; sleep 100000 & wait";
    let Some((s, noisy)) = Served::open("logs-2", async |c| {
        c.create("noisy", &["/bin/sh", "-c", script], true).await
    })
    .await
    else {
        return;
    };
    // Wait until the container has printed everything (its last line is "end").
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut probe = s
            .client
            .logs(
                "logs-2",
                &noisy,
                LogsOptions {
                    tail: Some(1),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let last = texts(&read_to_end(&mut probe).await, LogStream::Stdout);
        if last == ["end"] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the container never finished printing"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut logs = s
        .client
        .logs(
            "logs-2",
            &noisy,
            LogsOptions {
                tail: Some(10_000),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let chunks = read_to_end(&mut logs).await;
    let lines: Vec<_> = chunks.iter().flat_map(|c| &c.lines).collect();
    let huge = lines.first().expect("the huge line");
    assert!(huge.truncated, "the 10 MB line is cut");
    assert_eq!(huge.text.len(), zedops_protocol::MAX_LOG_LINE_BYTES);
    assert!(huge.text.bytes().all(|b| b == b'x'));
    let after = lines
        .iter()
        .position(|l| l.text == "after")
        .expect("the line after it");
    assert_eq!(after, 1, "nothing of the huge line leaks into other lines");
    assert_eq!(
        lines.last().unwrap().text,
        "end",
        "binary output did not end the stream"
    );
    assert_eq!(
        chunks.last().unwrap().end.as_ref().unwrap().error_code,
        None
    );

    // The relay and the agent keep serving.
    let listed = s.client.containers("logs-2").await.unwrap();
    assert!(listed.iter().any(|c| c.display_name() == noisy));
    drop(s.relay);
}

#[tokio::test]
async fn cancel_ends_a_follow_and_refusals_are_clear() {
    let Some((s, quiet)) = Served::open("logs-3", async |c| c.sleeper("quiet").await).await else {
        return;
    };
    let mut logs = s
        .client
        .logs(
            "logs-3",
            &quiet,
            LogsOptions {
                tail: Some(0),
                follow: true,
                timestamps: false,
            },
        )
        .await
        .unwrap();
    // Nothing to read yet: the follow is open and silent.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), logs.next())
            .await
            .is_err()
    );
    logs.cancel();
    let chunks = read_to_end(&mut logs).await;
    let end = chunks.last().unwrap().end.clone().unwrap();
    assert_eq!((end.error_code, end.reason.as_str()), (None, "cancelled"));

    let mut missing = s
        .client
        .logs("logs-3", "no-such-container", LogsOptions::default())
        .await
        .unwrap();
    let chunk = missing.next().await.unwrap().unwrap();
    let end = chunk.end.expect("ends at once");
    assert_eq!(
        end.error_code,
        Some(zedops_protocol::ErrorCode::ContainerNotFound)
    );

    let mut offline = s
        .client
        .logs("no-such-agent", &quiet, LogsOptions::default())
        .await
        .unwrap();
    let err = offline.next().await.unwrap().unwrap_err();
    assert_eq!(err.code(), "NOT_FOUND");
}

#[tokio::test]
async fn zedops_logs_prints_the_last_lines() {
    // The pause keeps Docker's two copies (stdout, stderr) in a known order.
    let script = "seq 1 50; sleep 1; echo warning >&2";
    let Some((s, printer)) = Served::open("logs-4", async |c| {
        c.create("printer", &["/bin/sh", "-c", script], true).await
    })
    .await
    else {
        return;
    };
    let config = tempfile::tempdir().unwrap();
    // The container exits at once; wait until Docker has all of its output.
    wait_exited(&s, &printer).await;
    let out = support::zedops(config.path())
        .env("ZEDOPS_TOKEN", &s.token)
        .args([
            "logs",
            "--agent",
            "logs-4",
            &printer,
            "--tail",
            "5",
            "--relay",
            &s.relay.url,
        ])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", support::text(&out.stderr));
    // The last five lines of both outputs: 47..50 on stdout, the warning on stderr.
    assert_eq!(support::text(&out.stdout), "47\n48\n49\n50\n");
    assert!(support::text(&out.stderr).contains("warning"));

    let out = support::zedops(config.path())
        .env("ZEDOPS_TOKEN", &s.token)
        .args(["logs", "--agent", "logs-4", "nope", "--relay", &s.relay.url])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        support::text(&out.stderr).starts_with("error: CONTAINER_NOT_FOUND: "),
        "{}",
        support::text(&out.stderr)
    );
}

/// The documented longest tail, 10,000 lines (of 150 bytes, 1.5 MB: under the stream's rate),
/// arrives whole and in order: through the client library at a reader that keeps reading but
/// takes its time over each chunk, in chunks that gather many lines, and through
/// `zedops logs --tail 10000 > file`.
#[tokio::test]
async fn a_10000_line_tail_arrives_complete_in_batched_chunks_and_in_a_file() {
    let pad = "x".repeat(150);
    let script = format!("i=1; while [ $i -le 10000 ]; do echo \"$i {pad}\"; i=$((i+1)); done");
    let Some((s, printer)) = Served::open("logs-5", async |c| {
        c.create("tail", &["/bin/sh", "-c", &script], true).await
    })
    .await
    else {
        return;
    };
    wait_exited(&s, &printer).await;
    let expected: Vec<String> = (1..=10_000).map(|i| format!("{i} {pad}")).collect();

    let mut logs = s
        .client
        .logs(
            "logs-5",
            &printer,
            LogsOptions {
                tail: Some(10_000),
                follow: false,
                timestamps: false,
            },
        )
        .await
        .unwrap();
    let mut chunks = Vec::new();
    tokio::time::timeout(WAIT, async {
        while let Some(chunk) = logs.next().await {
            chunks.push(chunk.expect("a readable chunk"));
            // A reader that keeps reading, slowly.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the stream ended");
    assert_eq!(
        texts(&chunks, LogStream::Stdout),
        expected,
        "complete and in order"
    );
    assert!(chunks.iter().all(|c| c.dropped == 0));
    // Lines travel together: 1.5 MB in chunks of up to 128 KiB, not a frame per line.
    assert!(
        chunks.len() <= 100,
        "{} chunks for 10,000 lines",
        chunks.len()
    );
    assert_eq!(
        chunks.last().unwrap().end.as_ref().unwrap().error_code,
        None
    );

    let config = tempfile::tempdir().unwrap();
    let file_path = config.path().join("out.log");
    let file = std::fs::File::create(&file_path).unwrap();
    let out = support::zedops(config.path())
        .env("ZEDOPS_TOKEN", &s.token)
        .args([
            "logs",
            "--agent",
            "logs-5",
            &printer,
            "--tail",
            "10000",
            "--relay",
            &s.relay.url,
        ])
        .stdout(std::process::Stdio::from(file))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
        .wait_with_output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", support::text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", support::text(&out.stderr));
    let written = std::fs::read_to_string(&file_path).unwrap();
    let lines: Vec<&str> = written.lines().collect();
    assert_eq!(lines.len(), 10_000);
    assert!(lines.iter().zip(&expected).all(|(a, b)| a == b), "in order");
}

/// `zedops logs --follow` open when the relay stops (a restart, an upgrade) ends with one line
/// that says the relay stopped, not the agent, and exit code 1.
#[tokio::test]
async fn zedops_logs_follow_cut_by_the_relay_stopping_says_so_in_one_line() {
    use tokio::io::AsyncBufReadExt;
    let Some((s, talker)) = Served::open("logs-6", async |c| {
        c.create("talker", &["/bin/sh", "-c", "echo up; sleep 3600"], true)
            .await
    })
    .await
    else {
        return;
    };
    let config = tempfile::tempdir().unwrap();
    let mut child = support::zedops(config.path())
        .env("ZEDOPS_TOKEN", &s.token)
        .args([
            "logs",
            "--agent",
            "logs-6",
            &talker,
            "--follow",
            "--relay",
            &s.relay.url,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(WAIT, stdout.next_line()).await;
    assert_eq!(first.unwrap().unwrap().as_deref(), Some("up"));
    s.relay.drain(Duration::from_secs(5)).await;
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("zedops logs ends with the relay")
        .unwrap();
    let stderr = support::text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.starts_with("error: UNAVAILABLE: the relay is shutting down"),
        "{stderr}"
    );
}
