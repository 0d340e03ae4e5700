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
    InspectContainerOptions, RenameContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use tokio::sync::mpsc;
use zedops_agent::container_update::{self, journal};
use zedops_agent::docker::DockerClient;
use zedops_protocol::{
    ContainerUpdateFrame, ContainerUpdateRequest, ErrorCode, HookOutcome, LABEL_UPDATE_HOOK,
    LABEL_UPDATE_HOOK_WAIT, MAX_UPDATES_PER_AGENT, StreamEnd, UpdatePhase, UpdateRollback,
    Validate,
};
use zedops_testkit::docker::{Cleanup, TEST_LABEL, create_named, names_with_prefix, pull};
use zedops_testkit::free_port;
use zedops_testkit::registry::TestRegistry;

/// One test at a time (see the file's comment).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One test's engine, agent-side client, registry and agent data dir, holding the file's turn.
struct Setup {
    docker: Docker,
    client: DockerClient,
    registry: TestRegistry,
    data: tempfile::TempDir,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

/// Every test's start: the engine and registry (None: skipped), what the test makes on the
/// engine (removed on drop), and a first build of `build` pushed as `<prefix>/app:1`.
struct Scene {
    // Dropped first: the containers go before the registry, which then removes the images
    // pulled from it (an image a container still uses would stay on the engine).
    cleanup: Cleanup,
    setup: Setup,
    repo: String,
    first: String,
}

/// Takes the file's turn, starts the registry and pushes the first build; None when the
/// engine or registry is missing outside CI.
async fn scene(build: Build) -> Option<Scene> {
    let serial = ONE_AT_A_TIME.lock().await;
    let (docker, registry) = zedops_testkit::registry::docker_and_registry().await?;
    let setup = Setup {
        docker,
        client: DockerClient::connect(None).await,
        registry,
        data: tempfile::tempdir().unwrap(),
        _serial: serial,
    };
    let cleanup = Cleanup::new("zu");
    let repo = format!("{}/app", cleanup.prefix);
    let mut scene = Scene {
        cleanup,
        setup,
        repo,
        first: String::new(),
    };
    scene.first = scene.push(build).await;
    scene.cleanup.images.push(scene.first.clone());
    Some(scene)
}

impl Scene {
    /// Pushes a new build of `build` under the first one's tag (`<prefix>/app:1`, which the
    /// cleanup removes).
    async fn push(&self, build: Build) -> String {
        self.setup
            .registry
            .push_build(&self.setup.docker, &self.repo, "1", build.config())
            .await
    }

