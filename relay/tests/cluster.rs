//! Relays in a cluster (issue 18): two or three real relays sharing one real PostgreSQL
//! database and one real `nats-server`; agents are fake (raw WebSockets) so every frame an
//! agent receives can be counted. Under CI=true a missing PostgreSQL or nats-server fails.

mod cluster_support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use zedops_protocol::Role;
use zedops_testkit::wire::{self, FakeAgent, Ws};
use zedops_testkit::{TestAgent, TestNats, TestPostgres, TestRelay};

use cluster_support::{
    admin, answer_all_recording, ask, cancel_across, exec_cat, push, stop_answered, wait_ready,
    wait_seen,
};

/// A NATS server, and `n` relays on one fresh database joined through it.
async fn cluster(n: usize) -> Option<(TestNats, Vec<TestRelay>)> {
    cluster_with(n, zedops_relay::Limits::default()).await
}

/// [`cluster`] with these limits on every relay.
async fn cluster_with(
    n: usize,
    limits: zedops_relay::Limits,
) -> Option<(TestNats, Vec<TestRelay>)> {
    let postgres = TestPostgres::shared()?;
    let nats = TestNats::start()?;
    let database = postgres.database();
    let mut relays = Vec::new();
    for _ in 0..n {
        relays.push(
            TestRelay::builder()
                .database(database.clone())
                .nats(nats.url())
                .limits(limits)
                .start()
                .await,
        );
    }
    wait_ready(&relays.iter().collect::<Vec<_>>()).await;
    Some((nats, relays))
}

/// An agent moved between two relays again and again, answering every request it gets on each
/// connection ([`answer_all`]) and recording each request it was delivered.
struct Flapping {
    id: String,
    token: String,
    seen: Arc<Mutex<Vec<String>>>,
    holders: Vec<tokio::task::JoinHandle<()>>,
}

impl Flapping {
    async fn enrol(relay: &TestRelay, name: &str) -> Self {
        let first = FakeAgent::enrol(relay, name).await.expect("enrols");
        let seen = Arc::new(Mutex::new(Vec::new()));
        Self {
            id: first.id.clone(),
            token: first.token.clone(),
            holders: vec![answer_all_recording(first, seen.clone())],
            seen,
        }
    }

