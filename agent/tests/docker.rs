//! The agent's Docker layer against the real engine: containers are created with bollard, driven
//! through `DockerClient`, and checked with bollard's inspect. Without a reachable engine these
//! tests skip, except under `CI=true`, where they fail.

use std::time::{Duration, Instant};

use common::{Scratch, Spec};
use zedops_agent::docker::DockerClient;
use zedops_protocol::{Container, ErrorCode, Port};
use zedops_testkit::docker::TEST_IMAGE;

mod common;

fn find<'a>(containers: &'a [Container], name: &str) -> &'a Container {
    let wanted = format!("/{name}");
    containers
        .iter()
        .find(|c| c.names.contains(&wanted))
        .unwrap_or_else(|| panic!("{name} not listed"))
}

/// A scratch holding one container `role` made by `spec`, its name and id, and the agent's
/// client; `None` (skip) without an engine, as [`Scratch::new`].
async fn one_container(role: &str, spec: Spec) -> Option<(Scratch, String, String, DockerClient)> {
    let mut scratch = Scratch::new().await?;
    let (name, id) = scratch.create(role, spec).await;
    Some((scratch, name, id, DockerClient::connect(None).await))
}

#[tokio::test]
async fn lists_running_and_stopped_containers_with_their_fields() {
    let Some(mut scratch) = Scratch::new().await else {
        return;
    };
    let (running_name, running_id) = scratch.create("listed-running", Spec::RUNNING).await;
    let (stopped_name, stopped_id) = scratch.create("listed-created", Spec::default()).await;
    let client = DockerClient::connect(None).await;

    let containers = client.list().await.expect("list");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;

    let running = find(&containers, &running_name);
    assert_eq!(running.id, running_id);
    assert_eq!(running.names, [format!("/{running_name}")]);
    assert_eq!(running.image, TEST_IMAGE);
    assert_eq!(running.state, "running");
    assert!(running.status.starts_with("Up"), "{}", running.status);
    assert!(
        (now - 300..=now + 5).contains(&running.created),
        "created {} vs now {now}",
        running.created
    );
    assert_eq!(
        running.ports,
        [Port {
            private_port: 8080,
            public_port: None,
            kind: "tcp".into(),
            ip: None
        }]
    );
    assert_eq!(running.labels.get("zedops.test"), Some(&scratch.suffix));
    assert_eq!(running.health, None);

    let stopped = find(&containers, &stopped_name);
    assert_eq!(stopped.id, stopped_id);
    assert_eq!(stopped.state, "created");
    assert_eq!(stopped.status, "Created");
}

#[tokio::test]
async fn start_stop_and_restart_change_the_real_state() {
    let Some((scratch, name, id, client)) = one_container("actions", Spec::STOPPED).await else {
        return;
    };

    client.start(&name).await.expect("start by name");
    assert!(scratch.running(&name).await);
    client
        .start(&name)
        .await
        .expect("starting a running container succeeds");

    client.stop(&id[..12]).await.expect("stop by id prefix");
    assert!(!scratch.running(&name).await);
    client
        .stop(&name)
        .await
        .expect("stopping a stopped container succeeds");

    client
        .restart(&id)
        .await
        .expect("restart a stopped container by full id");
    let (running, first_start, _) = scratch.inspect(&name).await;
    assert!(running);
    client
        .restart(&format!("/{name}"))
        .await
        .expect("restart by /name");
    let (running, second_start, _) = scratch.inspect(&name).await;
    assert!(running);
    assert_ne!(
        first_start, second_start,
        "restart did not start the container again"
    );
}

