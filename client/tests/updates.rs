//! Update available end to end: a real relay, a real agent on the real engine and images from a
//! real registry on loopback. An operator's `zedops updates --check` finds a new build pushed
//! under a container's tag, `zedops updates` then lists it (a viewer may list, not check), and
//! the state reaches a watching client as a push; a flooding agent's oversize state is refused
//! and the relay keeps the last good one. Under `CI=true` a missing engine or registry fails.

mod support;

use std::time::Duration;

use bollard::Docker;
use bollard::models::ContainerCreateBody;
use serde_json::{Value, json};
use support::{Zed, json, text};
use zedops_client::ClientEvent;
use zedops_protocol::{MAX_UPDATE_ENTRIES, Role};
use zedops_testkit::docker::{Cleanup, create_named, labelled, pull};
use zedops_testkit::registry::{TestRegistry, docker_and_registry};
use zedops_testkit::wire::{FakeAgent, next_text};
use zedops_testkit::{TestAgent, TestRelay};

/// Containers and images made by one test, removed (forcibly) on drop, even when it fails.
/// The tests that run containers take turns: an agent checks every container on the engine, so
/// one test's new build would show up in the other's list, and `update --all` would update it.
static ENGINE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A running container from `image` that keeps serving on its own (`sleep`), with `label` as
/// its `zedops.update`.
async fn run(docker: &Docker, name: &str, image: &str, label: Option<&str>) {
    let body = ContainerCreateBody {
        cmd: Some(vec!["sleep".into(), "300".into()]),
        ..labelled(image, label)
    };
    create_named(docker, name, body, true).await;
}

/// A test's turn on the engine (see [`ENGINE`]) with the engine, a registry on loopback, a
/// suffix for its names and what it makes there.
struct Stage {
    // Dropped first: the containers go before the registry, which then removes the images
    // pulled from it (one a container still uses would stay on the engine).
    cleanup: Cleanup,
    docker: Docker,
    registry: TestRegistry,
    suffix: String,
    _engine: tokio::sync::MutexGuard<'static, ()>,
}

impl Stage {
    /// Pushes the first build of `zt/{name}-{suffix}` (see [`push_build`]) and pulls it, to be
    /// removed at the end: the repository and the image reference.
    async fn first_build(&mut self, name: &str) -> (String, String) {
        let repo = format!("zt/{name}-{}", self.suffix);
        let reference = push_build(&self.docker, &self.registry, &repo, false).await;
        self.cleanup
            .images
            .push(pull(&self.docker, &reference).await);
        (repo, reference)
    }

    /// A relay with a real agent `{name}-{suffix}` online on this engine, and the CLI signed in
    /// there as an operator: the relay and agent (kept for the test), the agent's name, the CLI.
    async fn operator_cli(&self, name: &str) -> (TestRelay, TestAgent, String, Zed) {
        let relay = TestRelay::builder().start().await;
        let agent_name = format!("{name}-{}", self.suffix);
        let agent = TestAgent::builder(&relay).name(&agent_name).online().await;
        let operator = relay.login("otto", Role::Operator).await;
        let zed = Zed::new(&relay.url, &operator);
        (relay, agent, agent_name, zed)
    }
}

/// Waits for the turn, then the engine and registry; None when either is missing outside CI.
/// The turn (`_engine`, the last field) is released when the stage drops, after its cleanup.
async fn stage() -> Option<Stage> {
    let engine = ENGINE.lock().await;
    let (docker, registry) = docker_and_registry().await?;
    Some(Stage {
        cleanup: Cleanup::new("zt"),
        docker,
        registry,
        suffix: format!("{:08x}", rand::random::<u32>()),
        _engine: engine,
    })
}

