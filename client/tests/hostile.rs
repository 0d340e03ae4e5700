//! Bad input on both WebSocket endpoints of the real relay: malformed JSON, unknown subjects and
//! fields, binary and oversize frames, missing or wrong credentials, a foreign protocol version,
//! and an agent that never answers. Each gets a clear error; everyone else keeps being served.

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use zedops_client::Client;
use zedops_protocol::{MAX_FRAME_BYTES, PROTOCOL_VERSION, Role};
use zedops_relay::Timeouts;
use zedops_testkit::TestRelay;
use zedops_testkit::wire::{FakeAgent, client_hello, dial, next_frame, send};

fn error_code(frame: &Value) -> &str {
    frame["data"]["errorCode"]
        .as_str()
        .unwrap_or_else(|| panic!("no errorCode in {frame}"))
}

async fn healthy(client: &Client) {
    client
        .agents()
        .await
        .expect("the relay keeps serving other clients");
}

#[tokio::test]
async fn the_client_endpoint_refuses_bad_input_and_keeps_serving() {
    let relay = TestRelay::builder().start().await;
    let token = relay.login("admin", Role::Admin).await;
    let bystander = relay.client_with(&token).await;

    // Requests before any hello, or with a wrong token, are unauthorized and the socket closes.
    let mut ws = dial(&relay, "/ws/client").await;
    send(
        &mut ws,
        json!({"subject": "agent.list", "reply": "_INBOX.1", "data": {}}),
    )
    .await;
    assert_eq!(
        error_code(&next_frame(&mut ws).await.unwrap()),
        "UNAUTHORIZED"
    );
    assert!(next_frame(&mut ws).await.is_err(), "closed after refusing");
    let mut ws = dial(&relay, "/ws/client").await;
    send(&mut ws, json!({"subject": "client.hello", "data": {"protocolVersion": PROTOCOL_VERSION, "token": "zd_wrong"}})).await;
    assert_eq!(
        error_code(&next_frame(&mut ws).await.unwrap()),
        "UNAUTHORIZED"
    );
    healthy(&bystander).await;

    // A foreign protocol version is named as such.
    let mut ws = dial(&relay, "/ws/client").await;
    send(
        &mut ws,
        json!({"subject": "client.hello", "data": {"protocolVersion": 99, "token": token}}),
    )
    .await;
    let refused = next_frame(&mut ws).await.unwrap();
    assert_eq!(error_code(&refused), "UNSUPPORTED_VERSION");
    assert!(refused["data"]["error"].as_str().unwrap().contains("99"));

    // Signed in: junk is answered with INVALID_REQUEST and the connection stays usable.
    let mut ws = client_hello(&relay, &token).await;
    ws.send(Message::text("{not json")).await.unwrap();
    let answer = next_frame(&mut ws).await.unwrap();
    assert_eq!(
        (answer["subject"].as_str(), error_code(&answer)),
        (Some("error"), "INVALID_REQUEST")
    );
    send(
        &mut ws,
        json!({"subject": "container.explode", "reply": "_INBOX.2", "data": {}}),
    )
    .await;
    let answer = next_frame(&mut ws).await.unwrap();
    assert_eq!(
        (answer["subject"].as_str(), error_code(&answer)),
        (Some("_INBOX.2"), "INVALID_REQUEST")
    );
    // An unknown field, a container id that is a path, a reply that is no inbox, a binary
    // frame: each refused on the same connection.
    for frame in [
        json!({"subject": "container.list", "reply": "_INBOX.3", "data": {"agentId": "x", "sneaky": 1}}).to_string().into(),
        json!({"subject": "container.stop", "reply": "_INBOX.4", "data": {"agentId": "x", "containerId": "../../etc"}}).to_string().into(),
        json!({"subject": "agent.list", "reply": "_INBOX.5\",\"x", "data": {}}).to_string().into(),
        Message::binary(vec![0u8, 159, 146, 150]),
    ] {
        ws.send(frame.clone()).await.unwrap();
        assert_eq!(
            error_code(&next_frame(&mut ws).await.unwrap()),
            "INVALID_REQUEST",
            "{frame:?}"
        );
    }
    send(
        &mut ws,
        json!({"subject": "agent.list", "reply": "_INBOX.6", "data": {}}),
    )
    .await;
    let answer = next_frame(&mut ws).await.unwrap();
    assert_eq!(answer["subject"], "_INBOX.6");
    assert!(answer["data"]["agents"].is_array(), "{answer}");

    // Over the frame limit: told so, and only this connection ends (1009: message too big).
    let big = format!(
        r#"{{"subject":"agent.list","reply":"_INBOX.7","data":{{"pad":"{}"}}}}"#,
        "x".repeat(MAX_FRAME_BYTES)
    );
    let _ = ws.send(Message::text(big)).await;
    match next_frame(&mut ws).await {
        Ok(frame) => assert_eq!(error_code(&frame), "INVALID_REQUEST"),
        Err(code) => assert_eq!(code, Some(1009)),
    }
    healthy(&bystander).await;
}

