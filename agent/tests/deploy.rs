//! Deploying on the real engine with a real registry on loopback (Debian's `docker-registry`):
//! create from a spec and read it back with `docker inspect`, pull with progress, each registry
//! failure with its own code, name and port clashes, the local policy gate, remove and images.
//! Under `CI=true` a missing engine or registry fails; otherwise these tests skip.

use std::collections::BTreeMap;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, MountTypeEnum, RestartPolicyNameEnum};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, RemoveContainerOptionsBuilder,
    TagImageOptionsBuilder,
};
use tokio::sync::{mpsc, oneshot};
use zedops_agent::deploy;
use zedops_agent::docker::DockerClient;
use zedops_agent::policy::LocalPolicy;
use zedops_protocol::{
    ContainerCreate, ContainerRemoveRequest, ContainerSpec, DeployFrame, ErrorCode, Frame,
    HealthCheckSpec, ImagePullRequest, ImageRemoveRequest, LABEL_CREATED_BY, LABEL_PROTECTED,
    LABEL_TEMPLATE, LABEL_TEMPLATE_VERSION, MAX_PULLS_PER_AGENT, PortProtocol, PortSpec, Resources,
    RestartPolicy, StreamEnd, TemplateStamp, Validate, VolumeKind, VolumeSpec,
};
use zedops_testkit::docker::{Cleanup, TEST_IMAGE};
use zedops_testkit::free_port;
use zedops_testkit::registry::TestRegistry;

async fn setup() -> Option<(Docker, DockerClient, TestRegistry)> {
    let (docker, registry) = zedops_testkit::registry::docker_and_registry().await?;
    Some((docker, DockerClient::connect(None).await, registry))
}

fn request(name: &str, spec: ContainerSpec, start: bool) -> ContainerCreate {
    ContainerCreate {
        agent_id: "agent-1".into(),
        name: name.into(),
        spec,
        start,
        template: None,
        created_by: None,
    }
}

/// Runs `container.create` as the agent does and returns its frames and how it ended.
async fn create(
    client: &DockerClient,
    policy: &LocalPolicy,
    request: ContainerCreate,
) -> (Vec<DeployFrame>, StreamEnd) {
    request.validate().expect("a valid request");
    let (tx, mut rx) = mpsc::channel(4096);
    let (_cancel, cancelled) = oneshot::channel();
    let end = deploy::create(client, policy, request, "_INBOX.t", &tx, cancelled).await;
    drop(tx);
    (frames(&mut rx).await, end)
}

async fn frames(rx: &mut mpsc::Receiver<String>) -> Vec<DeployFrame> {
    let mut out = vec![];
    while let Some(text) = rx.recv().await {
        let frame = Frame::decode(&text).expect("a frame");
        assert_eq!(frame.subject, "_INBOX.t");
        out.push(frame.payload::<DeployFrame>().expect("a deploy frame"));
    }
    out
}

async fn pull(client: &DockerClient, image: &str) -> (Vec<DeployFrame>, StreamEnd) {
    let request = ImagePullRequest {
        agent_id: "a".into(),
        image: image.into(),
    };
    let (tx, mut rx) = mpsc::channel(4096);
    let (_cancel, cancelled) = oneshot::channel();
    let end = deploy::pull(client, request, "_INBOX.t", &tx, cancelled).await;
    drop(tx);
    (frames(&mut rx).await, end)
}

/// Asserts the stream ended well; its reason is the message otherwise.
fn assert_ok(end: &StreamEnd) {
    assert_eq!(end.error_code, None, "{}", end.reason);
}

/// Asserts the stream ended with `code`; its reason is the message otherwise.
fn assert_code(end: &StreamEnd, code: ErrorCode) {
    assert_eq!(end.error_code, Some(code), "{}", end.reason);
}

/// Asserts the stream ended with `code` and a reason that says `part`.
fn assert_refused(end: &StreamEnd, code: ErrorCode, part: &str) {
    assert_code(end, code);
    assert!(end.reason.contains(part), "not {part:?} in: {}", end.reason);
}

/// Asserts container `name` does not exist; `why` says what went wrong otherwise.
async fn assert_no_container(docker: &Docker, name: &str, why: &str) {
    let found = docker
        .inspect_container(name, None::<InspectContainerOptions>)
        .await;
    assert!(found.is_err(), "{why}");
}

