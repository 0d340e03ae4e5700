//! End to end, the deploy, console and files parts of the app: a template at the real relay
//! whose image is in a real registry on loopback (so the agent pulls it), deployed through the
//! "New container" form with its secret typed in (the pull, throttled, shows its progress bar
//! moving: every value it took is recorded in the page), running in Docker; a shell in the
//! Console tab runs a command whose output is read from the terminal's screen; the Files tab
//! lists a directory; then "Remove" with the typed name takes the container away.

use std::time::{Duration, Instant};

use bollard::query_parameters::{InspectContainerOptions, RemoveContainerOptionsBuilder};
use zedops_protocol::{Role, TemplateBody};
use zedops_testkit::{TestAgent, TestRelay};

use crate::harness::{self, require_desktop_parts, unique_suffix};
use crate::observe::{record, recorded, throttling_proxy};
use crate::session::{agent_row, open_signed_in};
use crate::steps::{open_console, progress_bar, select, shot, wait_terminal};

const AGENT: &str = "e2e-deployer";
const USER: &str = "e2e-deploy-admin";
const UI_WAIT: Duration = Duration::from_secs(60);
/// A pull and a create on 2 busy cores.
const DEPLOY_WAIT: Duration = Duration::from_secs(120);

/// Removes the container and the image pulled for it when dropped, even when the test fails.
struct Leftover(bollard::Docker, String, String);

impl Drop for Leftover {
    fn drop(&mut self) {
        let (docker, name, image) = (self.0.clone(), self.1.clone(), self.2.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let options = RemoveContainerOptionsBuilder::new()
                    .force(true)
                    .v(true)
                    .build();
                let _ = docker.remove_container(&name, Some(options)).await;
                let options = bollard::query_parameters::RemoveImageOptionsBuilder::new()
                    .force(true)
                    .build();
                let _ = docker.remove_image(&image, Some(options), None).await;
            });
        })
        .join()
        .unwrap();
    }
}

