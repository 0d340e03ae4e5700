//! Live state end to end: Docker events on the real engine reach a subscribed client through the
//! real agent and relay; after a relay restart the client's picture equals Docker's again; a
//! client that stops reading loses only its own events (and is told to re-sync), never
//! another's. And `zedops events` prints the stream, one JSON object per line.

mod support;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;
use zedops_client::{ClientEvent, ContainerAction, ContainerEvent};
use zedops_protocol::{Container, Operation, PROTOCOL_VERSION, Role, subject};
use zedops_testkit::wire::{FakeAgent, Ws, hello, next_text, send};
use zedops_testkit::{Served, TestContainers, TestRelay};

/// Generous: these are liveness deadlines, not performance assertions.
const WAIT: Duration = Duration::from_secs(20);

/// The next container event matching `wanted`, skipping everything else.
async fn event_where(
    events: &mut broadcast::Receiver<ClientEvent>,
    wanted: impl Fn(&ContainerEvent) -> bool,
) -> ContainerEvent {
    tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await.expect("client events") {
                ClientEvent::Container(event) if wanted(&event) => return *event,
                _ => continue,
            }
        }
    })
    .await
    .expect("the event arrived")
}

#[tokio::test]
async fn docker_events_reach_a_subscribed_client() {
    let Some((containers, web, relay, _agent)) = support::sleeper_and_agent("web", "live-1").await
    else {
        return;
    };
    let viewer = relay.client("vera", Role::Viewer).await;
    let mut events = viewer.events();
    let subscribed = viewer.subscribe(Some(vec!["live-1".into()])).await.unwrap();
    let agent_id = subscribed.agents.expect("one agent")[0].clone();

    // Killed from outside ZedOps: a `die` nobody asked for, with the exit code and the new row.
    containers.kill(&web).await;
    let died = event_where(&mut events, |e| {
        e.name == web && e.action == ContainerAction::Die
    })
    .await;
    assert_eq!(died.agent_id, agent_id, "the relay names the agent");
    assert_eq!(died.exit_code, Some(137));
    assert!(died.is_unexpected_death(), "{died:?}");
    let row = died.container.expect("the row after the event");
    assert_eq!(row.state, "exited");
    assert_eq!(row.display_name(), web);

    // Started and stopped through ZedOps: the stop's `die` is marked as asked for.
    let operator = relay.client("olga", Role::Operator).await;
    operator
        .action("live-1", &web, Operation::Start)
        .await
        .unwrap();
    let started = event_where(&mut events, |e| {
        e.name == web && e.action == ContainerAction::Start
    })
    .await;
    assert_eq!(started.container.unwrap().state, "running");
    operator
        .action("live-1", &web, Operation::Stop)
        .await
        .unwrap();
    let stopped = event_where(&mut events, |e| {
        e.name == web && e.action == ContainerAction::Die
    })
    .await;
    assert!(
        stopped.requested,
        "a ZedOps stop is not a crash: {stopped:?}"
    );
    assert!(!stopped.is_unexpected_death());

    // Removed: `destroy` carries no row.
    drop(containers);
    let destroyed = event_where(&mut events, |e| {
        e.name == web && e.action == ContainerAction::Destroy
    })
    .await;
    assert_eq!(destroyed.container, None);

    // A subscription to an unknown agent is refused, and the old one stays.
    let err = viewer
        .subscribe(Some(vec!["no-such-agent".into()]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "NOT_FOUND");
    viewer.close().await;
    operator.close().await;
}

/// What a client knows of one agent's containers: name → state, kept from pushes alone.
#[derive(Default)]
struct Picture(BTreeMap<String, String>);

impl Picture {
    fn replace(&mut self, containers: &[Container], prefix: &str) {
        self.0 = containers
            .iter()
            .filter(|c| c.display_name().starts_with(prefix))
            .map(|c| (c.display_name().to_string(), c.state.clone()))
            .collect();
    }

    fn apply(&mut self, event: &ContainerEvent, prefix: &str) {
        if !event.name.starts_with(prefix) {
            return;
        }
        match &event.container {
            Some(row) => self.0.insert(event.name.clone(), row.state.clone()),
            None => self.0.remove(&event.name),
        };
    }
}

/// Docker's own answer for the test's containers.
async fn docker_picture(
    containers: &TestContainers,
    names: &[&String],
) -> BTreeMap<String, String> {
    let mut truth = BTreeMap::new();
    for name in names {
        truth.insert(name.to_string(), containers.state(name).await);
    }
    truth
}

#[tokio::test]
async fn after_a_relay_restart_the_client_sees_what_docker_sees() {
    let Some((mut s, (a, b))) = Served::open("live-2", async |c| {
        (c.sleeper("a").await, c.created_sleeper("b").await)
    })
    .await
    else {
        return;
    };
    let prefix = a.trim_end_matches("-a").to_string();
    let client = &s.client;
    let mut events = client.events();
    client.subscribe(None).await.unwrap();
    let mut picture = Picture::default();
    picture.replace(&client.containers("live-2").await.unwrap(), &prefix);
    assert_eq!(picture.0.get(&a).map(String::as_str), Some("running"));

    // The relay goes away; meanwhile containers change.
    let relay = {
        let stopped = s.relay.stop().await;
        s.containers
            .docker()
            .stop_container(&a, None::<bollard::query_parameters::StopContainerOptions>)
            .await
            .unwrap();
        s.containers
            .docker()
            .start_container(&b, None::<bollard::query_parameters::StartContainerOptions>)
            .await
            .unwrap();
        let c = s.containers.sleeper("c").await;
        let relay = stopped.builder().start().await;
        (relay, c)
    };
    let (relay, c) = relay;

    // Pushes alone (plus a list on reconnect, as the app does) bring the picture back to Docker's.
    let truth = docker_picture(&s.containers, &[&a, &b, &c]).await;
    assert_eq!(truth[&a], "exited");
    let deadline = tokio::time::Instant::now() + WAIT;
    while picture.0 != truth {
        let received = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no re-sync: the client has {:?}, Docker has {truth:?}",
                    picture.0
                )
            })
            .expect("client events");
        match received {
            ClientEvent::Sync(sync) => picture.replace(&sync.containers, &prefix),
            ClientEvent::Container(event) => picture.apply(&event, &prefix),
            ClientEvent::Connected | ClientEvent::Resync { .. } => {
                // The agent may not be back yet; its snapshot follows when it is.
                if let Ok(list) = client.containers("live-2").await {
                    picture.replace(&list, &prefix);
                }
            }
            _ => {}
        }
    }
    client.close().await;
    drop(relay);
}