#[tokio::test]
async fn a_check_finds_a_new_build_and_everyone_can_list_it() {
    let Some(mut stage) = stage().await else {
        return;
    };
    let (docker, suffix) = (stage.docker.clone(), stage.suffix.clone());
    let repo = format!("zt/updates-{suffix}");
    let reference = stage
        .registry
        .push_unique_image(&docker, &repo, "1", 1024)
        .await;
    stage.cleanup.images.push(pull(&docker, &reference).await);
    let container = format!("zupd-{suffix}");
    stage.cleanup.containers.push(container.clone());
    run(&docker, &container, &reference, None).await;

    let relay = TestRelay::builder().start().await;
    let agent_name = format!("upd-{suffix}");
    let _agent = TestAgent::builder(&relay).name(&agent_name).online().await;
    let operator = relay.login("otto", Role::Operator).await;
    let viewer = relay.login("vera", Role::Viewer).await;
    let (as_operator, as_viewer) = (
        Zed::new(&relay.url, &operator),
        Zed::new(&relay.url, &viewer),
    );
    let watcher = relay.client_with(&viewer).await;
    watcher.subscribe(None).await.unwrap();
    let mut events = watcher.events();

    // Never checked: nothing listed, and the CLI says how to check.
    let out = as_viewer.run(&["updates", "--agent", &agent_name]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("no container has an image update"));
    assert!(
        text(&out.stderr).contains("has not checked yet"),
        "{}",
        text(&out.stderr)
    );

    // A new build under the same tag; a viewer may not ask for a check, an operator may.
    stage
        .registry
        .push_unique_image(&docker, &repo, "1", 1024)
        .await;
    let served = stage.registry.served_digest(&docker, &reference).await;
    let out = as_viewer
        .run(&["updates", "--agent", &agent_name, "--check"])
        .await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("FORBIDDEN"),
        "{}",
        text(&out.stderr)
    );
    let out = as_operator.run(&["updates", "--check"]).await;
    assert!(!out.status.success(), "a check names its agents");
    assert!(text(&out.stderr).contains("--all"), "{}", text(&out.stderr));
    let checked = json(
        &as_operator
            .run(&["updates", "--agent", &agent_name, "--check", "--json"])
            .await,
    );
    let entry = |answer: &Value| -> Option<Value> {
        answer["agents"][0]["state"]["updates"]
            .as_array()?
            .iter()
            .find(|u| u["container"] == container.as_str())
            .cloned()
    };
    let update = entry(&checked).unwrap_or_else(|| panic!("{checked}"));
    assert_eq!(update["image"], reference.as_str());
    assert_eq!(update["newDigest"], served.as_str());
    assert_ne!(update["currentDigest"], served.as_str());
    assert_eq!(checked["agents"][0]["name"], agent_name.as_str());

    // Everyone lists it, as JSON and as a table with short digests.
    let listed = json(&as_viewer.run(&["updates", "--json"]).await);
    assert_eq!(entry(&listed), Some(update.clone()), "{listed}");
    let out = as_viewer.run(&["updates", "--agent", &agent_name]).await;
    let table = text(&out.stdout);
    let short = &served["sha256:".len()..][..12];
    assert!(
        table.contains(&container) && table.contains(short),
        "{table}"
    );
    assert!(table.contains("AGENT") && table.contains("NEW"), "{table}");

    // The watcher got the fresh state as a push.
    let pushed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(ClientEvent::Updates(state)) = events.recv().await
                && state.updates.iter().any(|u| u.container == container)
            {
                return state;
            }
        }
    })
    .await
    .expect("an updates.state push within 10 s");
    assert!(pushed.updates.iter().any(|u| u.new_digest == served));
    watcher.close().await;

    // The relay restarts and forgets; the agent pushes its kept state again when it reconnects.
    let relay = relay.stop().await.builder().start().await;
    let viewer = relay.client_with(&viewer).await;
    let again = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Ok(answer) = viewer.updates(Some(&agent_name)).await
                && answer.agents[0]
                    .state
                    .updates
                    .iter()
                    .any(|u| u.container == container)
            {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the agent's state again within 60 s of the relay's restart");
    assert!(again.agents[0].online);

    // Updated: no longer listed, without waiting for the next check.
    let as_operator = Zed::new(&relay.url, &operator);
    let out = as_operator
        .run(&[
            "update",
            "--agent",
            &agent_name,
            &container,
            "--stable",
            "1s",
        ])
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let gone = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let answer = viewer.updates(Some(&agent_name)).await.unwrap();
            if !answer.agents[0]
                .state
                .updates
                .iter()
                .any(|u| u.container == container)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "still listed as having an update after it");
    viewer.close().await;
}

fn entry(container: &str) -> Value {
    json!({"container": container, "image": "127.0.0.1:5000/zt/app:1",
        "currentDigest": format!("sha256:{}", "a".repeat(64)),
        "newDigest": format!("sha256:{}", "b".repeat(64)), "foundAt": 1})
}

fn state(updates: Vec<Value>) -> Value {
    json!({"subject": "updates.state", "data": {"checkedAt": 2, "updates": updates}})
}

