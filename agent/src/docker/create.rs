//! Creating and removing containers: a validated, policy-checked `ContainerSpec` becomes
//! Docker's structured create body (never a command line), stamped with the ZedOps labels.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, HealthConfig, HostConfig, Mount, MountTypeEnum, PortBinding,
    RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, RemoveContainerOptionsBuilder,
    StartContainerOptions,
};
use zedops_protocol::{
    ContainerCreate, ContainerCreated, ContainerSpec, ErrorCode, LABEL_CREATED_BY, LABEL_PROTECTED,
    LABEL_TEMPLATE, LABEL_TEMPLATE_VERSION, RestartPolicy as Restart, VolumeKind,
};

use super::{DockerClient, DockerError, bare};

const NANOS: i64 = 1_000_000_000;

/// Docker's create body for `request`: the spec's fields, the ZedOps labels, nothing else.
pub fn body(request: &ContainerCreate) -> ContainerCreateBody {
    let spec = &request.spec;
    let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
    if let Some(template) = &request.template {
        labels.insert(LABEL_TEMPLATE.into(), template.name.clone());
        labels.insert(LABEL_TEMPLATE_VERSION.into(), template.version.to_string());
    }
    if let Some(user) = &request.created_by {
        labels.insert(LABEL_CREATED_BY.into(), user.clone());
    }
    let mut exposed = HashMap::new();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for port in &spec.ports {
        let key = format!("{}/{}", port.container, port.protocol.as_str());
        exposed.insert(key.clone(), HashMap::new());
        bindings
            .entry(key)
            .or_default()
            .get_or_insert_default()
            .push(PortBinding {
                host_ip: port.host_ip.map(|ip| ip.to_string()),
                // Empty: Docker picks a free port.
                host_port: Some(port.host.map(|p| p.to_string()).unwrap_or_default()),
            });
    }
    let mounts = spec
        .volumes
        .iter()
        .map(|v| Mount {
            target: Some(v.target.clone()),
            source: Some(v.source.clone()),
            typ: Some(match v.kind {
                VolumeKind::Volume => MountTypeEnum::VOLUME,
                VolumeKind::Bind => MountTypeEnum::BIND,
            }),
            read_only: Some(v.read_only),
            ..Mount::default()
        })
        .collect();
    let restart = RestartPolicy {
        name: Some(match spec.restart {
            Restart::No => RestartPolicyNameEnum::NO,
            Restart::Always => RestartPolicyNameEnum::ALWAYS,
            Restart::UnlessStopped => RestartPolicyNameEnum::UNLESS_STOPPED,
            Restart::OnFailure => RestartPolicyNameEnum::ON_FAILURE,
        }),
        maximum_retry_count: spec.restart_max_retries.map(i64::from),
    };
    let resources = &spec.resources;
    let host_config = HostConfig {
        port_bindings: Some(bindings),
        mounts: Some(mounts),
        restart_policy: Some(restart),
        nano_cpus: resources.cpus.map(|c| (c * NANOS as f64).round() as i64),
        memory: resources.memory_bytes.map(clamp),
        memory_swap: resources.memory_swap_bytes.map(clamp),
        pids_limit: resources.pids.map(i64::from),
        network_mode: spec.network.clone(),
        // Said outright rather than left to Docker's defaults, so a changed default cannot
        // widen what a deployed container may do.
        privileged: Some(false),
        publish_all_ports: Some(false),
        ..HostConfig::default()
    };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: spec.cmd.clone(),
        entrypoint: spec.entrypoint.clone(),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        exposed_ports: Some(exposed),
        labels: Some(labels),
        healthcheck: spec.health_check.as_ref().map(|h| HealthConfig {
            test: Some(
                std::iter::once("CMD".to_string())
                    .chain(h.cmd.iter().cloned())
                    .collect(),
            ),
            interval: h.interval_secs.map(|s| i64::from(s) * NANOS),
            timeout: h.timeout_secs.map(|s| i64::from(s) * NANOS),
            retries: h.retries.map(i64::from),
            start_period: h.start_period_secs.map(|s| i64::from(s) * NANOS),
            ..HealthConfig::default()
        }),
        stop_signal: spec.stop_signal.clone(),
        stop_timeout: spec.stop_grace_secs.map(i64::from),
        open_stdin: Some(spec.open_stdin),
        attach_stdin: Some(false),
        tty: Some(spec.tty),
        working_dir: spec.working_dir.clone(),
        host_config: Some(host_config),
        ..ContainerCreateBody::default()
    }
}

