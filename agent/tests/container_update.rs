//! Updating a container on the real engine with a real registry on loopback (Debian's
//! `docker-registry`): a new build under the same tag replaces the container with the same
//! name, ports, environment, labels and volume data; broken builds (exits at once, failing
//! health check) are rolled back with their log lines and nothing left behind; the pre-update
//! hook runs and a failing one aborts; an update cut short (journal and engine left half-way)
//! is undone or finished by recovery; the bounds (one update per container, the agent's
//! self-protection and local policy). Under `CI=true` a missing engine or registry fails;
//! otherwise these tests skip.
//!
//! The tests of this file run one at a time: the agent's bound on concurrent updates is one
//! per process, and one test floods it on purpose.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{
    ContainerConfig, ContainerCreateBody, HealthConfig, HostConfig, PortBinding, RestartPolicy,
    RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CommitContainerOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder,
    InspectContainerOptions, PushImageOptionsBuilder, RemoveContainerOptionsBuilder,
    StartContainerOptions, StopContainerOptionsBuilder, TagImageOptionsBuilder,
    WaitContainerOptions,
};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use zedops_agent::container_update::{self, journal};
use zedops_agent::docker::DockerClient;
use zedops_protocol::{
    ContainerUpdateFrame, ContainerUpdateRequest, ErrorCode, LABEL_UPDATE_HOOK,
    LABEL_UPDATE_HOOK_WAIT, MAX_UPDATES_PER_AGENT, UpdatePhase, Validate,
};
use zedops_testkit::docker::{Cleanup, TEST_IMAGE, TEST_LABEL, names_with_prefix};
use zedops_testkit::registry::{TestRegistry, free_port};

/// One test at a time (see the file's comment).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Setup {
    docker: Docker,
    client: DockerClient,
    registry: TestRegistry,
    data: tempfile::TempDir,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

async fn setup() -> Option<Setup> {
    let serial = ONE_AT_A_TIME.lock().await;
    let docker = zedops_testkit::require_docker().await?;
    let registry = TestRegistry::start().await?;
    Some(Setup {
        docker,
        client: DockerClient::connect(None).await,
        registry,
        data: tempfile::tempdir().unwrap(),
        _serial: serial,
    })
}

/// What a build of the test image runs.
#[derive(Clone, Copy)]
enum Build {
    /// Sleeps, stops at once on its stop signal (SIGKILL: busybox as PID 1 ignores SIGTERM).
    Good,
    /// Prints a line and exits with code 3 at once.
    Exits,
    /// Sleeps, but its health check fails every second.
    Unhealthy,
    /// Sleeps, and its health check passes every second.
    Healthy,
}

