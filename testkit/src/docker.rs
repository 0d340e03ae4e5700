//! The real Docker engine for tests: finding it (a failure under `CI=true` when it is missing),
//! throwaway containers from the locally imported busybox image, and everything else a test
//! makes (volumes, images, containers under its own prefix), all removed on drop.

use bollard::Docker;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{InspectContainerOptions, RemoveContainerOptions};

/// The image `scripts/setup` imports from busybox-static; nothing can be pulled here.
pub const TEST_IMAGE: &str = "zedops-test/busybox:latest";
/// Label on every test container, so leftovers are easy to find and remove.
pub const TEST_LABEL: &str = "zedops-test";

/// `<tag>-` and eight hex digits of a fresh UUID: a name no other test or run uses at the same
/// time on the shared engine.
pub(crate) fn unique_name(tag: &str) -> String {
    format!("{tag}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// Pulls `reference` on the engine to the end and returns the pulled image's id.
pub async fn pull(docker: &Docker, reference: &str) -> String {
    use futures_util::StreamExt;
    let options = bollard::query_parameters::CreateImageOptionsBuilder::new()
        .from_image(reference)
        .build();
    let mut pull = docker.create_image(Some(options), None, None);
    while let Some(step) = pull.next().await {
        step.unwrap_or_else(|e| panic!("pull {reference}: {e}"));
    }
    let image = docker
        .inspect_image(reference)
        .await
        .unwrap_or_else(|e| panic!("inspect the pulled {reference}: {e}"));
    image.id.expect("an image id")
}

/// Settings of a container from `image` with the test label, and `zedops.update=<update>`
/// when given.
pub fn labelled(image: &str, update: Option<&str>) -> ContainerCreateBody {
    let mut labels = std::collections::HashMap::from([(TEST_LABEL.to_string(), "1".to_string())]);
    if let Some(update) = update {
        labels.insert(
            zedops_protocol::LABEL_UPDATE.to_string(),
            update.to_string(),
        );
    }
    ContainerCreateBody {
        image: Some(image.to_string()),
        labels: Some(labels),
        ..Default::default()
    }
}

/// Creates container `name` with `body`, started when `start`; returns its id.
pub async fn create_named(
    docker: &Docker,
    name: &str,
    body: ContainerCreateBody,
    start: bool,
) -> String {
    let options = bollard::query_parameters::CreateContainerOptionsBuilder::new()
        .name(name)
        .build();
    let id = docker
        .create_container(Some(options), body)
        .await
        .unwrap_or_else(|e| panic!("create container {name}: {e}"))
        .id;
    if start {
        docker
            .start_container(
                &id,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
            .unwrap_or_else(|e| panic!("start container {name}: {e}"));
    }
    id
}

/// The local Docker engine with the test image, or `None` (after saying why) when there is
/// none outside CI. Under `CI=true` a missing engine or image fails the test.
pub async fn require_docker() -> Option<Docker> {
    let problem = match Docker::connect_with_local_defaults() {
        Err(e) => format!("cannot connect to Docker: {e}"),
        Ok(docker) => match docker.negotiate_version().await {
            Err(e) => format!("Docker is not answering: {e}"),
            Ok(docker) => match docker.inspect_image(TEST_IMAGE).await {
                Ok(_) => return Some(docker),
                Err(e) => format!("test image {TEST_IMAGE} missing ({e}); run scripts/setup"),
            },
        },
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{problem} (CI=true: tests need the real engine)");
    }
    eprintln!("SKIPPED: {problem}");
    None
}

/// Containers created for one test, all removed (forcibly) when this is dropped.
pub struct TestContainers {
    docker: Docker,
    prefix: String,
    names: Vec<String>,
}

impl TestContainers {
    pub fn new(docker: &Docker) -> Self {
        Self {
            docker: docker.clone(),
            prefix: unique_name("zt"),
            names: vec![],
        }
    }

    /// Creates a container `<prefix>-<suffix>` running `cmd`; started when `start` is true.
    /// Returns its full name.
    pub async fn create(&mut self, suffix: &str, cmd: &[&str], start: bool) -> String {
        let body = ContainerCreateBody {
            cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        };
        self.create_with(suffix, body, start).await
    }

    /// Like [`create`](Self::create) with more of the container's configuration (environment,
    /// mounts, restart policy); the image and the test label are filled in.
    pub async fn create_with(
        &mut self,
        suffix: &str,
        mut body: ContainerCreateBody,
        start: bool,
    ) -> String {
        let name = format!("{}-{suffix}", self.prefix);
        body.image = Some(TEST_IMAGE.to_string());
        body.labels
            .get_or_insert_with(Default::default)
            .insert(TEST_LABEL.to_string(), "1".to_string());
        // Removed on drop even when creating or starting it fails half way.
        self.names.push(name.clone());
        create_named(&self.docker, &name, body, start).await;
        name
    }

    /// Command of a long-running container that exits at once on SIGTERM. A bare `sleep` as
    /// PID 1 ignores SIGTERM, which would make every stop wait out the 10 s grace.
    pub const SLEEP_CMD: [&str; 3] = ["/bin/sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"];

    /// What [`create_with`](Self::create_with) needs for a long-running container; the rest
    /// (environment, mounts, …) is the test's: `ContainerCreateBody { env, ..TestContainers::sleeper_body() }`.
    pub fn sleeper_body() -> ContainerCreateBody {
        ContainerCreateBody {
            cmd: Some(Self::SLEEP_CMD.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }

    /// A long-running container, started.
    pub async fn sleeper(&mut self, suffix: &str) -> String {
        self.create(suffix, &Self::SLEEP_CMD, true).await
    }

    /// A long-running container, created but not started (Docker's state `created`).
    pub async fn created_sleeper(&mut self, suffix: &str) -> String {
        self.create(suffix, &Self::SLEEP_CMD, false).await
    }

    /// Docker's own view of a container's state (`running`, `exited`, …).
    pub async fn state(&self, name: &str) -> String {
        self.inspected_state(name)
            .await
            .and_then(|s| s.status)
            .map(|s| s.to_string())
            .unwrap_or_default()
    }

    /// When the container last started (changes on every restart).
    pub async fn started_at(&self, name: &str) -> String {
        self.inspected_state(name)
            .await
            .and_then(|s| s.started_at)
            .unwrap_or_default()
    }

    async fn inspected_state(&self, name: &str) -> Option<bollard::models::ContainerState> {
        self.docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
            .expect("inspect")
            .state
    }

    /// Kills a container with SIGKILL, as a crash or `docker kill` from outside ZedOps would.
    pub async fn kill(&self, name: &str) {
        self.docker
            .kill_container(
                name,
                None::<bollard::query_parameters::KillContainerOptions>,
            )
            .await
            .expect("kill test container");
    }

    /// Waits until a line of the container's log (stdout or stderr) is `line`, up to 10 s: the
    /// sign that what the container printed before it is in Docker's log too.
    pub async fn wait_log(&self, name: &str, line: &str) {
        use futures_util::StreamExt;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let options = bollard::query_parameters::LogsOptionsBuilder::new()
                .stdout(true)
                .stderr(true)
                .build();
            let logs: Vec<_> = self.docker.logs(name, Some(options)).collect().await;
            let found = logs.iter().flatten().any(|chunk| {
                String::from_utf8_lossy(&chunk.clone().into_bytes())
                    .lines()
                    .any(|l| l == line)
            });
            if found {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} did not log {line:?} within 10 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }
}

/// Runs `work` with a new engine client on a short-lived runtime of its own thread, and waits
/// for it: `Drop` cannot await, and a client's connections belong to the runtime that made
/// them. Nothing happens when the engine cannot be reached.
fn with_fresh_client<F, Fut>(work: F)
where
    F: FnOnce(Docker) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let Ok(docker) = Docker::connect_with_local_defaults() else {
                return;
            };
            let Ok(docker) = docker.negotiate_version().await else {
                return;
            };
            work(docker).await;
        });
    })
    .join();
}