fn busybox(image: &str) -> ContainerSpec {
    ContainerSpec {
        image: image.into(),
        cmd: Some(vec!["sleep".into(), "300".into()]),
        ..ContainerSpec::default()
    }
}

/// Creates container `name` running [`busybox`] of `image` under the default policy (started
/// when `start`).
async fn create_busybox(
    client: &DockerClient,
    name: &str,
    image: &str,
    start: bool,
) -> (Vec<DeployFrame>, StreamEnd) {
    let request = request(name, busybox(image), start);
    create(client, &LocalPolicy::default(), request).await
}

/// A read-only bind of the host's `source` at `target`.
fn bind(source: &str, target: &str) -> VolumeSpec {
    VolumeSpec {
        kind: VolumeKind::Bind,
        source: source.into(),
        target: target.into(),
        read_only: true,
    }
}

/// An `image.remove` of `image`.
fn rmi(image: &str, force: bool) -> ImageRemoveRequest {
    ImageRemoveRequest {
        agent_id: "a".into(),
        image: image.into(),
        force,
    }
}

#[tokio::test]
async fn creates_exactly_what_the_spec_asks_for() {
    let Some((docker, client, registry)) = setup().await else {
        return;
    };
    let image = registry
        .push_test_image(&docker, "zedops/busybox", "1")
        .await;
    let mut cleanup = Cleanup::new("zd");
    let name = cleanup.name("full");
    let volume = cleanup.volume("data");
    let udp = free_port();
    let spec = ContainerSpec {
        image: image.clone(),
        cmd: Some(vec!["sleep".into(), "300".into()]),
        env: BTreeMap::from([
            ("SERVER_NAME".into(), "zomboid one".into()),
            ("ADMIN_PASSWORD".into(), "p;$(rm -rf /)".into()),
        ]),
        ports: vec![
            PortSpec {
                container: 16261,
                host: Some(udp),
                protocol: PortProtocol::Udp,
                host_ip: Some("127.0.0.1".parse().unwrap()),
            },
            PortSpec {
                container: 8080,
                host: None,
                protocol: PortProtocol::Tcp,
                host_ip: Some("127.0.0.1".parse().unwrap()),
            },
        ],
        volumes: vec![VolumeSpec {
            kind: VolumeKind::Volume,
            source: volume.clone(),
            target: "/data".into(),
            read_only: false,
        }],
        resources: Resources {
            cpus: Some(0.5),
            memory_bytes: Some(64 * 1024 * 1024),
            memory_swap_bytes: Some(128 * 1024 * 1024),
            pids: Some(64),
        },
        restart: RestartPolicy::OnFailure,
        restart_max_retries: Some(3),
        labels: BTreeMap::from([("com.example.game".into(), "pz".into())]),
        health_check: Some(HealthCheckSpec {
            cmd: vec!["true".into()],
            interval_secs: Some(30),
            timeout_secs: Some(5),
            retries: Some(2),
            start_period_secs: Some(10),
        }),
        stop_signal: Some("SIGINT".into()),
        stop_grace_secs: Some(20),
        open_stdin: true,
        ..ContainerSpec::default()
    };
    let mut req = request(&name, spec, true);
    req.template = Some(TemplateStamp {
        name: "zomboid".into(),
        version: 3,
    });
    req.created_by = Some("alice".into());
    let (frames, end) = create(&client, &LocalPolicy::default(), req).await;
    assert_ok(&end);
    assert_eq!(end.reason, "created and started");
    let pulled = frames
        .iter()
        .find_map(|f| f.pulled.clone())
        .expect("pulled");
    assert!(pulled.pulled && pulled.image == image);
    let created = frames
        .iter()
        .find_map(|f| f.created.clone())
        .expect("created");
    assert!(created.started);
    assert_eq!(created.name, name);

    let inspect = docker
        .inspect_container(&name, None::<InspectContainerOptions>)
        .await
        .unwrap();
    assert_eq!(inspect.id.as_deref(), Some(created.id.as_str()));
    let config = inspect.config.unwrap();
    assert_eq!(config.image.as_deref(), Some(image.as_str()));
    assert_eq!(config.cmd.unwrap(), vec!["sleep", "300"]);
    let mut env: Vec<String> = config
        .env
        .unwrap()
        .into_iter()
        .filter(|e| !e.starts_with("PATH="))
        .collect();
    env.sort();
    assert_eq!(
        env,
        vec!["ADMIN_PASSWORD=p;$(rm -rf /)", "SERVER_NAME=zomboid one"]
    );
    let labels = config.labels.unwrap();
    assert_eq!(labels.get("com.example.game").unwrap(), "pz");
    assert_eq!(labels.get(LABEL_TEMPLATE).unwrap(), "zomboid");
    assert_eq!(labels.get(LABEL_TEMPLATE_VERSION).unwrap(), "3");
    assert_eq!(labels.get(LABEL_CREATED_BY).unwrap(), "alice");
    assert_eq!(labels.len(), 4, "{labels:?}");
    assert_eq!(config.stop_signal.as_deref(), Some("SIGINT"));
    assert_eq!(config.stop_timeout, Some(20));
    assert_eq!(config.open_stdin, Some(true));
    let health = config.healthcheck.unwrap();
    assert_eq!(health.test.unwrap(), vec!["CMD", "true"]);
    assert_eq!(health.interval, Some(30_000_000_000));
    assert_eq!(health.retries, Some(2));
    let host = inspect.host_config.unwrap();
    assert_eq!(host.nano_cpus, Some(500_000_000));
    assert_eq!(host.memory, Some(64 * 1024 * 1024));
    assert_eq!(host.memory_swap, Some(128 * 1024 * 1024));
    assert_eq!(host.pids_limit, Some(64));
    assert_eq!(host.privileged, Some(false));
    let restart = host.restart_policy.unwrap();
    assert_eq!(restart.name, Some(RestartPolicyNameEnum::ON_FAILURE));
    assert_eq!(restart.maximum_retry_count, Some(3));
    let bindings = host.port_bindings.unwrap();
    assert_eq!(bindings.len(), 2, "{bindings:?}");
    let udp_binding = bindings["16261/udp"].as_ref().unwrap();
    assert_eq!(
        udp_binding[0].host_port.as_deref(),
        Some(udp.to_string().as_str())
    );
    assert_eq!(udp_binding[0].host_ip.as_deref(), Some("127.0.0.1"));
    let mounts = host.mounts.unwrap();
    assert_eq!(mounts.len(), 1);
    assert_eq!(mounts[0].typ, Some(MountTypeEnum::VOLUME));
    assert_eq!(mounts[0].source.as_deref(), Some(volume.as_str()));
    assert_eq!(mounts[0].target.as_deref(), Some("/data"));
    // "Any free port": Docker picked one for 8080/tcp.
    let ports = inspect.network_settings.unwrap().ports.unwrap();
    let picked = ports["8080/tcp"].as_ref().unwrap()[0]
        .host_port
        .clone()
        .unwrap();
    assert!(picked.parse::<u16>().unwrap() > 0);
    assert_eq!(inspect.state.unwrap().running, Some(true));
}

