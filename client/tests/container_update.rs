//! Updating a container end to end: a real relay, a real agent on the real engine, builds from
//! a real registry on loopback, the client library and the `zedops` binary. A viewer is refused;
//! an operator's update streams its steps and ends with the new image under the same name; the
//! CLI prints the summary, and exits 1 with `UPDATE_ROLLED_BACK` when the update is rolled
//! back (the old container running again); both are in the audit log.

mod support;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, InspectContainerOptions,
    StartContainerOptions,
};
use futures_util::StreamExt;
use support::{run, text, zedops};
use zedops_client::UpdateOptions;
use zedops_protocol::{ErrorCode, Role, UpdatePhase};
use zedops_testkit::docker::Cleanup;
use zedops_testkit::registry::docker_and_registry;
use zedops_testkit::{TestAgent, TestRelay};

#[tokio::test]
async fn an_operator_updates_a_container_through_relay_and_agent_and_a_viewer_may_not() {
    let Some((docker, registry)) = docker_and_registry().await else {
        return;
    };
    let suffix = format!("{:08x}", rand::random::<u32>());
    let repo = format!("zedops/update-{suffix}");
    let image = registry.push_unique_image(&docker, &repo, "1", 4096).await;
    let relay = TestRelay::builder().start().await;
    let _agent = TestAgent::builder(&relay).name("updater").online().await;
    let admin = relay.client("ann", Role::Admin).await;
    let operator = relay.client("otto", Role::Operator).await;
    let viewer = relay.client("vera", Role::Viewer).await;
    let name = format!("zupdate-{suffix}");
    // Removed at the end, even when the test fails, with what an update may leave beside it.
    let mut leftovers = Cleanup::new("zupdate");
    leftovers
        .containers
        .extend([name.clone(), format!("{name}.zedops-old")]);

    let options = CreateImageOptionsBuilder::new().from_image(&image).build();
    let mut pull = docker.create_image(Some(options), None, None);
    while let Some(step) = pull.next().await {
        step.unwrap();
    }
    let body = ContainerCreateBody {
        image: Some(image.clone()),
        cmd: Some(vec!["sleep".into(), "100000".into()]),
        stop_signal: Some("SIGKILL".into()),
        env: Some(vec!["WORLD=one".into()]),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::new().name(&name).build();
    let old_id = docker
        .create_container(Some(options), body)
        .await
        .unwrap()
        .id;
    docker
        .start_container(&old_id, None::<StartContainerOptions>)
        .await
        .unwrap();
    registry.push_unique_image(&docker, &repo, "1", 4096).await;
    let quick = || UpdateOptions {
        stable_secs: Some(1),
        ..UpdateOptions::default()
    };

    // A viewer may not update.
    let mut stream = viewer
        .update_container("updater", &name, quick())
        .await
        .unwrap();
    match stream.next().await {
        Some(Err(err)) => assert_eq!(err.code().as_str(), "FORBIDDEN", "{err}"),
        other => panic!("expected a refusal, got {other:?}"),
    }

    // An operator's update streams its steps and ends with the new image under the same name.
    let mut stream = operator
        .update_container("updater", &name, quick())
        .await
        .unwrap();
    let mut phases = vec![];
    let last = loop {
        let frame = stream.next().await.expect("a frame").expect("no refusal");
        if let Some(step) = &frame.step {
            phases.push(step.phase);
        }
        if frame.end.is_some() {
            break frame;
        }
    };
    let end = last.end.unwrap();
    assert_eq!(end.error_code, None, "{}", end.reason);
    for phase in [
        UpdatePhase::Pull,
        UpdatePhase::RenameOld,
        UpdatePhase::Health,
        UpdatePhase::RemoveOld,
    ] {
        assert!(phases.contains(&phase), "{phase} in {phases:?}");
    }
    let updated = last.updated.unwrap();
    assert!(updated.changed);
    let now = docker
        .inspect_container(&name, None::<InspectContainerOptions>)
        .await
        .unwrap();
    assert_eq!(now.id.as_deref(), Some(updated.container_id.as_str()));
    assert_ne!(now.id.as_deref(), Some(old_id.as_str()));
    assert_eq!(now.image.as_deref(), Some(updated.new_image_id.as_str()));
    assert!(
        now.config
            .unwrap()
            .env
            .unwrap()
            .contains(&"WORLD=one".to_string())
    );

    // The CLI: an update to an image the registry does not have is rolled back, exit 1.
    let token = relay.login("olga", Role::Operator).await;
    let config = tempfile::tempdir().unwrap();
    let zed = |args: &[&str]| {
        let mut cmd = zedops(config.path());
        cmd.env("ZEDOPS_TOKEN", &token)
            .env("ZEDOPS_RELAY", &relay.url)
            .args(args);
        cmd
    };
    let missing = registry.image(&format!("{repo}:no-such-tag"));
    let out = run(
        &mut zed(&[
            "update",
            "--agent",
            "updater",
            &name,
            "--image",
            &missing,
            "--health-timeout",
            "20s",
        ]),
        "",
    )
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("[pull]"), "{stderr}");
    assert!(
        stderr.contains("error: UPDATE_ROLLED_BACK: the update of"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("nothing was changed; {name} is as it was")),
        "{stderr}"
    );
    let same = docker
        .inspect_container(&name, None::<InspectContainerOptions>)
        .await
        .unwrap();
    assert_eq!(same.id, now.id, "the container was left as it was");
    assert_eq!(same.state.unwrap().running, Some(true));

    // Nothing newer now: the CLI says so and exits 0.
    let out = run(&mut zed(&["update", "--agent", "updater", &name]), "").await;
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("already runs the newest"), "{stderr}");

    // The audit: who updated what, and how each ended.
    let query = zedops_protocol::AuditListRequest {
        agent_id: None,
        since: None,
        limit: Some(200),
    };
    let audit = admin.audit(&query).await.unwrap();
    let updates: Vec<_> = audit
        .entries
        .iter()
        .filter(|e| e.operation == "update" && e.container.as_deref() == Some(name.as_str()))
        .collect();
    assert!(
        updates
            .iter()
            .any(|e| e.user.as_deref() == Some("otto") && e.result == "ok"),
        "{updates:?}"
    );
    let rolled_back = updates
        .iter()
        .find(|e| e.user.as_deref() == Some("olga") && e.result == "failed")
        .expect("the rolled back update audited");
    assert_eq!(
        rolled_back.error_code.as_deref(),
        Some(ErrorCode::UpdateRolledBack.as_str())
    );
    assert_eq!(rolled_back.target.as_deref(), Some(missing.as_str()));
    assert!(
        audit
            .entries
            .iter()
            .any(|e| e.user.as_deref() == Some("vera")
                && e.operation == "container.update"
                && e.result == "forbidden"),
        "the viewer's refusal is audited: {:?}",
        audit.entries
    );
}