/// Removes every local image reference (tag or digest) under `prefix` (a test registry's
/// `<host>:<port>/`): what agents under test pulled from a registry that is gone is of no use,
/// and each run's registry has a new port. References, not image ids, so an image also tagged
/// otherwise (the test image itself) keeps its other names; not forced, so an image a container
/// still uses stays.
pub(crate) fn remove_images_under(prefix: String) {
    with_fresh_client(move |docker| async move {
        let references = references_under(&docker, &prefix).await.unwrap_or_default();
        for reference in references {
            let _ = docker
                .remove_image(
                    &reference,
                    None::<bollard::query_parameters::RemoveImageOptions>,
                    None,
                )
                .await;
        }
    });
}

/// The engine's image references (tags and digests) that start with `prefix`.
pub(crate) async fn references_under(
    docker: &Docker,
    prefix: &str,
) -> Result<Vec<String>, bollard::errors::Error> {
    let options = bollard::query_parameters::ListImagesOptionsBuilder::new()
        .all(true)
        .build();
    let images = docker.list_images(Some(options)).await?;
    Ok(images
        .into_iter()
        .flat_map(|image| image.repo_tags.into_iter().chain(image.repo_digests))
        .filter(|reference| reference.starts_with(prefix))
        .collect())
}

impl Drop for TestContainers {
    fn drop(&mut self) {
        let names = std::mem::take(&mut self.names);
        with_fresh_client(|docker| async move {
            for name in names {
                let options = RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                };
                let _ = docker.remove_container(&name, Some(options)).await;
            }
        });
    }
}

