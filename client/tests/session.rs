//! The client's connection behaviour against a scripted fake relay on port 0: request/answer
//! matching, the errorCode rule, pushes as events, fail-fast on drops, reconnect, a refused
//! reconnect, the local timeout, close, and the HTTP login/logout calls.
//!
//! The real relay is exercised by the end-to-end tests; a fake one here can do what a real one
//! should never do (drop a connection mid-request, stay silent), which is what these tests need.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{FakeRelay, answer, fake_http, next_event, recv, send};
use zedops_client::{Client, ClientEvent, ConnectOptions, Operation, Role};

fn container(name: &str) -> Value {
    json!({"id": "ab".repeat(32), "names": [format!("/{name}")], "image": "busybox", "state": "running",
           "status": "Up 1 second", "created": 1, "ports": [{"privatePort": 80, "publicPort": 8080, "type": "tcp"}]})
}

#[tokio::test]
async fn requests_get_their_answers_and_errors_keep_code_and_message() {
    let mut relay = FakeRelay::start().await;
    let connecting = tokio::spawn(Client::connect(relay.options("tok-1")));
    let mut ws = relay.accept("operator").await;
    let client = connecting.await.unwrap().expect("connects");
    assert_eq!((client.user(), client.role()), ("alice", Role::Operator));
    assert!(client.is_connected());

    tokio::spawn(async move {
        while let Some(request) = recv(&mut ws).await {
            let data = &request["data"];
            let reply = match (
                request["subject"].as_str().unwrap(),
                data["agentId"].as_str(),
            ) {
                ("agent.list", _) => {
                    json!({"agents": [{"id": "a-1", "name": "agent-1", "online": true,
                    "lastSeen": "2026-04-20T10:00:00Z", "info": null}], "count": 1})
                }
                ("container.list", Some("gone")) => {
                    json!({"errorCode": "NOT_FOUND", "error": "no agent named gone"})
                }
                ("container.list", Some("agent-1")) => {
                    json!({"containers": [container("web")], "count": 1})
                }
                ("container.start", _) => {
                    json!({"success": true, "containerId": data["containerId"], "operation": "start"})
                }
                ("container.stop", _) => {
                    json!({"success": false, "containerId": data["containerId"], "operation": "stop",
                    "error": "container web is wedged", "errorCode": "DOCKER_STOP_FAILED"})
                }
                ("container.restart", _) => {
                    json!({"errorCode": "AGENT_OFFLINE", "error": "agent agent-1 is not connected"})
                }
                ("tool.echo", _) => data.clone(),
                _ => json!({"errorCode": "INVALID_REQUEST", "error": "unknown subject"}),
            };
            answer(&mut ws, &request, reply).await;
        }
    });

    let agents = client.agents().await.unwrap();
    assert_eq!(agents.len(), 1);
    assert_eq!(agents[0].name, "agent-1");
    let containers = client.containers("agent-1").await.unwrap();
    assert_eq!(containers[0].display_name(), "web");
    assert_eq!(
        client.containers("gone").await.unwrap_err().code(),
        "NOT_FOUND"
    );

    let done = client
        .action("agent-1", "web", Operation::Start)
        .await
        .unwrap();
    assert_eq!(
        (done.container_id.as_str(), done.operation, done.success),
        ("web", Operation::Start, true)
    );
    let err = client
        .action("agent-1", "web", Operation::Stop)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "DOCKER_STOP_FAILED");
    assert!(err.to_string().contains("container web is wedged"), "{err}");
    let err = client
        .action("agent-1", "web", Operation::Restart)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "AGENT_OFFLINE");

    let echoed = client
        .request_raw("tool.echo", json!({"x": [1, 2]}))
        .await
        .unwrap();
    assert_eq!(echoed, json!({"x": [1, 2]}));
    let err = client
        .request_raw("tool.unknown", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_REQUEST");

    // Concurrent requests are matched by inbox, not by order.
    let (a, b, c) = tokio::join!(
        client.agents(),
        client.containers("agent-1"),
        client.containers("gone")
    );
    assert!(a.is_ok() && b.is_ok() && c.is_err());
    client.close().await;
}

