//! End to end, image updates in the app (issue 15) against a real registry on loopback: a
//! container runs build 1 of a tag; a new build is pushed under the same tag; "Check for
//! updates" puts the badge on its row, counts it in the fleet view and raises one native
//! notification; Update moves it to the new build (Docker runs the new image under the same
//! name); a broken build (it exits at once) pushed next is rolled back, and the detail view
//! says so in words with the new container's log line while Docker runs the old container again.

use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, StartContainerOptions,
};
use zedops_testkit::docker::{Cleanup, TEST_IMAGE, TEST_LABEL, names_with_prefix};
use zedops_testkit::registry::TestRegistry;

use crate::harness::{self, require_desktop_parts, require_dunst, wait_notification};
use crate::session::relay_agent_and_app;
use crate::steps::{filter_fleet, shot};

const AGENT: &str = "e2e-updater";
const USER: &str = "e2e-update-admin";
const UI_WAIT: Duration = Duration::from_secs(60);
/// A pull, the new container's 10 s without restarting, and removal, on 2 busy cores.
const UPDATE_WAIT: Duration = Duration::from_secs(150);

/// Runs the `docker` command line; panics with its output when it fails.
pub(crate) fn docker_cli(args: &[&str]) -> String {
    let out = std::process::Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("docker {args:?}: {e} (the docker command line is needed)"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "docker {args:?} failed: {text}");
    text
}

/// Builds an image from the test image with a file of its own (so its own id and digest) whose
/// command sleeps, or (`broken`) prints a line and exits with 3 at once; pushes it as
/// `repo:1` and removes it locally, so an update must pull it. `n` tells builds apart.
pub(crate) fn push_build(
    registry: &TestRegistry,
    cleanup: &Cleanup,
    n: u32,
    broken: bool,
) -> String {
    let name = cleanup.name(&format!("build-{n}"));
    let repo = format!("zedops/{}", cleanup.prefix);
    docker_cli(&[
        "run",
        "--name",
        &name,
        // Kept by the commit: busybox as PID 1 ignores SIGTERM, so stop at once.
        "--stop-signal",
        "SIGKILL",
        "--label",
        &format!("{TEST_LABEL}=1"),
        TEST_IMAGE,
        "/bin/sh",
        "-c",
        &format!("echo {name} > /build-id"),
    ]);
    let cmd = if broken {
        r#"CMD ["/bin/sh", "-c", "echo 'broken build: missing config' >&2; exit 3"]"#
    } else {
        r#"CMD ["sleep", "100000"]"#
    };
    let reference = format!("{}:1", registry.image(&repo));
    docker_cli(&["commit", "--change", cmd, &name, &reference]);
    docker_cli(&["rm", "-f", &name]);
    docker_cli(&["push", "--quiet", &reference]);
    docker_cli(&["rmi", &reference]);
    reference
}

/// The container's image id and whether it runs.
pub(crate) async fn image_of(docker: &Docker, name: &str) -> (String, bool) {
    seen_image(docker, name)
        .await
        .unwrap_or_else(|| panic!("Docker has no container {name}"))
}

/// The same, or `None` while no container has the name (in the middle of an update).
async fn seen_image(docker: &Docker, name: &str) -> Option<(String, bool)> {
    let inspected = docker
        .inspect_container(name, None::<InspectContainerOptions>)
        .await
        .ok()?;
    let running = inspected.state.and_then(|s| s.running).unwrap_or(false);
    Some((inspected.image.unwrap_or_default(), running))
}