#[tokio::test]
async fn a_missing_image_is_pulled_with_progress_to_the_end() {
    let Some((docker, client, registry)) = setup().await else {
        return;
    };
    let image = registry
        .push_unique_image(&docker, "zedops/noise", "1", 3 * 1024 * 1024)
        .await;
    let (frames, end) = pull(&client, &image).await;
    assert_ok(&end);
    let progress: Vec<_> = frames.iter().filter_map(|f| f.progress.clone()).collect();
    assert!(!progress.is_empty(), "no progress frames");
    let last = progress.last().unwrap();
    assert!(last.total >= 3 * 1024 * 1024 / 2, "{last:?}");
    assert_eq!(last.layers_done, last.layers_total, "{last:?}");
    assert!(
        last.layers.iter().any(|l| l.status == "Pull complete"),
        "{last:?}"
    );
    let pulled = frames.iter().find_map(|f| f.pulled.clone()).unwrap();
    assert!(pulled.id.starts_with("sha256:"));
    // Present now: a create does not pull again.
    let cleanup = Cleanup::new("zd");
    let name = cleanup.name("nopull");
    let (frames, end) = create_busybox(&client, &name, &image, false).await;
    assert_ok(&end);
    assert!(
        frames
            .iter()
            .all(|f| f.pulled.is_none() && f.progress.is_none())
    );
    let _ = deploy::remove_image(&client, rmi(&image, true), "_INBOX.t").await;
}

