//! Attacks from a compromised agent or a greedy client against the real relay, each with a fake
//! agent speaking the protocol over a real WebSocket: an agent named like another's id, a
//! stream and sync flood, escape sequences in container names, an agent that holds an action,
//! and a viewer opening hundreds of log follows. No timing is asserted beyond liveness
//! deadlines.

mod support;

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use zedops_client::{Client, ClientEvent, LogsOptions, Operation};
use zedops_protocol::Role;
use zedops_relay::Limits;
use zedops_testkit::wire::{FakeAgent, LIVENESS, client_hello, next_text, send};
use zedops_testkit::{TestAgent, TestContainers, TestRelay, require_docker};

fn row(name: &str) -> Value {
    json!({"id": format!("{:0>64}", name.len()), "names": [format!("/{name}")], "image": "busybox",
        "state": "running", "status": "Up 1 minute", "created": 1, "ports": [], "labels": {}})
}

#[tokio::test]
async fn an_agent_named_like_another_agents_id_is_refused_and_ids_resolve_first() {
    let relay = TestRelay::builder().start().await;
    let mut real = FakeAgent::enrol(&relay, "real").await.unwrap();
    let client = relay.client("ops", Role::Operator).await;

    // The impostor of the review: enrolling under the real agent's id as a name.
    let refused = FakeAgent::enrol(&relay, &real.id)
        .await
        .err()
        .expect("refused");
    assert_eq!(refused["data"]["errorCode"], "INVALID_REQUEST", "{refused}");
    let reason = refused["data"]["error"].as_str().unwrap();
    assert!(reason.contains("may not look like an agent id"), "{reason}");

    // A clash left in an old database: an agent whose name is the real one's id.
    let impostor = FakeAgent::enrol(&relay, "impostor").await.unwrap();
    let (impostor_id, impostor_token) = (impostor.id.clone(), impostor.token.clone());
    drop(impostor);
    relay.wait_agent("impostor", false).await;
    let db = format!("sqlite://{}", relay.db_path().display());
    let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
    sqlx::query("UPDATE agents SET name = ? WHERE id = ?")
        .bind(&real.id)
        .bind(&impostor_id)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    // What the relay warns about at start, naming both.
    let clashes = relay.store.agent_name_clashes().await.unwrap();
    assert_eq!(clashes.len(), 1);
    assert_eq!(
        (clashes[0].0.id.as_str(), clashes[0].1.id.as_str()),
        (impostor_id.as_str(), real.id.as_str())
    );
    let mut impostor = FakeAgent::auth(&relay, &impostor_id, &impostor_token).await;

    // Both online: a stop naming the real id goes to the real agent.
    let stopping = {
        let (client, id) = (client.clone(), real.id.clone());
        tokio::spawn(async move { client.action(&id, "web", Operation::Stop).await })
    };
    let request = real.request().await.expect("the real agent gets the stop");
    assert_eq!(request["subject"], "container.stop", "{request}");
    real.send(json!({"subject": request["reply"], "data": {"success": true, "containerId": "web", "operation": "stop"}}))
        .await;
    stopping.await.unwrap().expect("stopped");

    // The real agent offline: the stop is AGENT_OFFLINE, never the impostor's.
    let real_id = real.id.clone();
    drop(real);
    let deadline = tokio::time::Instant::now() + LIVENESS;
    while relay.state.hub.online().contains_key(&real_id) {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let err = client
        .action(&real_id, "web", Operation::Stop)
        .await
        .unwrap_err();
    assert_eq!(err.code().as_str(), "AGENT_OFFLINE", "{err}");
    let stray = tokio::time::timeout(Duration::from_millis(500), impostor.ws.next()).await;
    assert!(
        !matches!(&stray, Ok(Some(Ok(Message::Text(t)))) if t.contains("container.stop")),
        "the impostor received the stop: {stray:?}"
    );
    let audit = relay.store.audit_list(None, None, 10).await.unwrap();
    assert!(
        audit
            .iter()
            .all(|e| e.agent_id.as_deref() != Some(impostor_id.as_str())),
        "{audit:?}"
    );
    // Revoking by that id revokes the real agent, not the impostor.
    let revoked = relay.store.revoke_agent(&real_id).await.unwrap();
    assert_eq!(revoked.id, real_id);
}

#[tokio::test]
async fn an_action_is_audited_before_the_agent_answers_and_completed_after() {
    let relay = TestRelay::builder().start().await;
    let mut agent = FakeAgent::enrol(&relay, "holder").await.unwrap();
    let client = relay.client("ops", Role::Operator).await;
    let restarting = {
        let client = client.clone();
        tokio::spawn(async move { client.action("holder", "web", Operation::Restart).await })
    };
    // The agent holds the request: the entry is already there, pending.
    let request = agent
        .request()
        .await
        .expect("the restart reaches the agent");
    assert_eq!(request["subject"], "container.restart");
    let entries = relay.store.audit_list(None, None, 10).await.unwrap();
    let entry = entries
        .iter()
        .find(|e| e.operation == "restart")
        .expect("audited before the agent answered");
    assert_eq!(entry.result, "pending", "{entry:?}");
    assert_eq!(entry.agent_id.as_deref(), Some(agent.id.as_str()));
    assert_eq!(entry.user.as_deref(), Some("ops"));
    let pending_id = entry.id;

    agent
        .send(json!({"subject": request["reply"], "data": {"success": true, "containerId": "web", "operation": "restart"}}))
        .await;
    restarting.await.unwrap().expect("restarted");
    let entries = relay.store.audit_list(None, None, 10).await.unwrap();
    let entry = entries.iter().find(|e| e.id == pending_id).unwrap();
    assert_eq!(entry.result, "ok", "the same entry completed: {entry:?}");
    assert_eq!(
        entries.iter().filter(|e| e.operation == "restart").count(),
        1
    );
}

#[tokio::test]
async fn escape_sequences_from_an_agent_never_reach_the_terminal() {
    let relay = TestRelay::builder().start().await;
    let mut agent = FakeAgent::enrol(&relay, "tricky").await.unwrap();
    let token = relay.login("viewer", Role::Viewer).await;
    let evil = "web\u{1b}[2J\u{1b}]0;owned\u{7}\u{9b}31m\u{202e}";
    let answering = tokio::spawn(async move {
        for _ in 0..2 {
            let request = agent.request().await.expect("a list");
            let mut container = row("web");
            container["names"] = json!([format!("/{evil}")]);
            container["status"] = json!(format!("Up {evil}"));
            agent
                .send(json!({"subject": request["reply"], "data": {"containers": [container], "count": 1}}))
                .await;
        }
        let request = agent.request().await.expect("a stop");
        agent
            .send(json!({"subject": request["reply"], "data": {"errorCode": "DOCKER_STOP_FAILED", "error": format!("no such thing {evil}")}}))
            .await;
        agent
    });
    let config = tempfile::tempdir().unwrap();
    let unsafe_char =
        |c: char| c.is_control() && c != '\n' || ('\u{202a}'..='\u{202e}').contains(&c);
    for args in [
        vec!["ps", "--agent", "tricky"],
        vec!["ps", "--agent", "tricky", "--json"],
    ] {
        let out = support::zedops(config.path())
            .env("ZEDOPS_TOKEN", &token)
            .args(&args)
            .args(["--relay", &relay.url])
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{}", support::text(&out.stderr));
        let stdout = support::text(&out.stdout);
        assert!(stdout.contains("web"), "{stdout}");
        assert!(
            !stdout.chars().any(unsafe_char),
            "{args:?} printed a control character: {stdout:?}"
        );
        if args.contains(&"--json") {
            // Still the same text, escaped.
            let value: Value = serde_json::from_str(stdout.trim()).unwrap();
            assert!(value.to_string().contains("owned"), "{value}");
        }
    }
    // An error message quoting the container.
    let ops_token = relay.login("ops", Role::Operator).await;
    let out = support::zedops(config.path())
        .env("ZEDOPS_TOKEN", &ops_token)
        .args(["stop", "--agent", "tricky", "web", "--relay", &relay.url])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = support::text(&out.stderr);
    assert!(stderr.contains("no such thing"), "{stderr}");
    assert!(
        !stderr.chars().any(unsafe_char),
        "the error printed a control character: {stderr:?}"
    );
    answering.await.unwrap();
}

#[tokio::test]
async fn a_big_fleet_arrives_whole_in_parts_and_oversize_pushes_are_refused() {
    let relay = TestRelay::builder().start().await;
    let mut agent = FakeAgent::enrol(&relay, "big").await.unwrap();
    let client = relay.client("viewer", Role::Viewer).await;
    let mut events = client.events();
    client.subscribe(None).await.unwrap();

    // 1,500 containers of ~550 bytes: over the 256 KiB cap for one push (within a frame), so
    // in parts.
    let rows: Vec<Value> = (0..1500)
        .map(|i| {
            let mut r = row(&format!("c{i}"));
            r["id"] = json!(format!("{i:064}"));
            r["image"] = json!("x".repeat(400));
            r
        })
        .collect();
    let whole =
        json!({"subject": "container.sync", "data": {"containers": rows, "reason": "connected"}});
    agent.send(whole.clone()).await;
    let refused = agent.request().await.expect("told why");
    assert_eq!(refused["data"]["errorCode"], "INVALID_REQUEST", "{refused}");
    assert!(
        refused["data"]["error"]
            .as_str()
            .unwrap()
            .contains("in parts"),
        "{refused}"
    );
    let chunks: Vec<&[Value]> = rows.chunks(300).collect();
    for (part, containers) in chunks.iter().enumerate() {
        agent
            .send(json!({"subject": "container.sync", "data": {"containers": containers, "reason": "connected", "part": part, "parts": 5}}))
            .await;
    }
    let deadline = tokio::time::Instant::now() + LIVENESS;
    let sync = loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("the snapshot arrives")
            .unwrap();
        if let ClientEvent::Sync(sync) = event {
            break sync;
        }
    };
    assert_eq!(sync.containers.len(), 1500, "one whole snapshot");
    assert_eq!((sync.part, sync.parts), (0, 1));
    assert_eq!(sync.containers[1499].id, format!("{:064}", 1499));
    assert_eq!(sync.agent_id, agent.id);
}

