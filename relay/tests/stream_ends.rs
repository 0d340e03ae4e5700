//! What the audit log says of a console session by how it ended. One real relay on SQLite, a
//! fake agent and a raw client socket, so the order of the client's last frames is exact;
//! no Docker.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use zedops_protocol::Role;
use zedops_testkit::TestRelay;
use zedops_testkit::wire::{self, FakeAgent};

/// The next request with this subject the agent receives (others left unanswered).
async fn request_for(agent: &mut FakeAgent, subject: &str) -> Value {
    loop {
        let frame = agent.request().await.expect("a request reaches the agent");
        if frame["subject"] == subject {
            return frame;
        }
    }
}

/// The newest audit entry of `operation` once it is no longer `pending` (or after 10 s).
async fn settled_entry(relay: &TestRelay, operation: &str) -> Value {
    let admin = relay.client("auditor", Role::Admin).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let entry = loop {
        let log = admin
            .request_raw("audit.list", json!({"limit": 20}))
            .await
            .unwrap();
        let entry = log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["operation"] == operation)
            .cloned()
            .unwrap_or_else(|| panic!("no {operation} entry in {log}"));
        if entry["result"] != "pending" || Instant::now() > deadline {
            break entry;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    admin.close().await;
    entry
}

#[tokio::test]
async fn a_console_detached_by_a_client_that_leaves_at_once_is_audited_ok() {
    let relay = TestRelay::builder().start().await;
    let mut agent = FakeAgent::enrol(&relay, "con-1").await.expect("enrols");
    let token = relay.login("olga", Role::Operator).await;
    let mut client = wire::client_hello(&relay, &token).await;
    wire::send(
        &mut client,
        json!({"subject": "container.attach", "reply": "_INBOX.att",
        "data": {"agentId": "con-1", "containerId": "game", "stdin": true}}),
    )
    .await;
    let request = request_for(&mut agent, "container.attach").await;
    // The session runs: the agent says it started, the client has heard so.
    let inbox = request["reply"].as_str().unwrap();
    agent
        .send(json!({"subject": inbox, "data": {"started": {"tty": true, "window": 0}}}))
        .await;
    loop {
        let frame = wire::next_text(&mut client)
            .await
            .expect("the session opens");
        if frame["subject"] == "_INBOX.att" {
            assert!(frame["data"]["started"].is_object(), "{frame}");
            break;
        }
    }
    // Detach as `zedops attach` does: cancel, then hang up before the agent's last frame.
    wire::send(
        &mut client,
        json!({"subject": "stream.cancel", "reply": "_INBOX.cancel", "data": {"inbox": "_INBOX.att"}}),
    )
    .await;
    drop(client);
    request_for(&mut agent, "stream.cancel").await;
    let entry = settled_entry(&relay, "attach").await;
    assert_eq!(entry["result"], "ok", "{entry}");
}

#[tokio::test]
async fn a_console_whose_client_vanished_without_cancelling_is_audited_interrupted() {
    let relay = TestRelay::builder().start().await;
    let mut agent = FakeAgent::enrol(&relay, "con-2").await.expect("enrols");
    let token = relay.login("olga", Role::Operator).await;
    let mut client = wire::client_hello(&relay, &token).await;
    wire::send(
        &mut client,
        json!({"subject": "container.attach", "reply": "_INBOX.att",
        "data": {"agentId": "con-2", "containerId": "game", "stdin": true}}),
    )
    .await;
    request_for(&mut agent, "container.attach").await;
    drop(client);
    let entry = settled_entry(&relay, "attach").await;
    assert_eq!(entry["result"], "interrupted", "{entry}");
}