pub async fn badge_update_and_rollback() {
    let (driver_bin, app_bin) = require_desktop_parts();
    require_dunst();
    let docker = harness::docker().await;
    let registry = harness::registry().await;
    let mut cleanup = Cleanup::new("ze2e-upd");
    let name = cleanup.name("game");

    // Build 1, pulled, runs as the container.
    let reference = push_build(&registry, &cleanup, 1, false);
    docker_cli(&["pull", "--quiet", &reference]);
    let body = ContainerCreateBody {
        image: Some(reference.clone()),
        labels: Some([(TEST_LABEL.to_string(), "1".to_string())].into()),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::new().name(&name).build();
    docker.create_container(Some(options), body).await.unwrap();
    docker
        .start_container(&name, None::<StartContainerOptions>)
        .await
        .unwrap();
    let (build_1, running) = image_of(&docker, &name).await;
    assert!(running, "build 1 runs");
    cleanup.images.push(build_1.clone());
    // Build 2 under the same tag.
    push_build(&registry, &cleanup, 2, false);

    let (_relay, _agent, app) = relay_agent_and_app(&driver_bin, &app_bin, USER, AGENT).await;
    let wd = &app.wd;
    filter_fleet(wd, &name).await;
    let row = format!(r#"[data-testid="container-row"][data-container-name="{name}"]"#);
    let badge = format!(r#"{row} [data-testid="update-badge"]"#);
    wd.wait_for(&format!(r#"{row}[data-state="running"]"#), UI_WAIT)
        .await;
    assert!(
        wd.find_all(&badge).await.is_empty(),
        "no badge before a check"
    );

    // Check: the badge, the count, and one notification naming the container.
    wd.click_when_shown(r#"[data-testid="check-updates"]"#, UI_WAIT)
        .await;
    wd.wait_for(&badge, UI_WAIT).await;
    let count = wd
        .wait_for(
            r#"[data-testid="fleet-update-count"]:not([data-count="0"])"#,
            UI_WAIT,
        )
        .await;
    assert!(
        wd.text(&count).await.ends_with("with an update"),
        "the fleet view counts the updates"
    );
    let history = wait_notification(&name, UI_WAIT).await;
    assert!(
        history.contains(&format!("on {AGENT}")),
        "the notification names the agent: {history}"
    );
    shot(wd, "update-badge.png").await;

    // Update from the row: Docker runs the new build under the same name.
    wd.click_when_shown(&format!(r#"{row} [data-testid="action-update"]"#), UI_WAIT)
        .await;
    let deadline = Instant::now() + UPDATE_WAIT;
    let mut pictured = false;
    let build_2 = loop {
        if !pictured
            && !wd
                .find_all(r#"[data-testid="update-step"]"#)
                .await
                .is_empty()
        {
            pictured = true;
            shot(wd, "update-progress.png").await;
        }
        let (image, running) = seen_image(&docker, &name).await.unwrap_or_default();
        if image != build_1
            && running
            && names_with_prefix(&docker, &format!("{name}.zedops-old"))
                .await
                .is_empty()
            && wd
                .find_all(r#"[data-testid="update-step"]"#)
                .await
                .is_empty()
        {
            break image;
        }
        assert!(
            Instant::now() < deadline,
            "the update did not finish: Docker says {name} runs {image} (running: {running})"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    cleanup.images.push(build_2.clone());
    // Its badge goes (the agent checked again after the update).
    wd.wait_gone(&badge, UI_WAIT).await;

    // A broken build: Update from the detail is rolled back; the reason and its log line.
    push_build(&registry, &cleanup, 3, true);
    wd.click_when_shown(r#"[data-testid="check-updates"]"#, UI_WAIT)
        .await;
    wd.wait_for(&badge, UI_WAIT).await;
    wd.click_when_shown(&format!(r#"{row} [data-testid="open-container"]"#), UI_WAIT)
        .await;
    wd.click_when_shown(r#"[data-testid="detail-update"]"#, UI_WAIT)
        .await;
    let message = wd
        .wait_for(r#"[data-testid="update-rolled-back"]"#, UPDATE_WAIT)
        .await;
    let text = wd.text(&message).await;
    assert!(
        text.contains(&format!("The update of {name} failed"))
            && text.contains(&format!("{name} runs as before")),
        "the rollback in plain words: {text}"
    );
    let logs = wd
        .text_when_shown(r#"[data-testid="update-logs"]"#, UI_WAIT)
        .await;
    assert!(
        logs.contains("broken build: missing config"),
        "the new container's log line: {logs}"
    );
    shot(wd, "update-rolled-back.png").await;
    assert_eq!(
        image_of(&docker, &name).await,
        (build_2, true),
        "the old container runs again under its name"
    );
    assert_eq!(
        names_with_prefix(&docker, &name).await,
        std::slice::from_ref(&name),
        "nothing left behind"
    );
    app.close().await;
    // The broken build the agent pulled under the tag (the others are removed by id).
    let _ = std::process::Command::new("docker")
        .args(["rmi", "-f", &reference])
        .output();
    drop(cleanup);
}