/// A relay with `limits` but no message rate limit (so that the stream caps are what refuses),
/// the real agent `host` online on it, and the viewer `greedy` who opens the follows.
async fn greedy_viewer_of_host(limits: Limits) -> (TestRelay, TestAgent, Client) {
    let relay = TestRelay::builder()
        .limits(Limits {
            messages_per_sec: 0,
            ..limits
        })
        .start()
        .await;
    let agent = TestAgent::builder(&relay).name("host").online().await;
    let greedy = relay.client("greedy", Role::Viewer).await;
    (relay, agent, greedy)
}

/// One viewer opening 600 log follows on one real agent: past the per-user cap each is refused
/// at once with `RATE_LIMITED` and a sentence; another user is still served, and the agent's
/// own cap holds even when a relay lets more through.
#[tokio::test]
async fn log_follows_are_capped_per_user_and_per_agent() {
    let Some(docker) = require_docker().await else {
        return;
    };
    let mut containers = TestContainers::new(&docker);
    let chatty = containers
        .create(
            "chatty",
            &[
                "/bin/sh",
                "-c",
                "trap 'exit 0' TERM; while true; do echo tick; sleep 1; done & wait",
            ],
            true,
        )
        .await;
    let (relay, agent, greedy) = greedy_viewer_of_host(Limits::default()).await;
    let follow = LogsOptions {
        tail: Some(1),
        follow: true,
        timestamps: false,
    };
    let mut open = Vec::new();
    let mut refused = 0;
    let mut message = String::new();
    for _ in 0..600 {
        let mut logs = greedy.logs("host", &chatty, follow.clone()).await.unwrap();
        // A follow is open once its first line comes; a refusal is its first item.
        match tokio::time::timeout(LIVENESS, logs.next())
            .await
            .expect("answered")
        {
            Some(Ok(chunk)) => {
                assert!(chunk.end.is_none(), "{chunk:?}");
                open.push(logs);
            }
            Some(Err(err)) => {
                assert_eq!(err.code().as_str(), "RATE_LIMITED", "{err}");
                refused += 1;
                if message.is_empty() {
                    message = err.to_string();
                }
            }
            None => panic!("stream ended without a word"),
        }
    }
    assert_eq!(open.len(), zedops_protocol::MAX_STREAMS_PER_USER);
    assert_eq!(refused, 600 - zedops_protocol::MAX_STREAMS_PER_USER);
    assert!(
        message.contains("16 logs or stats streams open"),
        "{message}"
    );
    // Another user on the same agent is served.
    let calm = relay.client("calm", Role::Viewer).await;
    let mut logs = calm.logs("host", &chatty, follow.clone()).await.unwrap();
    let chunk = tokio::time::timeout(LIVENESS, logs.next())
        .await
        .unwrap()
        .unwrap()
        .expect("served");
    assert!(chunk.lines.iter().any(|l| l.text == "tick"), "{chunk:?}");
    drop(logs);
    // The user's slots come back when streams close.
    open.truncate(10);
    let deadline = tokio::time::Instant::now() + LIVENESS;
    loop {
        let mut logs = greedy.logs("host", &chatty, follow.clone()).await.unwrap();
        if let Some(Ok(_)) = logs.next().await {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "slots never freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(open);
    greedy.close().await;
    calm.close().await;
    agent.stop().await.unwrap();
    relay.stop().await;

    // A relay that lets 100 streams through to one agent: the agent itself stops at 32.
    let (_relay, agent, greedy) = greedy_viewer_of_host(Limits {
        agent_streams: 100,
        user_streams: 100,
        ..Limits::default()
    })
    .await;
    let mut open = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..40 {
        let mut logs = greedy.logs("host", &chatty, follow.clone()).await.unwrap();
        let chunk = tokio::time::timeout(LIVENESS, logs.next())
            .await
            .expect("answered")
            .expect("a chunk")
            .expect("a chunk, not an error");
        match chunk.end {
            None => open.push(logs),
            Some(end) => refused.push(end),
        }
    }
    assert_eq!(open.len(), zedops_protocol::MAX_STREAMS_PER_AGENT);
    assert_eq!(refused.len(), 40 - zedops_protocol::MAX_STREAMS_PER_AGENT);
    assert_eq!(
        refused[0].error_code,
        Some(zedops_protocol::ErrorCode::RateLimited)
    );
    assert!(
        refused[0].reason.contains("already serves 32"),
        "{:?}",
        refused[0]
    );
    drop(open);
    greedy.close().await;
    agent.stop().await.unwrap();
}

/// A viewer that reads nothing while its agent floods a log stream: the relay holds a bounded
/// part, drops the rest and counts it, and the stream's last frame still arrives. Every line is
/// either received or counted in `dropped`.
#[tokio::test]
async fn a_stalled_viewer_gets_each_line_or_its_count_and_always_the_end() {
    let relay = TestRelay::builder().start().await;
    let mut agent = FakeAgent::enrol(&relay, "flooder").await.unwrap();
    let token = relay.login("viewer", Role::Viewer).await;
    let mut viewer = client_hello(&relay, &token).await;
    let follow = json!({"subject": "container.logs", "reply": "_INBOX.logs",
        "data": {"agentId": "flooder", "containerId": "web", "follow": true}});
    send(&mut viewer, follow).await;
    let request = agent.request().await.unwrap();
    let inbox = request["reply"].as_str().unwrap().to_string();

    // 2,000 chunks of 6 lines of 16 KiB (about 190 MB) while the viewer reads nothing.
    const CHUNKS: usize = 2_000;
    const LINES: usize = 6;
    let line = "y".repeat(16 * 1024);
    let lines: Vec<Value> = (0..LINES)
        .map(|_| json!({"stream": "stdout", "text": line}))
        .collect();
    let chunk = json!({"subject": inbox, "data": {"lines": lines}}).to_string();
    for _ in 0..CHUNKS {
        agent.send(serde_json::from_str(&chunk).unwrap()).await;
    }
    agent
        .send(json!({"subject": inbox, "data": {"end": {"errorCode": null, "reason": "the container stopped"}}}))
        .await;

    // Now the viewer reads everything.
    let (mut received, mut dropped) = (0, 0);
    let end = loop {
        let frame = next_text(&mut viewer)
            .await
            .expect("the stream goes on to its end");
        assert_eq!(frame["subject"], "_INBOX.logs", "{frame}");
        received += frame["data"]["lines"].as_array().map_or(0, Vec::len);
        dropped += frame["data"]["dropped"].as_u64().unwrap_or(0) as usize;
        if !frame["data"]["end"].is_null() {
            break frame["data"]["end"].clone();
        }
    };
    assert_eq!(end["reason"], "the container stopped", "{end}");
    assert!(dropped > 0, "a stalled viewer loses lines, counted");
    assert_eq!(
        received + dropped,
        CHUNKS * LINES,
        "every line received or counted"
    );
    drop(agent);
}