/// Builds a new image of the test image with a file of its own (so each build has its own id)
/// running `build`, pushes it to the registry as `repo:tag` and removes it locally: an update
/// must pull it. Returns the reference.
async fn push_build(
    setup: &Setup,
    cleanup: &mut Cleanup,
    repo: &str,
    tag: &str,
    build: Build,
) -> String {
    let docker = &setup.docker;
    let name = format!("{}-build-{:08x}", cleanup.prefix, rand::random::<u32>());
    let body = ContainerCreateBody {
        image: Some(TEST_IMAGE.into()),
        cmd: Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("echo {name} > /build-id"),
        ]),
        labels: Some(HashMap::from([(TEST_LABEL.to_string(), "1".to_string())])),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::new().name(&name).build();
    docker.create_container(Some(options), body).await.unwrap();
    docker
        .start_container(&name, None::<StartContainerOptions>)
        .await
        .unwrap();
    let mut wait = docker.wait_container(&name, None::<WaitContainerOptions>);
    while let Some(status) = wait.next().await {
        status.unwrap();
    }
    let sleep = vec!["sleep".to_string(), "100000".to_string()];
    let check = |test: &str| HealthConfig {
        test: Some(vec!["CMD-SHELL".into(), test.into()]),
        interval: Some(1_000_000_000),
        timeout: Some(1_000_000_000),
        retries: Some(1),
        ..Default::default()
    };
    let (cmd, healthcheck) = match build {
        Build::Good => (sleep, None),
        Build::Exits => (
            vec![
                "/bin/sh".into(),
                "-c".into(),
                "echo 'broken build: missing config' >&2; exit 3".into(),
            ],
            None,
        ),
        Build::Unhealthy => (sleep, Some(check("exit 1"))),
        Build::Healthy => (sleep, Some(check("exit 0"))),
    };
    let config = ContainerConfig {
        cmd: Some(cmd),
        healthcheck,
        stop_signal: Some("SIGKILL".into()),
        labels: Some(HashMap::from([(TEST_LABEL.to_string(), "1".to_string())])),
        ..Default::default()
    };
    let local = format!("zedops-test/{name}");
    let options = CommitContainerOptionsBuilder::new()
        .container(&name)
        .repo(&local)
        .tag("1")
        .build();
    docker.commit_container(options, config).await.unwrap();
    let remove = RemoveContainerOptionsBuilder::new().force(true).build();
    docker.remove_container(&name, Some(remove)).await.unwrap();
    let target = setup.registry.image(repo);
    let options = TagImageOptionsBuilder::new().repo(&target).tag(tag).build();
    docker
        .tag_image(&format!("{local}:1"), Some(options))
        .await
        .unwrap();
    let options = PushImageOptionsBuilder::new().tag(tag).build();
    let mut push = docker.push_image(&target, Some(options), None);
    while let Some(step) = push.next().await {
        step.unwrap_or_else(|e| panic!("push {target}:{tag}: {e}"));
    }
    let reference = format!("{target}:{tag}");
    // Untagged locally (the engine keeps the layers a running container uses).
    for tag in [reference.clone(), format!("{local}:1")] {
        let _ = docker
            .remove_image(
                &tag,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await;
    }
    cleanup.images.push(reference.clone());
    reference
}

/// Pulls `reference` on the engine (as the agent would for a deploy).
async fn pull(docker: &Docker, reference: &str) {
    let options = CreateImageOptionsBuilder::new()
        .from_image(reference)
        .build();
    let mut pull = docker.create_image(Some(options), None, None);
    while let Some(step) = pull.next().await {
        step.unwrap();
    }
}

/// Creates and starts container `name` from `image` with `body`'s other settings.
async fn create(docker: &Docker, name: &str, image: &str, body: ContainerCreateBody) -> String {
    create_with(docker, name, image, body, true).await
}

/// Creates container `name`, started when `start` is true.
async fn create_with(
    docker: &Docker,
    name: &str,
    image: &str,
    body: ContainerCreateBody,
    start: bool,
) -> String {
    pull(docker, image).await;
    let body = ContainerCreateBody {
        image: Some(image.into()),
        ..body
    };
    let options = CreateContainerOptionsBuilder::new().name(name).build();
    let id = docker
        .create_container(Some(options), body)
        .await
        .unwrap()
        .id;
    if start {
        docker
            .start_container(&id, None::<StartContainerOptions>)
            .await
            .unwrap();
    }
    id
}

fn request(container: &str) -> ContainerUpdateRequest {
    ContainerUpdateRequest {
        agent_id: "agent-1".into(),
        container_id: container.into(),
        image: None,
        health_timeout_secs: Some(30),
        stable_secs: Some(2),
        force: false,
    }
}

/// Runs `container.update` as the agent does: every frame, the last one apart.
async fn update(
    setup: &Setup,
    request: ContainerUpdateRequest,
) -> (Vec<ContainerUpdateFrame>, ContainerUpdateFrame) {
    request.validate().expect("a valid request");
    let (tx, mut rx) = mpsc::channel(4096);
    let last = container_update::run(&setup.client, setup.data.path(), request, &tx).await;
    drop(tx);
    let mut frames = vec![];
    while let Some(frame) = rx.recv().await {
        frames.push(frame);
    }
    assert!(
        frames.iter().all(|f| f.end.is_none()),
        "only the last frame ends"
    );
    (frames, last)
}

fn phases(frames: &[ContainerUpdateFrame]) -> Vec<UpdatePhase> {
    let mut out: Vec<UpdatePhase> = frames
        .iter()
        .filter_map(|f| f.step.as_ref().map(|s| s.phase))
        .collect();
    out.dedup();
    out
}

