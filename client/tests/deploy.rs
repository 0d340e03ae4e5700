//! Deploying end to end: a real relay, a real agent on the real engine, images from a real
//! registry on loopback, the client library and the `zedops` binary. Templates by role, a
//! deploy with its pull progress and the container exactly as asked, each refusal with its code,
//! the agent's own policy refusing what the relay let through, removal, images, and the audit.

mod support;

use std::collections::BTreeMap;

use bollard::query_parameters::InspectContainerOptions;
use support::{Zed, assert_ok, assert_stderr_says, text};
use zedops_client::ClientError;
use zedops_protocol::{ErrorCode, Role, TemplateBody};
use zedops_testkit::docker::Cleanup;
use zedops_testkit::registry::docker_and_registry;
use zedops_testkit::{TestAgent, TestRelay};

fn code(err: &ClientError) -> String {
    err.code().as_str().to_string()
}

fn template(name: &str, image: &str, extra: serde_json::Value) -> TemplateBody {
    let mut spec = serde_json::json!({
        "image": image,
        "cmd": ["sleep", "300"],
        "env": {"GREETING": "hello ${WHO}", "PASSWORD": "${PASSWORD}"},
        "ports": [{"container": 16261, "host": "${PORT}", "protocol": "udp", "hostIp": "127.0.0.1"}],
        "resources": {"memoryBytes": 67108864, "pids": 100},
        "restart": "unless-stopped",
        "labels": {"com.example.game": "test"},
    });
    if let serde_json::Value::Object(more) = extra {
        spec.as_object_mut().unwrap().extend(more);
    }
    serde_json::from_value(serde_json::json!({
        "name": name,
        "description": "deploy test",
        "variables": {
            "WHO": {"description": "who to greet", "default": "world"},
            "PASSWORD": {"description": "a secret", "required": true, "secret": true},
            "PORT": {"description": "host port", "required": true},
        },
        "spec": spec,
    }))
    .unwrap()
}

/// Removes the container `name` and its volume `<name>-data` when `leftovers` drops, even when
/// the test fails.
fn leave(leftovers: &mut Cleanup, name: &str) {
    leftovers.containers.push(name.to_string());
    leftovers.volumes.push(format!("{name}-data"));
}