#[tokio::test]
async fn stop_gives_the_process_its_grace_period() {
    // PID 1 ignores SIGTERM, so Docker kills it only when the grace period is over.
    let Some((scratch, name, _, client)) = one_container("grace", Spec::SLOW_TO_STOP).await else {
        return;
    };

    let started = Instant::now();
    client.stop(&name).await.expect("stop");
    let took = started.elapsed();
    let grace = Duration::from_secs(zedops_protocol::STOP_GRACE_SECS as u64);
    assert!(
        took >= grace - Duration::from_millis(500) && took < grace * 2,
        "stop took {took:?}"
    );
    let (running, _, exit_code) = scratch.inspect(&name).await;
    assert!(!running);
    assert_eq!(exit_code, 137, "expected SIGKILL after the grace period");
}

#[tokio::test]
async fn health_comes_from_the_status() {
    let spec = Spec {
        start: true,
        init: true,
        healthcheck: true,
    };
    let Some((_scratch, name, _, client)) = one_container("health", spec).await else {
        return;
    };

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = vec![];
    loop {
        let containers = client.list().await.expect("list");
        let health = find(&containers, &name).health.clone();
        if seen.last() != Some(&health) {
            seen.push(health.clone());
        }
        if health.as_deref() == Some("healthy") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never became healthy; saw {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let known = [Some("starting".to_string()), Some("healthy".to_string())];
    assert!(seen.iter().all(|h| known.contains(h)), "{seen:?}");
}

#[tokio::test]
async fn an_unknown_container_is_not_found() {
    let Some(scratch) = Scratch::new().await else {
        return;
    };
    let client = DockerClient::connect(None).await;
    let missing = format!("zedops-test-missing-{}", scratch.suffix);
    for result in [
        client.start(&missing).await,
        client.stop(&missing).await,
        client.restart(&missing).await,
    ] {
        let err = result.expect_err("no such container");
        assert_eq!(err.code(), ErrorCode::ContainerNotFound);
        assert_eq!(
            err.to_string(),
            format!("no container named or with id {missing} on this server")
        );
    }
}

#[tokio::test]
async fn an_unreachable_engine_is_not_available_rather_than_fatal() {
    for host in [
        "unix:///nonexistent.sock",
        "tcp://127.0.0.1:1",
        "ssh://nowhere",
    ] {
        let client = DockerClient::connect(Some(host)).await;
        let err = client.list().await.expect_err("no engine there");
        assert_eq!(err.code(), ErrorCode::DockerNotAvailable, "{host}: {err}");
        assert!(err.to_string().contains(host), "{err}");
        let err = client.stop("web").await.expect_err("no engine there");
        assert_eq!(err.code(), ErrorCode::DockerNotAvailable, "{host}: {err}");
    }
}

#[tokio::test]
async fn recovers_when_the_engine_appears() {
    let Some(_scratch) = Scratch::new().await else {
        return;
    };
    let real =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    let Some(real_socket) = real.strip_prefix("unix://") else {
        // The test stands a socket up by symlink; other engines cannot be moved that way.
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "DOCKER_HOST {real} is not a unix socket (CI=true: this test needs one)"
        );
        eprintln!("skipping: DOCKER_HOST {real} is not a unix socket");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let client = DockerClient::connect(Some(&format!("unix://{}", socket.display()))).await;
    assert_eq!(
        client.list().await.unwrap_err().code(),
        ErrorCode::DockerNotAvailable
    );
    // The engine "comes back" at the configured address.
    std::os::unix::fs::symlink(real_socket, &socket).unwrap();
    client.list().await.expect("list once the engine is there");
    assert!(client.engine_info().await.version.is_some());
}

#[tokio::test]
async fn the_agent_never_stops_or_restarts_its_own_container() {
    let Some((scratch, name, id, mut client)) = one_container("self", Spec::STOPPED).await else {
        return;
    };
    client.start(&name).await.expect("start");
    // As if the agent ran inside this container (detected from /proc/self/mountinfo in production).
    client.protect_container(&id);
    for attempt in [client.stop(&name).await, client.restart(&id[..12]).await] {
        let err = attempt.expect_err("refused");
        assert_eq!(err.code(), ErrorCode::SelfProtected, "{err}");
    }
    assert!(scratch.running(&name).await, "still running");
    client.start(&name).await.expect("starting it is harmless");
}
