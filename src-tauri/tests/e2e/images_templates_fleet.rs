//! End to end, in one app session against a real relay, agent and loopback registry: the Images
//! view pulls an image through a throttling proxy (so the pull lasts seconds and its progress bar
//! is recorded moving), lists it and removes it after a confirmation (gone from `docker images`);
//! the template editor's Form makes a template (name, image, a variable with a default, a port),
//! a mistake is shown beside its field and nothing is saved, then it is saved and read back from
//! the relay exactly as typed; and "Update all" moves two containers of a rebuilt tag to the new
//! build with each container's progress live and a summary at the end, then, given a broken
//! build, stops at the canary's rollback with the other container not started.
//!
//! What the page shows in passing (a progress value, a row's state) is recorded in the page
//! (`observe.rs`), so a state that lasts a moment is seen for certain, not by luck of polling.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HealthConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, StartContainerOptions};
use serde_json::json;
use zedops_protocol::{Role, TemplateVariable};
use zedops_testkit::TestRelay;
use zedops_testkit::docker::{Cleanup, TEST_LABEL, names_with_prefix};
use zedops_testkit::registry::TestRegistry;

use crate::harness::{self, require_desktop_parts, require_dunst, run, unique_suffix};
use crate::observe::{record, recorded, throttling_proxy};
use crate::session::relay_agent_and_app;
use crate::steps::{fill_form, fill_in, progress_bar, select, shot};
use crate::updates::{docker_cli, image_of, push_build};
use crate::webdriver::WebDriver;

const AGENT: &str = "e2e-operator";
const USER: &str = "e2e-ops-admin";
const UI_WAIT: Duration = Duration::from_secs(60);
/// A throttled pull, or two updates one after the other, on 2 busy cores.
const LONG_WAIT: Duration = Duration::from_secs(180);
/// Random bytes in the pulled image's own layer (incompressible: gzip keeps it this big).
const LAYER: usize = 8 * 1024 * 1024;
/// What the proxy passes from the registry to Docker per second: the pull lasts about 3 s.
const RATE: u64 = 3 * 1024 * 1024;

/// The texts of the toasts shown now.
async fn toasts(wd: &WebDriver) -> Vec<String> {
    let mut texts = vec![];
    for toast in wd.find_all(r#"[data-testid="toast"]"#).await {
        texts.push(wd.text(&toast).await);
    }
    texts
}

