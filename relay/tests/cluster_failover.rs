//! A relay cluster losing a part (issue 18): a relay process killed with SIGKILL under a real
//! agent, the NATS node a relay uses killed in a 3-node NATS cluster, and PostgreSQL stopped
//! under two relays. Real PostgreSQL, real `nats-server`, the built `zedops-relay` binary where
//! a kill must be real, and real Docker for the agent. Under CI=true a missing part fails.

mod cluster_support;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use zedops_protocol::Role;

use cluster_support::{
    RelayProcess, Seeded, admin, answer_all, ask, ask_keeping, enrol_at, http_status, relay_on,
    seed, stop_answered, wait_ready, wait_seen,
};
use zedops_testkit::wire::{self, FakeAgent};
use zedops_testkit::{TestAgent, TestContainers, TestNats, TestPostgres, TestRelay};

/// A NATS server and a fresh database, relays B and C in this process and A as a process of its
/// own (so that a kill is real), all three connected to NATS. None where a part is missing
/// (outside CI).
async fn two_relays_and_a_process() -> Option<(TestNats, Vec<TestRelay>, RelayProcess)> {
    let database = TestPostgres::shared()?.database();
    let nats = TestNats::start()?;
    let mut relays = Vec::new();
    for _ in 0..2 {
        relays.push(relay_on(&database, &nats.url()).await);
    }
    let a = RelayProcess::start(&database, &nats.url()).await;
    wait_ready(&[&relays[0], &relays[1]]).await;
    Some((nats, relays, a))
}

/// What a subscribed client knows of one agent's containers: names → state, from the
/// `container.sync` snapshots and `container.event`s pushed to it, applied in order.
#[derive(Default)]
struct ClientView {
    states: HashMap<String, String>,
    /// `agent.status` pushes for the agent, in order (true = online).
    status: Vec<bool>,
}

impl ClientView {
    fn apply(&mut self, agent_id: &str, frame: &Value) {
        let data = &frame["data"];
        if data["agentId"] != agent_id {
            return;
        }
        match frame["subject"].as_str() {
            Some("container.sync") => {
                self.states.clear();
                for c in data["containers"].as_array().into_iter().flatten() {
                    let name = c["names"][0].as_str().unwrap_or_default();
                    self.states.insert(
                        name.trim_start_matches('/').to_string(),
                        c["state"].as_str().unwrap_or_default().to_string(),
                    );
                }
            }
            Some("container.event") => {
                let state = match data["action"].as_str().unwrap_or_default() {
                    "start" | "unpause" | "restart" => "running",
                    "die" | "stop" | "kill" => "exited",
                    "destroy" => "removed",
                    _ => return,
                };
                if let Some(name) = data["name"].as_str() {
                    self.states.insert(name.to_string(), state.to_string());
                }
            }
            Some("agent.status") => self.status.push(data["online"] == true),
            _ => {}
        }
    }

    fn running(&self, name: &str) -> bool {
        self.states.get(name).is_some_and(|s| s == "running")
    }
}