#[tokio::test]
async fn registry_failures_have_their_own_codes() {
    let Some((docker, client, registry)) = setup().await else {
        return;
    };
    registry
        .push_test_image(&docker, "zedops/busybox", "1")
        .await;
    let (_, end) = pull(&client, &registry.image("zedops/busybox:2")).await;
    assert_refused(&end, ErrorCode::ImageNotFound, "check the name and tag");

    let down = format!("127.0.0.1:{}/zedops/busybox:1", free_port());
    let (_, end) = pull(&client, &down).await;
    assert_code(&end, ErrorCode::RegistryUnreachable);

    let Some(locked) = TestRegistry::start_with_auth().await else {
        return;
    };
    let image = locked.push_test_image(&docker, "zedops/private", "1").await;
    let (_, end) = pull(&client, &image).await;
    assert_code(&end, ErrorCode::RegistryAuthFailed);
    assert!(!end.reason.contains(zedops_testkit::registry::AUTH_PASSWORD));

    // A create of a missing image says the same.
    let cleanup = Cleanup::new("zd");
    let name = cleanup.name("missing");
    let missing = registry.image("zedops/nothing:9");
    let (_, end) = create_busybox(&client, &name, &missing, true).await;
    assert_code(&end, ErrorCode::ImageNotFound);
}

#[tokio::test]
async fn name_and_port_clashes_are_told_apart_and_leave_nothing_behind() {
    let Some((docker, client, _registry)) = setup().await else {
        return;
    };
    let cleanup = Cleanup::new("zd");
    let name = cleanup.name("clash");
    let port = free_port();
    let mut spec = busybox(TEST_IMAGE);
    spec.ports.push(PortSpec {
        container: 80,
        host: Some(port),
        protocol: PortProtocol::Tcp,
        host_ip: Some("127.0.0.1".parse().unwrap()),
    });
    let policy = LocalPolicy::default();
    let (_, end) = create(&client, &policy, request(&name, spec.clone(), true)).await;
    assert_ok(&end);

    let (_, end) = create(&client, &policy, request(&name, busybox(TEST_IMAGE), false)).await;
    assert_refused(&end, ErrorCode::ContainerNameInUse, "choose another name");
    // The same deploy again (same name, same port, held by that very container) is told the
    // name is taken, not that the port is.
    let (_, end) = create(&client, &policy, request(&name, spec.clone(), true)).await;
    assert_refused(&end, ErrorCode::ContainerNameInUse, "choose another name");

    let other = cleanup.name("clash2");
    let (_, end) = create(&client, &policy, request(&other, spec, true)).await;
    assert_refused(&end, ErrorCode::PortInUse, &format!("{port}/tcp"));
    // The container that could not start was removed: the name is free again.
    assert_no_container(&docker, &other, "the failed container was left behind").await;
}

#[tokio::test]
async fn a_port_clash_is_refused_at_create_even_without_start() {
    let Some((docker, client, _registry)) = setup().await else {
        return;
    };
    let cleanup = Cleanup::new("zd");
    let (holder, port) = (cleanup.name("holder"), free_port());
    let with_port = |ip: &str, protocol: PortProtocol| {
        let mut spec = busybox(TEST_IMAGE);
        spec.ports.push(PortSpec {
            container: 80,
            host: Some(port),
            protocol,
            host_ip: Some(ip.parse().unwrap()),
        });
        spec
    };
    let policy = LocalPolicy::default();
    let spec = with_port("127.0.0.1", PortProtocol::Tcp);
    let (_, end) = create(&client, &policy, request(&holder, spec.clone(), true)).await;
    assert_ok(&end);

    // Not started, same port: refused at once, naming the port and the container holding it.
    let second = cleanup.name("second");
    let (_, end) = create(&client, &policy, request(&second, spec, false)).await;
    assert_code(&end, ErrorCode::PortInUse);
    assert!(
        end.reason.contains(&format!("{port}/tcp")) && end.reason.contains(&holder),
        "{}",
        end.reason
    );
    assert_no_container(&docker, &second, "a container was made despite the clash").await;

    // The same number over UDP, or on another address, is no clash.
    for (suffix, spec) in [
        ("udp", with_port("127.0.0.1", PortProtocol::Udp)),
        ("other-ip", with_port("127.0.0.2", PortProtocol::Tcp)),
    ] {
        let name = cleanup.name(suffix);
        let (_, end) = create(&client, &policy, request(&name, spec, false)).await;
        assert_eq!(end.error_code, None, "{suffix}: {}", end.reason);
    }
}

