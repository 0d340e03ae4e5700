//! A container whose tag has moved to another image since it was created (a newer build pulled
//! under the same tag): Docker's list then shows the image's id where the tag was; the agent's
//! rows (the fleet table, and the row a container event carries) show the tag the container
//! was created from. Against the real engine; under `CI=true` a missing engine fails.

use std::collections::HashMap;

use bollard::models::{ContainerConfig, ContainerCreateBody};
use bollard::query_parameters::{
    CommitContainerOptionsBuilder, ListContainersOptionsBuilder, TagImageOptionsBuilder,
};
use zedops_agent::docker::DockerClient;
use zedops_testkit::docker::{Cleanup, TEST_IMAGE, create_named, labelled};
use zedops_testkit::require_docker;

#[tokio::test]
async fn a_container_whose_tag_moved_to_a_newer_build_is_listed_with_its_tag() {
    let Some(docker) = require_docker().await else {
        return;
    };
    let mut cleanup = Cleanup::new("zmoved");
    let repo = format!("zedops-test/{}", cleanup.prefix);
    let tag = format!("{repo}:1");
    // Removed by name at the end: whichever image the tag then names.
    cleanup.images.push(tag.clone());
    let options = TagImageOptionsBuilder::new().repo(&repo).tag("1").build();
    docker.tag_image(TEST_IMAGE, Some(options)).await.unwrap();
    let name = cleanup.name("game");
    let body = ContainerCreateBody {
        cmd: Some(vec!["sleep".into(), "300".into()]),
        ..labelled(&tag, None)
    };
    let id = create_named(&docker, &name, body, false).await;

    // A newer build under the same tag (the container committed: an image of its own).
    let options = CommitContainerOptionsBuilder::new()
        .container(&name)
        .repo(&repo)
        .tag("1")
        .build();
    let newer = docker
        .commit_container(options, ContainerConfig::default())
        .await
        .unwrap()
        .id;
    let filters = HashMap::from([("id", vec![id.as_str()])]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let raw = docker.list_containers(Some(options)).await.unwrap();
    let shown = raw[0].image.clone().unwrap_or_default();
    assert_ne!(
        shown, tag,
        "Docker lists the moved tag's container by image id"
    );
    assert_ne!(raw[0].image_id.as_deref(), Some(newer.as_str()));

    let client = DockerClient::connect(None).await;
    let listed = client.list().await.unwrap();
    let row = listed.iter().find(|c| c.id == id).expect("listed");
    assert_eq!(row.image, tag);
    let row = client.container(&id).await.unwrap().expect("found");
    assert_eq!(row.image, tag);
}