    /// Six moves, to `b` and back to `a`: each time the relay it left closes the old
    /// connection (its answering task ends) within 5 s.
    async fn moves(&mut self, a: &TestRelay, b: &TestRelay) {
        for round in 0..6 {
            let to = if round % 2 == 0 { b } else { a };
            let next = FakeAgent::auth(to, &self.id, &self.token).await;
            self.holders
                .push(answer_all_recording(next, self.seen.clone()));
            let old = &self.holders[self.holders.len() - 2];
            let deadline = Instant::now() + Duration::from_secs(5);
            while !old.is_finished() {
                assert!(
                    Instant::now() < deadline,
                    "round {round}: the old connection stayed open"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    fn assert_each_request_delivered_once(&self) {
        let seen = self.seen.lock().unwrap().clone();
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(
            unique.len(),
            seen.len(),
            "a request reached the agent twice"
        );
    }
}

/// A request through a moving agent is answered by the agent or, while it is between relays,
/// refused as offline or timed out — nothing else.
fn assert_answered_or_offline(data: &Value) {
    assert!(
        ["AGENT_OFFLINE", "TIMEOUT"].contains(&data["errorCode"].as_str().unwrap_or("")),
        "{data}"
    );
}

#[tokio::test]
async fn a_client_on_one_relay_reaches_an_agent_on_another() {
    let Some((_nats, relays)) = cluster(2).await else {
        return;
    };
    let (a, b) = (&relays[0], &relays[1]);
    let mut client = admin(b, "alice").await;
    let mut watcher = admin(b, "watcher").await;
    ask(&mut watcher, "event.subscribe", json!({})).await;

    let mut agent = FakeAgent::enrol(a, "web-1").await.expect("enrols on A");
    let id = agent.id.clone();
    // B's clients are told it is online, and B lists it online.
    let status = push(&mut watcher, "agent.status").await;
    assert_eq!(
        (status["agentId"].as_str(), status["online"].as_bool()),
        (Some(&*id), Some(true))
    );
    wait_seen(b, &id, true).await;
    let list = ask(&mut client, "agent.list", json!({})).await;
    let listed = &list["agents"].as_array().unwrap()[0];
    assert_eq!(
        (listed["name"].as_str(), listed["online"].as_bool()),
        (Some("web-1"), Some(true))
    );

    // container.list by name through B reaches the agent on A, and its answer comes back.
    let asked = tokio::spawn(async move {
        let mut client = client;
        let answer = ask(&mut client, "container.list", json!({"agentId": "web-1"})).await;
        (client, answer)
    });
    let request = agent.request_for("container.list").await;
    assert_eq!(request["data"]["agentId"], id.as_str());
    let inbox = request["reply"].as_str().unwrap().to_string();
    agent
        .send(json!({"subject": inbox, "data": {"containers": [{"id": "c1"}]}}))
        .await;
    let (client, answer) = asked.await.unwrap();
    assert_eq!(answer["containers"][0]["id"], "c1", "{answer}");

    // A container action through B: answered and audited (in the shared database).
    let (mut client, answer) = stop_answered(client, &mut agent, &id).await;
    assert_eq!(answer["success"], true, "{answer}");
    let audit = ask(&mut client, "audit.list", json!({})).await;
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["operation"] == "stop" && e["result"] == "ok"),
        "{audit}"
    );

    // A container event on A reaches B's subscribed client, with the agent's id set by A.
    agent
        .send(json!({"subject": "container.event", "data": {"agentId": "forged", "containerId": "c1", "name": "web", "action": "die", "timeNano": 1}}))
        .await;
    let event = push(&mut watcher, "container.event").await;
    assert_eq!(
        (event["agentId"].as_str(), event["action"].as_str()),
        (Some(agent.id.as_str()), Some("die"))
    );

    // A log stream through B: chunks in order, then its end; back-pressure and cancel rules are
    // the relay's usual ones, applied at B.
    let inbox = "_INBOX.logs1";
    wire::send(
        &mut client,
        json!({"subject": "container.logs", "reply": inbox,
        "data": {"agentId": agent.id, "containerId": "c1", "follow": true}}),
    )
    .await;
    let request = agent.request_for("container.logs").await;
    let agent_inbox = request["reply"].as_str().unwrap().to_string();
    for n in 0..3 {
        agent.send(json!({"subject": agent_inbox, "data": {"lines": [{"stream": "stdout", "text": format!("line {n}")}]}})).await;
    }
    agent
        .send(
            json!({"subject": agent_inbox, "data": {"end": {"errorCode": null, "reason": "done"}}}),
        )
        .await;
    let mut texts = Vec::new();
    loop {
        let frame = wire::next_text(&mut client).await.expect("a log frame");
        if frame["subject"] != inbox {
            continue;
        }
        if let Some(lines) = frame["data"]["lines"].as_array() {
            texts.extend(
                lines
                    .iter()
                    .map(|l| l["text"].as_str().unwrap().to_string()),
            );
        }
        if !frame["data"]["end"].is_null() {
            break;
        }
    }
    assert_eq!(texts, ["line 0", "line 1", "line 2"]);

    // The agent leaves A: B's clients are told, and a request through B is AGENT_OFFLINE.
    drop(agent);
    let status = push(&mut watcher, "agent.status").await;
    assert_eq!(status["online"], false, "{status}");
    wait_seen(b, status["agentId"].as_str().unwrap(), false).await;
    let answer = ask(&mut client, "container.list", json!({"agentId": "web-1"})).await;
    assert_eq!(answer["errorCode"], "AGENT_OFFLINE", "{answer}");
}

#[tokio::test]
async fn a_request_for_an_agent_no_relay_holds_is_agent_offline_at_once() {
    let Some((_nats, relays)) = cluster(2).await else {
        return;
    };
    let (a, b) = (&relays[0], &relays[1]);
    let agent = FakeAgent::enrol(a, "gone-1").await.expect("enrols");
    let id = agent.id.clone();
    wait_seen(b, &id, true).await;
    // B still believes A holds it (A has not said otherwise yet) while nobody does: NATS has no
    // responder for the agent's subject, so the answer is AGENT_OFFLINE, not a timeout.
    let link = b.state.hub.agent(&id).expect("B's stand-in");
    drop(agent);
    wait_seen(a, &id, false).await;
    let request =
        zedops_protocol::AgentRequest::ContainerList(zedops_protocol::ContainerListRequest {
            agent_id: id.clone().into(),
        });
    let started = Instant::now();
    let outcome = link.request(&request, Duration::from_secs(30)).await;
    assert!(
        matches!(outcome, Err(zedops_relay::hub::RouteError::Offline)),
        "{outcome:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn revoking_on_one_relay_cuts_live_connections_on_another_within_a_second() {
    let Some((_nats, relays)) = cluster(2).await else {
        return;
    };
    let (a, b) = (&relays[0], &relays[1]);
    let mut agent = FakeAgent::enrol(a, "doomed-1").await.expect("enrols");
    wait_seen(b, &agent.id, true).await;
    let mut victim = admin(a, "victim").await;
    let sessions = {
        let mut probe = admin(a, "victim").await;
        ask(&mut probe, "session.list", json!({})).await
    };
    let mut boss = admin(b, "boss").await;

    // The agent, revoked through B, is cut on A.
    let started = Instant::now();
    let answer = ask(&mut boss, "agent.revoke", json!({"agentId": agent.id})).await;
    assert!(answer["errorCode"].is_null(), "{answer}");
    loop {
        match tokio::time::timeout(Duration::from_secs(1), agent.request()).await {
            Ok(None) => break,
            Ok(Some(_)) => continue,
            Err(_) => panic!("the agent's connection on A was not cut within 1 s"),
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    // A device session, revoked through B, is cut on A.
    let session_id = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["user"] == "victim" && s["current"] == false)
        .map(|s| s["id"].as_str().unwrap().to_string())
        .expect("the victim's session");
    let started = Instant::now();
    let answer = ask(
        &mut boss,
        "session.revoke",
        json!({"sessionId": session_id}),
    )
    .await;
    assert!(answer["errorCode"].is_null(), "{answer}");
    loop {
        match tokio::time::timeout(Duration::from_secs(1), wire::next_frame(&mut victim)).await {
            Ok(Err(_)) => break,
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the session's connection on A was not cut within 1 s"),
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_agent_moving_between_relays_replaces_its_old_connection_and_never_gets_a_request_twice()
{
    let Some((_nats, relays)) = cluster(3).await else {
        return;
    };
    let (a, b, c) = (&relays[0], &relays[1], &relays[2]);
    let mut flap = Flapping::enrol(a, "flappy").await;
    let id = flap.id.clone();
    wait_seen(c, &id, true).await;

    // A client on C asks all along while the agent flaps between A and B.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let asking = {
        let token = c.login("asker", Role::Admin).await;
        let mut ws = wire::client_hello(c, &token).await;
        let (stop, id) = (stop.clone(), id.clone());
        tokio::spawn(async move {
            let (mut ok, mut offline) = (0, 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Paced under the relay's per-connection message rate.
                tokio::time::sleep(Duration::from_millis(15)).await;
                let answer = ask(&mut ws, "container.list", json!({"agentId": id})).await;
                if answer["asked"] == "container.list" {
                    ok += 1;
                } else {
                    assert_answered_or_offline(&answer);
                    offline += 1;
                }
            }
            (ok, offline)
        })
    };
    flap.moves(a, b).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, _offline) = asking.await.unwrap();
    assert!(ok > 0, "no request got through");
    flap.assert_each_request_delivered_once();
    // The agent ends online (on A), and C says so.
    wait_seen(c, &id, true).await;
}

/// A relay that drains tells the others its agents are moving: a request on another relay for
/// one of them waits while it counts as moving (10 s from the notice) — also past a first
/// reconnection that took 6 s, as one that lands on the draining relay again through a load
/// balancer does — and is answered by the agent once it is back elsewhere; a request for one
/// that does not come back is AGENT_OFFLINE once the 10 s are over, not held longer.
#[tokio::test]
async fn a_request_for_an_agent_leaving_a_draining_relay_waits_while_it_moves() {
    let Some((_nats, relays)) = cluster(2).await else {
        return;
    };
    let (a, b) = (&relays[0], &relays[1]);
    let back = FakeAgent::enrol(a, "back-later").await.expect("enrols");
    let gone = FakeAgent::enrol(a, "never-back").await.expect("enrols");
    let (back_id, back_token, gone_id) = (back.id.clone(), back.token.clone(), gone.id.clone());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let _on_a = [
        answer_all_recording(back, seen.clone()),
        answer_all_recording(gone, seen.clone()),
    ];
    wait_seen(b, &back_id, true).await;
    wait_seen(b, &gone_id, true).await;
    let mut asker = admin(b, "dana").await;
    let mut other = admin(b, "erin").await;

    a.drain(Duration::from_secs(5)).await;
    wait_seen(b, &back_id, false).await;
    let drained = Instant::now();
    let asked = {
        let back_id = back_id.clone();
        tokio::spawn(
            async move { ask(&mut asker, "container.list", json!({"agentId": back_id})).await },
        )
    };
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(!asked.is_finished(), "{:?}", asked.await);
    let _on_b = answer_all_recording(FakeAgent::auth(b, &back_id, &back_token).await, seen);
    let answer = asked.await.unwrap();
    assert_eq!(answer["asked"], "container.list", "{answer}");

    let answer = ask(&mut other, "container.list", json!({"agentId": gone_id})).await;
    assert_eq!(answer["errorCode"], "AGENT_OFFLINE", "{answer}");
    assert!(
        drained.elapsed() >= Duration::from_secs(9),
        "refused {:?} after the drain, while the agent still counted as moving",
        drained.elapsed()
    );
}

#[tokio::test]
async fn routing_resumes_after_nats_restarts() {
    let Some((nats, relays)) = cluster(2).await else {
        return;
    };
    let (a, b) = (&relays[0], &relays[1]);
    let agent = FakeAgent::enrol(a, "steady").await.expect("enrols");
    let id = agent.id.clone();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let _answering = answer_all_recording(agent, seen.clone());
    wait_seen(b, &id, true).await;
    let mut client = admin(b, "carol").await;
    let answer = ask(&mut client, "container.list", json!({"agentId": id})).await;
    assert_eq!(answer["asked"], "container.list", "{answer}");

    nats.stop();
    // Meanwhile a request for the agent on A is UNAVAILABLE (not AGENT_OFFLINE: it is still
    // connected), at once; and B is not ready for a load balancer.
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.state.hub.cluster_ready() {
        assert!(Instant::now() < deadline, "B did not notice NATS went away");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    let answer = ask(&mut client, "container.list", json!({"agentId": id})).await;
    assert_eq!(answer["errorCode"], "UNAVAILABLE", "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Past the 4 s in which a silent relay is dropped: A's agent is still listed online.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(b.state.hub.online().contains_key(&id));
    nats.resume();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let answer = ask(&mut client, "container.list", json!({"agentId": id})).await;
        if answer["asked"] == "container.list" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "routing did not resume: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_agent_given_two_relays_moves_to_the_second_when_the_first_stops() {
    if zedops_testkit::require_docker().await.is_none() {
        return;
    }
    let Some((_nats, mut relays)) = cluster(2).await else {
        return;
    };
    let (a, b) = (relays.remove(0), relays.remove(0));
    // The real agent, with --relay A,B.
    let _agent = TestAgent::builder(&a)
        .name("mover")
        .also_relay(&b.url)
        .online()
        .await;
    let id = a.state.hub.agent("mover").expect("on A").id.clone();
    wait_seen(&b, &id, true).await;
    let mut watcher = admin(&b, "watcher").await;
    let answer = ask(&mut watcher, "container.list", json!({"agentId": "mover"})).await;
    assert!(answer["containers"].is_array(), "{answer}");

    // A stops (its agents are told to go away); the agent tries B next and comes back there.
    a.stop().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = push(&mut watcher, "agent.status").await;
        if status["agentId"] == id.as_str() && status["online"] == true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not come back on B"
        );
    }
    // Served by B itself now, with the client's session unchanged.
    let answer = ask(&mut watcher, "container.list", json!({"agentId": "mover"})).await;
    assert!(answer["containers"].is_array(), "{answer}");
}

#[tokio::test]
async fn a_console_session_crosses_relays_with_its_input_and_cancel() {
    let Some((_nats, relays)) = cluster(2).await else {
        return;
    };
    let (a, b) = (&relays[0], &relays[1]);
    let mut agent = FakeAgent::enrol(a, "shell-1").await.expect("enrols on A");
    wait_seen(b, &agent.id, true).await;
    let mut client = admin(b, "root").await;
    let agent_inbox = exec_cat(&mut client, &mut agent, "shell-1").await;
    // Output from the agent on A reaches the client on B.
    agent
        .send(json!({"subject": agent_inbox, "data": {"stream": "stdout", "data": "aGk="}}))
        .await;
    let output = loop {
        let frame = wire::next_text(&mut client).await.expect("console output");
        if frame["subject"] == "_INBOX.exec" {
            break frame["data"].clone();
        }
    };
    assert_eq!(output["data"], "aGk=", "{output}");
    // Input typed on B reaches the agent on A, on its own inbox, in order.
    for chunk in ["YQ==", "Yg==", "Yw=="] {
        wire::send(
            &mut client,
            json!({"subject": "stream.input",
            "data": {"inbox": "_INBOX.exec", "data": chunk}}),
        )
        .await;
    }
    for chunk in ["YQ==", "Yg==", "Yw=="] {
        let input = agent.request_for("stream.input").await;
        assert_eq!(input["data"]["inbox"], agent_inbox.as_str(), "{input}");
        assert_eq!(input["data"]["data"], chunk, "{input}");
    }
    // A cancel on B reaches the agent, whose last frame ends the session on B.
    cancel_across(&mut client, &mut agent, "_INBOX.exec", &agent_inbox).await;
    loop {
        let frame = wire::next_text(&mut client).await.expect("the end");
        if frame["subject"] == "_INBOX.exec" && !frame["data"]["end"].is_null() {
            break;
        }
    }
}

#[tokio::test]
async fn a_relay_gone_silent_is_dropped_and_its_agents_shown_offline() {
    let Some((nats, relays)) = cluster(1).await else {
        return;
    };
    let b = &relays[0];
    let ghost = FakeAgent::enrol(b, "ghost-1").await.expect("enrols");
    let id = ghost.id.clone();
    drop(ghost);
    wait_seen(b, &id, false).await;
    let mut watcher = admin(b, "watcher").await;
    // A relay that announces the agent and then dies without a word (as under SIGKILL): no
    // heartbeat ever follows.
    let dead = async_nats::connect(nats.url()).await.expect("NATS");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let presence = json!({"relay": "f".repeat(32), "agent": id, "name": "ghost-1", "online": true,
        "sinceMs": now_ms, "version": zedops_protocol::PROTOCOL_VERSION, "lastSeen": now_ms / 1000});
    dead.publish("zedops.cluster.presence", presence.to_string().into())
        .await
        .unwrap();
    dead.flush().await.unwrap();
    let status = push(&mut watcher, "agent.status").await;
    assert_eq!(
        (status["agentId"].as_str(), status["online"].as_bool()),
        (Some(id.as_str()), Some(true))
    );
    // Nobody serves the agent's subject: AGENT_OFFLINE at once, not a timeout.
    let answer = ask(
        &mut watcher,
        "container.list",
        json!({"agentId": "ghost-1"}),
    )
    .await;
    assert_eq!(answer["errorCode"], "AGENT_OFFLINE", "{answer}");
    // Once the relay has been silent too long, B's clients are told the agent is offline.
    let status = push(&mut watcher, "agent.status").await;
    assert_eq!(
        (status["agentId"].as_str(), status["online"].as_bool()),
        (Some(id.as_str()), Some(false))
    );
    wait_seen(b, &id, false).await;
}

#[tokio::test]
async fn a_client_given_several_relays_uses_the_first_that_answers_and_moves_on_when_it_stops() {
    let Some((_nats, mut relays)) = cluster(2).await else {
        return;
    };
    let (a, b) = (relays.remove(0), relays.remove(0));
    let agent = FakeAgent::enrol(&b, "listed-1").await.expect("enrols on B");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let _answering = answer_all_recording(agent, seen);
    let token = a.login("dana", Role::Admin).await;
    // Nothing listens on the first URL; A is second, B third.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let client = zedops_client::Client::connect(zedops_client::ConnectOptions {
        relay: format!("{dead},{},{}", a.url, b.url),
        token,
        ca_file: None,
        insecure: false,
    })
    .await
    .expect("connects to A");
    assert_eq!(client.agents().await.unwrap().len(), 1);
    // A stops: the client reconnects by itself to B, with the same session.
    a.stop().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // B answers, and lists the agent online.
        let outcome = client.agents().await;
        if let Ok(agents) = &outcome {
            assert!(agents[0].online, "{agents:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the client did not move to B: {outcome:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Frames the client gets on `inbox` until the one with `end` (pushes and other inboxes skipped).
async fn stream_until_end(ws: &mut Ws, inbox: &str) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let frame = wire::next_text(ws).await.expect("a stream frame");
        if frame["subject"] != inbox {
            continue;
        }
        let end = !frame["data"]["end"].is_null();
        frames.push(frame["data"].clone());
        if end {
            return frames;
        }
    }
}

#[tokio::test]
async fn a_stats_stream_and_a_pull_with_its_progress_cross_relays() {
    let Some((_nats, relays)) = cluster(2).await else {
        return;
    };
    let (a, b) = (&relays[0], &relays[1]);
    let mut agent = FakeAgent::enrol(a, "busy-1").await.expect("enrols on A");
    wait_seen(b, &agent.id, true).await;
    let mut client = admin(b, "sam").await;

    // Stats, streamed from the agent on A to the client on B, sample by sample, until the
    // client cancels; the agent's last frame ends it on B.
    wire::send(
        &mut client,
        json!({"subject": "container.stats", "reply": "_INBOX.stats",
        "data": {"agentId": "busy-1", "containerId": "c1", "stream": true}}),
    )
    .await;
    let request = agent.request_for("container.stats").await;
    assert_eq!(request["data"]["stream"], true, "{request}");
    let agent_inbox = request["reply"].as_str().unwrap().to_string();
    for n in 0..3u64 {
        let sample = json!({"read": format!("2026-01-01T00:00:0{n}Z"), "cpuPercent": 1.5,
            "memoryUsed": 100 + n, "memoryLimit": 1000, "memoryPercent": 10.0, "netRx": 0,
            "netTx": 0, "blockRead": 0, "blockWrite": 0, "pids": 1});
        agent
            .send(json!({"subject": agent_inbox, "data": {"stats": sample}}))
            .await;
    }
    let mut used = Vec::new();
    while used.len() < 3 {
        let frame = wire::next_text(&mut client).await.expect("a sample");
        if frame["subject"] == "_INBOX.stats" {
            used.push(frame["data"]["stats"]["memoryUsed"].as_u64().unwrap());
        }
    }
    assert_eq!(used, [100, 101, 102]);
    cancel_across(&mut client, &mut agent, "_INBOX.stats", &agent_inbox).await;
    let rest = stream_until_end(&mut client, "_INBOX.stats").await;
    assert_eq!(
        rest.last().unwrap()["end"]["reason"],
        "cancelled",
        "{rest:?}"
    );

    // A pull through B: its progress frames, the result and the end, in order.
    wire::send(
        &mut client,
        json!({"subject": "image.pull", "reply": "_INBOX.pull",
        "data": {"agentId": "busy-1", "image": "alpine:3"}}),
    )
    .await;
    let request = agent.request_for("image.pull").await;
    assert_eq!(request["data"]["image"], "alpine:3", "{request}");
    let agent_inbox = request["reply"].as_str().unwrap().to_string();
    for current in [10u64, 60, 100] {
        let progress = json!({"image": "alpine:3", "layers": [{"id": "abc123", "status": "Downloading",
            "current": current, "total": 100}], "current": current, "total": 100,
            "layersDone": 0, "layersTotal": 1});
        agent
            .send(json!({"subject": agent_inbox, "data": {"progress": progress}}))
            .await;
    }
    agent
        .send(json!({"subject": agent_inbox, "data": {"pulled": {"image": "alpine:3", "id": format!("sha256:{}", "a".repeat(64)), "pulled": true}}}))
        .await;
    agent
        .send(json!({"subject": agent_inbox, "data": {"end": {"errorCode": null, "reason": "pulled"}}}))
        .await;
    let frames = stream_until_end(&mut client, "_INBOX.pull").await;
    let progress: Vec<u64> = frames
        .iter()
        .filter_map(|f| f["progress"]["current"].as_u64())
        .collect();
    assert_eq!(progress, [10, 60, 100], "{frames:?}");
    assert!(
        frames.iter().any(|f| f["pulled"]["pulled"] == true),
        "{frames:?}"
    );
    assert!(
        frames.last().unwrap()["end"]["errorCode"].is_null(),
        "{frames:?}"
    );
}

/// Console input typed on B for an agent on A, in a burst far larger than what B keeps in
/// flight to A (8 batches of at most 256 frames, besides the stand-in's queue of 256): every
/// frame reaches the agent once, in the order typed. Input is the one thing whose order per
/// agent users rely on (keystrokes, a file piped in); a frame lost, repeated or overtaken in
/// the pipeline between relays fails this.
#[tokio::test]
async fn a_burst_of_console_input_crosses_relays_whole_and_in_order() {
    use base64::Engine;
    let limits = zedops_relay::Limits {
        // The burst is sent as fast as the client can write.
        messages_per_sec: 0,
        ..Default::default()
    };
    let Some((_nats, relays)) = cluster_with(2, limits).await else {
        return;
    };
    let (a, b) = (&relays[0], &relays[1]);
    let mut agent = FakeAgent::enrol(a, "burst-1").await.expect("enrols on A");
    wait_seen(b, &agent.id, true).await;
    let mut client = admin(b, "typist").await;
    let agent_inbox = exec_cat(&mut client, &mut agent, "burst-1").await;

    const FRAMES: usize = 6000;
    let chunk = |i: usize| base64::engine::general_purpose::STANDARD.encode(format!("{i:06}\n"));
    // Typed all at once while the agent reads, then checked frame by frame.
    let typing = tokio::spawn(async move {
        for i in 0..FRAMES {
            wire::send(
                &mut client,
                json!({"subject": "stream.input", "data": {"inbox": "_INBOX.exec", "data": chunk(i)}}),
            )
            .await;
        }
        client
    });
    let mut got = Vec::with_capacity(FRAMES);
    while got.len() < FRAMES {
        let Some(frame) = agent.request().await else {
            panic!("the agent's connection ended after {} frames", got.len());
        };
        if frame["subject"] != "stream.input" {
            continue;
        }
        assert_eq!(frame["data"]["inbox"], agent_inbox.as_str(), "{frame}");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(frame["data"]["data"].as_str().unwrap())
            .unwrap();
        let n: usize = String::from_utf8(bytes).unwrap().trim().parse().unwrap();
        assert_eq!(
            n,
            got.len(),
            "input frame {n} arrived where frame {} was expected (lost, repeated or overtaken)",
            got.len()
        );
        got.push(n);
    }
    let _client = typing.await.unwrap();
}

/// A client on C keeps 32 requests in flight to an agent that moves between A and B six
/// times: batches in flight reach the relay the agent just left and are refused and offered
/// again behind the pipeline, and still every request is answered exactly once (by the agent,
/// or AGENT_OFFLINE when the connection it reached closed under it), and none reaches the
/// agent twice.
#[tokio::test]
async fn requests_pipelined_to_a_moving_agent_are_answered_once_and_never_delivered_twice() {
    let limits = zedops_relay::Limits {
        messages_per_sec: 0,
        ..Default::default()
    };
    let Some((_nats, relays)) = cluster_with(3, limits).await else {
        return;
    };
    let (a, b, c) = (&relays[0], &relays[1], &relays[2]);
    let mut flap = Flapping::enrol(a, "flappy-pipe").await;
    let id = flap.id.clone();
    wait_seen(c, &id, true).await;

    const WINDOW: usize = 32;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let got_through = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let asking = {
        let token = c.login("asker", Role::Admin).await;
        let mut ws = wire::client_hello(c, &token).await;
        let (stop, id, got_through) = (stop.clone(), id.clone(), got_through.clone());
        tokio::spawn(async move {
            let mut answers: std::collections::HashMap<String, u32> = Default::default();
            let (mut sent, mut ok, mut offline) = (0usize, 0usize, 0usize);
            loop {
                let stopping = stop.load(std::sync::atomic::Ordering::Relaxed);
                let outstanding = sent - answers.len();
                if stopping && outstanding == 0 {
                    break;
                }
                if !stopping && outstanding < WINDOW {
                    let inbox = format!("_INBOX.p{sent}");
                    wire::send(
                        &mut ws,
                        json!({"subject": "container.list", "reply": inbox, "data": {"agentId": id}}),
                    )
                    .await;
                    sent += 1;
                    continue;
                }
                let frame = wire::next_text(&mut ws)
                    .await
                    .unwrap_or_else(|| panic!("{outstanding} requests never answered"));
                let Some(inbox) = frame["subject"]
                    .as_str()
                    .filter(|s| s.starts_with("_INBOX.p"))
                else {
                    continue;
                };
                *answers.entry(inbox.to_string()).or_default() += 1;
                if frame["data"]["asked"] == "container.list" {
                    ok += 1;
                    got_through.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                } else {
                    assert_answered_or_offline(&frame["data"]);
                    offline += 1;
                }
            }
            assert!(
                answers.values().all(|n| *n == 1),
                "a request was answered twice"
            );
            (sent, ok, offline)
        })
    };
    flap.moves(a, b).await;
    // Once the agent stays put, requests get through again (on a loaded machine the moves can
    // all be over while a batch caught in one still waits out its acknowledgement timeout).
    let settle = Instant::now() + Duration::from_secs(20);
    while got_through.load(std::sync::atomic::Ordering::Relaxed) <= WINDOW
        && Instant::now() < settle
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (sent, ok, offline) = asking.await.unwrap();
    assert!(ok > WINDOW, "only {ok} of {sent} requests got through");
    flap.assert_each_request_delivered_once();
    eprintln!("{sent} requests: {ok} answered by the agent, {offline} AGENT_OFFLINE/TIMEOUT");
}

/// A relay of the previous version, before batches: it sends each frame for an agent as a NATS
/// request of its own (the frame as the payload, only its id in a header) and reads each
/// answer as a message of its own. Played here with a bare NATS connection: a relay of this
/// version acknowledges the frame the old way (`queued`), passes it to its agent, and sends
/// the agent's answer back unbatched, so a cluster being upgraded one relay at a time keeps
/// routing.
#[tokio::test]
async fn a_relay_of_the_previous_version_is_served_one_frame_at_a_time() {
    use futures_util::StreamExt;
    let Some((nats, relays)) = cluster(1).await else {
        return;
    };
    let a = &relays[0];
    let mut agent = FakeAgent::enrol(a, "kept-1").await.expect("enrols on A");
    let old = async_nats::connect(nats.url()).await.unwrap();
    let old_id = uuid::Uuid::new_v4().simple().to_string();
    let mut answers = old
        .subscribe(format!("zedops.relay.{old_id}"))
        .await
        .unwrap();
    old.flush().await.unwrap();

    let frame = json!({"subject": "container.list", "reply": "_INBOX.old.1",
        "data": {"agentId": agent.id}});
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Zedops-Relay", old_id.as_str());
    // A serves the agent's subject once it has subscribed to it (just after the agent connected).
    let deadline = Instant::now() + Duration::from_secs(10);
    let ack = loop {
        match old
            .request_with_headers(
                format!("zedops.agent.{}", agent.id),
                headers.clone(),
                frame.to_string().into(),
            )
            .await
        {
            Ok(ack) => break ack,
            Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
                assert!(
                    Instant::now() < deadline,
                    "A never served the agent's subject"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the frame was not acknowledged: {e}"),
        }
    };
    assert_eq!(&ack.payload[..], b"queued");

    let request = agent.request_for("container.list").await;
    assert_eq!(request["reply"], "_INBOX.old.1", "{request}");
    agent
        .send(json!({"subject": "_INBOX.old.1", "data": {"containers": []}}))
        .await;
    let answer = tokio::time::timeout(Duration::from_secs(10), answers.next())
        .await
        .expect("the answer reaches the old relay")
        .unwrap();
    let headers = answer.headers.expect("headers");
    assert!(
        headers.get("Zedops-Answers").is_none(),
        "a batch sent to a relay that reads none"
    );
    assert_eq!(
        headers.get("Zedops-Inbox").map(|v| v.as_str()),
        Some("_INBOX.old.1")
    );
    assert_eq!(
        headers.get("Zedops-Agent").map(|v| v.as_str()),
        Some(agent.id.as_str())
    );
    let data: Value = serde_json::from_slice(&answer.payload).unwrap();
    assert_eq!(data, json!({"containers": []}));
}

#[tokio::test]
async fn failed_logins_on_one_relay_count_on_every_relay() {
    use zedops_relay::login_limit::FREE_FAILURES;
    let Some((_nats, relays)) = cluster(2).await else {
        return;
    };
    let (a, b) = (&relays[0], &relays[1]);
    a.login("gus", Role::Viewer).await;
    let here: std::net::IpAddr = [127, 0, 0, 1].into();
    for _ in 0..FREE_FAILURES {
        let err = zedops_client::login(&a.url, "gus", "a-guess", None, false)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "UNAUTHORIZED", "{err}");
    }
    // B hears of each failure; A counts its own once (NATS echoes them back to it).
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.state.login_limit.failures("gus", here) < FREE_FAILURES {
        assert!(Instant::now() < deadline, "B did not hear of A's failures");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(b.state.login_limit.failures("gus", here), FREE_FAILURES);
    assert_eq!(a.state.login_limit.failures("gus", here), FREE_FAILURES);
    // So moving to B buys no more guesses: the next attempt there waits, the right password too.
    let err = zedops_client::login(&b.url, "gus", zedops_testkit::TEST_PASSWORD, None, false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "RATE_LIMITED", "{err}");
    // After the delay the right password works at B, and A forgets the failures too.
    tokio::time::sleep(zedops_relay::login_limit::FIRST_DELAY).await;
    zedops_client::login(&b.url, "gus", zedops_testkit::TEST_PASSWORD, None, false)
        .await
        .expect("the right password after the delay");
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.state.login_limit.failures("gus", here) != 0 {
        assert!(Instant::now() < deadline, "A did not hear of B's success");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