#[tokio::test]
async fn an_agent_flooding_its_update_state_is_refused_and_the_last_good_one_kept() {
    let relay = TestRelay::builder().start().await;
    let mut agent = FakeAgent::enrol(&relay, "flooder").await.unwrap();
    let viewer = relay.client("vera", Role::Viewer).await;

    agent.send(state(vec![entry("good")])).await;
    let listed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let answer = viewer.updates(Some("flooder")).await.unwrap();
            if !answer.agents[0].state.updates.is_empty() {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the good state is kept");
    assert_eq!(listed.agents[0].state.updates[0].container, "good");
    // The agent id is the connection's, whatever the payload said.
    assert_eq!(listed.agents[0].state.agent_id, agent.id);

    // One entry over the bound, and an over-long field: each refused with a clear error.
    let flood: Vec<Value> = (0..=MAX_UPDATE_ENTRIES)
        .map(|i| entry(&format!("c{i}")))
        .collect();
    agent.send(state(flood)).await;
    let refused = next_text(&mut agent.ws).await.expect("an error frame");
    assert_eq!(refused["subject"], "error", "{refused}");
    assert_eq!(refused["data"]["errorCode"], "INVALID_REQUEST");
    let reason = refused["data"]["error"].as_str().unwrap();
    assert!(reason.contains("at most 1000"), "{reason}");
    agent.send(state(vec![entry(&"x".repeat(129))])).await;
    let refused = next_text(&mut agent.ws).await.expect("an error frame");
    assert!(
        refused["data"]["error"]
            .as_str()
            .unwrap()
            .contains("container"),
        "{refused}"
    );

    // Still the last good state.
    let answer = viewer.updates(None).await.unwrap();
    let flooder = answer.agents.iter().find(|a| a.name == "flooder").unwrap();
    assert_eq!(flooder.state.updates.len(), 1);
    assert_eq!(flooder.state.updates[0].container, "good");
    viewer.close().await;
}

/// Pushes a new build of the test image as `repo:1` (its own image id each time) and deletes
/// it locally: it sleeps, or with `exits` prints `broken build` and exits with code 3 at once.
async fn push_build(docker: &Docker, registry: &TestRegistry, repo: &str, exits: bool) -> String {
    let cmd: Vec<String> = if exits {
        vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo 'broken build' >&2; exit 3".into(),
        ]
    } else {
        vec!["sleep".into(), "100000".into()]
    };
    let config = bollard::models::ContainerConfig {
        cmd: Some(cmd),
        // busybox as PID 1 ignores SIGTERM: stop at once.
        stop_signal: Some("SIGKILL".into()),
        ..Default::default()
    };
    registry.push_build(docker, repo, "1", config).await
}

/// A container from `image` with the image's own command, labelled `zedops.update=label`.
async fn run_default(docker: &Docker, name: &str, image: &str, label: Option<&str>) {
    create_named(docker, name, labelled(image, label), true).await;
}

