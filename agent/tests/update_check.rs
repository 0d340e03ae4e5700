//! Update available on the real engine with a real registry on loopback: a container from
//! `:1`, a new build pushed under the same tag, and the check lists it with both digests (the
//! new one what the registry serves); a locally built image is skipped with its reason; the
//! result is kept in the data directory for the next start. Under `CI=true` a missing engine or
//! registry fails; otherwise these tests skip.

use bollard::Docker;
use bollard::models::ContainerCreateBody;
use zedops_agent::docker::DockerClient;
use zedops_agent::update_check::{STATE_FILE, UpdateChecker};
use zedops_testkit::docker::{Cleanup, TEST_IMAGE, create_named, labelled, pull};

/// Creates (without starting) container `name` from `image` running `sleep 300`, with
/// `zedops.update=<label>` when given.
async fn sleeper(docker: &Docker, name: &str, image: &str, label: Option<&str>) {
    let body = ContainerCreateBody {
        cmd: Some(vec!["sleep".into(), "300".into()]),
        ..labelled(image, label)
    };
    create_named(docker, name, body, false).await;
}

#[tokio::test]
async fn a_new_build_under_the_same_tag_is_listed_with_both_digests() {
    let Some((docker, registry)) = zedops_testkit::registry::docker_and_registry().await else {
        return;
    };
    let suffix = format!("{:08x}", rand::random::<u32>());
    let repo = format!("zt/upd-{suffix}");
    let mut cleanup = Cleanup::new("zt");
    // `:1`, pulled, and a container from it; a container from a locally built image beside it.
    let reference = registry.push_unique_image(&docker, &repo, "1", 1024).await;
    let old_id = pull(&docker, &reference).await;
    cleanup.images.push(old_id.clone());
    let (web, local) = (format!("upd-web-{suffix}"), format!("upd-local-{suffix}"));
    cleanup.containers.extend([web.clone(), local.clone()]);
    sleeper(&docker, &web, &reference, Some("pinned")).await;
    sleeper(&docker, &local, TEST_IMAGE, None).await;

    let dir = tempfile::tempdir().unwrap();
    let client = std::sync::Arc::new(DockerClient::connect(None).await);
    let checker = UpdateChecker::new(client.clone(), dir.path());
    assert_eq!(checker.state().checked_at, None);

    // Nothing new yet: the container is not listed.
    let state = checker.check().await.unwrap();
    assert!(state.checked_at.is_some());
    assert!(
        !state.updates.iter().any(|u| u.container == web),
        "{state:?}"
    );

    // A new build under the same tag: listed with the old digest and the registry's new one.
    let current = docker
        .inspect_image(&old_id)
        .await
        .unwrap()
        .repo_digests
        .unwrap();
    let current = current
        .iter()
        .find_map(|d| d.strip_prefix(&format!("{}@", registry.image(&repo))))
        .expect("the pulled image has a repo digest")
        .to_string();
    registry.push_unique_image(&docker, &repo, "1", 1024).await;
    let served = registry.served_digest(&docker, &reference).await;
    assert_ne!(served, current);
    let state = checker.check().await.unwrap();
    let update = state
        .updates
        .iter()
        .find(|u| u.container == web)
        .unwrap_or_else(|| panic!("{web} not listed: {state:?}"));
    assert_eq!(update.image, reference);
    assert_eq!(update.current_digest, current);
    assert_eq!(update.new_digest, served);
    assert_eq!(update.label.as_deref(), Some("pinned"));
    let found_at = update.found_at;
    // The locally built image was not asked about, and says why.
    assert!(!state.updates.iter().any(|u| u.container == local));
    let skipped = state
        .skipped
        .iter()
        .find(|s| s.image == TEST_IMAGE)
        .unwrap_or_else(|| panic!("{TEST_IMAGE} not skipped: {state:?}"));
    assert!(skipped.reason.contains("no registry digest"), "{skipped:?}");

    // Checked again later: still listed, found when it was first found.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let again = checker.check().await.unwrap();
    let update = again.updates.iter().find(|u| u.container == web).unwrap();
    assert_eq!(update.found_at, found_at);

    // Kept in the data directory: a new checker (the next start) starts from it.
    assert!(dir.path().join(STATE_FILE).is_file());
    let restarted = UpdateChecker::new(client, dir.path());
    assert_eq!(restarted.state(), again);
}

#[tokio::test]
async fn concurrent_checks_share_one_run() {
    let Some(_docker) = zedops_testkit::require_docker().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let client = std::sync::Arc::new(DockerClient::connect(None).await);
    let checker = UpdateChecker::new(client, dir.path());
    // Eight askers at once: every one gets a result, and at most two runs happen (the one in
    // progress and one that all the others waited for), so the registry is asked once or twice
    // per image, never eight times.
    let asked = (0..8).map(|_| checker.check());
    let results = futures_util::future::join_all(asked).await;
    let mut times: Vec<_> = results
        .into_iter()
        .map(|r| r.unwrap().checked_at.unwrap())
        .collect();
    times.dedup();
    assert!(times.len() <= 2, "{times:?}");
}