    /// Creates and starts container `<prefix>-<suffix>` from the first build with `body`'s
    /// other settings. Returns its name and id.
    async fn run(&self, suffix: &str, body: ContainerCreateBody) -> (String, String) {
        let name = self.cleanup.name(suffix);
        let id = create(&self.setup.docker, &name, &self.first, body).await;
        (name, id)
    }
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

impl Build {
    /// The image config of this build: its command, health check and stop signal.
    fn config(self) -> ContainerConfig {
        let sleep = vec!["sleep".to_string(), "100000".to_string()];
        let check = |test: &str| HealthConfig {
            test: Some(vec!["CMD-SHELL".into(), test.into()]),
            interval: Some(1_000_000_000),
            timeout: Some(1_000_000_000),
            retries: Some(1),
            ..Default::default()
        };
        let (cmd, healthcheck) = match self {
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
        ContainerConfig {
            cmd: Some(cmd),
            healthcheck,
            stop_signal: Some("SIGKILL".into()),
            ..Default::default()
        }
    }
}

/// Creates and starts container `name` from `image` with `body`'s other settings.
async fn create(docker: &Docker, name: &str, image: &str, body: ContainerCreateBody) -> String {
    create_with(docker, name, image, body, true).await
}

/// Creates container `name` from `image` (pulled), started when `start` is true.
async fn create_with(
    docker: &Docker,
    name: &str,
    image: &str,
    body: ContainerCreateBody,
    start: bool,
) -> String {
    // Pulled first, as the agent would for a deploy.
    pull(docker, image).await;
    let body = ContainerCreateBody {
        image: Some(image.into()),
        ..body
    };
    create_named(docker, name, body, start).await
}

/// Settings whose labels name the pre-update `hook` and the seconds to `wait` after it.
fn with_hook(hook: &str, wait: &str) -> ContainerCreateBody {
    ContainerCreateBody {
        labels: Some(HashMap::from([
            (LABEL_UPDATE_HOOK.to_string(), hook.to_string()),
            (LABEL_UPDATE_HOOK_WAIT.to_string(), wait.to_string()),
        ])),
        ..Default::default()
    }
}

/// An update of `container` to its own image, with short health and stable times.
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

/// The phases the frames went through, in order, each once.
fn phases(frames: &[ContainerUpdateFrame]) -> Vec<UpdatePhase> {
    let mut out: Vec<UpdatePhase> = frames
        .iter()
        .filter_map(|f| f.step.as_ref().map(|s| s.phase))
        .collect();
    out.dedup();
    out
}

/// The end of `last`, asserted to carry `code` (None: a success); the reason is the message.
fn ended_with(last: &ContainerUpdateFrame, code: Option<ErrorCode>) -> &StreamEnd {
    let end = last.end.as_ref().expect("the last frame ends the update");
    assert_eq!(end.error_code, code, "{}", end.reason);
    end
}

/// Asserts the end's reason says `part`.
fn assert_says(end: &StreamEnd, part: &str) {
    assert!(end.reason.contains(part), "not {part:?} in: {}", end.reason);
}

/// Asserts `last` ended as rolled back at `phase`, its reason saying `reason_part` ("": any
/// reason); returns
/// the rollback's report.
fn assert_rolled_back<'a>(
    last: &'a ContainerUpdateFrame,
    phase: UpdatePhase,
    reason_part: &str,
) -> &'a UpdateRollback {
    let end = ended_with(last, Some(ErrorCode::UpdateRolledBack));
    assert_says(end, reason_part);
    let rollback = last.rolled_back.as_ref().expect("a rollback report");
    assert_eq!(rollback.phase, phase, "the phase that failed");
    rollback
}

/// The outcome of the pre-update hook among the frames.
fn hook_outcome(frames: &[ContainerUpdateFrame]) -> HookOutcome {
    frames
        .iter()
        .find_map(|f| f.hook.clone())
        .expect("the hook's outcome")
}

/// Inspects container `name`, which must exist.
async fn inspect(docker: &Docker, name: &str) -> bollard::models::ContainerInspectResponse {
    docker
        .inspect_container(name, None::<InspectContainerOptions>)
        .await
        .unwrap_or_else(|e| panic!("inspect {name}: {e}"))
}

/// Asserts container `name` no longer exists.
async fn assert_gone(docker: &Docker, name: &str) {
    assert!(
        docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
            .is_err(),
        "{name} is gone"
    );
}

/// Whether no update is left in the journal of the agent data dir `dir`.
fn journal_is_empty(dir: &Path) -> bool {
    journal::list(dir).0.is_empty()
}

/// Asserts the rollback left the old container running under its name and nothing else.
async fn assert_restored(scene: &Scene, name: &str, old_id: &str) {
    let setup = &scene.setup;
    let now = inspect(&setup.docker, name).await;
    assert_eq!(
        now.id.as_deref(),
        Some(old_id),
        "the old container has its name back"
    );
    assert_eq!(now.state.and_then(|s| s.running), Some(true), "and runs");
    assert_eq!(
        names_with_prefix(&setup.docker, &scene.cleanup.prefix).await,
        vec![name.to_string()],
        "nothing left behind"
    );
    assert!(journal_is_empty(setup.data.path()));
}

#[tokio::test]
async fn an_update_keeps_name_ports_env_labels_and_volume_data() {
    let Some(mut scene) = scene(Build::Good).await else {
        return;
    };
    let volume = scene.cleanup.volume("data");
    let Scene {
        setup,
        cleanup,
        first,
        ..
    } = &scene;
    let name = cleanup.name("web");
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
    let old_id = create(&setup.docker, &name, first, body).await;
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
    let second = scene.push(Build::Good).await;
    assert_eq!(*first, second, "the same tag");

    let (frames, last) = update(setup, request(&name)).await;
    ended_with(&last, None);
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
    let (_, last) = update(setup, request(&name)).await;
    assert_says(ended_with(&last, None), "already runs the newest");
    assert!(!last.updated.unwrap().changed);
    assert_eq!(inspect(&setup.docker, &name).await.id, new.id);
}

/// A container kept stopped (a game server switched off) is updated but not started; an update
/// of it that fails before anything changed says so, and leaves it stopped.
#[tokio::test]
async fn a_stopped_container_is_updated_and_left_stopped() {
    let Some(scene) = scene(Build::Good).await else {
        return;
    };
    let docker = &scene.setup.docker;
    let (name, old_id) = scene.run("off", ContainerCreateBody::default()).await;
    let stop = StopContainerOptionsBuilder::new().t(0).build();
    docker.stop_container(&name, Some(stop)).await.unwrap();

    let mut missing = request(&name);
    missing.image = Some(scene.setup.registry.image("zt/no-such-build:1"));
    let (_, last) = update(&scene.setup, missing).await;
    let end = ended_with(&last, Some(ErrorCode::UpdateRolledBack));
    assert_says(end, &format!("nothing was changed; {name} is as it was"));
    let same = inspect(docker, &name).await;
    assert_eq!(same.id.as_deref(), Some(old_id.as_str()));
    assert_eq!(same.state.unwrap().running, Some(false));

    scene.push(Build::Good).await;
    let (frames, last) = update(&scene.setup, request(&name)).await;
    ended_with(&last, None);
    assert!(last.updated.unwrap().changed);
    let new = inspect(docker, &name).await;
    assert_ne!(new.id.as_deref(), Some(old_id.as_str()), "not replaced");
    assert_eq!(
        new.state.unwrap().running,
        Some(false),
        "the update started it"
    );
    assert!(!phases(&frames).contains(&UpdatePhase::Health));
    assert_gone(docker, &format!("{name}.zedops-old")).await;
}

#[tokio::test]
async fn a_build_that_exits_at_once_is_rolled_back_with_its_log_lines() {
    let Some(scene) = scene(Build::Good).await else {
        return;
    };
    let (name, old_id) = scene.run("game", ContainerCreateBody::default()).await;
    scene.push(Build::Exits).await;

    let (frames, last) = update(&scene.setup, request(&name)).await;
    let rollback = assert_rolled_back(&last, UpdatePhase::Health, "exited with code 3");
    assert_says(last.end.as_ref().unwrap(), &format!("runs again as {name}"));
    assert!(phases(&frames).contains(&UpdatePhase::Rollback));
    assert!(rollback.restored);
    assert!(
        rollback
            .logs
            .iter()
            .any(|l| l.contains("broken build: missing config")),
        "{:?}",
        rollback.logs
    );
    assert_restored(&scene, &name, &old_id).await;
}

#[tokio::test]
async fn a_build_whose_health_check_fails_is_rolled_back_and_a_healthy_one_is_not() {
    let Some(scene) = scene(Build::Healthy).await else {
        return;
    };
    let (name, old_id) = scene.run("api", ContainerCreateBody::default()).await;
    scene.push(Build::Unhealthy).await;

    let (_, last) = update(&scene.setup, request(&name)).await;
    assert_rolled_back(&last, UpdatePhase::Health, "health check failed");
    assert_restored(&scene, &name, &old_id).await;

    // A build whose own health check passes replaces it (the old image's check is not kept).
    scene.push(Build::Healthy).await;
    let (_, last) = update(&scene.setup, request(&name)).await;
    ended_with(&last, None);
    let new = inspect(&scene.setup.docker, &name).await;
    assert_ne!(new.id.as_deref(), Some(old_id.as_str()));
    let health = new.state.and_then(|s| s.health).and_then(|h| h.status);
    assert_eq!(health, Some(bollard::models::HealthStatusEnum::HEALTHY));
}

#[tokio::test]
async fn a_failed_pull_or_a_wrong_image_changes_nothing() {
    let Some(scene) = scene(Build::Good).await else {
        return;
    };
    let setup = &scene.setup;
    let (name, old_id) = scene.run("pull", ContainerCreateBody::default()).await;
    let missing = setup.registry.image(&format!("{}:no-such-tag", scene.repo));
    let (_, last) = update(
        setup,
        ContainerUpdateRequest {
            image: Some(missing),
            ..request(&name)
        },
    )
    .await;
    let rollback = assert_rolled_back(&last, UpdatePhase::Pull, "");
    assert_eq!(rollback.code, Some(ErrorCode::ImageNotFound));
    assert_restored(&scene, &name, &old_id).await;
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
    let Some(scene) = scene(Build::Good).await else {
        return;
    };
    let setup = &scene.setup;
    let hook = with_hook("/bin/sh -c 'echo server busy; exit 4'", "0");
    let (failing, failing_id) = scene.run("hook-fails", hook).await;
    let hook = with_hook(
        r#"/bin/sh -c "echo 'restart in 1 s' > /warned; cat /warned""#,
        "1",
    );
    let (warned, _) = scene.run("hook-warns", hook).await;
    scene.push(Build::Good).await;

    let (frames, last) = update(setup, request(&failing)).await;
    assert_rolled_back(&last, UpdatePhase::Hook, "");
    let hook = hook_outcome(&frames);
    assert_eq!(
        (hook.exit_code, hook.output.trim()),
        (Some(4), "server busy")
    );
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
        update(setup, request(&warned)).await.1
    };
    let ((frames, last), refused) = tokio::join!(update(setup, request(&warned)), busy);
    let refusal = ended_with(&refused, Some(ErrorCode::RateLimited));
    assert_says(refusal, "being updated already");
    ended_with(&last, None);
    let hook = hook_outcome(&frames);
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
    let Some(scene) = scene(Build::Good).await else {
        return;
    };
    let Scene {
        setup,
        cleanup,
        first,
        ..
    } = &scene;
    let docker = &setup.docker;
    let stop = StopContainerOptionsBuilder::new().t(1).build();
    let rename = |to: String| RenameContainerOptionsBuilder::new().name(&to).build();
    let journal_entry = |name: &str, old_id: &str, new_id: Option<&str>, stage| journal::Entry {
        name: name.to_string(),
        old_id: old_id.to_string(),
        was_running: true,
        image: first.clone(),
        new_id: new_id.map(str::to_string),
        stage,
        started_at: zedops_agent::unix_time::now(),
    };