#[tokio::test]
async fn templates_deploy_remove_and_images_through_relay_and_agent() {
    let Some((docker, registry)) = docker_and_registry().await else {
        return;
    };
    let image = registry
        .push_test_image(&docker, "zedops/deploy", "1")
        .await;
    let relay = TestRelay::builder().start().await;
    let _agent = TestAgent::builder(&relay).name("deployer").online().await;
    let admin = relay.client("ann", Role::Admin).await;
    let operator = relay.client("otto", Role::Operator).await;
    let viewer = relay.client("vera", Role::Viewer).await;
    let suffix = format!("{:08x}", rand_suffix());
    let tname = format!("t-{suffix}");
    let container = format!("zdeploy-{suffix}");
    let mut leftovers = Cleanup::new("zdeploy");

    // Templates: admins write them, everyone reads them.
    let body = template(&tname, &image, serde_json::json!({}));
    for (who, client) in [("viewer", &viewer), ("operator", &operator)] {
        let err = client.add_template(body.clone()).await.unwrap_err();
        assert_eq!(code(&err), "FORBIDDEN", "{who}");
    }
    assert_eq!(admin.add_template(body.clone()).await.unwrap().version, 1);
    let err = admin.add_template(body.clone()).await.unwrap_err();
    assert_eq!(code(&err), "TEMPLATE_EXISTS");
    assert_eq!(
        admin.update_template(body.clone()).await.unwrap().version,
        2
    );
    let listed = viewer.templates().await.unwrap();
    assert!(listed.iter().any(|t| t.name == tname && t.version == 2));
    let shown = viewer.template(&tname).await.unwrap();
    assert_eq!(shown.updated_by.as_deref(), Some("ann"));
    let mut bad = body.clone();
    bad.spec["hostConfig"] = serde_json::json!({"Privileged": true});
    let err = admin.add_template(bad).await.unwrap_err();
    assert_eq!(code(&err), "TEMPLATE_INVALID");
    assert!(err.to_string().contains("hostConfig"), "{err}");

    // Deploy: viewers may not; a missing or unknown variable is refused by name.
    let port = zedops_testkit::free_port();
    let vars = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let first_error = |mut stream: zedops_client::Deploy| async move {
        match stream.next().await {
            Some(Err(err)) => code(&err),
            other => panic!("expected a refusal, got {other:?}"),
        }
    };
    // How a deploy ended: its last frame's end.
    let last_end = |mut stream: zedops_client::Deploy| async move {
        let mut last = None;
        while let Some(frame) = stream.next().await {
            last = Some(frame.unwrap());
        }
        last.unwrap().end.unwrap()
    };
    let stream = viewer
        .deploy("deployer", &tname, &container, vars(&[]), true)
        .await
        .unwrap();
    assert_eq!(first_error(stream).await, "FORBIDDEN");
    let stream = operator
        .deploy("deployer", &tname, &container, vars(&[("PORT", "1")]), true)
        .await
        .unwrap();
    assert_eq!(first_error(stream).await, "MISSING_VARIABLE");
    let stream = operator
        .deploy(
            "deployer",
            &tname,
            &container,
            vars(&[("PORT", "1"), ("PASSWORD", "x"), ("NOPE", "1")]),
            true,
        )
        .await
        .unwrap();
    assert_eq!(first_error(stream).await, "UNKNOWN_VARIABLE");

    // The deploy itself: the image is pulled with progress, the container made and started.
    leave(&mut leftovers, &container);
    let port_text = port.to_string();
    let mut stream = operator
        .deploy(
            "deployer",
            &tname,
            &container,
            vars(&[("PORT", &port_text), ("PASSWORD", "s3cret-value")]),
            true,
        )
        .await
        .unwrap();
    let (mut progress, mut pulled, mut created, mut end) = (0, None, None, None);
    while let Some(frame) = stream.next().await {
        let frame = frame.unwrap();
        progress += usize::from(frame.progress.is_some());
        pulled = pulled.or(frame.pulled);
        created = created.or(frame.created);
        end = end.or(frame.end);
    }
    let end = end.expect("the stream ended");
    assert_eq!(end.error_code, None, "{}", end.reason);
    assert!(progress > 0, "no pull progress reached the client");
    assert!(pulled.unwrap().pulled);
    let created = created.unwrap();
    assert!(created.started);
    let inspect = docker
        .inspect_container(&container, None::<InspectContainerOptions>)
        .await
        .unwrap();
    let config = inspect.config.unwrap();
    let labels = config.labels.unwrap();
    assert_eq!(labels["zedops.template"], tname);
    assert_eq!(labels["zedops.template.version"], "2");
    assert_eq!(labels["zedops.created-by"], "otto");
    let env = config.env.unwrap();
    assert!(env.contains(&"GREETING=hello world".to_string()), "{env:?}");
    assert!(env.contains(&"PASSWORD=s3cret-value".to_string()));
    let host = inspect.host_config.unwrap();
    assert_eq!(host.memory, Some(67108864));
    assert_eq!(host.pids_limit, Some(100));
    let bindings = host.port_bindings.unwrap();
    assert_eq!(
        bindings["16261/udp"].as_ref().unwrap()[0]
            .host_port
            .as_deref(),
        Some(port_text.as_str())
    );

    // The same name again: its own code.
    let stream = operator
        .deploy(
            "deployer",
            &tname,
            &container,
            vars(&[("PORT", "2"), ("PASSWORD", "x")]),
            false,
        )
        .await
        .unwrap();
    let end = last_end(stream).await;
    assert_eq!(end.error_code, Some(ErrorCode::ContainerNameInUse));

    // A template the relay accepts but the agent's policy refuses: refused by the agent,
    // nothing created.
    let privileged = format!("p-{suffix}");
    admin
        .add_template(template(
            &privileged,
            &image,
            serde_json::json!({"privileged": true}),
        ))
        .await
        .unwrap();
    let refused = format!("zdeploy-priv-{suffix}");
    leave(&mut leftovers, &refused);
    let stream = operator
        .deploy(
            "deployer",
            &privileged,
            &refused,
            vars(&[("PORT", "3"), ("PASSWORD", "x")]),
            true,
        )
        .await
        .unwrap();
    let end = last_end(stream).await;
    assert_eq!(end.error_code, Some(ErrorCode::PolicyDenied));
    assert!(end.reason.contains("privileged"), "{}", end.reason);
    assert!(
        docker
            .inspect_container(&refused, None::<InspectContainerOptions>)
            .await
            .is_err()
    );

    // Images: everyone sees them, with the container using each.
    let images = viewer.images("deployer").await.unwrap();
    let ours = images
        .iter()
        .find(|i| i.repo_tags.contains(&image))
        .expect("the pulled image listed");
    assert!(ours.used_by.contains(&container), "{ours:?}");

    // Removal: viewers may not; a running container needs --force.
    let err = viewer
        .remove_container("deployer", &container, true, false)
        .await
        .unwrap_err();
    assert_eq!(code(&err), "FORBIDDEN");
    let err = operator
        .remove_container("deployer", &container, false, false)
        .await
        .unwrap_err();
    assert_eq!(code(&err), "DOCKER_REMOVE_FAILED");
    assert!(err.to_string().contains("--force"), "{err}");
    operator
        .remove_container("deployer", &container, true, true)
        .await
        .unwrap();
    assert!(
        docker
            .inspect_container(&container, None::<InspectContainerOptions>)
            .await
            .is_err()
    );
    let err = viewer
        .remove_image("deployer", &image, false)
        .await
        .unwrap_err();
    assert_eq!(code(&err), "FORBIDDEN");
    let removed = operator
        .remove_image("deployer", &image, false)
        .await
        .unwrap();
    assert!(removed.untagged.contains(&image), "{removed:?}");

    // The audit: every create and removal, with template, version and variables, the secret
    // masked everywhere.
    let query = zedops_protocol::AuditListRequest {
        agent_id: None,
        since: None,
        limit: Some(200),
    };
    let audit = admin.audit(&query).await.unwrap();
    let entries = &audit.entries;
    let created_entry = entries
        .iter()
        .find(|e| {
            e.operation == "create"
                && e.container.as_deref() == Some(&container)
                && e.result == "ok"
        })
        .expect("the create audited");
    let detail = created_entry.detail.as_deref().unwrap();
    assert!(detail.contains(&format!("template {tname} v2")), "{detail}");
    assert!(detail.contains("PASSWORD=\"******\""), "{detail}");
    assert!(detail.contains(&format!("PORT=\"{port}\"")), "{detail}");
    assert!(
        !serde_json::to_string(&audit)
            .unwrap()
            .contains("s3cret-value"),
        "a secret reached the audit log"
    );
    let denied = entries
        .iter()
        .find(|e| e.operation == "create" && e.container.as_deref() == Some(&refused))
        .expect("the refused create audited");
    assert_eq!(denied.result, "failed");
    assert_eq!(denied.error_code.as_deref(), Some("POLICY_DENIED"));
    assert!(
        entries
            .iter()
            .any(|e| e.operation == "remove" && e.result == "ok")
    );
    assert!(
        entries
            .iter()
            .any(|e| e.operation == "rmi" && e.result == "ok")
    );
    assert!(
        entries
            .iter()
            .any(|e| e.operation == "template.update" && e.target.as_deref() == Some(&tname))
    );

    admin.remove_template(&tname).await.unwrap();
    let err = viewer.template(&tname).await.unwrap_err();
    assert_eq!(code(&err), "NOT_FOUND");
}