async fn inspect(docker: &Docker, name: &str) -> bollard::models::ContainerInspectResponse {
    docker
        .inspect_container(name, None::<InspectContainerOptions>)
        .await
        .unwrap_or_else(|e| panic!("inspect {name}: {e}"))
}

fn journal_is_empty(dir: &Path) -> bool {
    journal::list(dir).0.is_empty()
}

/// Asserts the rollback left the old container running under its name and nothing else.
async fn assert_restored(setup: &Setup, cleanup: &Cleanup, name: &str, old_id: &str) {
    let now = inspect(&setup.docker, name).await;
    assert_eq!(
        now.id.as_deref(),
        Some(old_id),
        "the old container has its name back"
    );
    assert_eq!(now.state.and_then(|s| s.running), Some(true), "and runs");
    assert_eq!(
        names_with_prefix(&setup.docker, &cleanup.prefix).await,
        vec![name.to_string()],
        "nothing left behind"
    );
    assert!(journal_is_empty(setup.data.path()));
}

#[tokio::test]
async fn an_update_keeps_name_ports_env_labels_and_volume_data() {
    let Some(setup) = setup().await else {
        return;
    };
    let mut cleanup = Cleanup::new("zu");
    let repo = format!("{}/app", cleanup.prefix);
    let first = push_build(&setup, &mut cleanup, &repo, "1", Build::Good).await;
    let name = cleanup.name("web");
    let volume = cleanup.volume("data");
    let port = free_port();
    let body = ContainerCreateBody {
        env: Some(vec!["GAME_MODE=survival".into(), "MOTD=hello world".into()]),
        labels: Some(HashMap::from([
            ("com.example.role".to_string(), "game".to_string()),
            (TEST_LABEL.to_string(), "1".to_string()),
        ])),
        exposed_ports: Some(HashMap::from([("16261/udp".to_string(), HashMap::new())])),
        host_config: Some(HostConfig {
            port_bindings: Some(HashMap::from([(
                "16261/udp".to_string(),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(port.to_string()),
                }]),
            )])),
            binds: Some(vec![format!("{volume}:/data")]),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            memory: Some(64 * 1024 * 1024),
            ..Default::default()
        }),
        ..Default::default()
    };
    let old_id = create(&setup.docker, &name, &first, body).await;
    let (code, _) = setup
        .client
        .exec_capture(
            &old_id,
            vec![
                "/bin/sh".into(),
                "-c".into(),
                "echo kept > /data/world.sav".into(),
            ],
            1024,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(code, Some(0));
    let old_image = inspect(&setup.docker, &name).await.image.unwrap();
    let second = push_build(&setup, &mut cleanup, &repo, "1", Build::Good).await;
    assert_eq!(first, second, "the same tag");

    let (frames, last) = update(&setup, request(&name)).await;
    let end = last.end.as_ref().unwrap();
    assert_eq!(end.error_code, None, "{}", end.reason);
    assert_eq!(
        phases(&frames),
        vec![
            UpdatePhase::Journal,
            UpdatePhase::Pull,
            UpdatePhase::RenameOld,
            UpdatePhase::StopOld,
            UpdatePhase::Create,
            UpdatePhase::Start,
            UpdatePhase::Health,
            UpdatePhase::RemoveOld,
        ]
    );
    assert!(
        frames.iter().any(|f| f.progress.is_some()),
        "pull progress is streamed"
    );
    let updated = last.updated.unwrap();
    assert!(updated.changed);
    assert_eq!(updated.old_image_id, old_image);
    assert_ne!(updated.new_image_id, old_image);
    assert!(
        updated
            .new_digest
            .as_deref()
            .is_some_and(|d| d.contains("@sha256:"))
    );
    assert_ne!(updated.old_digest, updated.new_digest);

    let new = inspect(&setup.docker, &name).await;
    assert_eq!(new.id.as_deref(), Some(updated.container_id.as_str()));
    assert_ne!(new.id.as_deref(), Some(old_id.as_str()));
    assert_eq!(new.image.as_deref(), Some(updated.new_image_id.as_str()));
    assert_eq!(new.state.as_ref().and_then(|s| s.running), Some(true));
    let config = new.config.unwrap();
    assert_eq!(config.image.as_deref(), Some(first.as_str()));
    let env = config.env.unwrap();
    assert!(env.contains(&"GAME_MODE=survival".to_string()), "{env:?}");
    assert!(env.contains(&"MOTD=hello world".to_string()), "{env:?}");
    assert_eq!(
        config
            .labels
            .unwrap()
            .get("com.example.role")
            .map(String::as_str),
        Some("game")
    );
    let host = new.host_config.unwrap();
    let binding = &host.port_bindings.unwrap()["16261/udp"].clone().unwrap()[0];
    assert_eq!(
        binding.host_port.as_deref(),
        Some(port.to_string().as_str())
    );
    assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        host.restart_policy.and_then(|r| r.name),
        Some(RestartPolicyNameEnum::UNLESS_STOPPED)
    );
    assert_eq!(host.memory, Some(64 * 1024 * 1024));
    assert!(
        new.mounts
            .iter()
            .flatten()
            .any(|m| m.name.as_deref() == Some(volume.as_str())
                && m.destination.as_deref() == Some("/data")
                && m.typ == Some(bollard::models::MountPointTypeEnum::VOLUME)),
    );
    let (code, output) = setup
        .client
        .exec_capture(
            new.id.as_deref().unwrap(),
            vec!["cat".into(), "/data/world.sav".into()],
            1024,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(
        (code, output.trim()),
        (Some(0), "kept"),
        "the volume's file is still there"
    );
    assert_eq!(
        names_with_prefix(&setup.docker, &cleanup.prefix).await,
        vec![name.clone()],
        "no .zedops-old left"
    );
    assert!(journal_is_empty(setup.data.path()));

    // Again: the registry has nothing newer, so the container is left as it is.
    let (_, last) = update(&setup, request(&name)).await;
    let end = last.end.unwrap();
    assert_eq!(end.error_code, None, "{}", end.reason);
    assert!(
        end.reason.contains("already runs the newest"),
        "{}",
        end.reason
    );
    assert!(!last.updated.unwrap().changed);
    assert_eq!(inspect(&setup.docker, &name).await.id, new.id);
}