fn clamp(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

impl DockerClient {
    /// Refuses with `CONTAINER_NAME_IN_USE` when a container is named `name` already: checked
    /// before the ports and any pull, so a deploy under a taken name says so (not that its port
    /// is taken, as it is, by the container of that very name) and pulls nothing. Docker's
    /// inspect also matches id prefixes: only a container of exactly this name counts.
    pub async fn check_name_free(&self, name: &str) -> Result<(), DockerError> {
        let found = self
            .call(ErrorCode::DockerListFailed, Some(name), |d| async move {
                d.inspect_container(name, None::<InspectContainerOptions>)
                    .await
            })
            .await;
        match found {
            Ok(found) if found.name.as_deref().map(bare) == Some(name) => Err(name_in_use(name)),
            Ok(_) => Ok(()),
            Err(e) if e.code() == ErrorCode::ContainerNotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Creates the container `request` describes (its image must be present) and starts it
    /// when asked. A start that fails removes the new container again, so a port clash leaves
    /// nothing behind and the same name can be used at once.
    pub async fn create(&self, request: &ContainerCreate) -> Result<ContainerCreated, DockerError> {
        let options = CreateContainerOptionsBuilder::new()
            .name(&request.name)
            .build();
        let config = body(request);
        let created = self
            .call(ErrorCode::DockerCreateFailed, None, |d| async move {
                d.create_container(Some(options), config).await
            })
            .await
            .map_err(|e| create_error(e, &request.name, &request.spec))?;
        let id = created.id;
        tracing::info!(container = %request.name, id = %&id[..id.len().min(12)], "created a container");
        if request.start {
            let started = self
                .call(ErrorCode::DockerStartFailed, None, |d| {
                    let id = id.clone();
                    async move { d.start_container(&id, None::<StartContainerOptions>).await }
                })
                .await;
            if let Err(err) = started {
                let err = start_error(err, &request.spec);
                let _ = self.remove_unchecked(&id, true, true).await;
                tracing::warn!(container = %request.name, %err, "the new container did not start; removed it");
                return Err(err);
            }
        }
        Ok(ContainerCreated {
            id,
            name: request.name.clone(),
            started: request.start,
            warnings: created.warnings,
        })
    }

    /// Removes a container, refusing the agent's own (`SELF_PROTECTED`) and those labelled
    /// `zedops.protected=true` (`PROTECTED`). Without `force` a running one is refused with a
    /// sentence saying so.
    pub async fn remove(
        &self,
        reference: &str,
        force: bool,
        volumes: bool,
    ) -> Result<String, DockerError> {
        let name = bare(reference);
        let inspected = self
            .call(
                ErrorCode::DockerRemoveFailed,
                Some(reference),
                |d| async move {
                    d.inspect_container(name, None::<InspectContainerOptions>)
                        .await
                },
            )
            .await?;
        let id = inspected.id.unwrap_or_default();
        if self.own_container.as_deref() == Some(id.as_str()) {
            return Err(DockerError::new(
                ErrorCode::SelfProtected,
                format!(
                    "{reference} is the container this agent runs in; removing it would cut the server off from ZedOps"
                ),
            ));
        }
        let config = inspected.config.unwrap_or_default();
        let protected = config
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_PROTECTED))
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if protected {
            return Err(DockerError::new(
                ErrorCode::Protected,
                format!(
                    "{reference} is labelled zedops.protected=true; remove the label on the server to allow removing it"
                ),
            ));
        }
        let running = inspected.state.and_then(|s| s.running).unwrap_or(false);
        if running && !force {
            return Err(DockerError::new(
                ErrorCode::DockerRemoveFailed,
                format!("{reference} is running; stop it first, or remove it with --force"),
            ));
        }
        self.remove_unchecked(&id, force, volumes).await?;
        tracing::info!(container = %&id[..id.len().min(12)], force, volumes, "removed a container");
        Ok(id)
    }

    /// Removes by full id, without the protection checks (for a container this agent just made,
    /// or one an update replaces).
    pub(super) async fn remove_unchecked(
        &self,
        id: &str,
        force: bool,
        volumes: bool,
    ) -> Result<(), DockerError> {
        let options = RemoveContainerOptionsBuilder::new()
            .force(force)
            .v(volumes)
            .build();
        let _ours = self.requested.begin(id);
        self.call(ErrorCode::DockerRemoveFailed, Some(id), |d| async move {
            d.remove_container(id, Some(options)).await
        })
        .await
    }
}

/// `CONTAINER_NAME_IN_USE` for `name`, with what to do.
fn name_in_use(name: &str) -> DockerError {
    DockerError::new(
        ErrorCode::ContainerNameInUse,
        format!(
            "a container named {name} already exists on this server; choose another name or remove that one"
        ),
    )
}

/// A failed create, with its own code for a name already taken.
fn create_error(err: DockerError, name: &str, spec: &ContainerSpec) -> DockerError {
    let message = err.to_string();
    if err.code() == ErrorCode::DockerCreateFailed && message.contains("is already in use") {
        return name_in_use(name);
    }
    if err.code() == ErrorCode::DockerCreateFailed && message.contains("No such image") {
        return DockerError::new(
            ErrorCode::ImageNotFound,
            format!("image {} is not on this server; pull it first", spec.image),
        );
    }
    err
}

/// A failed start of a new container, with its own code for a host port already taken.
fn start_error(err: DockerError, spec: &ContainerSpec) -> DockerError {
    let message = err.to_string();
    let port_taken =
        message.contains("port is already allocated") || message.contains("address already in use");
    if port_taken {
        let asked: Vec<String> = spec
            .ports
            .iter()
            .filter_map(|p| p.host.map(|h| format!("{h}/{}", p.protocol.as_str())))
            .collect();
        return DockerError::new(
            ErrorCode::PortInUse,
            format!(
                "a host port this container asks for ({}) is already in use on this server; choose another port or stop what uses it",
                asked.join(", ")
            ),
        );
    }
    err
}
