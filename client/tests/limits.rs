//! Floods against the real relay: a client and an agent that send far over the per-connection
//! message rate are told `RATE_LIMITED` and then cut off, an agent takes only a bounded number of
//! requests at once, and through all of it other clients and agents keep being answered.
//! No timing is asserted beyond generous liveness deadlines.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use zedops_client::Client;
use zedops_protocol::Role;
use zedops_relay::{Limits, Timeouts};
use zedops_testkit::wire::{FakeAgent, LIVENESS, Ws, client_hello, next_text};
use zedops_testkit::{TestAgent, TestRelay, require_docker};

/// Frames a flooder sends at most: far more than the burst (256) plus the refusals allowed
/// (200), and more bytes than socket buffers hold, so sending can only end early by the relay
/// cutting the connection.
const FLOOD: usize = 1_000_000;

/// What the flooder saw: RATE_LIMITED answers, their distinct messages, and how it ended.
#[derive(Debug, Default)]
struct Flooded {
    rate_limited: usize,
    /// Each distinct RATE_LIMITED message: the rate limiter's own ("slow down") and, when the
    /// flooder's requests pile up first, the in-flight cap's ("wait for answers").
    messages: Vec<String>,
    /// The relay's close code, when the close frame arrived. Often it does not: the relay stops
    /// reading when it closes, so frames still in flight make the kernel reset the connection,
    /// which discards what the flooder had not read yet.
    close_code: Option<u16>,
    /// The connection ended (closed or reset) while the flooder was still sending.
    ended: bool,
}

/// Sends `FLOOD` copies of `frame` as fast as the socket takes them while reading everything
/// the relay answers, until the relay closes the connection.
async fn flood(ws: Ws, frame: Value) -> Flooded {
    let (mut tx, mut rx) = ws.split();
    let text = frame.to_string();
    let writer = tokio::spawn(async move {
        for sent in 0..FLOOD {
            if tx.send(Message::text(text.clone())).await.is_err() {
                return sent;
            }
        }
        FLOOD
    });
    let mut seen = Flooded::default();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(30), rx.next())
            .await
            .expect("the relay closes a flooding connection within 30 s");
        match msg {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["data"]["errorCode"] == "RATE_LIMITED" {
                    seen.rate_limited += 1;
                    let message = v["data"]["error"].as_str().unwrap().to_string();
                    if !seen.messages.contains(&message) {
                        seen.messages.push(message);
                    }
                }
            }
            Some(Ok(Message::Close(frame))) => {
                seen.close_code = frame.map(|f| u16::from(f.code));
                break;
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => break,
        }
    }
    // Ended before everything was sent: the relay cut the flooder off.
    let sent = tokio::time::timeout(Duration::from_secs(30), writer)
        .await
        .expect("the writer stops once the connection is gone")
        .unwrap();
    seen.ended = sent < FLOOD;
    seen
}