#[tokio::test]
async fn a_build_that_exits_at_once_is_rolled_back_with_its_log_lines() {
    let Some(setup) = setup().await else {
        return;
    };
    let mut cleanup = Cleanup::new("zu");
    let repo = format!("{}/app", cleanup.prefix);
    let first = push_build(&setup, &mut cleanup, &repo, "1", Build::Good).await;
    let name = cleanup.name("game");
    let old_id = create(&setup.docker, &name, &first, ContainerCreateBody::default()).await;
    push_build(&setup, &mut cleanup, &repo, "1", Build::Exits).await;

    let (frames, last) = update(&setup, request(&name)).await;
    let end = last.end.unwrap();
    assert_eq!(
        end.error_code,
        Some(ErrorCode::UpdateRolledBack),
        "{}",
        end.reason
    );
    assert!(end.reason.contains("exited with code 3"), "{}", end.reason);
    assert!(
        end.reason.contains(&format!("runs again as {name}")),
        "{}",
        end.reason
    );
    assert!(phases(&frames).contains(&UpdatePhase::Rollback));
    let rollback = last.rolled_back.unwrap();
    assert_eq!(rollback.phase, UpdatePhase::Health);
    assert!(rollback.restored);
    assert!(
        rollback
            .logs
            .iter()
            .any(|l| l.contains("broken build: missing config")),
        "{:?}",
        rollback.logs
    );
    assert_restored(&setup, &cleanup, &name, &old_id).await;
}