#[tokio::test]
async fn the_local_policy_refuses_whatever_the_relay_sends() {
    let Some((docker, client, _registry)) = setup().await else {
        return;
    };
    let cleanup = Cleanup::new("zd");
    let allowed = tempfile::tempdir().unwrap();
    let policy = LocalPolicy::new(&[allowed.path().to_path_buf()], None).expect("a policy");
    type Change = Box<dyn Fn(&mut ContainerSpec)>;
    let cases: Vec<(&str, Change)> = vec![
        ("privileged", Box::new(|s| s.privileged = true)),
        ("capAdd", Box::new(|s| s.cap_add = vec!["NET_ADMIN".into()])),
        ("network", Box::new(|s| s.network = Some("host".into()))),
        ("pidMode", Box::new(|s| s.pid_mode = Some("host".into()))),
        ("ipcMode", Box::new(|s| s.ipc_mode = Some("host".into()))),
        ("devices", Box::new(|s| s.devices = vec!["/dev/kvm".into()])),
        (
            "volumes[0].source",
            Box::new(|s| {
                s.volumes
                    .push(bind("/var/run/docker.sock", "/var/run/docker.sock"))
            }),
        ),
        (
            "volumes[0].source",
            Box::new(|s| s.volumes.push(bind("/etc", "/host-etc"))),
        ),
    ];
    for (field, change) in cases {
        let name = cleanup.name(&field.replace(['[', ']', '.'], "-"));
        let mut spec = busybox(TEST_IMAGE);
        change(&mut spec);
        let (frames, end) = create(&client, &policy, request(&name, spec, true)).await;
        assert_refused(&end, ErrorCode::PolicyDenied, field);
        assert!(frames.is_empty());
        let why = format!("{field}: a refused container exists");
        assert_no_container(&docker, &name, &why).await;
    }
    // A bind inside the allowed directory is created.
    let name = cleanup.name("bind-ok");
    let mut spec = busybox(TEST_IMAGE);
    spec.volumes
        .push(bind(&allowed.path().display().to_string(), "/srv"));
    let (_, end) = create(&client, &policy, request(&name, spec, false)).await;
    assert_ok(&end);
    // Raw host configuration cannot even be decoded.
    let raw =
        r#"{"agentId":"a","name":"x","spec":{"image":"busybox","hostConfig":{"Privileged":true}}}"#;
    let err = serde_json::from_str::<ContainerCreate>(raw).unwrap_err();
    assert!(
        err.to_string().contains("unknown field `hostConfig`"),
        "{err}"
    );
}

