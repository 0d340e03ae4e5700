//! A real image registry on loopback for tests: Debian's `docker-registry` (Docker's
//! distribution 2.8) started with a temporary config and filesystem storage, filled with the
//! local test image. Docker treats 127.0.0.0/8 registries as insecure, so plain HTTP pushes and
//! pulls work with no internet and no TLS. Under `CI=true` a missing `docker-registry` fails.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::models::{ContainerConfig, ContainerCreateBody};
use bollard::query_parameters::{
    CommitContainerOptionsBuilder, PushImageOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptionsBuilder, TagImageOptionsBuilder, WaitContainerOptions,
};
use futures_util::StreamExt;

use crate::docker::{TEST_IMAGE, create_named, labelled, unique_name};
use crate::server::free_port;

/// The binary Debian's `docker-registry` package installs.
pub const REGISTRY_BINARY: &str = "docker-registry";
/// User and password of a registry started [`with_auth`](TestRegistry::start_with_auth).
pub const AUTH_USER: &str = "zedops";
pub const AUTH_PASSWORD: &str = "zedops-secret";
/// bcrypt of [`AUTH_PASSWORD`] (htpasswd format, what the registry reads).
const AUTH_HTPASSWD: &str = "zedops:$2b$12$BksXaACsERoIcQ0lgeecoOJz1VM.1PuRJE0SKBuug5KT0SJ2cC4yW";

/// The Docker engine (see [`require_docker`](crate::require_docker)) and a registry on loopback,
/// the start of the tests that pull; `None` (the test skips) when either is missing outside CI,
/// a failure under `CI=true`.
pub async fn docker_and_registry() -> Option<(Docker, TestRegistry)> {
    let docker = crate::require_docker().await?;
    let registry = TestRegistry::start().await?;
    Some((docker, registry))
}

/// A running registry, stopped on drop: its storage is deleted and what the engine pulled from
/// it untagged (each registry has a port of its own, so nothing else refers to those images).
pub struct TestRegistry {
    child: Child,
    port: u16,
    auth: bool,
    _dir: tempfile::TempDir,
}

impl TestRegistry {
    /// Starts a registry on a free loopback port, or `None` (after saying why) when
    /// `docker-registry` is missing outside CI.
    pub async fn start() -> Option<Self> {
        Self::launch(false).await
    }

    /// Like [`start`](Self::start), with basic authentication ([`AUTH_USER`], [`AUTH_PASSWORD`]).
    pub async fn start_with_auth() -> Option<Self> {
        Self::launch(true).await
    }