#[tokio::test]
async fn a_build_whose_health_check_fails_is_rolled_back_and_a_healthy_one_is_not() {
    let Some(setup) = setup().await else {
        return;
    };
    let mut cleanup = Cleanup::new("zu");
    let repo = format!("{}/app", cleanup.prefix);
    let first = push_build(&setup, &mut cleanup, &repo, "1", Build::Healthy).await;
    let name = cleanup.name("api");
    let old_id = create(&setup.docker, &name, &first, ContainerCreateBody::default()).await;
    push_build(&setup, &mut cleanup, &repo, "1", Build::Unhealthy).await;

    let (_, last) = update(&setup, request(&name)).await;
    let end = last.end.unwrap();
    assert_eq!(
        end.error_code,
        Some(ErrorCode::UpdateRolledBack),
        "{}",
        end.reason
    );
    assert!(end.reason.contains("health check failed"), "{}", end.reason);
    assert_eq!(last.rolled_back.unwrap().phase, UpdatePhase::Health);
    assert_restored(&setup, &cleanup, &name, &old_id).await;

    // A build whose own health check passes replaces it (the old image's check is not kept).
    push_build(&setup, &mut cleanup, &repo, "1", Build::Healthy).await;
    let (_, last) = update(&setup, request(&name)).await;
    let end = last.end.unwrap();
    assert_eq!(end.error_code, None, "{}", end.reason);
    let new = inspect(&setup.docker, &name).await;
    assert_ne!(new.id.as_deref(), Some(old_id.as_str()));
    let health = new.state.and_then(|s| s.health).and_then(|h| h.status);
    assert_eq!(health, Some(bollard::models::HealthStatusEnum::HEALTHY));
}

#[tokio::test]
async fn a_failed_pull_or_a_wrong_image_changes_nothing() {
    let Some(setup) = setup().await else {
        return;
    };
    let mut cleanup = Cleanup::new("zu");
    let repo = format!("{}/app", cleanup.prefix);
    let first = push_build(&setup, &mut cleanup, &repo, "1", Build::Good).await;
    let name = cleanup.name("pull");
    let old_id = create(&setup.docker, &name, &first, ContainerCreateBody::default()).await;
    let missing = setup.registry.image(&format!("{repo}:no-such-tag"));
    let (_, last) = update(
        &setup,
        ContainerUpdateRequest {
            image: Some(missing),
            ..request(&name)
        },
    )
    .await;
    let end = last.end.unwrap();
    assert_eq!(
        end.error_code,
        Some(ErrorCode::UpdateRolledBack),
        "{}",
        end.reason
    );
    let rollback = last.rolled_back.unwrap();
    assert_eq!(rollback.phase, UpdatePhase::Pull);
    assert_eq!(rollback.code, Some(ErrorCode::ImageNotFound));
    assert_restored(&setup, &cleanup, &name, &old_id).await;
    // The container is never started again by a failed pull: it kept running throughout.
    let started = inspect(&setup.docker, &name)
        .await
        .state
        .unwrap()
        .started_at;
    assert!(started.is_some());
}

#[tokio::test]
async fn the_pre_update_hook_runs_first_and_a_failing_one_aborts() {
    let Some(setup) = setup().await else {
        return;
    };
    let mut cleanup = Cleanup::new("zu");
    let repo = format!("{}/app", cleanup.prefix);
    let first = push_build(&setup, &mut cleanup, &repo, "1", Build::Good).await;
    let failing = cleanup.name("hook-fails");
    let body = |hook: &str, wait: &str| ContainerCreateBody {
        labels: Some(HashMap::from([
            (LABEL_UPDATE_HOOK.to_string(), hook.to_string()),
            (LABEL_UPDATE_HOOK_WAIT.to_string(), wait.to_string()),
        ])),
        ..Default::default()
    };
    let failing_id = create(
        &setup.docker,
        &failing,
        &first,
        body("/bin/sh -c 'echo server busy; exit 4'", "0"),
    )
    .await;
    let warned = cleanup.name("hook-warns");
    create(
        &setup.docker,
        &warned,
        &first,
        body(
            r#"/bin/sh -c "echo 'restart in 1 s' > /warned; cat /warned""#,
            "1",
        ),
    )
    .await;
    push_build(&setup, &mut cleanup, &repo, "1", Build::Good).await;

    let (frames, last) = update(&setup, request(&failing)).await;
    let end = last.end.unwrap();
    assert_eq!(
        end.error_code,
        Some(ErrorCode::UpdateRolledBack),
        "{}",
        end.reason
    );
    let hook = frames
        .iter()
        .find_map(|f| f.hook.clone())
        .expect("the hook's outcome");
    assert_eq!(
        (hook.exit_code, hook.output.trim()),
        (Some(4), "server busy")
    );
    assert_eq!(last.rolled_back.unwrap().phase, UpdatePhase::Hook);
    let same = inspect(&setup.docker, &failing).await;
    assert_eq!(
        same.id.as_deref(),
        Some(failing_id.as_str()),
        "never touched"
    );
    assert_eq!(same.state.unwrap().running, Some(true));
    assert!(!phases(&frames).contains(&UpdatePhase::RenameOld));

    // One update per container: a second one while the first waits after its hook is refused.
    let busy = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        update(&setup, request(&warned)).await.1.end.unwrap()
    };
    let ((frames, last), refusal) = tokio::join!(update(&setup, request(&warned)), busy);
    assert_eq!(
        refusal.error_code,
        Some(ErrorCode::RateLimited),
        "{}",
        refusal.reason
    );
    assert!(
        refusal.reason.contains("being updated already"),
        "{}",
        refusal.reason
    );
    let end = last.end.unwrap();
    assert_eq!(end.error_code, None, "{}", end.reason);
    let hook = frames
        .iter()
        .find_map(|f| f.hook.clone())
        .expect("the hook's outcome");
    assert_eq!(
        (hook.exit_code, hook.output.trim(), hook.wait_secs),
        (Some(0), "restart in 1 s", 1)
    );
    let order = phases(&frames);
    let at = |p| order.iter().position(|&q| q == p).unwrap();
    assert!(at(UpdatePhase::Pull) < at(UpdatePhase::Hook));
    assert!(at(UpdatePhase::Hook) < at(UpdatePhase::StopOld));
}

