//! Draining a relay before it stops (what `SIGTERM` does, issue 18): not ready, no new
//! connections or requests, requests in flight answered, then everyone told to go elsewhere
//! (close 1001), within a bound. One real relay on SQLite and fake agents; no Docker.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use zedops_protocol::Role;
use zedops_testkit::TestRelay;
use zedops_testkit::wire::{self, FakeAgent};

/// The answer on `inbox` (pushes skipped), or the close code when the relay hangs up first.
async fn answer_on(ws: &mut wire::Ws, inbox: &str) -> Result<Value, Option<u16>> {
    loop {
        let frame = wire::next_frame(ws).await?;
        if frame["subject"] == inbox {
            return Ok(frame["data"].clone());
        }
    }
}

/// Status code of a plain GET to the relay.
async fn get_status(relay: &TestRelay, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut text = String::new();
    let _ = tcp.read_to_string(&mut text).await;
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_draining_relay_finishes_requests_in_flight_then_sends_everyone_elsewhere() {
    let relay = TestRelay::builder().start().await;
    let mut agent = FakeAgent::enrol(&relay, "web-1").await.expect("enrols");
    let token = relay.login("ann", Role::Admin).await;
    let mut client = wire::client_hello(&relay, &token).await;
    assert_eq!(get_status(&relay, "/readyz").await, 200);
    // A request in flight: the agent holds its answer until the drain has begun.
    wire::send(
        &mut client,
        json!({"subject": "container.list", "reply": "_INBOX.held",
        "data": {"agentId": "web-1"}}),
    )
    .await;
    let held = agent.request_for("container.list").await;

    let started = Instant::now();
    let steps = async {
        while !relay.state.hub.drain.is_draining() {
            tokio::task::yield_now().await;
        }
        // Not ready for a load balancer; no new connection; no new request.
        assert_eq!(get_status(&relay, "/readyz").await, 503);
        // Refused with 503 and a pace to retry at, which agents and clients keep instead of
        // backing off (their load balancer may send them here again until it notices).
        let tls = zedops_transport::client_config(None).unwrap();
        let refused =
            zedops_transport::connect(&format!("ws://{}/ws/client", relay.addr), tls).await;
        let Err(refused) = refused else {
            panic!("a new connection was accepted while draining");
        };
        assert_eq!(
            refused.retry_after(),
            Some(Duration::from_secs(1)),
            "{refused}"
        );
        wire::send(
            &mut client,
            json!({"subject": "agent.list", "reply": "_INBOX.new", "data": {}}),
        )
        .await;
        let answer = answer_on(&mut client, "_INBOX.new")
            .await
            .expect("an answer");
        assert_eq!(answer["errorCode"], "UNAVAILABLE", "{answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("another relay"),
            "{answer}"
        );
        // The request in flight is answered...
        let inbox = held["reply"].as_str().unwrap();
        agent
            .send(json!({"subject": inbox, "data": {"containers": [{"id": "c1"}]}}))
            .await;
        let answer = answer_on(&mut client, "_INBOX.held")
            .await
            .expect("the held answer");
        assert_eq!(answer["containers"][0]["id"], "c1", "{answer}");
        // ...and then both peers are told to go away (1001), to reconnect elsewhere.
        assert_eq!(
            answer_on(&mut client, "_INBOX.none").await.unwrap_err(),
            Some(1001)
        );
        while agent.request().await.is_some() {}
    };
    tokio::join!(relay.drain(Duration::from_secs(20)), steps);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the drain waited for its bound"
    );
}

#[tokio::test]
async fn a_drain_waits_at_most_its_bound_for_an_agent_that_never_answers() {
    let relay = TestRelay::builder().start().await;
    let mut agent = FakeAgent::enrol(&relay, "mute-1").await.expect("enrols");
    let token = relay.login("bob", Role::Admin).await;
    let mut client = wire::client_hello(&relay, &token).await;
    wire::send(
        &mut client,
        json!({"subject": "container.list", "reply": "_INBOX.held",
        "data": {"agentId": "mute-1"}}),
    )
    .await;
    agent.request_for("container.list").await;
    let started = Instant::now();
    relay.drain(Duration::from_millis(300)).await;
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert_eq!(
        answer_on(&mut client, "_INBOX.held").await.unwrap_err(),
        Some(1001)
    );
}

/// Runs the relay binary on `ip`, sends it SIGTERM once it listens, and returns how it exited
/// and its log (a file, as journald or a redirect would take it).
async fn serve_until_sigterm(ip: &str) -> (std::process::ExitStatus, String) {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = std::fs::File::create(dir.path().join("relay.log")).unwrap();
    let mut relay = std::process::Command::new(env!("CARGO_BIN_EXE_zedops-relay"))
        .arg("--db")
        .arg(dir.path().join("relay.db"))
        .args([
            "serve",
            "--listen",
            &format!("{ip}:{port}"),
            "--drain-timeout",
            "5s",
        ])
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the relay did not listen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &relay.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = relay.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the relay did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let log = std::fs::read_to_string(dir.path().join("relay.log")).unwrap();
    (status, log)
}

#[tokio::test]
async fn sigterm_drains_the_relay_binary_and_it_exits_cleanly() {
    let (status, log) = serve_until_sigterm("127.0.0.1").await;
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("draining"), "{log}");
    // A log file (journald, a redirect) gets plain text, no terminal colour codes.
    assert!(
        !log.contains('\x1b'),
        "colour codes in the log file: {log:?}"
    );
    assert!(!log.contains("plain HTTP"), "{log}");
}

/// Plain HTTP where other machines can reach it is worth a warning (passwords cross the network
/// unencrypted unless a TLS proxy is in front); on loopback it is not (above).
#[tokio::test]
async fn plain_http_on_an_address_others_reach_is_warned_about() {
    let (status, log) = serve_until_sigterm("0.0.0.0").await;
    assert!(status.success(), "{status:?}\n{log}");
    assert!(
        log.contains("WARN")
            && log.contains("serving plain HTTP on an address other machines can reach"),
        "{log}"
    );
}