#[tokio::test]
async fn a_refused_hello_fails_connect_at_once() {
    let mut relay = FakeRelay::start().await;
    let started = Instant::now();
    let connecting = tokio::spawn(Client::connect(relay.options("tok-1")));
    relay.refuse("UNAUTHORIZED").await;
    let err = connecting.await.unwrap().unwrap_err();
    assert_eq!(err.code(), "UNAUTHORIZED");
    assert!(err.to_string().contains("log in again"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn an_unreachable_relay_is_relay_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = Client::connect(ConnectOptions {
        relay: url,
        token: "t".into(),
        ca_file: None,
        insecure: false,
    })
    .await
    .unwrap_err();
    assert_eq!(err.code(), "RELAY_UNREACHABLE", "{err}");
    let err = Client::connect(ConnectOptions {
        relay: "http://relay.example".into(),
        token: "t".into(),
        ca_file: None,
        insecure: false,
    })
    .await
    .unwrap_err();
    assert_eq!(err.code(), "INVALID_URL", "{err}");
}

#[tokio::test]
async fn a_drop_fails_requests_at_once_then_reconnects() {
    let mut relay = FakeRelay::start().await;
    let connecting = tokio::spawn(Client::connect(relay.options("tok-1")));
    let mut ws = relay.accept("viewer").await;
    let client = connecting.await.unwrap().unwrap();
    let mut events = client.events();

    // The relay vanishes while a request is in flight.
    let in_flight = tokio::spawn({
        let client = client.clone();
        async move { client.agents().await }
    });
    let request = recv(&mut ws).await.unwrap();
    assert_eq!(request["subject"], "agent.list");
    let started = Instant::now();
    drop(ws);
    let err = in_flight.await.unwrap().unwrap_err();
    assert_eq!(err.code(), "DISCONNECTED", "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "failed only after {:?}",
        started.elapsed()
    );
    assert!(matches!(
        next_event(&mut events).await,
        ClientEvent::Disconnected { .. }
    ));

    // Meanwhile requests fail at once rather than wait for the reconnect.
    let started = Instant::now();
    assert_eq!(client.agents().await.unwrap_err().code(), "DISCONNECTED");
    assert!(started.elapsed() < Duration::from_millis(200));
    assert!(!client.is_connected());

    // The client comes back by itself, with the role the relay now says.
    let mut ws = relay.accept("admin").await;
    assert_eq!(next_event(&mut events).await, ClientEvent::Connected);
    assert_eq!(client.role(), Role::Admin);
    let serving = tokio::spawn(async move {
        let request = recv(&mut ws).await.unwrap();
        answer(&mut ws, &request, json!({"agents": [], "count": 0})).await;
        ws
    });
    assert!(client.agents().await.unwrap().is_empty());
    let _ws = serving.await.unwrap();
    client.close().await;
}

#[tokio::test]
async fn a_refused_reconnect_stops_for_good() {
    let mut relay = FakeRelay::start().await;
    let connecting = tokio::spawn(Client::connect(relay.options("tok-1")));
    let ws = relay.accept("viewer").await;
    let client = connecting.await.unwrap().unwrap();
    let mut events = client.events();
    drop(ws);
    assert!(matches!(
        next_event(&mut events).await,
        ClientEvent::Disconnected { .. }
    ));

    relay.refuse("UNAUTHORIZED").await;
    let ClientEvent::Disconnected { reason } = next_event(&mut events).await else {
        panic!("not a disconnect")
    };
    assert!(
        reason.contains("refused") && reason.contains("log in again"),
        "{reason}"
    );

    let err = client.agents().await.unwrap_err();
    assert_eq!(err.code(), "DISCONNECTED");
    assert!(err.to_string().contains("log in again"), "{err}");
    // Backoff would have dialled again within 2 s if the client were still trying.
    let redial = tokio::time::timeout(Duration::from_secs(3), relay.connections.recv()).await;
    assert!(
        redial.is_err(),
        "the client dialled again after the relay refused its session"
    );
    client.close().await;
}

#[tokio::test]
async fn pushes_become_events() {
    let mut relay = FakeRelay::start().await;
    let connecting = tokio::spawn(Client::connect(relay.options("tok-1")));
    let mut ws = relay.accept("viewer").await;
    let client = connecting.await.unwrap().unwrap();
    let mut events = client.events();

    send(
        &mut ws,
        json!({"subject": "agent.status", "data": {"agentId": "a-1", "name": "agent-1", "online": false, "lastSeen": null}}),
    )
    .await;
    send(&mut ws, json!({"subject": "error", "data": {"errorCode": "INVALID_REQUEST", "error": "frame too large"}})).await;
    // An answer nobody waits for and an unknown push are ignored, and the connection stays up.
    send(
        &mut ws,
        json!({"subject": "_INBOX.00000000-0000-0000-0000-000000000000", "data": {}}),
    )
    .await;
    send(&mut ws, json!({"subject": "agent.future", "data": {}})).await;
    send(&mut ws, json!({"subject": "agent.status", "data": {"agentId": "a-1", "name": "agent-1", "online": true, "lastSeen": "2026-04-20T10:00:00Z"}})).await;

    let ClientEvent::AgentStatus(status) = next_event(&mut events).await else {
        panic!("not a status")
    };
    assert_eq!((status.name.as_str(), status.online), ("agent-1", false));
    let ClientEvent::Error(reply) = next_event(&mut events).await else {
        panic!("not an error")
    };
    assert_eq!(reply.error_code, zedops_client::ErrorCode::InvalidRequest);
    let ClientEvent::AgentStatus(status) = next_event(&mut events).await else {
        panic!("not a status")
    };
    assert!(status.online);
    assert!(client.is_connected());
    client.close().await;
}

#[tokio::test]
async fn a_silent_relay_gives_a_local_timeout() {
    let mut relay = FakeRelay::start().await;
    let connecting = tokio::spawn(Client::connect(relay.options("tok-1")));
    let ws = relay.accept("viewer").await;
    let client = connecting.await.unwrap().unwrap();
    // Virtual time from here: the runtime jumps to the timeout once everything is idle.
    tokio::time::pause();
    let started = tokio::time::Instant::now();
    let err = client.agents().await.unwrap_err();
    assert_eq!(err.code(), "TIMEOUT", "{err}");
    let waited = started.elapsed();
    let expected = zedops_protocol::LIST_TIMEOUT + zedops_client::REQUEST_GRACE;
    assert!(
        waited >= expected && waited < expected + Duration::from_secs(1),
        "{waited:?}"
    );
    let started = tokio::time::Instant::now();
    let err = client
        .action("a", "web", Operation::Stop)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "TIMEOUT");
    assert!(started.elapsed() >= zedops_protocol::OPERATION_TIMEOUT + zedops_client::REQUEST_GRACE);
    drop(ws);
}

#[tokio::test]
async fn close_fails_waiting_requests_and_stops() {
    let mut relay = FakeRelay::start().await;
    let connecting = tokio::spawn(Client::connect(relay.options("tok-1")));
    let mut ws = relay.accept("viewer").await;
    let client = connecting.await.unwrap().unwrap();
    let mut events = client.events();
    let waiting = tokio::spawn({
        let client = client.clone();
        async move { client.containers("agent-1").await }
    });
    recv(&mut ws).await.unwrap();
    client.close().await;
    assert_eq!(waiting.await.unwrap().unwrap_err().code(), "DISCONNECTED");
    assert!(matches!(
        next_event(&mut events).await,
        ClientEvent::Disconnected { .. }
    ));
    // The relay sees a proper close, and nothing dials again.
    assert!(recv(&mut ws).await.is_none());
    assert_eq!(client.agents().await.unwrap_err().code(), "DISCONNECTED");
    let redial = tokio::time::timeout(Duration::from_secs(2), relay.connections.recv()).await;
    assert!(redial.is_err());
}

#[tokio::test]
async fn login_sends_credentials_and_a_device_label() {
    let (url, mut requests) = fake_http(
        "200 OK",
        r#"{"token":"zd_abc","user":"alice","role":"admin"}"#,
    )
    .await;
    let session = zedops_client::login(&url, "alice", "pw with spaces", None, false)
        .await
        .unwrap();
    assert_eq!(
        (session.token.as_str(), session.user.as_str(), session.role),
        ("zd_abc", "alice", Role::Admin)
    );
    let request = requests.recv().await.unwrap();
    assert!(request.starts_with("POST /api/login HTTP/1.1"), "{request}");
    let body: Value = serde_json::from_str(request.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["username"], "alice");
    assert_eq!(body["password"], "pw with spaces");
    assert!(body.get("device").is_some());
}

#[tokio::test]
async fn login_refusals_keep_the_relays_code() {
    let (url, _) = fake_http(
        "401 Unauthorized",
        r#"{"errorCode":"UNAUTHORIZED","error":"wrong user name or password"}"#,
    )
    .await;
    let err = zedops_client::login(&url, "alice", "nope", None, false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "UNAUTHORIZED");
    assert!(
        err.to_string().contains("check the user name and password"),
        "{err}"
    );

    let (url, _) = fake_http(
        "429 Too Many Requests",
        r#"{"errorCode":"RATE_LIMITED","error":"too many attempts","retryAfterSecs":60}"#,
    )
    .await;
    let err = zedops_client::login(&url, "alice", "nope", None, false)
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.retry_after_secs()),
        ("RATE_LIMITED", Some(60))
    );
}

#[tokio::test]
async fn logout_presents_the_token_as_bearer() {
    let (url, mut requests) = fake_http("204 No Content", "").await;
    zedops_client::logout(&url, "zd_abc", None, false)
        .await
        .unwrap();
    let request = requests.recv().await.unwrap();
    assert!(
        request.starts_with("POST /api/logout HTTP/1.1"),
        "{request}"
    );
    assert!(
        request
            .to_ascii_lowercase()
            .contains("authorization: bearer zd_abc"),
        "{request}"
    );

    let (url, _) = fake_http(
        "401 Unauthorized",
        r#"{"errorCode":"UNAUTHORIZED","error":"unknown session"}"#,
    )
    .await;
    assert_eq!(
        zedops_client::logout(&url, "zd_old", None, false)
            .await
            .unwrap_err()
            .code(),
        "UNAUTHORIZED"
    );
}