/// A bystander's requests, each answered within the liveness deadline.
async fn keep_asking(bystander: Client, agent: String, rounds: usize) -> usize {
    let mut answered = 0;
    for _ in 0..rounds {
        tokio::time::timeout(LIVENESS, bystander.agents())
            .await
            .expect("agent.list answered while the flood goes on")
            .expect("agent.list succeeds");
        tokio::time::timeout(LIVENESS, bystander.containers(&agent))
            .await
            .expect("container.list answered while the flood goes on")
            .expect("container.list succeeds");
        answered += 2;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    answered
}

/// A fresh relay with the real agent `steady` online and a viewer `calm` beside it: who must
/// keep being served through a flood. `None` (the test skips) without an engine outside CI.
async fn relay_with_bystander() -> Option<(TestRelay, TestAgent, Client)> {
    require_docker().await?;
    let relay = TestRelay::builder().start().await;
    let agent = TestAgent::builder(&relay).name("steady").online().await;
    let bystander = relay.client("calm", Role::Viewer).await;
    Some((relay, agent, bystander))
}

/// Asserts the flooder was told `RATE_LIMITED` and then cut off while still sending, with the
/// policy-violation close code when the close frame reached it.
fn assert_refused_then_closed(seen: &Flooded) {
    assert!(seen.rate_limited > 0, "{seen:?}");
    assert!(seen.ended, "closed for flooding: {seen:?}");
    assert!(matches!(seen.close_code, None | Some(1008)), "{seen:?}");
}

#[tokio::test]
async fn a_flooding_client_is_refused_then_closed_and_everyone_else_is_served() {
    let Some((relay, agent, bystander)) = relay_with_bystander().await else {
        return;
    };

    let ws = client_hello(&relay, &relay.login("noisy", Role::Viewer).await).await;
    let asking = tokio::spawn(keep_asking(bystander.clone(), "steady".into(), 25));
    let seen = flood(
        ws,
        json!({"subject": "agent.list", "reply": "_INBOX.flood", "data": {}}),
    )
    .await;
    assert_eq!(
        asking.await.unwrap(),
        50,
        "every bystander request answered"
    );

    assert_refused_then_closed(&seen);
    assert!(
        seen.messages.iter().any(|m| m.contains("slow down")),
        "{seen:?}"
    );
    // The relay serves as before: the bystander, new connections, the agent.
    keep_asking(bystander, "steady".into(), 2).await;
    let fresh = relay.client("later", Role::Viewer).await;
    keep_asking(fresh, "steady".into(), 2).await;
    agent.stop().await.unwrap();
}

#[tokio::test]
async fn a_flooding_agent_is_refused_then_closed_and_other_agents_keep_answering() {
    let Some((relay, agent, bystander)) = relay_with_bystander().await else {
        return;
    };

    let ws = FakeAgent::enrol(&relay, "noisy")
        .await
        .expect("agent.welcome")
        .ws;
    relay.wait_agent("noisy", true).await;
    let asking = tokio::spawn(keep_asking(bystander.clone(), "steady".into(), 25));
    // Heartbeats cost the relay nothing to answer, so only the limit stops them; answers to
    // inboxes the relay never used count too.
    let seen = flood(ws, json!({"subject": "agent.heartbeat", "data": {}})).await;
    assert_eq!(
        asking.await.unwrap(),
        50,
        "every bystander request answered"
    );

    assert_refused_then_closed(&seen);
    relay.wait_agent("noisy", false).await;
    let err = bystander.containers("noisy").await.unwrap_err();
    assert_eq!(err.code(), "AGENT_OFFLINE", "{err}");
    keep_asking(bystander, "steady".into(), 2).await;
    agent.stop().await.unwrap();
}

#[tokio::test]
async fn an_agent_takes_a_bounded_number_of_requests_and_the_next_client_is_told() {
    let Some(_docker) = require_docker().await else {
        return;
    };
    let relay = TestRelay::builder()
        .timeouts(Timeouts {
            list: Duration::from_secs(3),
            ..Timeouts::default()
        })
        .limits(Limits {
            agent_in_flight: 4,
            ..Limits::default()
        })
        .start()
        .await;
    let agent = TestAgent::builder(&relay).name("steady").online().await;

    // An agent that never answers: every request to it stays in flight until the timeout.
    let mut silent = FakeAgent::enrol(&relay, "stuck")
        .await
        .expect("agent.welcome")
        .ws;
    let greedy = relay.client("greedy", Role::Viewer).await;
    let mut waiting = vec![];
    for _ in 0..4 {
        let greedy = greedy.clone();
        waiting.push(tokio::spawn(
            async move { greedy.containers("stuck").await },
        ));
    }
    // The four requests reached the agent.
    for _ in 0..4 {
        let request = next_text(&mut silent).await.expect("request forwarded");
        assert_eq!(request["subject"], "container.list");
    }
    let other = relay.client("other", Role::Viewer).await;
    let err = tokio::time::timeout(LIVENESS, other.containers("stuck"))
        .await
        .expect("refused at once, not after a timeout")
        .unwrap_err();
    assert_eq!(err.code(), "RATE_LIMITED", "{err}");
    assert!(err.to_string().contains("4 requests in flight"), "{err}");
    // Other agents are not affected, nor the client's other requests.
    keep_asking(other.clone(), "steady".into(), 2).await;
    keep_asking(greedy, "steady".into(), 2).await;

    for waiter in waiting {
        assert_eq!(waiter.await.unwrap().unwrap_err().code(), "TIMEOUT");
    }
    // The slots are free again once those requests ended.
    let err = other.containers("stuck").await.unwrap_err();
    assert_eq!(err.code(), "TIMEOUT", "{err}");
    agent.stop().await.unwrap();
}