/// The next text frame, which must come within the liveness deadline.
async fn next_frame(ws: &mut Ws) -> Value {
    next_text(ws).await.expect("a frame within the deadline")
}

/// A client that subscribes to the fleet and then reads nothing, with a tiny receive buffer so
/// the relay's writes to it back up quickly.
async fn stalled_client(relay: &TestRelay, token: &str) -> Ws {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(relay.addr).await.unwrap();
    let url = format!("ws://{}/ws/client", relay.addr);
    let (mut ws, _) =
        tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
    let frame = json!({"subject": "client.hello", "data": {"protocolVersion": PROTOCOL_VERSION, "token": token}});
    hello(&mut ws, frame, "client.welcome").await;
    let subscribe =
        json!({"subject": subject::EVENT_SUBSCRIBE, "reply": "_INBOX.stalled", "data": {}});
    send(&mut ws, subscribe).await;
    assert_eq!(next_frame(&mut ws).await["subject"], "_INBOX.stalled");
    ws
}

fn event_frame(seq: i64) -> String {
    let container = Container {
        id: format!("{seq:064x}"),
        names: vec![format!("/c{seq}")],
        image: "zedops-test/busybox:latest".into(),
        state: "running".into(),
        status: "Up 1 second".into(),
        created: 1_700_000_000,
        ports: vec![],
        health: None,
        // Bulk, so the stalled connection's buffers fill after a few hundred events.
        labels: (0..32)
            .map(|i| (format!("label-{i}"), "x".repeat(100)))
            .collect(),
    };
    let event = ContainerEvent {
        agent_id: "ignored-the-relay-sets-it".into(),
        container_id: container.id.clone().into(),
        name: format!("c{seq}"),
        action: ContainerAction::Start,
        time_nano: seq,
        exit_code: None,
        health: None,
        requested: false,
        container: Some(container),
    };
    zedops_protocol::Envelope::new(subject::CONTAINER_EVENT, &event).to_json()
}