pub async fn deploy_console_files_and_remove() {
    let (driver_bin, app_bin) = require_desktop_parts();
    let docker = harness::docker().await;
    let registry = harness::registry().await;
    // A layer of its own, so the pull has bytes to report, pulled through a throttling proxy
    // (8 MiB at 3 MiB/s), so the progress bar is on screen for seconds.
    let pushed = registry
        .push_unique_image(&docker, "zedops/e2e-deploy", "1", 8 * 1024 * 1024)
        .await;
    let (proxy, _through) = throttling_proxy(registry.port(), 3 * 1024 * 1024).await;
    // The same repository through the proxy (the registry does not care about the host name).
    let image = pushed.replace(&registry.host(), &format!("127.0.0.1:{proxy}"));

    let relay = TestRelay::builder().start().await;
    relay.login(USER, Role::Admin).await;
    let admin = relay.client("e2e-template-admin", Role::Admin).await;
    let suffix = &unique_suffix();
    let template = format!("e2e-{suffix}");
    let name = format!("e2e-deployed-{suffix}");
    let _leftover = Leftover(docker.clone(), name.clone(), image.clone());
    let body: TemplateBody = serde_json::from_value(serde_json::json!({
        "name": template,
        "description": "a sleeper for the desktop test",
        "variables": {
            "GREETING": {"description": "Said at start", "default": "hello"},
            "TOKEN": {"description": "A secret", "required": true, "secret": true},
        },
        "spec": {
            "image": image,
            "cmd": ["/bin/sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"],
            "env": {"GREETING": "${GREETING}", "TOKEN": "${TOKEN}"},
            "labels": {"zedops-test": "1"},
        },
    }))
    .unwrap();
    admin
        .add_template(body)
        .await
        .expect("the template is stored");
    admin.close().await;
    let _agent = TestAgent::builder(&relay).name(AGENT).online().await;

    let app = open_signed_in(&driver_bin, &app_bin, &relay.url, USER, AGENT).await;
    let wd = &app.wd;
    let row = wd.wait_for(&agent_row(AGENT), UI_WAIT).await;
    wd.click(&wd.find_in(&row, "td").await).await;

    // "New container" on the agent's page: the form comes from the template.
    wd.click_when_shown(r#"[data-testid="new-container"]"#, UI_WAIT)
        .await;
    select(wd, r#"[data-testid="deploy-template"]"#, &template).await;
    let secret = wd
        .wait_for(r#"[data-testid="deploy-var-TOKEN"]"#, UI_WAIT)
        .await;
    let kind = wd
        .execute(
            r#"return document.querySelector('[data-testid="deploy-var-TOKEN"]').type"#,
            serde_json::json!([]),
        )
        .await;
    assert_eq!(kind, "password", "a secret variable is typed masked");
    wd.type_into(&secret, "s3cret-token").await;
    wd.type_when_shown(r#"[data-testid="deploy-name"]"#, &name, UI_WAIT)
        .await;
    shot(wd, "deploy-form.png").await;
    record(
        wd,
        "deploy",
        r#"[data-testid="deploy-progress"]"#,
        &["data-percent"],
    )
    .await;
    wd.click_when_shown(r#"[data-testid="deploy-submit"]"#, UI_WAIT)
        .await;
    // The pull shows as a progress bar while it lasts (a picture if a poll catches it; the
    // page's own recording below is what is checked).
    let deadline = Instant::now() + DEPLOY_WAIT;
    let mut saw_progress = false;
    let detail = format!(
        r#"[data-testid="container-detail"][data-container-name="{name}"][data-state="running"]"#
    );
    loop {
        if !saw_progress
            && !wd
                .find_all(r#"[data-testid="deploy-progress-text"]"#)
                .await
                .is_empty()
        {
            saw_progress = true;
            shot(wd, "deploy-progress.png").await;
        }
        if !wd.find_all(&detail).await.is_empty() {
            break;
        }
        if let Some(err) = wd.find_all(r#"[data-testid="deploy-error"]"#).await.first() {
            panic!("the deploy failed: {}", wd.text(err).await);
        }
        assert!(
            Instant::now() < deadline,
            "the new container's detail did not open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (percents, texts) = progress_bar(&recorded(wd, "deploy").await);
    eprintln!("e2e deploy: the progress bar showed {percents:?} (a picture taken: {saw_progress})");
    assert!(
        percents.iter().any(|p| (1..100).contains(p)) && percents.windows(2).all(|w| w[1] >= w[0]),
        "the deploy's progress bar showed the pull part-way and never went back: {percents:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains(&format!("Pulling {image}: ")) && t.contains(" of ")),
        "the bytes are said under the bar: {texts:?}"
    );
    let toast = wd.wait_for(r#"[data-testid="toast"]"#, UI_WAIT).await;
    let text = wd.text(&toast).await;
    assert!(
        text.contains(&name) && text.contains("pulled"),
        "the toast says the image was pulled and the container made: {text}"
    );
    let inspected = docker
        .inspect_container(&name, None::<InspectContainerOptions>)
        .await
        .expect("Docker has the container");
    assert_eq!(
        inspected.state.and_then(|s| s.running),
        Some(true),
        "Docker says it runs"
    );
    let env = inspected.config.and_then(|c| c.env).unwrap_or_default();
    assert!(
        env.contains(&"TOKEN=s3cret-token".to_string())
            && env.contains(&"GREETING=hello".to_string()),
        "the typed secret and the default reached the container: {env:?}"
    );
    shot(wd, "deployed.png").await;

    // Console: a shell (admin) runs a command; its output is on the terminal's screen.
    let input = open_console(wd, "shell").await;
    // The answer (42) is not in what is typed, so it can only come from the shell.
    wd.send_keys(&input, "echo console-$((6*7))\u{E007}").await;
    wait_terminal(wd, "console-42", "the shell's output").await;
    shot(wd, "console.png").await;

    // Files: the container's root directory is listed.
    wd.click_when_shown(r#"[data-testid="tab-files"]"#, UI_WAIT)
        .await;
    wd.wait_for(
        r#"[data-testid="file-row"][data-name="bin"][data-kind="dir"]"#,
        UI_WAIT,
    )
    .await;
    wd.click_when_shown(
        r#"[data-testid="file-row"][data-name="etc"] [data-testid="file-open"]"#,
        UI_WAIT,
    )
    .await;
    wd.wait_for(r#"[data-testid="files-tab"][data-path="/etc"]"#, UI_WAIT)
        .await;
    shot(wd, "files.png").await;

    // Remove, from the detail view: only once the name is typed, and with force (it runs).
    wd.click_when_shown(r#"[data-testid="detail-remove"]"#, UI_WAIT)
        .await;
    let confirm = wd
        .wait_for(r#"[data-testid="remove-confirm"]"#, UI_WAIT)
        .await;
    assert!(!wd.enabled(&confirm).await, "Remove waits for the name");
    wd.type_when_shown(r#"[data-testid="remove-confirm-name"]"#, &name, UI_WAIT)
        .await;
    assert!(
        !wd.enabled(&confirm).await,
        "a running container needs force too"
    );
    wd.click_when_shown(r#"[data-testid="remove-force"]"#, UI_WAIT)
        .await;
    shot(wd, "remove.png").await;
    wd.click(&confirm).await;
    wd.wait_gone(r#"[data-testid="remove-dialog"]"#, DEPLOY_WAIT)
        .await;
    wd.wait_gone(
        &format!(r#"[data-testid="container-row"][data-container-name="{name}"]"#),
        UI_WAIT,
    )
    .await;
    assert!(
        docker
            .inspect_container(&name, None::<InspectContainerOptions>)
            .await
            .is_err(),
        "Docker no longer has the container"
    );
    app.close().await;
}