#[tokio::test]
async fn a_relay_killed_with_sigkill_loses_its_agent_to_the_other_relay_and_no_event() {
    let Some(docker) = zedops_testkit::require_docker().await else {
        return;
    };
    let Some(postgres) = TestPostgres::shared() else {
        return;
    };
    let Some(nats) = TestNats::start() else {
        return;
    };
    let database = postgres.database();
    let b = relay_on(&database, &nats.url()).await;
    let mut a = RelayProcess::start(&database, &nats.url()).await;
    wait_ready(&[&b]).await;
    let mut containers = TestContainers::new(&docker);

    // The real agent, with --relay A,B: it connects to A (the process).
    let name = format!("mover-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let _agent = TestAgent::builder(&b)
        .relays(&format!("{},{}", a.url, b.url))
        .name(&name)
        .spawn()
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let id = loop {
        if let Some(link) = b.state.hub.agent(&name) {
            break link.id.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the agent never came online on A"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(b.state.hub.online_count(), 0, "the agent is on A, not B");

    // The client on B, subscribed, sees the agent's containers through A.
    let mut client = admin(&b, "watcher").await;
    let mut pushes = Vec::new();
    ask(&mut client, "event.subscribe", json!({})).await;
    let list = ask(&mut client, "container.list", json!({"agentId": id})).await;
    assert!(list["containers"].is_array(), "{list}");

    // A log stream through B from a container of the agent on A, open when A dies.
    let talker = containers.sleeper("talker").await;
    wire::send(
        &mut client,
        json!({"subject": "container.logs", "reply": "_INBOX.follow",
        "data": {"agentId": id, "containerId": talker, "follow": true}}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A container starts just before A dies (its event may die with A), A is killed, and
    // another starts while the agent is moving.
    let before = containers.sleeper("before").await;
    a.kill();
    let during = containers.sleeper("during").await;
    let killed = Instant::now();

    // The agent comes back on B by itself; the client, on the same connection, is told, and
    // its view ends with both containers running (the agent's snapshot on reconnecting
    // carries what the client could not hear while it moved).
    // The log stream, whose agent's relay died, ends (the client may open it again) rather
    // than staying open and silent.
    let mut view = ClientView::default();
    let mut follow_ended = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(b.state.hub.online_count() == 1
        && view.status.last() == Some(&true)
        && view.running(&before)
        && view.running(&during)
        && follow_ended.is_some())
    {
        assert!(
            Instant::now() < deadline,
            "within 30 s of the kill: agent on B: {}, statuses {:?}, view {:?}, log stream ended: {follow_ended:?}",
            b.state.hub.online_count(),
            view.status,
            view.states
        );
        if let Ok(frame) =
            tokio::time::timeout(Duration::from_millis(200), wire::next_text(&mut client)).await
        {
            let frame = frame.expect("the client's connection stays open");
            if frame["subject"] == "_INBOX.follow" && !frame["data"]["end"].is_null() {
                follow_ended = Some(killed.elapsed());
            }
            view.apply(&id, &frame);
        }
    }
    let moved = killed.elapsed();
    // Asked through B, the agent (now on B) lists both running.
    let list = ask_keeping(
        &mut client,
        "container.list",
        json!({"agentId": id}),
        &mut pushes,
    )
    .await;
    for container in [&before, &during] {
        let found = list["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["names"][0] == format!("/{container}"));
        assert_eq!(
            found.map(|c| c["state"].as_str()),
            Some(Some("running")),
            "{container}: {list}"
        );
    }

    // Past the time after which B drops the silent A (4 s): the agent stays online on B and the
    // client is never told otherwise.
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(killed.elapsed())).await;
    let list = ask_keeping(&mut client, "agent.list", json!({}), &mut pushes).await;
    let listed = list["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id.as_str())
        .cloned();
    assert_eq!(
        listed.as_ref().map(|a| a["online"].as_bool()),
        Some(Some(true)),
        "{list}"
    );
    for frame in &pushes {
        view.apply(&id, frame);
    }
    assert_eq!(
        view.status.last(),
        Some(&true),
        "the client was told the agent went offline after it came back: {:?}",
        view.status
    );
    eprintln!(
        "{moved:?} after A was killed, all of the above held (the log stream ended after {follow_ended:?})"
    );
}

#[tokio::test]
async fn routing_resumes_when_the_nats_node_a_relay_uses_is_killed() {
    let Some(postgres) = TestPostgres::shared() else {
        return;
    };
    let Some(nodes) = TestNats::start_cluster(3) else {
        return;
    };
    let urls = nodes
        .iter()
        .map(TestNats::url)
        .collect::<Vec<_>>()
        .join(",");
    let database = postgres.database();
    // A first, alone: the node with a connection is A's.
    let a = relay_on(&database, &urls).await;
    wait_ready(&[&a]).await;
    let a_node = nodes
        .iter()
        .position(|n| n.connections() == 1)
        .expect("one NATS node holds A's connection");
    // B on another node, so that routing crosses the NATS cluster (a relay picks a node at
    // random: start it again until it does).
    let mut tries = 0;
    let b = loop {
        let b = relay_on(&database, &urls).await;
        wait_ready(&[&a, &b]).await;
        if nodes[a_node].connections() == 1 {
            break b;
        }
        tries += 1;
        assert!(tries < 20, "B always chose A's NATS node");
        drop(b);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let agent = FakeAgent::enrol(&a, "steady").await.expect("enrols on A");
    let id = agent.id.clone();
    let _answering = answer_all(agent);
    wait_seen(&b, &id, true).await;
    let mut client = admin(&b, "carol").await;
    let answer = ask(&mut client, "container.list", json!({"agentId": id})).await;
    assert_eq!(answer["asked"], "container.list", "{answer}");

    // The node A is connected to dies: A moves to another node, and B's requests reach the
    // agent on A again (async-nats reconnects, resubscribes, and the relays re-announce).
    nodes[a_node].stop();
    let killed = Instant::now();
    let deadline = killed + Duration::from_secs(20);
    loop {
        let answer = ask(&mut client, "container.list", json!({"agentId": id})).await;
        if answer["asked"] == "container.list" {
            break;
        }
        assert!(
            ["UNAVAILABLE", "AGENT_OFFLINE", "TIMEOUT"]
                .contains(&answer["errorCode"].as_str().unwrap_or("")),
            "{answer}"
        );
        assert!(
            Instant::now() < deadline,
            "routing did not resume within 20 s: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "routing resumed {:?} after A's NATS node died",
        killed.elapsed()
    );
    // A is on one of the two nodes left, and both relays are ready.
    assert!(a.state.hub.cluster_ready() && b.state.hub.cluster_ready());
    let left: usize = nodes.iter().map(TestNats::connections).sum();
    assert!(left >= 2, "both relays on the nodes left: {left}");
    // And it stays that way: past B's 4 s silence limit the agent is still listed and reached.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(b.state.hub.online().contains_key(&id));
    let answer = ask(&mut client, "container.list", json!({"agentId": id})).await;
    assert_eq!(answer["asked"], "container.list", "{answer}");
}

#[tokio::test]
async fn with_postgres_stopped_a_cluster_routes_and_reads_refuses_writes_and_recovers() {
    // A server of its own: this test stops it.
    let Some(postgres) = TestPostgres::start() else {
        return;
    };
    let Some(nats) = TestNats::start() else {
        return;
    };
    let database = postgres.database();
    let mut relays = Vec::new();
    for _ in 0..2 {
        relays.push(relay_on(&database, &nats.url()).await);
    }
    let (a, b) = (&relays[0], &relays[1]);
    wait_ready(&[a, b]).await;
    let mut agent = FakeAgent::enrol(a, "db-less").await.expect("enrols on A");
    let id = agent.id.clone();
    wait_seen(b, &id, true).await;
    let mut client = admin(b, "dora").await;
    let spare_token = b.login("eve", Role::Admin).await;
    ask(&mut client, "event.subscribe", json!({})).await;

    postgres.stop();
    // Both relays say they are not ready, for the load balancer.
    for relay in [a, b] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while http_status(&relay.addr.to_string(), "/readyz").await != 503 {
            assert!(Instant::now() < deadline, "/readyz stayed 200");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // Live routing goes on: a read through B reaches the agent on A and is answered.
    let asking = tokio::spawn(async move {
        let answer = ask(&mut client, "container.list", json!({"agentId": "db-less"})).await;
        (client, answer)
    });
    let request = agent.request_for("container.list").await;
    let inbox = request["reply"].as_str().unwrap().to_string();
    agent
        .send(json!({"subject": inbox, "data": {"containers": [{"id": "c1"}]}}))
        .await;
    let (mut client, answer) = asking.await.unwrap();
    assert_eq!(answer["containers"][0]["id"], "c1", "{answer}");
    // Events keep flowing from A to B's subscribed client.
    agent
        .send(json!({"subject": "container.event", "data": {"agentId": "", "containerId": "c1", "name": "web", "action": "die", "timeNano": 7}}))
        .await;
    let event = loop {
        let frame = wire::next_text(&mut client).await.expect("the event");
        if frame["subject"] == "container.event" {
            break frame["data"].clone();
        }
    };
    assert_eq!(
        (event["agentId"].as_str(), event["timeNano"].as_i64()),
        (Some(id.as_str()), Some(7))
    );

    // An audited action is refused UNAVAILABLE, in plain words, and never reaches the agent.
    let answer = ask(
        &mut client,
        "container.stop",
        json!({"agentId": id, "containerId": "c1"}),
    )
    .await;
    assert_eq!(answer["errorCode"], "UNAVAILABLE", "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or_default()
            .contains("database"),
        "{answer}"
    );
    // A write is refused the same way.
    let answer = ask(&mut client, "token.create", json!({})).await;
    assert_eq!(answer["errorCode"], "UNAVAILABLE", "{answer}");
    // A new connection cannot have its token checked: refused, and told why.
    let mut fresh = wire::dial(b, "/ws/client").await;
    wire::send(
        &mut fresh,
        json!({"subject": "client.hello", "data": {"protocolVersion": zedops_protocol::PROTOCOL_VERSION, "token": spare_token}}),
    )
    .await;
    let refused = wire::next_frame(&mut fresh).await;
    match &refused {
        Ok(frame) => assert_eq!(frame["data"]["errorCode"], "UNAVAILABLE", "{frame}"),
        Err(code) => panic!("closed ({code:?}) without saying why"),
    }
    // The agent stays connected meanwhile (past the relays' 0.5 s database checks).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(a.state.hub.online_count(), 1);
    assert!(b.state.hub.online().contains_key(&id));

    // PostgreSQL comes back: the action goes through to the agent, without a restart.
    postgres.resume();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let answer = ask(&mut client, "token.create", json!({})).await;
        if answer["errorCode"].is_null() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes did not recover: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The first container.stop ever to reach the agent is this one.
    let (_client, answer) = stop_answered(client, &mut agent, "db-less").await;
    assert_eq!(answer["success"], true, "{answer}");
    for relay in [a, b] {
        assert_eq!(http_status(&relay.addr.to_string(), "/readyz").await, 200);
    }
}

/// Relay A (a process) holds an agent; a client on B has a request and a log follow waiting
/// on it through A; A is killed with SIGKILL and the agent moves to a third relay, C, before B
/// could notice A's silence (4 s). B learns from C's presence that the agent left A, asks NATS
/// whether A is still there (no responders: it is not), and fails what A took at once: the
/// request is answered AGENT_OFFLINE and the log follow ends, well before B would drop A
/// (at least 3 s after the kill: A said it was alive at most 1 s before it). Before, they
/// waited for the request's timeout, and the follow for ever: B dropped A's agents, but this
/// one was no longer listed on A.
#[tokio::test]
async fn requests_through_a_killed_relay_fail_fast_when_the_agent_moves_to_a_third_relay() {
    let Some((_nats, relays, mut a)) = two_relays_and_a_process().await else {
        return;
    };
    let (b, c) = (&relays[0], &relays[1]);

    let mut agent = enrol_at(&a, &b.registration_token().await, "third-1").await;
    let (id, token) = (agent.id.clone(), agent.token.clone());
    wait_seen(b, &id, true).await;
    let mut client = admin(b, "asker").await;
    // A request the agent receives and does not answer, and a log follow it starts.
    wire::send(
        &mut client,
        json!({"subject": "container.list", "reply": "_INBOX.list", "data": {"agentId": id}}),
    )
    .await;
    agent.request_for("container.list").await;
    wire::send(
        &mut client,
        json!({"subject": "container.logs", "reply": "_INBOX.follow",
        "data": {"agentId": id, "containerId": "c1", "follow": true}}),
    )
    .await;
    let logs = agent.request_for("container.logs").await;
    agent
        .send(json!({"subject": logs["reply"], "data": {"lines": [{"stream": "stdout", "text": "hello"}]}}))
        .await;
    let first = loop {
        let frame = wire::next_text(&mut client)
            .await
            .expect("the first log line");
        if frame["subject"] == "_INBOX.follow" {
            break frame["data"].clone();
        }
    };
    assert!(first["end"].is_null(), "{first}");

    a.kill();
    let killed = Instant::now();
    drop(agent);
    let _moved = FakeAgent::auth(c, &id, &token).await;

    let (mut list, mut ended) = (None, None);
    while list.is_none() || ended.is_none() {
        let frame = wire::next_text(&mut client)
            .await
            .unwrap_or_else(|| panic!("B stayed silent; list {list:?}, follow ended {ended:?}"));
        if frame["subject"] == "_INBOX.list" {
            list = Some((frame["data"].clone(), killed.elapsed()));
        } else if frame["subject"] == "_INBOX.follow" && !frame["data"]["end"].is_null() {
            ended = Some(killed.elapsed());
        }
    }
    let (list, list_after) = list.unwrap();
    let ended = ended.unwrap();
    assert_eq!(list["errorCode"], "AGENT_OFFLINE", "{list}");
    // B cannot have dropped A yet: what failed them is the agent's move.
    assert!(
        list_after < Duration::from_secs(3) && ended < Duration::from_secs(3),
        "the request was answered {list_after:?} and the follow ended {ended:?} after the kill"
    );
    // The agent is online on C, and B reaches it there.
    wait_seen(b, &id, true).await;
    eprintln!("after the kill: request answered in {list_after:?}, follow ended in {ended:?}");
}

/// A `nats-server` process of the test's own configuration, killed when dropped.
struct NatsProcess(Child);

impl Drop for NatsProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// NATS over TLS, the server verifying client certificates (`verify: true`): two relay
/// processes given `--nats-ca`, `--nats-cert` and `--nats-key` connect (`/readyz` 200) and a
/// client on B reaches an agent on A through it; a relay given the CA but no client
/// certificate is refused by the server and never ready, and one without the CA refuses the
/// server's certificate (a private CA) and is never ready either.
#[tokio::test]
async fn relays_reach_nats_over_tls_with_client_certificates() {
    let Some(postgres) = TestPostgres::shared() else {
        return;
    };
    // TestNats finds the binary (and fails under CI=true when it is missing).
    let Some(plain) = TestNats::start() else {
        return;
    };
    drop(plain);
    let bin = std::env::var("ZEDOPS_NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
    let dir = tempfile::tempdir().unwrap();
    let pki = zedops_testkit::TestPki::generate(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("nats.conf");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\nmax_payload: 4MB\ntls {{\n  cert_file: {:?}\n  key_file: {:?}\n  ca_file: {:?}\n  verify: true\n  timeout: 2\n}}\n",
            pki.cert, pki.key, pki.ca_cert
        ),
    )
    .unwrap();
    let _nats = NatsProcess(
        Command::new(&bin)
            .args(["-c", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not listen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let url = format!("tls://127.0.0.1:{port}");
    let database = postgres.database();
    let (ca, cert, key) = (
        pki.ca_cert.to_str().unwrap(),
        pki.cert.to_str().unwrap(),
        pki.key.to_str().unwrap(),
    );
    let tls = ["--nats-ca", ca, "--nats-cert", cert, "--nats-key", key];
    // Ready only once connected to NATS: TLS and the client certificate worked.
    let a = RelayProcess::start_with(&database, &url, &tls).await;
    let b = RelayProcess::start_with(&database, &url, &tls).await;

    let Seeded {
        device,
        registration,
    } = seed(&database, "tls-admin").await;
    let answering = answer_all(enrol_at(&a, &registration, "tls-agent").await);
    let ws_url = |relay: &RelayProcess, path: &str| {
        format!("{}{path}", relay.url.replacen("http://", "ws://", 1))
    };
    let (mut client, _) = tokio_tungstenite::connect_async(ws_url(&b, "/ws/client"))
        .await
        .unwrap();
    wire::hello(
        &mut client,
        json!({"subject": "client.hello",
        "data": {"protocolVersion": zedops_protocol::PROTOCOL_VERSION, "token": device}}),
        "client.welcome",
    )
    .await;
    // B hears of the agent over NATS, then reaches it on A.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = ask(
            &mut client,
            "container.list",
            json!({"agentId": "tls-agent"}),
        )
        .await;
        if list["containers"].is_array() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B never reached the agent on A over NATS with TLS: {list}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Without a client certificate, or without the CA, the relay never gets into NATS.
    for (what, options) in [
        ("no client certificate", vec!["--nats-ca", ca]),
        ("no CA", vec!["--nats-cert", cert, "--nats-key", key]),
    ] {
        let relay = RelayProcess::spawn(&database, &url, &options);
        let addr = relay.addr.clone();
        let deadline = Instant::now() + Duration::from_secs(10);
        while http_status(&addr, "/healthz").await != 200 {
            assert!(Instant::now() < deadline, "{what}: the relay did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Several connection attempts (0.1 s apart at first) in this time.
        for _ in 0..20 {
            assert_eq!(
                http_status(&addr, "/readyz").await,
                503,
                "{what}: the relay got into NATS"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drop(relay);
    }
    answering.abort();
}

/// A batch of frames relay B sent to relay A that A received but never acknowledged: A froze
/// (SIGSTOP) with it and was then killed. Once the agent shows up on a third relay, C, and B
/// finds A gone (NATS: no responders on A's subject), the request fails `AGENT_OFFLINE` at
/// once, instead of waiting out B's 5 s acknowledgement timeout or B dropping the silent A (at
/// least 3 s after it froze: A said it was alive at most 1 s before, and B waits 4 s).
#[tokio::test]
async fn a_batch_a_killed_relay_never_acknowledged_fails_once_the_relay_is_found_gone() {
    let Some((_nats, relays, mut a)) = two_relays_and_a_process().await else {
        return;
    };
    let (b, c) = (&relays[0], &relays[1]);
    let agent = enrol_at(&a, &b.registration_token().await, "frozen-1").await;
    let (id, token) = (agent.id.clone(), agent.token.clone());
    wait_seen(b, &id, true).await;
    let mut client = admin(b, "patient").await;

    a.freeze();
    let frozen = Instant::now();
    wire::send(
        &mut client,
        json!({"subject": "container.list", "reply": "_INBOX.lost", "data": {"agentId": id}}),
    )
    .await;
    // B sends the batch to A's subject; A, frozen, gets it and never acknowledges.
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.kill();
    drop(agent);
    let _moved = FakeAgent::auth(c, &id, &token).await;

    let answer = loop {
        let frame = wire::next_text(&mut client)
            .await
            .expect("B answers the request");
        if frame["subject"] == "_INBOX.lost" {
            break frame["data"].clone();
        }
    };
    let after = frozen.elapsed();
    assert_eq!(answer["errorCode"], "AGENT_OFFLINE", "{answer}");
    // Neither B's acknowledgement timeout nor its dropping the silent A failed it.
    assert!(
        after < Duration::from_secs(3),
        "answered {after:?} after A froze"
    );
    eprintln!("answered {after:?} after A froze");
}
