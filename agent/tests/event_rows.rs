//! The row each `container.event` carries, through the real agent and relay to a subscribed
//! client, against the real engine: it is what Docker lists for the container right after the
//! event, whether the agent built it from the event and the row it knew (a kill, a die, a health
//! change, the start of a container seen running without published ports) or had to ask Docker
//! (a container's first event since the agent connected, the host port Docker picks anew at each
//! start of a container with an unpinned published port).

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HealthConfig, HostConfig, PortBinding};
use bollard::query_parameters::{KillContainerOptions, StartContainerOptions};
use tokio::sync::broadcast;
use zedops_agent::docker::DockerClient;
use zedops_client::{Client, ClientEvent, ContainerAction, ContainerEvent};
use zedops_protocol::{Container, Role};
use zedops_testkit::{TestAgent, TestContainers, TestRelay, require_docker};

/// Generous: these are liveness deadlines, not performance assertions.
const WAIT: Duration = Duration::from_secs(20);

/// A relay with the real agent `agent` online on the engine, and a viewer subscribed to that
/// agent's events: the relay and the agent (kept for the test), the viewer, its events.
async fn watching(
    agent: &str,
    viewer: &str,
) -> (
    TestRelay,
    TestAgent,
    Client,
    broadcast::Receiver<ClientEvent>,
) {
    let relay = TestRelay::builder().start().await;
    let online = TestAgent::builder(&relay).name(agent).online().await;
    let client = relay.client(viewer, Role::Viewer).await;
    let events = client.events();
    client.subscribe(Some(vec![agent.into()])).await.unwrap();
    (relay, online, client, events)
}