#[tokio::test]
async fn an_interrupted_update_is_undone_or_finished_at_the_next_start() {
    let Some(setup) = setup().await else {
        return;
    };
    let mut cleanup = Cleanup::new("zu");
    let repo = format!("{}/app", cleanup.prefix);
    let first = push_build(&setup, &mut cleanup, &repo, "1", Build::Good).await;
    let docker = &setup.docker;

    // Killed after the rename, stop and create, before the new one was healthy: undone.
    let name = cleanup.name("undo");
    let old_id = create(docker, &name, &first, ContainerCreateBody::default()).await;
    let stop = StopContainerOptionsBuilder::new().t(1).build();
    let rename = |to: String| {
        bollard::query_parameters::RenameContainerOptionsBuilder::new()
            .name(&to)
            .build()
    };
    journal::write(
        setup.data.path(),
        &journal::Entry {
            name: name.clone(),
            old_id: old_id.clone(),
            was_running: true,
            image: first.clone(),
            new_id: None,
            stage: journal::Stage::Replacing,
            started_at: journal::now(),
        },
    )
    .unwrap();
    docker
        .rename_container(&old_id, rename(format!("{name}.zedops-old")))
        .await
        .unwrap();
    docker
        .stop_container(&old_id, Some(stop.clone()))
        .await
        .unwrap();
    let half = create(docker, &name, &first, ContainerCreateBody::default()).await;

    // Killed after the new one was healthy, before the old one was removed: finished.
    let done = cleanup.name("finish");
    let done_old = create(docker, &done, &first, ContainerCreateBody::default()).await;
    docker
        .rename_container(&done_old, rename(format!("{done}.zedops-old")))
        .await
        .unwrap();
    docker.stop_container(&done_old, Some(stop)).await.unwrap();
    let done_new = create(docker, &done, &first, ContainerCreateBody::default()).await;
    journal::write(
        setup.data.path(),
        &journal::Entry {
            name: done.clone(),
            old_id: done_old.clone(),
            was_running: true,
            image: first.clone(),
            new_id: Some(done_new.clone()),
            stage: journal::Stage::Healthy,
            started_at: journal::now(),
        },
    )
    .unwrap();

    assert_eq!(
        container_update::recover(&setup.client, setup.data.path()).await,
        2
    );
    let now = inspect(docker, &name).await;
    assert_eq!(
        now.id.as_deref(),
        Some(old_id.as_str()),
        "the old container is back"
    );
    assert_eq!(now.state.unwrap().running, Some(true));
    assert!(
        docker
            .inspect_container(&half, None::<InspectContainerOptions>)
            .await
            .is_err()
    );
    let now = inspect(docker, &done).await;
    assert_eq!(
        now.id.as_deref(),
        Some(done_new.as_str()),
        "the new container stays"
    );
    assert!(
        docker
            .inspect_container(&done_old, None::<InspectContainerOptions>)
            .await
            .is_err()
    );
    assert_eq!(
        names_with_prefix(docker, &cleanup.prefix).await,
        vec![done.clone(), name.clone()]
    );
    assert!(journal_is_empty(setup.data.path()));
    // Nothing left to do the second time.
    assert_eq!(
        container_update::recover(&setup.client, setup.data.path()).await,
        0
    );
}