#[tokio::test]
async fn the_cli_adds_a_template_from_a_file_and_creates_with_a_summary_line() {
    let Some((docker, registry)) = docker_and_registry().await else {
        return;
    };
    let image = registry.push_test_image(&docker, "zedops/cli", "1").await;
    let relay = TestRelay::builder().start().await;
    let _agent = TestAgent::builder(&relay).name("cli-agent").online().await;
    let admin_token = relay.login("ann", Role::Admin).await;
    let operator_token = relay.login("otto", Role::Operator).await;
    let config = tempfile::tempdir().unwrap();
    let suffix = format!("{:08x}", rand_suffix());
    let tname = format!("cli-{suffix}");
    let container = format!("zcli-{suffix}");
    let mut leftovers = Cleanup::new("zcli");
    leave(&mut leftovers, &container);
    let file = config.path().join("t.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"{tname}\"\n[variables.MSG]\ndefault = \"hi\"\n[spec]\nimage = \"{image}\"\ncmd = [\"sleep\", \"300\"]\n[spec.env]\nMSG = \"${{MSG}}\"\n"
        ),
    )
    .unwrap();
    let admin = Zed::new(&relay.url, &admin_token);
    let operator = Zed::new(&relay.url, &operator_token);
    let out = operator
        .run(&["template", "add", file.to_str().unwrap()])
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert_stderr_says(&out, "FORBIDDEN");
    let out = admin
        .run(&["template", "add", file.to_str().unwrap()])
        .await;
    assert_ok(&out);
    assert_stderr_says(&out, &format!("added template {tname} (version 1)"));
    let out = operator.run(&["template", "list"]).await;
    assert!(text(&out.stdout).contains(&tname), "{}", text(&out.stdout));

    let out = operator
        .run(&[
            "create",
            "--agent",
            "cli-agent",
            "--template",
            &tname,
            "--name",
            &container,
            "--set",
            "MSG=bonjour",
            "--start",
        ])
        .await;
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("pulling "), "no progress line: {stderr}");
    assert!(
        stderr.contains(&format!("created and started container {container} (")),
        "{stderr}"
    );
    let out = operator.run(&["images", "--agent", "cli-agent"]).await;
    assert!(
        text(&out.stdout).contains(&container),
        "{}",
        text(&out.stdout)
    );
    let out = operator
        .run(&["rm", "--agent", "cli-agent", &container])
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert_stderr_says(&out, "DOCKER_REMOVE_FAILED");
    let out = operator
        .run(&["rm", "--agent", "cli-agent", "--force", &container])
        .await;
    assert_ok(&out);
    leftovers.containers.clear();
    leftovers.volumes.clear();
    let out = operator.run(&["rmi", "--agent", "cli-agent", &image]).await;
    assert_stderr_says(&out, "untagged");
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        ^ std::process::id()
}
