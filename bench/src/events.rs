//! Docker event → client, side by side with Docker's own event stream on the same engine: every
//! event is timed when `docker events` (bollard's stream) delivers it and when it reaches a
//! subscribed client through agent → relay → client, and the difference is reported. With
//! `--probe-list`, each event also starts a list of its one container at the moment Docker's
//! stream delivers it, timed: the Docker round trip the agent's push used to wait for, under
//! the same load (it adds that list's load to the engine).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::query_parameters::{
    EventsOptionsBuilder, KillContainerOptions, ListContainersOptionsBuilder, StartContainerOptions,
};
use futures_util::StreamExt;
use zedops_client::ClientEvent;
use zedops_protocol::{ContainerAction, Role};
use zedops_testkit::{TestAgent, TestContainers, TestRelay, require_docker};

use crate::stats::{ms, percentile};

/// One event, as both streams name it.
type Key = (String, &'static str, i64);

pub async fn run(cycles: usize, probe_list: bool) -> anyhow::Result<()> {
    let docker = require_docker()
        .await
        .ok_or_else(|| anyhow::anyhow!("a Docker engine is needed"))?;
    let mut containers = TestContainers::new(&docker);
    let mut targets = Vec::new();
    for i in 0..4 {
        targets.push(containers.created_sleeper(&format!("e{i}")).await);
    }
    let relay = TestRelay::builder().start().await;
    let agent = TestAgent::builder(&relay).name("bench").online().await;
    let client = relay.client("bench", Role::Viewer).await;
    let mut pushed = client.events();
    client.subscribe(Some(vec!["bench".into()])).await?;

    // Docker's own stream, read by a task that stamps each event on arrival.
    let filters: HashMap<&str, Vec<&str>> = HashMap::from([("type", vec!["container"])]);
    let options = EventsOptionsBuilder::new().filters(&filters).build();
    let mut direct_stream = docker.events(Some(options));
    let (direct_tx, mut direct_rx) = tokio::sync::mpsc::unbounded_channel::<(Key, Instant)>();
    let (probe_tx, mut probe_rx) = tokio::sync::mpsc::unbounded_channel::<Duration>();
    let probe_docker = docker.clone();
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = direct_stream.next().await {
            let at = Instant::now();
            let action = message
                .action
                .as_deref()
                .and_then(ContainerAction::from_docker);
            let id = message.actor.and_then(|a| a.id);
            if let (true, Some(_), Some(id)) = (probe_list, action, id.as_ref()) {
                let (docker, probe_tx, id) = (probe_docker.clone(), probe_tx.clone(), id.clone());
                tokio::spawn(async move {
                    let filters: HashMap<&str, Vec<&str>> =
                        HashMap::from([("id", vec![id.as_str()])]);
                    let options = ListContainersOptionsBuilder::new()
                        .all(true)
                        .filters(&filters)
                        .build();
                    if docker.list_containers(Some(options)).await.is_ok() {
                        let _ = probe_tx.send(at.elapsed());
                    }
                });
            }
            if let (Some(action), Some(id), Some(nano)) = (action, id, message.time_nano) {
                let _ = direct_tx.send(((id, action.as_str(), nano), at));
            }
        }
    });
    // The client's side, stamped the same way.
    let (client_tx, mut client_rx) = tokio::sync::mpsc::unbounded_channel::<(Key, Instant)>();
    let listener = tokio::spawn(async move {
        while let Ok(event) = pushed.recv().await {
            let at = Instant::now();
            if let ClientEvent::Container(e) = event {
                let _ =
                    client_tx.send(((e.container_id.into(), e.action.as_str(), e.time_nano), at));
            }
        }
    });
    // Let both streams settle before producing events.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Each cycle: start and kill every target (start, kill, die: 3 events each).
    for _ in 0..cycles {
        for name in &targets {
            docker
                .start_container(name, None::<StartContainerOptions>)
                .await?;
        }
        for name in &targets {
            docker
                .kill_container(name, None::<KillContainerOptions>)
                .await?;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    reader.abort();
    listener.abort();

    let mut direct = HashMap::new();
    while let Ok((key, at)) = direct_rx.try_recv() {
        direct.insert(key, at);
    }
    let mut behind = Vec::new();
    let mut missing = 0usize;
    while let Ok((key, at)) = client_rx.try_recv() {
        match direct.get(&key) {
            Some(seen) => behind.push(at.saturating_duration_since(*seen)),
            None => missing += 1,
        }
    }
    anyhow::ensure!(!behind.is_empty(), "no events were matched");
    println!(
        "Docker event → client: {} events matched with `docker events` ({} from Docker, {} extra at the client)",
        behind.len(),
        direct.len(),
        missing
    );
    let p99 = percentile(&mut behind, 99.0);
    println!(
        "  behind Docker's own stream: p50 {}  p99 {}  max {}  (target p99 <= 10 ms: {})",
        ms(percentile(&mut behind, 50.0)),
        ms(p99),
        ms(percentile(&mut behind, 100.0)),
        crate::stats::verdict(p99 <= Duration::from_millis(10))
    );
    let mut probes = Vec::new();
    while let Ok(took) = probe_rx.try_recv() {
        probes.push(took);
    }
    if !probes.is_empty() {
        println!(
            "  a list of the event's container asked on Docker's event ({} lists): p50 {}  p99 {}  max {}",
            probes.len(),
            ms(percentile(&mut probes, 50.0)),
            ms(percentile(&mut probes, 99.0)),
            ms(percentile(&mut probes, 100.0)),
        );
    }
    client.close().await;
    agent.stop().await?;
    Ok(())
}
