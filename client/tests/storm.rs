//! An event storm through the real agent, relay and Docker engine with the relay's per-agent
//! message limit in force: the agent coalesces what is over its push budget into
//! `container.sync`, so the relay refuses nothing, the agent keeps its one connection, and a
//! subscribed client's picture, kept from pushes alone, ends up exactly Docker's.
//!
//! Docker on a small machine does not make 2,000 events a second, so the relay's limit is lowered
//! to 10 a second (bursts of 20) and the agent's budget to half of it, as its default is to the
//! relay's default. The storm (restarting 80 containers at once, then killing, removing and
//! creating some) is several hundred events; the test counts them on Docker's own event stream
//! and checks that they were more than the relay would have taken one by one, so that it cannot
//! pass because the storm was too weak.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{
    EventsOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptions,
    RestartContainerOptions,
};
use futures_util::StreamExt;
use futures_util::future::join_all;
use tokio::sync::Notify;
use tokio::sync::broadcast::error::RecvError;
use zedops_agent::PushBudget;
use zedops_client::ClientEvent;
use zedops_protocol::{Container, ContainerAction, Role};
use zedops_relay::Limits;
use zedops_testkit::{TestAgent, TestContainers, TestRelay, require_docker};

const AGENT: &str = "storm-1";
/// In the names of the containers that show when Docker's event stream is open.
const PROBE: &str = "-storm-probe-";
const CONTAINERS: usize = 80;
/// The relay's per-agent limit in this test (the agent gets half of it, as by default).
const RELAY_PER_SEC: u32 = 10;
const RELAY_BURST: u32 = 20;
/// Generous: a liveness deadline, not a performance assertion.
const WAIT: Duration = Duration::from_secs(60);

/// Everything logged at warn and above, and the agent's info lines, kept for assertions.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn install() -> Self {
        let captured = Self::default();
        let writer = captured.clone();
        // Before the relay starts (testkit's own set-up then finds a subscriber and keeps it).
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn,zedops_agent=info"))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init()
            .expect("this test binary installs the only subscriber");
        captured
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        // Also shown, for whoever runs the test with --nocapture.
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Name → (id, state) of the test's containers: what `docker ps -a` shows of them, or what a
/// client knows.
type Picture = BTreeMap<String, (String, String)>;

fn row_entry(row: &Container) -> (String, (String, String)) {
    (
        row.display_name().to_string(),
        (row.id.clone(), row.state.clone()),
    )
}

