//! How a stream ends when its client or the relay goes away, as the client and the audit log
//! see it. One real relay on SQLite, a fake agent and a raw client socket, so the order of the
//! last frames is exact; no Docker.

use std::time::Duration;

use serde_json::{Value, json};
use zedops_protocol::Role;
use zedops_testkit::TestRelay;
use zedops_testkit::wire::{self, FakeAgent, Ws};

/// A relay, a fake agent `box-1` and an operator's raw socket with one stream open through
/// them: `subject` with `data` (the agent named), answered on `_INBOX.s`, the agent's `first`
/// frame sent and heard by the client (returned).
async fn opened(subject: &str, data: Value, first: Value) -> (TestRelay, FakeAgent, Ws, Value) {
    let relay = TestRelay::builder().start().await;
    let mut agent = FakeAgent::enrol(&relay, "box-1").await.expect("enrols");
    let token = relay.login("olga", Role::Operator).await;
    let mut client = wire::client_hello(&relay, &token).await;
    let mut data = data;
    data["agentId"] = "box-1".into();
    wire::send(
        &mut client,
        json!({"subject": subject, "reply": "_INBOX.s", "data": data}),
    )
    .await;
    let request = agent.request_for(subject).await;
    let inbox = request["reply"].as_str().unwrap();
    agent.send(json!({"subject": inbox, "data": first})).await;
    let heard = next_on_stream(&mut client).await.expect("the first frame");
    (relay, agent, client, heard)
}

/// The next frame of the stream (pushes skipped), or the close code when the relay hangs up.
async fn next_on_stream(client: &mut Ws) -> Result<Value, Option<u16>> {
    loop {
        let frame = wire::next_frame(client).await?;
        if frame["subject"] == "_INBOX.s" {
            return Ok(frame["data"].clone());
        }
    }
}

/// A console on `game`, started.
async fn attached() -> (TestRelay, FakeAgent, Ws) {
    let (relay, agent, client, heard) = opened(
        "container.attach",
        json!({"containerId": "game", "stdin": true}),
        json!({"started": {"tty": true, "window": 0}}),
    )
    .await;
    assert!(heard["started"].is_object(), "{heard}");
    (relay, agent, client)
}

#[tokio::test]
async fn a_console_detached_by_a_client_that_leaves_at_once_is_audited_ok() {
    let (relay, mut agent, mut client) = attached().await;
    // Detach as `zedops attach` does: cancel, then hang up before the agent's last frame.
    wire::send(
        &mut client,
        json!({"subject": "stream.cancel", "reply": "_INBOX.cancel", "data": {"inbox": "_INBOX.s"}}),
    )
    .await;
    drop(client);
    agent.request_for("stream.cancel").await;
    assert_eq!(relay.settled_audit_entry("attach").await.result, "ok");
}

#[tokio::test]
async fn a_console_whose_client_vanished_without_cancelling_is_audited_interrupted() {
    let (relay, _agent, client) = attached().await;
    drop(client);
    assert_eq!(
        relay.settled_audit_entry("attach").await.result,
        "interrupted"
    );
}

#[tokio::test]
async fn a_log_follow_ended_by_the_relay_stopping_says_the_relay_stopped_not_the_agent() {
    let (relay, mut agent, mut client, heard) = opened(
        "container.logs",
        json!({"containerId": "web", "follow": true}),
        json!({"lines": [{"stream": "stdout", "text": "up"}]}),
    )
    .await;
    assert_eq!(heard["lines"][0]["text"], "up", "{heard}");
    // A follow never finishes by itself, so a drain ends it: the agent's connection closes
    // under the stream because the relay stops, and the reader is told just that.
    let ended = async {
        let end = next_on_stream(&mut client).await;
        while agent.request().await.is_some() {}
        end
    };
    let ((), end) = tokio::join!(relay.drain(Duration::from_secs(5)), ended);
    let end = end.expect("the stream's last frame before the connection closes");
    assert_eq!(end["end"]["errorCode"], "UNAVAILABLE", "{end}");
    let reason = end["end"]["reason"].as_str().unwrap();
    assert!(reason.contains("the relay is shutting down"), "{end}");
}