#[tokio::test]
async fn remove_needs_force_for_a_running_container_and_keeps_protected_ones() {
    let Some((docker, mut client, _registry)) = setup().await else {
        return;
    };
    let mut cleanup = Cleanup::new("zd");
    let policy = LocalPolicy::default();
    let running = cleanup.name("running");
    let (_, end) = create(
        &client,
        &policy,
        request(&running, busybox(TEST_IMAGE), true),
    )
    .await;
    assert_ok(&end);
    let remove = |id: &str, force: bool, volumes: bool| ContainerRemoveRequest {
        agent_id: "a".into(),
        container_id: id.into(),
        force,
        volumes,
    };
    let answer = deploy::remove(&client, remove(&running, false, false), "_INBOX.t").await;
    assert!(
        answer.contains("\"DOCKER_REMOVE_FAILED\"") && answer.contains("--force"),
        "{answer}"
    );
    let answer = deploy::remove(&client, remove(&running, true, false), "_INBOX.t").await;
    assert!(answer.contains("\"removed\":true"), "{answer}");
    assert!(
        docker
            .inspect_container(&running, None::<InspectContainerOptions>)
            .await
            .is_err()
    );

    // --volumes removes the container's anonymous volumes; without it they stay.
    for volumes in [false, true] {
        let name = cleanup.name(&format!("anon-{volumes}"));
        let body = ContainerCreateBody {
            image: Some(TEST_IMAGE.into()),
            cmd: Some(vec!["true".into()]),
            volumes: Some([("/scratch".to_string(), Default::default())].into()),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        docker.create_container(Some(options), body).await.unwrap();
        let inspect = docker
            .inspect_container(&name, None::<InspectContainerOptions>)
            .await
            .unwrap();
        let anonymous = inspect.mounts.unwrap()[0].name.clone().unwrap();
        let answer = deploy::remove(&client, remove(&name, false, volumes), "_INBOX.t").await;
        assert!(answer.contains("\"removed\":true"), "{answer}");
        let exists = docker.inspect_volume(&anonymous).await.is_ok();
        assert_eq!(exists, !volumes, "volumes={volumes}");
        if exists {
            cleanup.volumes.push(anonymous);
        }
    }

    let protected = cleanup.name("protected");
    let mut spec = busybox(TEST_IMAGE);
    spec.labels.insert(LABEL_PROTECTED.into(), "true".into());
    let (_, end) = create(&client, &policy, request(&protected, spec, false)).await;
    assert_ok(&end);
    let answer = deploy::remove(&client, remove(&protected, true, true), "_INBOX.t").await;
    assert!(answer.contains("\"PROTECTED\""), "{answer}");

    let own = cleanup.name("own");
    let (_, end) = create(&client, &policy, request(&own, busybox(TEST_IMAGE), false)).await;
    assert_ok(&end);
    let id = docker
        .inspect_container(&own, None::<InspectContainerOptions>)
        .await
        .unwrap()
        .id
        .unwrap();
    client.protect_container(&id);
    let answer = deploy::remove(&client, remove(&own, true, false), "_INBOX.t").await;
    assert!(answer.contains("\"SELF_PROTECTED\""), "{answer}");
    let answer = deploy::remove(
        &client,
        remove("nothing-here-at-all", true, false),
        "_INBOX.t",
    )
    .await;
    assert!(answer.contains("\"CONTAINER_NOT_FOUND\""), "{answer}");
}

#[tokio::test]
async fn images_are_listed_with_their_users_and_removed() {
    let Some((docker, client, registry)) = setup().await else {
        return;
    };
    // An image of this test alone: the shared test image carries the tags of every other test
    // running beside this one, and Docker will not delete an image by id while it has several.
    let image = registry
        .push_unique_image(&docker, "zedops/listed", "1", 1024)
        .await;
    let (_, end) = pull(&client, &image).await;
    assert_ok(&end);
    let cleanup = Cleanup::new("zd");
    let user = cleanup.name("user");
    let local = format!("zedops-test/{user}");
    let options = TagImageOptionsBuilder::new().repo(&local).tag("2").build();
    docker.tag_image(&image, Some(options)).await.unwrap();
    let second = format!("{local}:2");
    let (_, end) = create_busybox(&client, &user, &second, false).await;
    assert_ok(&end);
    let images = client.images().await.unwrap();
    let used = images
        .iter()
        .find(|i| i.repo_tags.contains(&second))
        .expect("the image the container uses listed");
    assert!(used.used_by.contains(&user), "{used:?}");
    assert!(used.size > 0 && used.created > 0 && used.id.starts_with("sha256:"));
    let pulled = images
        .iter()
        .find(|i| i.repo_tags.contains(&image))
        .expect("the pulled image listed");
    assert_eq!(pulled.id, used.id, "the same image under two names");

    // By id while it has two names: Docker wants force, and the answer says which ways out there are.
    let answer = deploy::remove_image(&client, rmi(&used.id, false), "_INBOX.t").await;
    assert!(
        answer.contains("\"DOCKER_REMOVE_FAILED\"") && answer.contains("several names"),
        "{answer}"
    );
    // Only a tag: untagged, the image stays for its other name.
    let answer = deploy::remove_image(&client, rmi(&image, false), "_INBOX.t").await;
    assert!(answer.contains("\"untagged\":[\""), "{answer}");
    let answer = deploy::remove_image(&client, rmi(&image, false), "_INBOX.t").await;
    assert!(answer.contains("\"IMAGE_NOT_FOUND\""), "{answer}");
    // The image by id while a container uses it.
    let answer = deploy::remove_image(&client, rmi(&used.id, false), "_INBOX.t").await;
    assert!(answer.contains("\"IMAGE_IN_USE\""), "{answer}");
    assert!(rmi("../../containers/x", false).validate().is_err());
    // The container first (no force needed), then the image is gone by id.
    let _ = docker
        .remove_container(
            &user,
            Some(RemoveContainerOptionsBuilder::new().force(true).build()),
        )
        .await;
    let answer = deploy::remove_image(&client, rmi(&used.id, false), "_INBOX.t").await;
    assert!(answer.contains("\"deleted\":[\""), "{answer}");
}

#[tokio::test]
async fn pulls_are_bounded_per_agent() {
    let Some((_docker, client, _registry)) = setup().await else {
        return;
    };
    // A "registry" that accepts connections and never answers holds every pull open.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = vec![];
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let client = std::sync::Arc::new(client);
    let mut running = vec![];
    for i in 0..MAX_PULLS_PER_AGENT {
        let client = client.clone();
        running.push(tokio::spawn(async move {
            pull(&client, &format!("127.0.0.1:{port}/stuck/{i}:1")).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, end) = pull(&client, &format!("127.0.0.1:{port}/stuck/more:1")).await;
    assert_code(&end, ErrorCode::RateLimited);
    for task in running {
        assert!(!task.is_finished(), "a held pull ended early");
        task.abort();
    }
    holder.abort();
    // Aborted pulls give their slots back.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_, end) = pull(&client, &format!("127.0.0.1:{}/gone/x:1", free_port())).await;
    assert_code(&end, ErrorCode::RegistryUnreachable);
}

/// A relay that sends what no template would (compromised, or anyone holding the agent's
/// connection): raw `container.create` frames over the agent's real connection, the relay's
/// template checks bypassed. The agent refuses each by name and creates nothing.
#[tokio::test]
async fn the_agent_refuses_raw_frames_from_its_relay() {
    let Some(docker) = zedops_testkit::require_docker().await else {
        return;
    };
    let relay = zedops_testkit::TestRelay::builder().start().await;
    let _agent = zedops_testkit::TestAgent::builder(&relay)
        .name("gatekeeper")
        .online()
        .await;
    let link = relay
        .state
        .hub
        .agent("gatekeeper")
        .expect("the agent is online");
    let cleanup = Cleanup::new("zd");
    let cases = [
        ("privileged", serde_json::json!({"privileged": true})),
        ("capAdd", serde_json::json!({"capAdd": ["SYS_ADMIN"]})),
        ("network", serde_json::json!({"network": "host"})),
        ("pidMode", serde_json::json!({"pidMode": "host"})),
        ("devices", serde_json::json!({"devices": ["/dev/mem"]})),
        (
            "volumes[0].source",
            serde_json::json!({"volumes": [{"type": "bind", "source": "/var/run/docker.sock", "target": "/s"}]}),
        ),
        (
            "volumes[0].source",
            serde_json::json!({"volumes": [{"type": "bind", "source": "/", "target": "/host"}]}),
        ),
    ];
    for (field, extra) in cases {
        let name = cleanup.name("raw");
        let mut spec = serde_json::json!({"image": TEST_IMAGE, "cmd": ["sleep", "30"]});
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let create: ContainerCreate = serde_json::from_value(serde_json::json!({
            "agentId": link.id, "name": name, "spec": spec, "start": true,
        }))
        .unwrap();
        let request = zedops_protocol::AgentRequest::ContainerCreate(Box::new(create));
        let raw = link
            .request(&request, Duration::from_secs(30))
            .await
            .expect("the agent answers");
        let frame: DeployFrame = serde_json::from_str(&raw).expect("a deploy frame");
        let end = frame.end.expect("refused at once, in the last frame");
        assert_refused(&end, ErrorCode::PolicyDenied, field);
        let why = format!("{field}: the agent created it");
        assert_no_container(&docker, &name, &why).await;
    }
}