/// What one test made on the engine beside plain containers — containers named under its own
/// prefix (and whatever an update leaves under it, such as `<name>.zedops-old`), volumes and
/// images — all removed (forcibly, with their anonymous volumes) when this is dropped, even
/// when the test fails half way.
pub struct Cleanup {
    /// `<tag>-<8 hex digits>`: unique per test, so parallel tests never touch each other's.
    pub prefix: String,
    /// Containers to remove that are not named under the prefix.
    pub containers: Vec<String>,
    pub volumes: Vec<String>,
    pub images: Vec<String>,
}

impl Cleanup {
    /// A cleanup whose names start with `<tag>-`.
    pub fn new(tag: &str) -> Self {
        Self {
            prefix: unique_name(tag),
            containers: vec![],
            volumes: vec![],
            images: vec![],
        }
    }

    /// `<prefix>-<suffix>`: a container name removed on drop.
    pub fn name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.prefix)
    }

    /// `<prefix>-<suffix>`: a volume name removed on drop.
    pub fn volume(&mut self, suffix: &str) -> String {
        let name = self.name(suffix);
        self.volumes.push(name.clone());
        name
    }
}

/// Names of every container (running or not) whose name starts with `prefix`, sorted.
pub async fn names_with_prefix(docker: &Docker, prefix: &str) -> Vec<String> {
    let options = bollard::query_parameters::ListContainersOptionsBuilder::new()
        .all(true)
        .build();
    let mut names: Vec<String> = docker
        .list_containers(Some(options))
        .await
        .unwrap_or_default()
        .into_iter()
        .flat_map(|c| c.names.unwrap_or_default())
        .map(|n| n.trim_start_matches('/').to_string())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let prefix = self.prefix.clone();
        let containers = std::mem::take(&mut self.containers);
        let volumes = std::mem::take(&mut self.volumes);
        let images = std::mem::take(&mut self.images);
        with_fresh_client(|docker| async move {
            let mut doomed = names_with_prefix(&docker, &prefix).await;
            doomed.extend(containers);
            for name in doomed {
                let options = RemoveContainerOptions {
                    force: true,
                    v: true,
                    ..Default::default()
                };
                let _ = docker.remove_container(&name, Some(options)).await;
            }
            for volume in volumes {
                let _ = docker
                    .remove_volume(
                        &volume,
                        None::<bollard::query_parameters::RemoveVolumeOptions>,
                    )
                    .await;
            }
            for image in images {
                let options = bollard::query_parameters::RemoveImageOptions {
                    force: true,
                    ..Default::default()
                };
                let _ = docker.remove_image(&image, Some(options), None).await;
            }
        });
    }
}