async fn image_of(docker: &Docker, name: &str) -> (String, bool) {
    let inspected = docker
        .inspect_container(
            name,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .unwrap();
    let running = inspected.state.and_then(|s| s.running).unwrap_or(false);
    (inspected.image.unwrap(), running)
}

#[tokio::test]
async fn a_fleet_update_stops_at_a_canary_that_rolls_back_and_skips_never() {
    let Some(mut stage) = stage().await else {
        return;
    };
    let (repo, reference) = stage.first_build("fleet").await;
    let (docker, suffix) = (stage.docker.clone(), stage.suffix.clone());
    // Sorted by name: the canary first, then the other; the third is never updated.
    let (canary, other, never) = (
        format!("zfa-{suffix}"),
        format!("zfb-{suffix}"),
        format!("zfc-{suffix}"),
    );
    stage
        .cleanup
        .containers
        .extend([canary.clone(), other.clone(), never.clone()]);
    run_default(&docker, &canary, &reference, None).await;
    run_default(&docker, &other, &reference, None).await;
    run_default(&docker, &never, &reference, Some("never")).await;
    let (old_image, _) = image_of(&docker, &canary).await;

    let (_relay, _agent, agent_name, zed) = stage.operator_cli("fleet").await;
    let fleet = [
        "update",
        "--all",
        "--agent",
        &agent_name,
        "--canary",
        "1",
        "--parallel",
        "2",
        "--stable",
        "2s",
        "--health-timeout",
        "30s",
    ];

    // A broken build under the same tag: the canary rolls back, the other is not touched.
    push_build(&docker, &stage.registry, &repo, true).await;
    let out = zed
        .run(&["updates", "--agent", &agent_name, "--check", "--json"])
        .await;
    let checked = json(&out);
    assert_eq!(
        checked["agents"][0]["state"]["updates"]
            .as_array()
            .unwrap()
            .len(),
        3,
        "{checked}"
    );
    let out = zed.run(&fleet).await;
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("{agent_name}/{canary}: updating (canary)")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{agent_name}/{canary}: ROLLED BACK")),
        "{stderr}"
    );
    assert!(
        stderr.contains("broken build"),
        "the new container's log lines: {stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{agent_name}/{never}: skipped: labelled zedops.update=never"
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains(&format!("{agent_name}/{other}: updating")),
        "{stderr}"
    );
    assert!(
        stderr.contains("summary: 0 updated, 1 rolled back, 0 failed, 2 skipped"),
        "{stderr}"
    );
    assert!(stderr.contains("error: UPDATE_ROLLED_BACK"), "{stderr}");
    for name in [&canary, &other, &never] {
        assert_eq!(
            image_of(&docker, name).await,
            (old_image.clone(), true),
            "{name}"
        );
    }

    // A good build: both updated, `never` still left alone, exit 0.
    push_build(&docker, &stage.registry, &repo, false).await;
    json(
        &zed.run(&["updates", "--agent", &agent_name, "--check", "--json"])
            .await,
    );
    let out = zed.run(&fleet).await;
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("summary: 2 updated, 0 rolled back, 0 failed, 1 skipped"),
        "{stderr}"
    );
    // The canary pulls the new build and says how far the pull has come.
    assert!(
        stderr.contains(&format!("{agent_name}/{canary}: pulling {reference}: ")),
        "the canary's pull progress: {stderr}"
    );
    for name in [&canary, &other] {
        let (image, running) = image_of(&docker, name).await;
        assert!(running && image != old_image, "{name}");
        stage.cleanup.images.push(image);
    }
    assert_eq!(image_of(&docker, &never).await, (old_image, true));
    // The relay's list was refreshed: only `never` still has an update.
    let listed = json(
        &zed.run(&["updates", "--agent", &agent_name, "--json"])
            .await,
    );
    let left: Vec<&str> = listed["agents"][0]["state"]["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["container"].as_str().unwrap())
        .collect();
    assert_eq!(left, [never.as_str()], "{listed}");
}

#[tokio::test]
async fn a_fleet_update_takes_a_pinned_container_only_when_included() {
    let Some(mut stage) = stage().await else {
        return;
    };
    let (repo, reference) = stage.first_build("pinned").await;
    let (docker, suffix) = (stage.docker.clone(), stage.suffix.clone());
    let pinned = format!("zfp-{suffix}");
    stage.cleanup.containers.push(pinned.clone());
    run_default(&docker, &pinned, &reference, Some("pinned")).await;
    let (old_image, _) = image_of(&docker, &pinned).await;

    let (_relay, _agent, agent_name, zed) = stage.operator_cli("pinned").await;
    push_build(&docker, &stage.registry, &repo, false).await;
    json(
        &zed.run(&["updates", "--agent", &agent_name, "--check", "--json"])
            .await,
    );
    let fleet = ["update", "--all", "--agent", &agent_name, "--stable", "1s"];

    // Not named: skipped with how to update it, nothing touched.
    let out = zed.run(&fleet).await;
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{agent_name}/{pinned}: skipped: labelled zedops.update=pinned"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("summary: 0 updated, 0 rolled back, 0 failed, 1 skipped"),
        "{stderr}"
    );
    assert_eq!(image_of(&docker, &pinned).await, (old_image.clone(), true));

    // Named with --include (as AGENT/CONTAINER): updated.
    let include = format!("{agent_name}/{pinned}");
    let out = zed
        .run(&[&fleet[..], &["--include", &include]].concat())
        .await;
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("summary: 1 updated, 0 rolled back, 0 failed, 0 skipped"),
        "{stderr}"
    );
    let (image, running) = image_of(&docker, &pinned).await;
    assert!(
        running && image != old_image,
        "the pinned container runs the new build"
    );
    stage.cleanup.images.push(image);
}