#[tokio::test]
async fn the_agent_endpoint_refuses_bad_input_and_a_silent_agent_times_out() {
    let relay = TestRelay::builder()
        .timeouts(Timeouts {
            list: Duration::from_millis(300),
            ..Timeouts::default()
        })
        .start()
        .await;
    let token = relay.login("admin", Role::Admin).await;
    let bystander = relay.client_with(&token).await;
    let info = json!({"version": "0", "os": "linux", "arch": "x86_64"});

    // Each first frame on a connection of its own: not JSON, a wrong token, a foreign protocol
    // version, a name that is not one.
    for (first, code) in [
        ("][".to_string(), "INVALID_REQUEST"),
        (
            json!({"subject": "agent.auth", "data": {"protocolVersion": PROTOCOL_VERSION, "agentId": "a", "token": "za_nope", "info": info}}).to_string(),
            "UNAUTHORIZED",
        ),
        (
            json!({"subject": "agent.register", "data": {"protocolVersion": 3, "registrationToken": "zr_x", "name": "n", "info": info}}).to_string(),
            "UNSUPPORTED_VERSION",
        ),
        (
            json!({"subject": "agent.register", "data": {"protocolVersion": PROTOCOL_VERSION, "registrationToken": "zr_x", "name": "bad name; rm -rf /", "info": info}}).to_string(),
            "INVALID_REQUEST",
        ),
    ] {
        let mut ws = dial(&relay, "/ws/agent").await;
        ws.send(Message::text(first.clone())).await.unwrap();
        assert_eq!(
            error_code(&next_frame(&mut ws).await.unwrap()),
            code,
            "{first}"
        );
    }

    let mut ws = dial(&relay, "/ws/agent").await;
    let _ = ws
        .send(Message::text("x".repeat(MAX_FRAME_BYTES + 1)))
        .await;
    match next_frame(&mut ws).await {
        Ok(frame) => assert_eq!(error_code(&frame), "INVALID_REQUEST"),
        Err(code) => assert_eq!(code, Some(1009)),
    }

    // A real enrolment over a raw WebSocket, then an agent that never answers.
    let FakeAgent {
        ws: mut silent,
        token,
        ..
    } = FakeAgent::enrol(&relay, "silent")
        .await
        .expect("agent.welcome");
    assert!(token.starts_with("za_"));
    // Not JSON; and live-state pushes are decoded strictly too: an unknown field or an oversize
    // value is refused to that agent, and nothing reaches the clients.
    for frame in [
        "{oops".to_string(),
        json!({"subject": "container.event", "data": {"containerId": "c", "name": "x", "action": "die", "timeNano": 1, "bogus": true}}).to_string(),
        json!({"subject": "container.sync", "data": {"containers": [], "reason": "x".repeat(10_000)}}).to_string(),
    ] {
        silent.send(Message::text(frame.clone())).await.unwrap();
        assert_eq!(
            error_code(&next_frame(&mut silent).await.unwrap()),
            "INVALID_REQUEST",
            "{frame}"
        );
    }

    let err = bystander.containers("silent").await.unwrap_err();
    assert_eq!(err.code(), "TIMEOUT", "{err}");
    // The request did reach the agent, with a relay inbox to answer to.
    let request = next_frame(&mut silent).await.unwrap();
    assert_eq!(request["subject"], "container.list");
    assert!(request["reply"].as_str().unwrap().starts_with("_INBOX."));
    healthy(&bystander).await;
    assert!(
        relay.state.hub.agent("silent").is_some(),
        "the silent agent is still connected"
    );
}