#[tokio::test]
async fn a_stalled_client_loses_only_its_own_events() {
    const BATCH: i64 = 250;
    const TOTAL: i64 = 8_000;
    // Fan-out is what is tested here, so the agent's own message rate limit (tested in
    // limits.rs) is off: 8,000 pushes in a few seconds would be over it.
    let limits = zedops_relay::Limits {
        agent_messages_per_sec: 0,
        ..Default::default()
    };
    let relay = TestRelay::builder().limits(limits).start().await;
    let mut stalled = stalled_client(&relay, &relay.login("slow", Role::Viewer).await).await;
    let reader = relay.client("fast", Role::Viewer).await;
    let mut events = reader.events();
    reader.subscribe(None).await.unwrap();
    // An agent speaking the real protocol that pushes events as fast as the relay takes them:
    // the real agent cannot make Docker produce thousands of events quickly.
    let mut agent = FakeAgent::enrol(&relay, "pusher")
        .await
        .expect("agent.welcome")
        .ws;

    // Batches paced by the reading client, so only the stalled one can fall behind.
    let mut seen = 0i64;
    for batch in 0..TOTAL / BATCH {
        for seq in batch * BATCH..(batch + 1) * BATCH {
            agent.send(Message::text(event_frame(seq))).await.unwrap();
        }
        while seen < (batch + 1) * BATCH {
            let received = tokio::time::timeout(WAIT, events.recv())
                .await
                .expect("the reading client keeps receiving while the other is stalled")
                .expect("client events");
            if let ClientEvent::Container(event) = received {
                assert_eq!(event.time_nano, seen, "in order, none lost");
                assert_ne!(event.agent_id, "ignored-the-relay-sets-it");
                seen += 1;
            }
        }
    }

    // The stalled client, reading again, learns that it missed events and must re-sync.
    let mut resynced = false;
    for _ in 0..TOTAL {
        let frame = next_frame(&mut stalled).await;
        if frame["subject"] == subject::EVENT_RESYNC {
            assert!(frame["data"]["missed"].as_u64().unwrap() > 0, "{frame}");
            resynced = true;
            break;
        }
    }
    assert!(resynced, "the stalled client was told to re-sync");
    reader.close().await;
}

#[tokio::test]
async fn zedops_events_prints_one_json_line_per_event() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let Some((containers, job, relay, _agent)) = support::sleeper_and_agent("job", "live-3").await
    else {
        return;
    };
    let config = tempfile::tempdir().unwrap();
    let mut child = support::zedops(config.path())
        .env("ZEDOPS_TOKEN", relay.login("cli", Role::Viewer).await)
        .args([
            "events", "--agent", "live-3", "--json", "--relay", &relay.url,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    // The subscription is in force once it says so.
    tokio::time::timeout(WAIT, async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            if line.starts_with("watching agent live-3") {
                return;
            }
        }
        panic!("zedops events ended before watching");
    })
    .await
    .expect("zedops events starts watching");

    containers.kill(&job).await;
    let died: Value = tokio::time::timeout(WAIT, async {
        loop {
            let line = stdout.next_line().await.unwrap().expect("a line");
            let value: Value = serde_json::from_str(&line).expect("each line is JSON");
            if value["kind"] == "container.event" && value["action"] == "die" {
                return value;
            }
        }
    })
    .await
    .expect("the die event is printed");
    assert_eq!(died["name"], job.as_str());
    assert_eq!(died["agentName"], "live-3");
    assert_eq!(died["exitCode"], 137);
    assert_eq!(died["requested"], false);
    assert_eq!(died["container"]["state"], "exited");

    // Ctrl-C ends it cleanly.
    let pid = child.id().unwrap().to_string();
    let interrupted = tokio::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .unwrap();
    assert!(interrupted.success());
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("exits after Ctrl-C")
        .unwrap();
    assert!(status.success(), "{status:?}");
}