#[tokio::test]
async fn protected_and_forbidden_containers_are_refused_before_anything_changes() {
    let Some(mut setup) = setup().await else {
        return;
    };
    let mut cleanup = Cleanup::new("zu");
    let repo = format!("{}/app", cleanup.prefix);
    let first = push_build(&setup, &mut cleanup, &repo, "1", Build::Good).await;
    let own = cleanup.name("agent");
    let own_id = create(&setup.docker, &own, &first, ContainerCreateBody::default()).await;
    let privileged = cleanup.name("privileged");
    let body = ContainerCreateBody {
        host_config: Some(HostConfig {
            privileged: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    // Created only: this test engine may not be allowed to start a privileged container.
    create_with(&setup.docker, &privileged, &first, body, false).await;
    let leftover = cleanup.name("web.zedops-old");
    create(
        &setup.docker,
        &leftover,
        &first,
        ContainerCreateBody::default(),
    )
    .await;

    let mut client = DockerClient::connect(None).await;
    client.protect_container(&own_id);
    setup.client = client;
    let (_, last) = update(&setup, request(&own)).await;
    assert_eq!(last.end.unwrap().error_code, Some(ErrorCode::SelfProtected));
    let (_, last) = update(&setup, request(&privileged)).await;
    let end = last.end.unwrap();
    assert_eq!(
        end.error_code,
        Some(ErrorCode::PolicyDenied),
        "{}",
        end.reason
    );
    assert!(end.reason.contains("privileged"), "{}", end.reason);
    let (_, last) = update(&setup, request(&format!("{}-none", cleanup.prefix))).await;
    assert_eq!(
        last.end.unwrap().error_code,
        Some(ErrorCode::ContainerNotFound)
    );
    let (_, last) = update(&setup, request(&leftover)).await;
    let end = last.end.unwrap();
    assert_eq!(
        end.error_code,
        Some(ErrorCode::InvalidRequest),
        "{}",
        end.reason
    );
    assert!(end.reason.contains("old copy"), "{}", end.reason);
    assert_eq!(
        names_with_prefix(&setup.docker, &cleanup.prefix)
            .await
            .len(),
        3,
        "nothing renamed or added"
    );
    assert!(journal_is_empty(setup.data.path()));
}

#[tokio::test]
async fn updates_beyond_the_agents_bound_are_refused() {
    let Some(setup) = setup().await else {
        return;
    };
    let mut cleanup = Cleanup::new("zu");
    let repo = format!("{}/app", cleanup.prefix);
    let first = push_build(&setup, &mut cleanup, &repo, "1", Build::Good).await;
    let mut names = vec![];
    for i in 0..=MAX_UPDATES_PER_AGENT {
        let name = cleanup.name(&format!("flood{i}"));
        // Each holds its slot for 3 s after its hook.
        let body = ContainerCreateBody {
            labels: Some(HashMap::from([
                (LABEL_UPDATE_HOOK.to_string(), "true".to_string()),
                (LABEL_UPDATE_HOOK_WAIT.to_string(), "3".to_string()),
            ])),
            ..Default::default()
        };
        create(&setup.docker, &name, &first, body).await;
        names.push(name);
    }
    push_build(&setup, &mut cleanup, &repo, "1", Build::Good).await;
    let (last_name, held) = names.split_last().unwrap();
    let holders = futures_util::future::join_all(held.iter().map(|n| update(&setup, request(n))));
    let late = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        update(&setup, request(last_name)).await
    };
    let (held, (_, refused)) = tokio::join!(holders, late);
    let end = refused.end.unwrap();
    assert_eq!(
        end.error_code,
        Some(ErrorCode::RateLimited),
        "{}",
        end.reason
    );
    assert!(
        end.reason
            .contains(&format!("already updating {MAX_UPDATES_PER_AGENT}")),
        "{}",
        end.reason
    );
    // The pulls beyond the agent's two at once waited for a slot instead of failing.
    for (_, last) in held {
        let end = last.end.unwrap();
        assert_eq!(end.error_code, None, "{}", end.reason);
    }
}

/// The real agent binary serving `relay` from `data`, its log in `log`; with `pause`, every
/// update it runs stops for an hour right after starting the new container (a debug-build test
/// hook), so the test can kill it there.
fn agent_process(
    relay: &zedops_testkit::TestRelay,
    name: &str,
    data: &Path,
    token: Option<&str>,
    pause: bool,
    log: &Path,
) -> tokio::process::Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_zedops-agent"));
    command
        .args(["run", "--relay", &relay.url, "--name", name])
        .arg("--data-dir")
        .arg(data)
        .args(["--update-check-interval", "0"])
        .env_remove("ZEDOPS_TOKEN")
        .env_remove("ZEDOPS_TEST_UPDATE_PAUSE")
        .env_remove("INVOCATION_ID")
        .env_remove("ZEDOPS_UPDATE_LAUNCHED")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true);
    if let Some(token) = token {
        command.env("ZEDOPS_TOKEN", token);
    }
    if pause {
        command.env("ZEDOPS_TEST_UPDATE_PAUSE", "start");
    }
    command.spawn().expect("the agent starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_during_an_update_puts_the_container_back_when_it_starts_again() {
    let Some(setup) = setup().await else {
        return;
    };
    let mut cleanup = Cleanup::new("zu");
    let repo = format!("{}/app", cleanup.prefix);
    let first = push_build(&setup, &mut cleanup, &repo, "1", Build::Good).await;
    let name = cleanup.name("killed");
    let old_id = create(&setup.docker, &name, &first, ContainerCreateBody::default()).await;
    push_build(&setup, &mut cleanup, &repo, "1", Build::Good).await;
    let relay = zedops_testkit::TestRelay::builder().start().await;
    let operator = relay.client("otto", zedops_protocol::Role::Operator).await;
    let agent_name = cleanup.name("agent");
    let work = tempfile::tempdir().unwrap();
    let (data, log) = (work.path().join("data"), work.path().join("agent.log"));
    let token = relay.registration_token().await;
    let mut agent = agent_process(&relay, &agent_name, &data, Some(&token), true, &log);
    relay.wait_agent(&agent_name, true).await;

    // The update runs until the new container has started, then the agent stops there.
    let mut stream = operator
        .update_container(&agent_name, &name, Default::default())
        .await
        .unwrap();
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(120), stream.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no start step; the agent's log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })
            .expect("a frame")
            .expect("no refusal");
        assert!(frame.end.is_none(), "the update ended: {frame:?}");
        if frame.step.is_some_and(|s| s.phase == UpdatePhase::Start) {
            break;
        }
    }
    // Docker may need a moment to start it after the step was sent.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let half = inspect(&setup.docker, &name).await;
    assert_ne!(
        half.id.as_deref(),
        Some(old_id.as_str()),
        "the new container holds the name"
    );
    let renamed = inspect(&setup.docker, &format!("{name}.zedops-old")).await;
    assert_eq!(renamed.id.as_deref(), Some(old_id.as_str()));
    assert_eq!(
        renamed.state.unwrap().running,
        Some(false),
        "the old one was stopped"
    );

    // SIGKILL, then the agent starts again: before it serves, the journal puts the old back.
    agent.kill().await.unwrap();
    drop(stream);
    let _agent = agent_process(&relay, &agent_name, &data, None, false, &log);
    relay.wait_agent(&agent_name, true).await;
    let now = inspect(&setup.docker, &name).await;
    assert_eq!(
        now.id.as_deref(),
        Some(old_id.as_str()),
        "the old container is back: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(now.state.unwrap().running, Some(true));
    assert_eq!(
        names_with_prefix(&setup.docker, &cleanup.prefix).await,
        vec![name.clone()],
        "the half-made new container is gone"
    );
    assert!(journal_is_empty(&data));
}