/// The next container event of `name` with `action`, skipping everything else.
async fn next_event(
    events: &mut broadcast::Receiver<ClientEvent>,
    name: &str,
    action: ContainerAction,
) -> ContainerEvent {
    tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await.expect("client events") {
                ClientEvent::Container(e) if e.name == name && e.action == action => return *e,
                _ => continue,
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {action} event of {name}"))
}

/// What Docker lists for the container now.
async fn listed(docker: &DockerClient, event: &ContainerEvent) -> Container {
    docker
        .container(&event.container_id)
        .await
        .expect("Docker lists")
        .expect("the container exists")
}

/// Id, names, image, creation time and (private, public) ports.
type Lasting = (String, Vec<String>, String, i64, Vec<(u16, Option<u16>)>);

/// The parts of a row that do not depend on when it is read (the status text says how long
/// ago, and Docker records a die a moment after announcing it).
fn lasting(row: &Container) -> Lasting {
    let mut ports: Vec<_> = row
        .ports
        .iter()
        .map(|p| (p.private_port, p.public_port))
        .collect();
    ports.sort();
    ports.dedup();
    (
        row.id.clone(),
        row.names.clone(),
        row.image.clone(),
        row.created,
        ports,
    )
}

async fn start(docker: &Docker, name: &str) {
    docker
        .start_container(name, None::<StartContainerOptions>)
        .await
        .expect("start");
}

async fn kill(docker: &Docker, name: &str) {
    docker
        .kill_container(name, None::<KillContainerOptions>)
        .await
        .expect("kill");
}

#[tokio::test]
async fn each_event_carries_the_row_docker_lists_after_it() {
    let Some(docker) = require_docker().await else {
        return;
    };
    let engine = DockerClient::connect(None).await;
    let mut containers = TestContainers::new(&docker);
    // No ports: from its second start on, its rows come from its events alone.
    let plain = containers
        .create("plain", &TestContainers::SLEEP_CMD, false)
        .await;
    // An unpinned published port: Docker picks the host port at each start, so only Docker
    // can say a start's row.
    let published = containers
        .create_with(
            "published",
            ContainerCreateBody {
                exposed_ports: Some(HashMap::from([("80/tcp".to_string(), HashMap::new())])),
                host_config: Some(HostConfig {
                    port_bindings: Some(HashMap::from([(
                        "80/tcp".to_string(),
                        Some(vec![PortBinding {
                            host_ip: Some("127.0.0.1".into()),
                            host_port: Some(String::new()),
                        }]),
                    )])),
                    ..Default::default()
                }),
                ..TestContainers::sleeper_body()
            },
            false,
        )
        .await;
    let (_relay, _agent, viewer, mut events) = watching("rows", "vera").await;

    let mut host_ports = vec![];
    for round in 0..3 {
        for name in [&plain, &published] {
            start(&docker, name).await;
            let started = next_event(&mut events, name, ContainerAction::Start).await;
            let row = started
                .container
                .clone()
                .expect("a started container's row");
            let truth = listed(&engine, &started).await;
            assert_eq!(row.state, "running", "round {round}: {name}");
            assert_eq!(truth.state, "running", "round {round}: {name}");
            assert_eq!(lasting(&row), lasting(&truth), "round {round}: {name}");
            assert!(row.status.starts_with("Up "), "{}", row.status);
            assert_eq!(row.health, None);
            if *name == published {
                assert!(!row.ports.is_empty(), "its published port: {row:?}");
                host_ports.push(row.ports[0].public_port);
            } else {
                assert!(row.ports.is_empty(), "{row:?}");
            }

            kill(&docker, name).await;
            let killed = next_event(&mut events, name, ContainerAction::Kill).await;
            assert_eq!(killed.container.expect("a row").state, "running");
            let died = next_event(&mut events, name, ContainerAction::Die).await;
            assert_eq!(died.exit_code, Some(137));
            assert!(died.is_unexpected_death());
            let row = died.container.clone().expect("a dead container's row");
            assert_eq!(
                (row.state.as_str(), row.status.as_str()),
                ("exited", "Exited (137) Less than a second ago"),
                "round {round}: {name}"
            );
            let truth = listed(&engine, &died).await;
            assert_eq!(truth.state, "exited");
            assert!(row.ports.is_empty() && truth.ports.is_empty(), "{row:?}");
            assert_eq!(lasting(&row), lasting(&truth), "round {round}: {name}");
        }
    }
    assert_eq!(host_ports.len(), 3);
    viewer.close().await;
}

#[tokio::test]
async fn health_changes_and_starts_carry_the_health_docker_lists() {
    let Some(docker) = require_docker().await else {
        return;
    };
    let engine = DockerClient::connect(None).await;
    let mut containers = TestContainers::new(&docker);
    let checked = containers
        .create_with(
            "checked",
            ContainerCreateBody {
                healthcheck: Some(HealthConfig {
                    test: Some(vec!["CMD".into(), "true".into()]),
                    interval: Some(1_000_000_000),
                    retries: Some(1),
                    ..Default::default()
                }),
                ..TestContainers::sleeper_body()
            },
            false,
        )
        .await;
    let (_relay, _agent, viewer, mut events) = watching("health", "hana").await;

    for round in 0..2 {
        start(&docker, &checked).await;
        let started = next_event(&mut events, &checked, ContainerAction::Start).await;
        let row = started.container.expect("a row");
        assert_eq!(row.health.as_deref(), Some("starting"), "round {round}");
        assert!(row.status.ends_with("(health: starting)"), "{}", row.status);
        let healthy = next_event(&mut events, &checked, ContainerAction::HealthStatus).await;
        assert_eq!(healthy.health.as_deref(), Some("healthy"));
        let row = healthy.container.clone().expect("a row");
        assert_eq!(row.health.as_deref(), Some("healthy"), "round {round}");
        assert!(row.status.ends_with("(healthy)"), "{}", row.status);
        let truth = listed(&engine, &healthy).await;
        assert_eq!(truth.health.as_deref(), Some("healthy"));
        assert_eq!(lasting(&row), lasting(&truth));

        kill(&docker, &checked).await;
        let died = next_event(&mut events, &checked, ContainerAction::Die).await;
        let row = died.container.expect("a row");
        assert_eq!((row.state.as_str(), row.health), ("exited", None));
    }
    viewer.close().await;
}