    async fn launch(auth: bool) -> Option<Self> {
        let Some(binary) = find_binary() else {
            let problem = format!("{REGISTRY_BINARY} is not installed; run scripts/setup");
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{problem} (CI=true: the deploy tests need the loopback registry)");
            }
            eprintln!("SKIPPED: {problem}");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir for the registry");
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if auth {
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{AUTH_HTPASSWD}\n")).expect("write htpasswd");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: zedops-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write the registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("registry log");
        let child = Command::new(binary)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let registry = Self {
            child,
            port,
            auth,
            _dir: dir,
        };
        registry.wait_ready().await;
        Some(registry)
    }

    async fn wait_ready(&self) {
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log =
            std::fs::read_to_string(self._dir.path().join("registry.log")).unwrap_or_default();
        panic!(
            "docker-registry did not listen on 127.0.0.1:{} within 5 s; its log:\n{log}",
            self.port
        );
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT/<path>`, e.g. `image("zedops/busybox:1")`.
    pub fn image(&self, path: &str) -> String {
        format!("{}/{path}", self.host())
    }

    /// The digest this registry serves for `reference` now (asked through the engine).
    pub async fn served_digest(&self, docker: &Docker, reference: &str) -> String {
        docker
            .inspect_registry_image(reference, None)
            .await
            .unwrap_or_else(|e| panic!("the registry serves {reference}: {e}"))
            .descriptor
            .digest
            .expect("a digest")
    }

    /// Pushes the local test image as `<host>/<repo>:<tag>`, then removes that local tag (the
    /// test image itself stays), so that an agent must pull it. Returns the reference.
    pub async fn push_test_image(&self, docker: &Docker, repo: &str, tag: &str) -> String {
        self.push_local(docker, TEST_IMAGE, repo, tag).await
    }

    /// Pushes a new image with a layer of its own (`bytes` random bytes in `/noise` on top of
    /// the test image) as `<host>/<repo>:<tag>`, and deletes it locally: pulling it downloads a
    /// layer, so progress has bytes to report.
    pub async fn push_unique_image(
        &self,
        docker: &Docker,
        repo: &str,
        tag: &str,
        bytes: usize,
    ) -> String {
        let name = unique_name("zt-noise");
        // The test image links few applets; busybox itself has them all.
        let cmd = [
            "busybox".to_string(),
            "dd".into(),
            "if=/dev/urandom".into(),
            "of=/noise".into(),
            "bs=1024".into(),
            format!("count={}", bytes.div_ceil(1024)),
        ];
        self.push_built(docker, name, &cmd, ContainerConfig::default(), repo, tag)
            .await
    }

    /// Pushes a new build of the test image as `<host>/<repo>:<tag>` and deletes it locally, so
    /// whoever uses it must pull it: the build has a file of its own (`/build-id`, so its own
    /// image id even under a tag pushed before) and runs as `config` says (its command, health
    /// check, stop signal; the test label is added). Returns the reference.
    pub async fn push_build(
        &self,
        docker: &Docker,
        repo: &str,
        tag: &str,
        config: ContainerConfig,
    ) -> String {
        let name = unique_name("zt-build");
        let cmd = [
            "/bin/sh".to_string(),
            "-c".into(),
            format!("echo {name} > /build-id"),
        ];
        let mut labels = config.labels.clone().unwrap_or_default();
        labels.insert(crate::docker::TEST_LABEL.to_string(), "1".to_string());
        let config = ContainerConfig {
            labels: Some(labels),
            ..config
        };
        self.push_built(docker, name, &cmd, config, repo, tag).await
    }

    /// Runs `cmd` in container `name` of the test image to its end, commits the result as an
    /// image with `config`, pushes it as `<host>/<repo>:<tag>` and deletes the local copies.
    async fn push_built(
        &self,
        docker: &Docker,
        name: String,
        cmd: &[String],
        config: ContainerConfig,
        repo: &str,
        tag: &str,
    ) -> String {
        let body = ContainerCreateBody {
            cmd: Some(cmd.to_vec()),
            ..labelled(TEST_IMAGE, None)
        };
        create_named(docker, &name, body, true).await;
        let mut wait = docker.wait_container(&name, None::<WaitContainerOptions>);
        while let Some(status) = wait.next().await {
            status.unwrap_or_else(|e| panic!("the build container {name} ran: {e}"));
        }
        let local = format!("zedops-test/{name}");
        let options = CommitContainerOptionsBuilder::new()
            .container(&name)
            .repo(&local)
            .tag("1")
            .build();
        docker
            .commit_container(options, config)
            .await
            .unwrap_or_else(|e| panic!("commit the build {name}: {e}"));
        let remove = RemoveContainerOptionsBuilder::new().force(true).build();
        let _ = docker.remove_container(&name, Some(remove)).await;
        let reference = self
            .push_local(docker, &format!("{local}:1"), repo, tag)
            .await;
        let options = RemoveImageOptionsBuilder::new().force(true).build();
        docker
            .remove_image(&format!("{local}:1"), Some(options), None)
            .await
            .unwrap_or_else(|e| panic!("remove the local build {local}:1: {e}"));
        reference
    }

    async fn push_local(&self, docker: &Docker, local: &str, repo: &str, tag: &str) -> String {
        let target = self.image(repo);
        let options = TagImageOptionsBuilder::new().repo(&target).tag(tag).build();
        docker
            .tag_image(local, Some(options))
            .await
            .expect("tag the image for the test registry");
        let credentials = self.auth.then(|| DockerCredentials {
            username: Some(AUTH_USER.into()),
            password: Some(AUTH_PASSWORD.into()),
            serveraddress: Some(self.host()),
            ..Default::default()
        });
        let options = PushImageOptionsBuilder::new().tag(tag).build();
        let mut push = docker.push_image(&target, Some(options), credentials);
        while let Some(step) = push.next().await {
            step.unwrap_or_else(|e| panic!("push {target}:{tag} to the test registry: {e}"));
        }
        let reference = format!("{target}:{tag}");
        let options = RemoveImageOptionsBuilder::new().build();
        docker
            .remove_image(&reference, Some(options), None)
            .await
            .expect("untag the pushed image locally");
        reference
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        crate::docker::remove_images_under(format!("{}/", self.host()));
    }
}

fn find_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(REGISTRY_BINARY))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::references_under;

    /// Tests that pull from a registry (deploys, updates) leave nothing of it on the engine:
    /// neither the tag nor an older build the tag moved away from; the test image keeps its
    /// name.
    #[tokio::test]
    async fn what_was_pulled_from_a_registry_is_removed_with_it() {
        let Some((docker, registry)) = docker_and_registry().await else {
            return;
        };
        let prefix = format!("{}/", registry.host());
        let first = registry
            .push_build(&docker, "zt/left", "1", ContainerConfig::default())
            .await;
        crate::docker::pull(&docker, &first).await;
        let second = registry
            .push_build(&docker, "zt/left", "1", ContainerConfig::default())
            .await;
        crate::docker::pull(&docker, &second).await;
        let test_image = registry.push_test_image(&docker, "zt/base", "1").await;
        crate::docker::pull(&docker, &test_image).await;
        let pulled = references_under(&docker, &prefix).await.unwrap();
        assert!(pulled.len() >= 3, "the pulls left {pulled:?}");

        drop(registry);
        assert_eq!(
            references_under(&docker, &prefix).await.unwrap(),
            Vec::<String>::new()
        );
        docker
            .inspect_image(TEST_IMAGE)
            .await
            .expect("the test image keeps its name");
    }
}
