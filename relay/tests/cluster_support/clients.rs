//! The cluster tests' clients and fake agents on the wire: an admin socket, a request and its
//! answer, pushes, waiting for an agent to be seen, and agents that answer everything.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use zedops_protocol::Role;
use zedops_testkit::TestRelay;
use zedops_testkit::wire::{self, FakeAgent, Ws};

/// A client socket on `relay`, signed in as a new admin.
pub async fn admin(relay: &TestRelay, user: &str) -> Ws {
    let token = relay.login(user, Role::Admin).await;
    wire::client_hello(relay, &token).await
}

/// Sends a request and returns the answer to its inbox; pushes before it go to `pushes`.
pub async fn ask_keeping(
    ws: &mut Ws,
    subject: &str,
    data: Value,
    pushes: &mut Vec<Value>,
) -> Value {
    let inbox = format!("_INBOX.{}", uuid::Uuid::new_v4().simple());
    wire::send(
        ws,
        json!({"subject": subject, "reply": inbox, "data": data}),
    )
    .await;
    loop {
        let frame = wire::next_text(ws).await.expect("an answer");
        if frame["subject"] == inbox {
            return frame["data"].clone();
        }
        pushes.push(frame);
    }
}

/// Sends a request and returns the answer to its inbox (pushes before it are skipped).
pub async fn ask(ws: &mut Ws, subject: &str, data: Value) -> Value {
    ask_keeping(ws, subject, data, &mut Vec::new()).await
}

/// The next push with this subject (others skipped).
pub async fn push(ws: &mut Ws, subject: &str) -> Value {
    loop {
        let frame = wire::next_text(ws).await.expect("a push");
        if frame["subject"] == subject {
            return frame["data"].clone();
        }
    }
}

/// Waits until `relay` sees the agent online (or not), on whichever relay it is.
pub async fn wait_seen(relay: &TestRelay, id: &str, online: bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while relay.state.hub.online().contains_key(id) != online {
        assert!(
            Instant::now() < deadline,
            "agent {id} not online={online} within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Answers every request `agent` receives with an empty container list naming what was asked.
pub fn answer_all(agent: FakeAgent) -> tokio::task::JoinHandle<()> {
    answer_all_recording(agent, Arc::default())
}

/// [`answer_all`], recording the inbox of each request the agent was delivered in `seen`.
pub fn answer_all_recording(
    mut agent: FakeAgent,
    seen: Arc<Mutex<Vec<String>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(frame) = agent.request().await {
            if let Some(inbox) = frame["reply"].as_str() {
                seen.lock().unwrap().push(inbox.to_string());
                agent
                    .send(json!({"subject": inbox,
                        "data": {"containers": [], "asked": frame["subject"]}}))
                    .await;
            }
        }
    })
}

/// Waits until every relay is connected to NATS (each connects in the background, and a
/// message published before a relay subscribed would never reach it).
pub async fn wait_ready(relays: &[&TestRelay]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !relays.iter().all(|r| r.state.hub.cluster_ready()) {
        assert!(
            Instant::now() < deadline,
            "the relays did not connect to NATS"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `client` stops container `c1` of agent `agent_ref`, and the fake `agent` answers that it did:
/// the client back, with the answer it got.
pub async fn stop_answered(mut client: Ws, agent: &mut FakeAgent, agent_ref: &str) -> (Ws, Value) {
    let data = json!({"agentId": agent_ref, "containerId": "c1"});
    let stopping = tokio::spawn(async move {
        let answer = ask(&mut client, "container.stop", data).await;
        (client, answer)
    });
    let request = agent.request_for("container.stop").await;
    let inbox = request["reply"].as_str().unwrap().to_string();
    agent
        .send(json!({"subject": inbox, "data": {"success": true, "containerId": "c1", "operation": "stop"}}))
        .await;
    stopping.await.unwrap()
}

/// `client` opens `cat` with stdin in container `c1` of agent `name` (answers on `_INBOX.exec`);
/// the inbox on which the fake `agent` answers the session.
pub async fn exec_cat(client: &mut Ws, agent: &mut FakeAgent, name: &str) -> String {
    wire::send(
        client,
        json!({"subject": "container.exec", "reply": "_INBOX.exec",
        "data": {"agentId": name, "containerId": "c1", "cmd": ["cat"], "stdin": true}}),
    )
    .await;
    let request = agent.request_for("container.exec").await;
    request["reply"].as_str().unwrap().to_string()
}

/// `client` cancels its stream on `client_inbox`; the cancel reaches the fake `agent` for its
/// own inbox `agent_inbox`, and the agent ends the stream as cancelled.
pub async fn cancel_across(
    client: &mut Ws,
    agent: &mut FakeAgent,
    client_inbox: &str,
    agent_inbox: &str,
) {
    wire::send(
        client,
        json!({"subject": "stream.cancel", "reply": "_INBOX.cancel",
        "data": {"inbox": client_inbox}}),
    )
    .await;
    let cancel = agent.request_for("stream.cancel").await;
    assert_eq!(cancel["data"]["inbox"], agent_inbox, "{cancel}");
    agent
        .send(json!({"subject": agent_inbox, "data": {"end": {"errorCode": null, "reason": "cancelled"}}}))
        .await;
}

/// A relay in this process on `database`, joining the NATS at `nats` in the background (see
/// [`wait_ready`]).
pub async fn relay_on(database: &str, nats: &str) -> TestRelay {
    TestRelay::builder()
        .database(database.to_string())
        .nats(nats.to_string())
        .start()
        .await
}