/// Waits until a toast says `needle`.
async fn wait_toast(wd: &WebDriver, needle: &str) {
    let deadline = Instant::now() + UI_WAIT;
    loop {
        let shown = toasts(wd).await;
        if shown.iter().any(|t| t.contains(needle)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no toast {needle:?}; shown: {shown:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The image references `docker images` lists.
fn docker_images() -> Vec<String> {
    docker_cli(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .lines()
        .map(str::to_string)
        .collect()
}

pub async fn images_template_form_and_update_all() {
    let (driver_bin, app_bin) = require_desktop_parts();
    require_dunst();
    let docker = harness::docker().await;
    let registry = harness::registry().await;
    let mut cleanup = Cleanup::new("ze2e-ops");

    let (relay, _agent, app) = relay_agent_and_app(&driver_bin, &app_bin, USER, AGENT).await;
    let wd = &app.wd;

    let started = Instant::now();
    pull_and_remove_an_image(wd, &docker, &registry, &mut cleanup).await;
    eprintln!(
        "e2e step Images (pull, list, remove): {:?}",
        started.elapsed()
    );

    let started = Instant::now();
    template_through_the_form(wd, &relay).await;
    eprintln!("e2e step template Form: {:?}", started.elapsed());

    let started = Instant::now();
    update_all(wd, &docker, &registry, &mut cleanup).await;
    eprintln!("e2e step Update all: {:?}", started.elapsed());

    app.close().await;
    drop(cleanup);
}

/// Presses Start in the fleet update dialog, which offers to update both containers.
async fn start_update_of_both(wd: &WebDriver) {
    let start = wd
        .wait_for(r#"[data-testid="fleet-update-start"]"#, UI_WAIT)
        .await;
    assert_eq!(wd.text(&start).await, "Update 2 containers");
    wd.click(&start).await;
}

/// Images view: Pull with the progress bar moving, the list showing the image, Remove after
/// the confirmation, and Docker no longer has it.
async fn pull_and_remove_an_image(
    wd: &WebDriver,
    docker: &Docker,
    registry: &TestRegistry,
    cleanup: &mut Cleanup,
) {
    let repo = format!("zedops/{}-pull", cleanup.prefix);
    let pushed = registry.push_unique_image(docker, &repo, "1", LAYER).await;
    let (proxy, through) = throttling_proxy(registry.port(), RATE).await;
    // The same repository through the proxy (the registry does not care about the host name).
    let image = pushed.replace(&registry.host(), &format!("127.0.0.1:{proxy}"));
    cleanup.images.push(image.clone());
    assert!(
        !docker_images().contains(&image),
        "{image} is not on the engine before the pull"
    );

    wd.click(
        &wd.find_in(
            &wd.wait_for(
                &format!(r#"[data-testid="agent-row"][data-agent-name="{AGENT}"]"#),
                UI_WAIT,
            )
            .await,
            "td",
        )
        .await,
    )
    .await;
    wd.click_when_shown(r#"[data-testid="open-images"]"#, UI_WAIT)
        .await;
    wd.wait_for(r#"[data-testid="images-view"] table"#, UI_WAIT)
        .await;
    record(
        wd,
        "pull",
        r#"[data-testid="image-pull-progress"]"#,
        &["data-percent"],
    )
    .await;
    wd.type_when_shown(r#"[data-testid="image-pull-ref"]"#, &image, UI_WAIT)
        .await;
    wd.click_when_shown(r#"[data-testid="image-pull"]"#, UI_WAIT)
        .await;
    // A picture of the bar while it moves; the recording, not this, is what is checked.
    let row = format!(r#"[data-testid="image-row"][data-image="{image}"]"#);
    let deadline = Instant::now() + LONG_WAIT;
    let mut pictured = false;
    while wd.find_all(&row).await.is_empty() {
        if !pictured
            && !wd
                .find_all(r#"[data-testid="image-pull-progress"]:not([data-percent=""])"#)
                .await
                .is_empty()
        {
            pictured = true;
            shot(wd, "image-pull-progress.png").await;
        }
        assert!(
            Instant::now() < deadline,
            "{image} was not listed after the pull"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if let Some(err) = wd
        .find_all(r#"[data-testid="image-pull-error"]"#)
        .await
        .first()
    {
        panic!("the pull failed: {}", wd.text(err).await);
    }
    // Every state of the progress bar the page drew: it moved through the middle.
    let (percents, texts) = progress_bar(&recorded(wd, "pull").await);
    eprintln!(
        "e2e images: the progress bar showed {percents:?} ({} bytes through the proxy)",
        through.load(Ordering::Relaxed)
    );
    assert!(
        percents.iter().any(|p| (1..100).contains(p)),
        "the progress bar showed a pull part-way: {percents:?}"
    );
    assert!(
        percents.windows(2).any(|w| w[1] > w[0]),
        "the progress bar moved forward: {percents:?}"
    );
    // Docker counts a layer again while it unpacks it; the bar must not fall back to the start.
    assert!(
        percents.windows(2).all(|w| w[1] >= w[0]),
        "the progress bar never moves back: {percents:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains(&format!("Pulling {image}: "))
                && t.contains(" of ")
                && t.contains("layers")),
        "the bytes are said under the bar: {texts:?}"
    );
    assert!(
        wd.find_all(r#"[data-testid="image-pull-progress"]"#)
            .await
            .is_empty(),
        "the bar goes once the pull is done"
    );
    assert!(
        docker_images().contains(&image),
        "Docker has {image} after the pull"
    );
    wait_toast(wd, &format!("Pulled {image} onto {AGENT}")).await;

    // Remove, confirmed in a dialog that names the image and the server.
    wd.click(
        &wd.find_in(
            &wd.wait_for(&row, UI_WAIT).await,
            r#"[data-testid="image-remove"]"#,
        )
        .await,
    )
    .await;
    let dialog = wd
        .wait_for(r#"[data-testid="image-remove-dialog"]"#, UI_WAIT)
        .await;
    let asked = wd.text(&dialog).await;
    assert!(
        asked.contains(&format!("Remove {image} from {AGENT}?")),
        "the confirmation names image and server: {asked}"
    );
    assert!(
        docker_images().contains(&image),
        "nothing is removed before the confirmation"
    );
    shot(wd, "image-remove.png").await;
    wd.click_when_shown(r#"[data-testid="image-remove-confirm"]"#, UI_WAIT)
        .await;
    wd.wait_gone(r#"[data-testid="image-remove-dialog"]"#, UI_WAIT)
        .await;
    wd.wait_gone(&row, UI_WAIT).await;
    assert!(
        !docker_images().contains(&image),
        "docker images no longer lists {image}"
    );
}

/// The template editor's Form: a port out of range is said beside the port and nothing is
/// saved; corrected, the template is saved and the relay has exactly what was typed.
async fn template_through_the_form(wd: &WebDriver, relay: &TestRelay) {
    let admin = relay.client("e2e-ops-reader", Role::Admin).await;
    let name = format!("e2e-form-{}", unique_suffix());
    let image = "127.0.0.1:5000/zedops/game-server:2.1";

    wd.click_when_shown(r#"[data-testid="nav-templates"]"#, UI_WAIT)
        .await;
    wd.click_when_shown(r#"[data-testid="template-new"]"#, UI_WAIT)
        .await;
    wd.click_when_shown(r#"[data-testid="template-as-form"]"#, UI_WAIT)
        .await;
    wd.wait_for(r#"[data-testid="template-form"]"#, UI_WAIT)
        .await;
    // The new template's example fields, replaced by what a person types.
    fill_form(
        wd,
        &[
            ("tf-name", name.as_str()),
            ("tf-image", image),
            ("tf-description", "A game server made in the form"),
        ],
    )
    .await;
    let variables = wd.find_all(r#"[data-testid="tf-variable"]"#).await;
    assert_eq!(variables.len(), 1, "the example has one variable");
    fill_in(
        wd,
        &variables[0],
        &[
            ("tf-var-name", "GAME_PORT"),
            ("tf-var-description", "UDP port on the server"),
            ("tf-var-default", "16261"),
        ],
    )
    .await;
    let ports = wd.find_all(r#"[data-testid="tf-port"]"#).await;
    assert_eq!(ports.len(), 1, "the example has one port");
    let port = &ports[0];
    // The mistake: no port is 70000.
    fill_in(
        wd,
        port,
        &[
            ("tf-port-container", "70000"),
            ("tf-port-host", "${GAME_PORT}"),
        ],
    )
    .await;
    select(wd, r#"[data-testid="tf-port-protocol"]"#, "udp").await;

    let error = wd
        .wait_for(r#".field-error[data-field="ports.0.container"]"#, UI_WAIT)
        .await;
    assert_eq!(wd.text(&error).await, "A port is 1-65535 (or ${VARIABLE}).");
    // Beside its field: the line right after the port's row.
    let beside = wd
        .execute(
            r#"const e = document.querySelector('.field-error[data-field="ports.0.container"]');
               return e.previousElementSibling?.dataset.testid ?? null;"#,
            json!([]),
        )
        .await;
    assert_eq!(
        beside, "tf-port",
        "the mistake is said under the port's row"
    );
    let others = wd.find_all(".field-error").await.len();
    assert_eq!(others, 1, "only the port is wrong");
    let save = wd
        .wait_for(r#"[data-testid="template-save"]"#, UI_WAIT)
        .await;
    assert!(
        !wd.enabled(&save).await,
        "Save waits until the port is fixed"
    );
    // A click on the disabled button sends nothing.
    wd.execute(
        r#"document.querySelector('[data-testid="template-save"]').click();"#,
        json!([]),
    )
    .await;
    shot(wd, "template-form-mistake.png").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        admin.template(&name).await.is_err(),
        "nothing was saved while the port is wrong"
    );

    let port_field = wd
        .find_in(port, r#"[data-testid="tf-port-container"]"#)
        .await;
    wd.type_into(&port_field, "16261").await;
    wd.wait_gone(".field-error", UI_WAIT).await;
    assert!(wd.enabled(&save).await, "Save is enabled once it is right");
    wd.click(&save).await;
    let saved = format!("Saved template {name} (version 1)");
    let deadline = Instant::now() + UI_WAIT;
    while !toasts(wd).await.iter().any(|t| t.contains(&saved)) {
        if let Some(err) = wd
            .find_all(r#"[data-testid="template-error"]"#)
            .await
            .first()
        {
            panic!("the relay refused the template: {}", wd.text(err).await);
        }
        assert!(Instant::now() < deadline, "no toast {saved:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wd.wait_for(
        &format!(r#"[data-testid="template-row"][data-template="{name}"]"#),
        UI_WAIT,
    )
    .await;
    shot(wd, "template-saved.png").await;

    // The relay has exactly what was typed.
    let stored = admin.template(&name).await.expect("the relay has it");
    assert_eq!(stored.version, 1);
    assert_eq!(stored.created_by.as_deref(), Some(USER));
    let t = stored.template;
    assert_eq!(t.name, name);
    assert_eq!(t.description, "A game server made in the form");
    assert_eq!(
        t.variables,
        [(
            "GAME_PORT".to_string(),
            TemplateVariable {
                description: "UDP port on the server".into(),
                default: Some("16261".into()),
                required: false,
                secret: false,
            }
        )]
        .into(),
    );
    assert_eq!(
        t.spec,
        json!({
            "image": image,
            "ports": [{"container": 16261, "host": "${GAME_PORT}", "protocol": "udp"}],
            "restart": "unless-stopped",
        }),
        "the spec as typed (restart is the form's default)"
    );
    admin.close().await;
}

/// Two containers of one tag; a new build pushed under it; Check for updates counts 2; "Update
/// all" shows each container's progress live and a summary; Docker runs both on the new build.
async fn update_all(
    wd: &WebDriver,
    docker: &Docker,
    registry: &TestRegistry,
    cleanup: &mut Cleanup,
) {
    let reference = push_build(registry, cleanup, 1, false);
    docker_cli(&["pull", "--quiet", &reference]);
    let names = [cleanup.name("fleet-a"), cleanup.name("fleet-b")];
    for name in &names {
        let body = ContainerCreateBody {
            image: Some(reference.clone()),
            labels: Some([(TEST_LABEL.to_string(), "1".to_string())].into()),
            // Healthy within a second: the update then need not wait out the stable time.
            healthcheck: Some(HealthConfig {
                test: Some(vec!["CMD".into(), "/bin/true".into()]),
                interval: Some(500_000_000),
                timeout: Some(2_000_000_000),
                retries: Some(3),
                start_period: None,
                start_interval: None,
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::new().name(name).build();
        docker.create_container(Some(options), body).await.unwrap();
        docker
            .start_container(name, None::<StartContainerOptions>)
            .await
            .unwrap();
    }
    let (build_1, _) = image_of(docker, &names[0]).await;
    cleanup.images.push(build_1.clone());
    push_build(registry, cleanup, 2, false);

    wd.click_when_shown(r#"[data-testid="nav-fleet"]"#, UI_WAIT)
        .await;
    let filter = wd
        .wait_for(r#"[data-testid="fleet-filter"]"#, UI_WAIT)
        .await;
    wd.type_into(&filter, &cleanup.prefix).await;
    for name in &names {
        wd.wait_for(
            &format!(r#"[data-testid="container-row"][data-container-name="{name}"][data-state="running"]"#),
            UI_WAIT,
        )
        .await;
    }
    let header = wd
        .execute(
            r#"return document.querySelector('[data-testid="fleet-update-count"]').previousElementSibling.textContent;"#,
            json!([]),
        )
        .await;
    assert!(
        header.as_str().unwrap_or_default().ends_with(" on 1 agent"),
        "one agent, said in the singular: {header}"
    );
    wd.click_when_shown(r#"[data-testid="check-updates"]"#, UI_WAIT)
        .await;
    let count = wd
        .wait_for(
            r#"[data-testid="fleet-update-count"][data-count="2"]"#,
            UI_WAIT,
        )
        .await;
    assert_eq!(wd.text(&count).await, "2 with an update");
    for name in &names {
        wd.wait_for(
            &format!(r#"[data-testid="container-row"][data-container-name="{name}"] [data-testid="update-badge"]"#),
            UI_WAIT,
        )
        .await;
    }

    wd.click_when_shown(r#"[data-testid="update-all-containers"]"#, UI_WAIT)
        .await;
    record(
        wd,
        "fleet",
        r#"[data-testid="fleet-update-row"]"#,
        &["data-container-name", "data-state", "data-pulled"],
    )
    .await;
    start_update_of_both(wd).await;
    wd.wait_for(
        r#"[data-testid="fleet-update-row"][data-state="updating"]"#,
        UI_WAIT,
    )
    .await;
    shot(wd, "update-all-progress.png").await;
    let summary = wd
        .wait_for(r#"[data-testid="fleet-update-summary"]"#, LONG_WAIT)
        .await;
    let said = wd.text(&summary).await;
    shot(wd, "update-all-summary.png").await;
    if let Some(err) = wd
        .find_all(r#"[data-testid="fleet-update-error"]"#)
        .await
        .first()
    {
        panic!("Update all failed: {}", wd.text(err).await);
    }
    assert_eq!(
        said, "2 updated, 0 rolled back, 0 failed, 0 skipped.",
        "the summary at the end"
    );
    // Every row ends in its final state (the channel's last events may follow the answer).
    for name in &names {
        wd.wait_for(
            &format!(r#"[data-testid="fleet-update-row"][data-container-name="{name}"][data-state="updated"]"#),
            UI_WAIT,
        )
        .await;
    }
    let tally = wd
        .text_when_shown(r#"[data-testid="fleet-update-tally"]"#, UI_WAIT)
        .await;
    assert!(tally.starts_with("2 updated · 0 rolled back"), "{tally}");

    // Each container's row went queued → updating (through the agent's steps) → updated.
    let seen = recorded(wd, "fleet").await;
    let mut pulls_shown = 0;
    for name in &names {
        let states: Vec<(String, String)> = seen
            .iter()
            .flatten()
            .filter(|el| el["data-container-name"] == name.as_str())
            .map(|el| {
                (
                    el["data-state"].as_str().unwrap_or_default().to_string(),
                    el["text"].as_str().unwrap_or_default().to_string(),
                )
            })
            .fold(Vec::new(), |mut acc, s| {
                if acc.last() != Some(&s) {
                    acc.push(s);
                }
                acc
            });
        eprintln!("e2e update all: {name}: {states:?}");
        let order: Vec<&str> =
            states
                .iter()
                .map(|(s, _)| s.as_str())
                .fold(Vec::new(), |mut acc, s| {
                    if acc.last() != Some(&s) {
                        acc.push(s);
                    }
                    acc
                });
        assert_eq!(
            order.last(),
            Some(&"updated"),
            "{name} ended updated: {states:?}"
        );
        assert!(
            order.contains(&"updating"),
            "{name} was shown updating: {states:?}"
        );
        // While it pulled, the row showed how far (bytes done of all), never going back.
        let pulled: Vec<(u64, u64)> = seen
            .iter()
            .flatten()
            .filter(|el| el["data-container-name"] == name.as_str())
            .filter_map(|el| {
                let (done, all) = el["data-pulled"].as_str()?.split_once('/')?;
                Some((done.parse().ok()?, all.parse().ok()?))
            })
            .collect();
        eprintln!("e2e update all: {name}: pulled {pulled:?}");
        assert!(
            pulled.iter().all(|(done, all)| done <= all)
                && pulled.windows(2).all(|w| w[0].0 <= w[1].0),
            "{name}'s pull progress only went forward: {pulled:?}"
        );
        pulls_shown += pulled.iter().filter(|(_, all)| *all > 0).count();
        let steps = states
            .iter()
            .filter(|(s, text)| s == "updating" && !text.contains("Starting."))
            .count();
        assert!(
            steps >= 2,
            "{name}'s row showed the agent's steps as they came: {states:?}"
        );
    }
    // The first to update pulled the new build (the other finds it present).
    assert!(pulls_shown > 0, "a row showed the pull's progress");

    // Docker: both run the new build under their own names, nothing left behind.
    for name in &names {
        let (image, running) = image_of(docker, name).await;
        assert!(running, "{name} runs");
        assert_ne!(image, build_1, "{name} runs the new build");
        cleanup.images.push(image);
    }
    let (a, b) = (
        image_of(docker, &names[0]).await,
        image_of(docker, &names[1]).await,
    );
    assert_eq!(a.0, b.0, "both on the same new build");
    let left = names_with_prefix(docker, &cleanup.name("fleet-")).await;
    assert_eq!(left, names.to_vec(), "no .zedops-old container left");
    wd.wait_for(
        r#"[data-testid="fleet-update-count"][data-count="0"]"#,
        UI_WAIT,
    )
    .await;
    // The update stopped the old containers itself: no "stopped" alert, no notification.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let history = run("dunstctl", &["history"]);
    for name in &names {
        assert!(
            !history.contains(&format!("{name} stopped"))
                && !history.contains(&format!("{name}.zedops-old")),
            "the update's own stop of {name} notified: {history}"
        );
    }

    // A broken build next: the canary rolls back, the other is not started, and the summary
    // says so; Docker runs both as before.
    let build_2 = a.0;
    push_build(registry, cleanup, 3, true);
    wd.click_when_shown(r#"[data-testid="check-updates"]"#, UI_WAIT)
        .await;
    wd.wait_for(
        r#"[data-testid="fleet-update-count"][data-count="2"]"#,
        UI_WAIT,
    )
    .await;
    start_update_of_both(wd).await;
    let summary = wd
        .wait_for(r#"[data-testid="fleet-update-summary"].error"#, LONG_WAIT)
        .await;
    let said = wd.text(&summary).await;
    shot(wd, "update-all-rolled-back.png").await;
    assert!(
        said.starts_with("0 updated, 1 rolled back, 0 failed, 1 skipped.")
            && said.contains("stopped at the first rollback"),
        "the summary after a rollback: {said}"
    );
    let (canary, other) = (&names[0], &names[1]);
    let rolled = wd
        .wait_for(
            &format!(r#"[data-testid="fleet-update-row"][data-container-name="{canary}"][data-state="rolled-back"]"#),
            UI_WAIT,
        )
        .await;
    let why = wd.text(&rolled).await;
    assert!(
        why.contains("(canary)")
            && why.contains(&format!("The update of {canary} failed"))
            && why.contains(&format!("{canary} runs as before"))
            && why.contains("broken build: missing config"),
        "the canary's row says why, with its log line: {why}"
    );
    let skipped = wd
        .wait_for(
            &format!(r#"[data-testid="fleet-update-row"][data-container-name="{other}"][data-state="skipped"]"#),
            UI_WAIT,
        )
        .await;
    let why = wd.text(&skipped).await;
    assert!(
        why.contains("Not started: an earlier update rolled back"),
        "{other}'s row: {why}"
    );
    for name in &names {
        assert_eq!(
            image_of(docker, name).await,
            (build_2.clone(), true),
            "{name} runs the build it ran before"
        );
    }
    assert_eq!(
        names_with_prefix(docker, &cleanup.name("fleet-")).await,
        names.to_vec(),
        "nothing left behind by the rollback"
    );
    // The failed new container's exit was the update's to report: no crash alert for it
    // (the app lists every alert, notified or not, in the alerts panel).
    tokio::time::sleep(Duration::from_millis(500)).await;
    wd.click_when_shown(r#"[data-testid="alerts-badge"]"#, UI_WAIT)
        .await;
    wd.wait_for(r#"[data-testid="alerts-panel"]"#, UI_WAIT)
        .await;
    let alerted = wd
        .execute(
            "return Array.from(document.querySelectorAll('[data-testid=\"alert-item\"]')).map((e) => e.textContent);",
            json!([]),
        )
        .await;
    let alerted: Vec<String> = serde_json::from_value(alerted).unwrap();
    assert!(
        !alerted
            .iter()
            .any(|a| names.iter().any(|n| a.contains(&format!("{n} stopped")))),
        "no crash alert for a container the update judged: {alerted:?}"
    );
    wd.click_when_shown(r#"[data-testid="alerts-close"]"#, UI_WAIT)
        .await;
    let _ = std::process::Command::new("docker")
        .args(["rmi", "-f", &reference])
        .output();
}
