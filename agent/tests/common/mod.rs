//! Test containers shared by the Docker-backed tests, on the engine testkit's `require_docker`
//! gives (skip, or fail under `CI=true`, when it is unreachable), removed by a testkit
//! `Cleanup` even when a test fails.

#![allow(dead_code)]

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HealthConfig, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, StartContainerOptions,
};
use zedops_testkit::docker::{Cleanup, TEST_IMAGE};

/// Test containers, force-removed when the test ends, also when it fails.
pub struct Scratch {
    pub docker: Docker,
    pub suffix: String,
    cleanup: Cleanup,
}

/// How a test container is made.
#[derive(Default)]
pub struct Spec {
    pub start: bool,
    /// Run `sleep` under Docker's init, so SIGTERM stops it at once. Without it `sleep` is PID 1,
    /// which the kernel shields from SIGTERM, so a stop waits out the whole grace period.
    pub init: bool,
    pub healthcheck: bool,
}

impl Spec {
    /// Started, under init (stops at once): what most tests want.
    pub const RUNNING: Spec = Spec {
        start: true,
        init: true,
        healthcheck: false,
    };

    /// Created, not started, under init (once started, a stop ends it at once).
    pub const STOPPED: Spec = Spec {
        start: false,
        init: true,
        healthcheck: false,
    };

    /// Started without init: `sleep` is PID 1 and shrugs off SIGTERM, so a stop takes the
    /// whole grace period.
    pub const SLOW_TO_STOP: Spec = Spec {
        start: true,
        init: false,
        healthcheck: false,
    };
}

impl Scratch {
    /// `None` (skip) when the engine is unreachable outside CI.
    pub async fn new() -> Option<Self> {
        let docker = zedops_testkit::require_docker().await?;
        let suffix = format!("{:08x}", rand::random::<u32>());
        Some(Self {
            docker,
            suffix,
            cleanup: Cleanup::new("zedops-test"),
        })
    }

    /// Creates `zedops-test-<role>-<suffix>` and returns its name and id.
    pub async fn create(&mut self, role: &str, spec: Spec) -> (String, String) {
        let name = format!("zedops-test-{role}-{}", self.suffix);
        self.adopt(&name);
        let body = ContainerCreateBody {
            image: Some(TEST_IMAGE.into()),
            cmd: Some(vec!["/bin/sleep".into(), "100000".into()]),
            labels: Some(HashMap::from([(
                "zedops.test".to_string(),
                self.suffix.clone(),
            )])),
            exposed_ports: Some(HashMap::from([("8080/tcp".to_string(), HashMap::new())])),
            healthcheck: spec.healthcheck.then(|| HealthConfig {
                test: Some(vec!["CMD".into(), "/bin/true".into()]),
                interval: Some(500_000_000),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                init: Some(spec.init),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .expect("create test container");
        if spec.start {
            self.docker
                .start_container(&name, None::<StartContainerOptions>)
                .await
                .expect("start test container");
        }
        (name, created.id)
    }

    /// Removes `name` with the others when the test ends (a container the test made itself).
    pub fn adopt(&mut self, name: &str) {
        self.cleanup.containers.push(name.to_string());
    }

    pub async fn running(&self, name: &str) -> bool {
        self.inspect(name).await.0
    }

    /// Whether the container runs, when it last started, and its last exit code.
    pub async fn inspect(&self, name: &str) -> (bool, String, i64) {
        let info = self
            .docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
            .expect("inspect");
        let state = info.state.expect("state");
        (
            state.running.unwrap_or(false),
            state.started_at.unwrap_or_default(),
            state.exit_code.unwrap_or(-1),
        )
    }
}