/// `docker ps -a`, narrowed to the names starting with `prefix`.
async fn docker_ps(docker: &Docker, prefix: &str) -> Picture {
    let filters = std::collections::HashMap::from([("name", vec![prefix])]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    docker
        .list_containers(Some(options))
        .await
        .expect("docker ps -a")
        .into_iter()
        .filter_map(|c| {
            let name = c.names?.first()?.trim_start_matches('/').to_string();
            let state = c.state.map(|s| s.to_string()).unwrap_or_default();
            name.starts_with(prefix)
                .then(|| (name, (c.id.unwrap_or_default(), state)))
        })
        .collect()
}

/// Counts, on Docker's own event stream, the events of containers named `prefix…` that an agent
/// forwards, until the task is aborted. Tells `subscribed` when it sees an event of a probe
/// container (named `…-storm-probe-…`), which proves the stream is open: Docker sends only what
/// happens after the subscription.
async fn count_docker_events(
    docker: Docker,
    prefix: String,
    count: Arc<Mutex<u32>>,
    subscribed: Arc<Notify>,
) {
    let filters = std::collections::HashMap::from([("type", vec!["container"])]);
    let options = EventsOptionsBuilder::new().filters(&filters).build();
    let mut events = docker.events(Some(options));
    while let Some(Ok(event)) = events.next().await {
        let forwarded = event
            .action
            .as_deref()
            .and_then(ContainerAction::from_docker)
            .is_some();
        let name = event
            .actor
            .and_then(|a| a.attributes)
            .and_then(|a| a.get("name").cloned())
            .unwrap_or_default();
        let ours = name.starts_with(&prefix);
        if forwarded && ours {
            *count.lock().unwrap() += 1;
        }
        if name.contains(PROBE) {
            subscribed.notify_one();
        }
    }
}

/// What the client saw during the storm.
#[derive(Default, Debug)]
struct Seen {
    events: usize,
    syncs: usize,
    coalesced_syncs: usize,
    agent_offline: bool,
    errors: Vec<String>,
    resyncs: u64,
}

/// Applies one push to the client's picture.
fn apply(picture: &mut Picture, seen: &mut Seen, received: ClientEvent, prefix: &str) {
    match received {
        ClientEvent::Sync(sync) => {
            seen.syncs += 1;
            if sync.reason.contains("coalesced") {
                seen.coalesced_syncs += 1;
            }
            *picture = sync
                .containers
                .iter()
                .filter(|c| c.display_name().starts_with(prefix))
                .map(row_entry)
                .collect();
        }
        ClientEvent::Container(event) => {
            seen.events += 1;
            if !event.name.starts_with(prefix) {
                return;
            }
            match &event.container {
                Some(row) => {
                    picture.insert(event.name.clone(), row_entry(row).1);
                }
                None => {
                    picture.remove(&event.name);
                }
            }
        }
        ClientEvent::AgentStatus(status) if status.name == AGENT && !status.online => {
            seen.agent_offline = true
        }
        ClientEvent::Error(reply) => seen.errors.push(reply.to_string()),
        ClientEvent::Resync { missed } => seen.resyncs += missed,
        ClientEvent::Disconnected { reason, .. } => panic!("the client lost the relay: {reason}"),
        _ => {}
    }
}

/// Restarts every container at once, then kills a quarter, removes a tenth and creates ten new
/// ones (not started), so the end state differs from the start in ids and states.
async fn storm(containers: &mut TestContainers, names: &[String]) {
    let docker = containers.docker().clone();
    let restarts = names.iter().map(|name| {
        let docker = docker.clone();
        async move {
            let options = RestartContainerOptions {
                t: Some(0),
                ..Default::default()
            };
            docker
                .restart_container(name, Some(options))
                .await
                .expect("restart");
        }
    });
    join_all(restarts).await;
    // Kills need only a shared borrow, so that they can all run at once.
    let shared: &TestContainers = containers;
    join_all(names.iter().step_by(4).map(|name| shared.kill(name))).await;
    let removals = names.iter().skip(1).step_by(10).map(|name| {
        let docker = docker.clone();
        async move {
            let options = RemoveContainerOptions {
                force: true,
                ..Default::default()
            };
            docker
                .remove_container(name, Some(options))
                .await
                .expect("remove");
        }
    });
    join_all(removals).await;
    for i in 0..10 {
        containers.created_sleeper(&format!("new-{i}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_storm_is_coalesced_without_refusals_and_the_client_converges() {
    let captured = Captured::install();
    let Some(docker) = require_docker().await else {
        return;
    };
    let mut containers = TestContainers::new(&docker);
    let mut names = Vec::new();
    for i in 0..CONTAINERS {
        names.push(containers.sleeper(&format!("s{i:02}")).await);
    }
    let prefix = names[0].trim_end_matches("-s00").to_string() + "-";

    // The relay's limit lowered for a storm this machine can make; the agent's budget half of it.
    let limits = Limits {
        agent_messages_per_sec: RELAY_PER_SEC,
        agent_message_burst: RELAY_BURST,
        ..Default::default()
    };
    let relay = TestRelay::builder().limits(limits).start().await;
    let _agent = TestAgent::builder(&relay)
        .name(AGENT)
        .paced(PushBudget::per_sec(RELAY_PER_SEC / 2))
        .online()
        .await;
    let connection = relay.state.hub.agent(AGENT).expect("connected").conn_id;

    let client = relay.client("watcher", Role::Viewer).await;
    let mut pushes = client.events();
    client.subscribe(Some(vec![AGENT.into()])).await.unwrap();
    // Subscribed first, then listed: every push from here on is newer than the list.
    let mut picture: Picture = client
        .containers(AGENT)
        .await
        .unwrap()
        .iter()
        .filter(|c| c.display_name().starts_with(&prefix))
        .map(row_entry)
        .collect();
    assert_eq!(picture, docker_ps(&docker, &prefix).await);

    // Docker's own count of the storm, to know it was one.
    let docker_events = Arc::new(Mutex::new(0u32));
    let subscribed = Arc::new(Notify::new());
    let counting = tokio::spawn(count_docker_events(
        docker.clone(),
        prefix.clone(),
        docker_events.clone(),
        subscribed.clone(),
    ));
    // The storm starts once the counter's event stream is open: a probe container (outside the
    // storm's prefix) is created until the counter has seen one.
    let mut probes = TestContainers::new(&docker);
    for attempt in 0.. {
        assert!(attempt < 40, "Docker's event stream never opened");
        let probe = format!("{}-{attempt}", PROBE.trim_matches('-'));
        probes.created_sleeper(&probe).await;
        if tokio::time::timeout(Duration::from_millis(250), subscribed.notified())
            .await
            .is_ok()
        {
            break;
        }
    }

    // The storm runs while the client applies what arrives.
    let mut seen = Seen::default();
    let began = std::time::Instant::now();
    {
        let storm = storm(&mut containers, &names);
        tokio::pin!(storm);
        loop {
            tokio::select! {
                () = &mut storm => break,
                received = pushes.recv() => match received {
                    Ok(received) => apply(&mut picture, &mut seen, received, &prefix),
                    Err(RecvError::Lagged(n)) => panic!("the test read too slowly: {n} pushes lost"),
                    Err(RecvError::Closed) => panic!("the client's events ended"),
                },
            }
        }
    }
    let lasted = began.elapsed();
    let truth = docker_ps(&docker, &prefix).await;
    assert_eq!(truth.len(), CONTAINERS - CONTAINERS / 10 + 10);

    // Pushes alone bring the picture to Docker's…
    let deadline = tokio::time::Instant::now() + WAIT;
    while picture != truth {
        let received = tokio::time::timeout_at(deadline, pushes.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the client did not converge: it has {picture:#?}\nDocker has {truth:#?}\n{seen:?}\nlog:\n{}",
                    captured.text()
                )
            })
            .expect("client events");
        apply(&mut picture, &mut seen, received, &prefix);
    }
    // …and it stays there: nothing late undoes it.
    let settle = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(received) = tokio::time::timeout_at(settle, pushes.recv()).await {
        apply(
            &mut picture,
            &mut seen,
            received.expect("client events"),
            &prefix,
        );
    }
    assert_eq!(picture, docker_ps(&docker, &prefix).await, "{seen:?}");

    counting.abort();
    let docker_events = *docker_events.lock().unwrap();
    eprintln!(
        "storm: Docker reported {docker_events} events in {:.1} s; the client received {} events and {} syncs ({} coalesced)",
        lasted.as_secs_f64(),
        seen.events,
        seen.syncs,
        seen.coalesced_syncs
    );
    // More events than the relay takes from one agent in that time: pushed one by one, some
    // would have been refused.
    let relay_takes = f64::from(RELAY_BURST) + f64::from(RELAY_PER_SEC) * lasted.as_secs_f64();
    assert!(
        f64::from(docker_events) > relay_takes,
        "the storm was too weak to test anything: {docker_events} events in {lasted:?}, the relay takes {relay_takes:.0}"
    );

    let log = captured.text();
    // The storm was over the agent's budget, and it said so, and that it was over.
    assert!(
        log.contains("coalescing them into container.sync"),
        "the agent never coalesced, so this was no storm: {seen:?}\n{log}"
    );
    assert!(log.contains("calmed down"), "{log}");
    assert!(seen.coalesced_syncs >= 1, "{seen:?}");
    // Nothing was refused, and the agent kept its one connection throughout.
    assert!(
        !log.contains("RATE_LIMITED") && !log.contains("rate limit"),
        "the relay refused pushes:\n{log}"
    );
    assert!(seen.errors.is_empty(), "{seen:?}");
    assert_eq!(seen.resyncs, 0, "{seen:?}");
    assert!(!seen.agent_offline, "the agent was disconnected: {seen:?}");
    assert_eq!(
        relay
            .state
            .hub
            .agent(AGENT)
            .expect("still connected")
            .conn_id,
        connection,
        "the agent reconnected during the storm"
    );
    client.close().await;
}