    // Killed after the rename, stop and create, before the new one was healthy: undone.
    let (name, old_id) = scene.run("undo", ContainerCreateBody::default()).await;
    let entry = journal_entry(&name, &old_id, None, journal::Stage::Replacing);
    journal::write(setup.data.path(), &entry).unwrap();
    docker
        .rename_container(&old_id, rename(format!("{name}.zedops-old")))
        .await
        .unwrap();
    docker
        .stop_container(&old_id, Some(stop.clone()))
        .await
        .unwrap();
    let (_, half) = scene.run("undo", ContainerCreateBody::default()).await;

    // Killed after the new one was healthy, before the old one was removed: finished.
    let (done, done_old) = scene.run("finish", ContainerCreateBody::default()).await;
    docker
        .rename_container(&done_old, rename(format!("{done}.zedops-old")))
        .await
        .unwrap();
    docker.stop_container(&done_old, Some(stop)).await.unwrap();
    let (_, done_new) = scene.run("finish", ContainerCreateBody::default()).await;
    let entry = journal_entry(&done, &done_old, Some(&done_new), journal::Stage::Healthy);
    journal::write(setup.data.path(), &entry).unwrap();

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
    assert_gone(docker, &half).await;
    let now = inspect(docker, &done).await;
    assert_eq!(
        now.id.as_deref(),
        Some(done_new.as_str()),
        "the new container stays"
    );
    assert_gone(docker, &done_old).await;
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
    let Some(mut scene) = scene(Build::Good).await else {
        return;
    };
    let (own, own_id) = scene.run("agent", ContainerCreateBody::default()).await;
    let privileged = scene.cleanup.name("privileged");
    let body = ContainerCreateBody {
        host_config: Some(HostConfig {
            privileged: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    // Created only: this test engine may not be allowed to start a privileged container.
    create_with(&scene.setup.docker, &privileged, &scene.first, body, false).await;
    let (leftover, _) = scene
        .run("web.zedops-old", ContainerCreateBody::default())
        .await;

    let mut client = DockerClient::connect(None).await;
    client.protect_container(&own_id);
    scene.setup.client = client;
    let setup = &scene.setup;
    let (_, last) = update(setup, request(&own)).await;
    ended_with(&last, Some(ErrorCode::SelfProtected));
    let (_, last) = update(setup, request(&privileged)).await;
    assert_says(
        ended_with(&last, Some(ErrorCode::PolicyDenied)),
        "privileged",
    );
    let none = scene.cleanup.name("none");
    let (_, last) = update(setup, request(&none)).await;
    ended_with(&last, Some(ErrorCode::ContainerNotFound));
    let (_, last) = update(setup, request(&leftover)).await;
    assert_says(
        ended_with(&last, Some(ErrorCode::InvalidRequest)),
        "old copy",
    );
    assert_eq!(
        names_with_prefix(&setup.docker, &scene.cleanup.prefix)
            .await
            .len(),
        3,
        "nothing renamed or added"
    );
    assert!(journal_is_empty(setup.data.path()));
}

#[tokio::test]
async fn updates_beyond_the_agents_bound_are_refused() {
    let Some(scene) = scene(Build::Good).await else {
        return;
    };
    let setup = &scene.setup;
    let mut names = vec![];
    for i in 0..=MAX_UPDATES_PER_AGENT {
        // Each holds its slot for 3 s after its hook.
        let (name, _) = scene
            .run(&format!("flood{i}"), with_hook("true", "3"))
            .await;
        names.push(name);
    }
    scene.push(Build::Good).await;
    let (last_name, held) = names.split_last().unwrap();
    let holders = futures_util::future::join_all(held.iter().map(|n| update(setup, request(n))));
    let late = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        update(setup, request(last_name)).await
    };
    let (held, (_, refused)) = tokio::join!(holders, late);
    let end = ended_with(&refused, Some(ErrorCode::RateLimited));
    assert_says(end, &format!("already updating {MAX_UPDATES_PER_AGENT}"));
    // The pulls beyond the agent's two at once waited for a slot instead of failing.
    for (_, last) in held {
        ended_with(&last, None);
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
    let Some(scene) = scene(Build::Good).await else {
        return;
    };
    let Scene { setup, cleanup, .. } = &scene;
    let (name, old_id) = scene.run("killed", ContainerCreateBody::default()).await;
    scene.push(Build::Good).await;
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
    // Gone at the relay first: else the killed process's connection could still count as the
    // agent being online, and the checks below run before the new process has started.
    relay.wait_agent(&agent_name, false).await;
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
