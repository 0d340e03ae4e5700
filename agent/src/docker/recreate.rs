//! The engine calls of a container update (see [`crate::container_update`]): what a container
//! is made of, renaming and stopping it with its own signal and grace, creating its successor
//! with the same configuration on a new image, watching that one's state and health, its last
//! log lines, and running the pre-update hook in it. Bollard's types stay in here.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointSettings, HealthStatusEnum, ImageConfig,
    Mount, MountPointTypeEnum, MountTypeEnum, NetworkConnectRequest, NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, LogsOptionsBuilder,
    RenameContainerOptionsBuilder, StartContainerOptions, StopContainerOptions,
};
use futures_util::StreamExt;
use zedops_protocol::{ContainerSpec, ErrorCode, VolumeKind, VolumeSpec};

use super::{DockerClient, DockerError, bare};

/// A container as an update needs it: who it is, what it runs, and its whole configuration
/// (kept private: only [`DockerClient::recreate`] reads it).
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Full id.
    pub id: String,
    /// Name without the leading `/`.
    pub name: String,
    /// The image reference it was created with (`Config.Image`).
    pub image: String,
    /// The image id it runs (`sha256:…`).
    pub image_id: String,
    pub running: bool,
    pub labels: HashMap<String, String>,
    inspected: ContainerInspectResponse,
}

impl Snapshot {
    /// The settings of this container the agent's local policy judges, as a spec, so that an
    /// update never recreates a container the agent would refuse to create (privileged, host
    /// namespaces, devices, the Docker socket, binds outside `--allow-bind`).
    pub fn policy_spec(&self) -> ContainerSpec {
        let host = self.inspected.host_config.clone().unwrap_or_default();
        let shared =
            |mode: Option<String>| mode.filter(|m| m == "host" || m.starts_with("container:"));
        let volumes = self
            .inspected
            .mounts
            .iter()
            .flatten()
            .filter(|m| m.typ == Some(MountPointTypeEnum::BIND))
            .map(|m| VolumeSpec {
                kind: VolumeKind::Bind,
                source: m.source.clone().unwrap_or_default(),
                target: m.destination.clone().unwrap_or_default(),
                read_only: m.rw == Some(false),
            })
            .collect();
        ContainerSpec {
            image: self.image.clone(),
            privileged: host.privileged == Some(true),
            cap_add: host.cap_add.unwrap_or_default(),
            devices: host
                .devices
                .unwrap_or_default()
                .into_iter()
                .map(|d| d.path_on_host.unwrap_or_default())
                .collect(),
            pid_mode: shared(host.pid_mode),
            ipc_mode: shared(host.ipc_mode),
            network: host.network_mode,
            volumes,
            ..ContainerSpec::default()
        }
    }
}

impl DockerError {
    /// A container an update counted on is no longer there.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ContainerNotFound, message)
    }
}

/// A container's state while an update watches it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunState {
    pub running: bool,
    /// Docker's word: `created`, `running`, `restarting`, `exited`, ….
    pub status: String,
    pub exit_code: Option<i64>,
    pub restart_count: i64,
    pub started_at: Option<String>,
    /// `None` when the container has no health check.
    pub health: Option<Health>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    /// The last check's output, cut short.
    pub last_output: String,
}

/// Longest log line a rollback reports (cut and marked beyond).
const MAX_TAIL_LINE: usize = 1024;
/// Longest part of a health check's output kept for a rollback's reason.
const MAX_HEALTH_OUTPUT: usize = 512;

impl DockerClient {
    /// What `reference` (name, id or id prefix) is, for an update. Refuses the agent's own
    /// container (`SELF_PROTECTED`).
    pub async fn snapshot(&self, reference: &str) -> Result<Snapshot, DockerError> {
        let inspected = self.inspect_raw(reference).await?;
        let id = inspected.id.clone().unwrap_or_default();
        if self.own_container.as_deref() == Some(id.as_str()) {
            return Err(DockerError::new(
                ErrorCode::SelfProtected,
                format!(
                    "{reference} is the container this agent runs in; update the agent with `zedops agent update` instead"
                ),
            ));
        }
        let config = inspected.config.clone().unwrap_or_default();
        Ok(Snapshot {
            name: inspected
                .name
                .as_deref()
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_default(),
            image: config.image.unwrap_or_default(),
            image_id: inspected.image.clone().unwrap_or_default(),
            running: inspected
                .state
                .as_ref()
                .and_then(|s| s.running)
                .unwrap_or(false),
            labels: config.labels.unwrap_or_default(),
            id,
            inspected,
        })
    }

    async fn inspect_raw(&self, reference: &str) -> Result<ContainerInspectResponse, DockerError> {
        let name = bare(reference);
        self.call(
            ErrorCode::DockerListFailed,
            Some(reference),
            |d| async move {
                d.inspect_container(name, None::<InspectContainerOptions>)
                    .await
            },
        )
        .await
    }

    /// The full id of the container named exactly `name`, if there is one.
    pub async fn id_of(&self, name: &str) -> Result<Option<String>, DockerError> {
        match self.inspect_raw(name).await {
            // Docker also resolves id prefixes: only an exact name counts.
            Ok(found) if found.name.as_deref().map(|n| n.trim_start_matches('/')) == Some(name) => {
                Ok(found.id)
            }
            Ok(_) => Ok(None),
            Err(err) if err.code() == ErrorCode::ContainerNotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The name of container `id` (without `/`), or `None` when it is gone.
    pub async fn name_of(&self, id: &str) -> Result<Option<String>, DockerError> {
        match self.inspect_raw(id).await {
            Ok(found) => Ok(found.name.map(|n| n.trim_start_matches('/').to_string())),
            Err(err) if err.code() == ErrorCode::ContainerNotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The image's registry digest (`repo@sha256:…`), when it came from a registry.
    pub async fn image_digest(&self, image_id: &str) -> Result<Option<String>, DockerError> {
        let name = image_id.to_string();
        let image = self
            .call(ErrorCode::DockerListFailed, None, |d| async move {
                d.inspect_image(&name).await
            })
            .await?;
        Ok(image.repo_digests.and_then(|d| d.into_iter().next()))
    }

    async fn image_config(&self, image_id: &str) -> Option<ImageConfig> {
        let name = image_id.to_string();
        self.call(ErrorCode::DockerListFailed, None, |d| async move {
            d.inspect_image(&name).await
        })
        .await
        .ok()
        .and_then(|i| i.config)
    }

    /// Renames container `id`.
    pub async fn rename(&self, id: &str, name: &str) -> Result<(), DockerError> {
        let options = RenameContainerOptionsBuilder::new().name(name).build();
        self.call(ErrorCode::DockerCreateFailed, Some(id), |d| async move {
            d.rename_container(id, options).await
        })
        .await
    }

    /// Stops container `id` with its own stop signal and grace (Docker applies the container's
    /// `StopSignal` and `StopTimeout` when the request names neither).
    pub async fn stop_as_configured(&self, id: &str) -> Result<(), DockerError> {
        let _ours = self.requested.begin(id);
        self.call(ErrorCode::DockerStopFailed, Some(id), |d| async move {
            d.stop_container(id, None::<StopContainerOptions>).await
        })
        .await
    }

    /// Starts container `id` (by id, no checks: the update's own containers).
    pub async fn start_id(&self, id: &str) -> Result<(), DockerError> {
        self.call(ErrorCode::DockerStartFailed, Some(id), |d| async move {
            d.start_container(id, None::<StartContainerOptions>).await
        })
        .await
    }

    /// Removes container `id` (killed first when running); never its volumes.
    pub async fn remove_keeping_volumes(&self, id: &str) -> Result<(), DockerError> {
        self.remove_unchecked(id, true, false).await
    }

    /// Creates (not starts) the successor of `old` under `name`: the same configuration (ports,
    /// environment, volumes and mounts, anonymous volumes kept by name, limits, labels,
    /// networks with their aliases, restart policy, stop signal and grace) on `image`.
    /// Settings the old container only had from its old image (command, entrypoint,
    /// environment, labels, health check, user, working directory) are left to the new image.
    /// Returns the new container's id.
    pub async fn recreate(
        &self,
        old: &Snapshot,
        name: &str,
        image: &str,
    ) -> Result<String, DockerError> {
        let old_image = self.image_config(&old.image_id).await.unwrap_or_default();
        let (body, extra_networks) = successor(&old.inspected, &old_image, image);
        let options = CreateContainerOptionsBuilder::new().name(name).build();
        let created = self
            .call(ErrorCode::DockerCreateFailed, None, |d| async move {
                d.create_container(Some(options), body).await
            })
            .await?;
        let id = created.id;
        // Engines before API 1.44 take one network at create; the others are joined here.
        for (network, endpoint) in extra_networks {
            let request = NetworkConnectRequest {
                container: Some(id.clone()),
                endpoint_config: Some(endpoint),
            };
            let joined = self
                .call(ErrorCode::DockerCreateFailed, None, |d| {
                    let network = network.clone();
                    async move { d.connect_network(&network, request).await }
                })
                .await;
            if let Err(err) = joined {
                let _ = self.remove_keeping_volumes(&id).await;
                return Err(DockerError::new(
                    ErrorCode::DockerCreateFailed,
                    format!("joining network {network} failed: {err}"),
                ));
            }
        }
        Ok(id)
    }

    /// Container `id`'s state and health.
    pub async fn run_state(&self, id: &str) -> Result<RunState, DockerError> {
        let inspected = self.inspect_raw(id).await?;
        let state = inspected.state.unwrap_or_default();
        let has_check = inspected
            .config
            .as_ref()
            .and_then(|c| c.healthcheck.as_ref())
            .and_then(|h| h.test.as_ref())
            .is_some_and(|t| t.first().is_some_and(|w| w != "NONE"));
        let health = state.health.filter(|_| has_check).map(|h| Health {
            status: match h.status {
                Some(HealthStatusEnum::HEALTHY) => "healthy",
                Some(HealthStatusEnum::UNHEALTHY) => "unhealthy",
                _ => "starting",
            }
            .to_string(),
            last_output: h
                .log
                .and_then(|l| l.into_iter().last())
                .and_then(|r| r.output)
                .map(|o| clean_line(o.trim(), MAX_HEALTH_OUTPUT))
                .unwrap_or_default(),
        });
        Ok(RunState {
            running: state.running.unwrap_or(false),
            status: state.status.map(|s| s.to_string()).unwrap_or_default(),
            exit_code: state.exit_code,
            restart_count: inspected.restart_count.unwrap_or(0),
            started_at: state.started_at,
            health,
        })
    }

    /// The last `lines` lines of container `id`'s output, at most `max_bytes` together, with
    /// control characters removed (they reach a person's terminal). Empty when Docker has none.
    pub async fn last_lines(&self, id: &str, lines: usize, max_bytes: usize) -> Vec<String> {
        let Ok(docker) = self.engine().await else {
            return Vec::new();
        };
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        let mut stream = docker.logs(id, Some(options));
        let mut raw = Vec::new();
        let read = async {
            while let Some(Ok(piece)) = stream.next().await {
                if let LogOutput::StdOut { message }
                | LogOutput::StdErr { message }
                | LogOutput::Console { message } = piece
                {
                    raw.extend_from_slice(&message);
                    // Never more than the tail can be: `lines` lines of 16 KiB.
                    if raw.len() > lines * 16 * 1024 {
                        break;
                    }
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
        bounded_tail(&String::from_utf8_lossy(&raw), lines, max_bytes)
    }

    /// Runs `cmd` in container `id` (no terminal, no stdin) and waits at most `timeout`:
    /// its exit code (`None` when it did not end in time) and its output, stdout and stderr
    /// together, at most `max_bytes`.
    pub async fn exec_capture(
        &self,
        id: &str,
        cmd: Vec<String>,
        max_bytes: usize,
        timeout: Duration,
    ) -> Result<(Option<i64>, String), DockerError> {
        let config = CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(cmd),
            ..Default::default()
        };
        let (exec_id, started) = self.exec_create_start(id, config, None).await?;
        let mut output = Vec::new();
        let finished = match started {
            StartExecResults::Attached {
                output: mut out, ..
            } => {
                let read = async {
                    while let Some(Ok(piece)) = out.next().await {
                        let bytes = piece.into_bytes();
                        // Read to the end (so the process is not blocked on a full pipe) but
                        // keep only the first `max_bytes`.
                        let room = max_bytes.saturating_sub(output.len());
                        output.extend_from_slice(&bytes[..bytes.len().min(room)]);
                    }
                };
                tokio::time::timeout(timeout, read).await.is_ok()
            }
            StartExecResults::Detached => true,
        };
        let text = clean_block(&String::from_utf8_lossy(&output));
        if !finished {
            return Ok((None, text));
        }
        let exit = self
            .call(ErrorCode::ExecFailed, Some(id), |d| async move {
                d.inspect_exec(&exec_id).await
            })
            .await?
            .exit_code;
        Ok((exit, text))
    }
}

/// The create body of `old`'s successor on `image`, and the networks beyond the first to join
/// after the create.
fn successor(
    old: &ContainerInspectResponse,
    old_image: &ImageConfig,
    image: &str,
) -> (ContainerCreateBody, Vec<(String, EndpointSettings)>) {
    let config = old.config.clone().unwrap_or_default();
    let id = old.id.clone().unwrap_or_default();
    // A value the container only had because its old image said so is the new image's to say.
    fn own<T: PartialEq>(value: Option<T>, from_image: &Option<T>) -> Option<T> {
        value.filter(|v| from_image.as_ref() != Some(v))
    }
    let image_env: HashSet<&String> = old_image.env.iter().flatten().collect();
    let env: Vec<String> = config
        .env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| !image_env.contains(e))
        .collect();
    let image_labels = old_image.labels.clone().unwrap_or_default();
    let labels: HashMap<String, String> = config
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, v)| image_labels.get(k) != Some(v))
        .collect();
    let image_volumes = old_image.volumes.clone().unwrap_or_default();
    let volumes: HashMap<String, HashMap<(), ()>> = config
        .volumes
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| !image_volumes.contains_key(k))
        .collect();
    let mut host = old.host_config.clone().unwrap_or_default();
    // Anonymous volumes keep their data: mounted by name in the successor.
    let mut taken: HashSet<String> = host
        .binds
        .iter()
        .flatten()
        .filter_map(|b| b.split(':').nth(1).map(str::to_string))
        .collect();
    taken.extend(
        host.mounts
            .iter()
            .flatten()
            .filter_map(|m| m.target.clone()),
    );
    let mut mounts = host.mounts.clone().unwrap_or_default();
    for point in old.mounts.iter().flatten() {
        let (Some(MountPointTypeEnum::VOLUME), Some(name), Some(target)) =
            (point.typ, point.name.as_ref(), point.destination.as_ref())
        else {
            continue;
        };
        if taken.insert(target.clone()) {
            mounts.push(Mount {
                target: Some(target.clone()),
                source: Some(name.clone()),
                typ: Some(MountTypeEnum::VOLUME),
                read_only: point.rw.map(|rw| !rw),
                ..Default::default()
            });
        }
    }
    host.mounts = (!mounts.is_empty()).then_some(mounts);
    // The network the container was created on goes in the body, the others are joined after.
    let mode = host
        .network_mode
        .clone()
        .filter(|m| m != "default")
        .unwrap_or_else(|| "bridge".into());
    let short = &id[..id.len().min(12)];
    let mut primary = None;
    let mut extra = Vec::new();
    let networks = old
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.clone())
        .unwrap_or_default();
    let mut names: Vec<&String> = networks.keys().collect();
    names.sort();
    for network in names {
        let endpoint = &networks[network];
        // Docker adds the short id and name as aliases itself; aliases exist only on
        // user-defined networks.
        let aliases: Vec<String> = endpoint
            .aliases
            .iter()
            .flatten()
            .filter(|a| a.as_str() != short && !id.starts_with(a.as_str()))
            .cloned()
            .collect();
        let settings = EndpointSettings {
            aliases: (network != "bridge" && !aliases.is_empty()).then_some(aliases),
            links: endpoint.links.clone(),
            ipam_config: endpoint.ipam_config.clone(),
            driver_opts: endpoint.driver_opts.clone(),
            ..Default::default()
        };
        if *network == mode {
            primary = Some((network.clone(), settings));
        } else if !matches!(mode.as_str(), "host" | "none") && !mode.starts_with("container:") {
            extra.push((network.clone(), settings));
        }
    }
    let hostname = config
        .hostname
        .clone()
        .filter(|h| !h.is_empty() && !id.starts_with(h.as_str()));
    let body = ContainerCreateBody {
        hostname,
        domainname: config.domainname.clone(),
        user: own(config.user.clone(), &old_image.user),
        attach_stdin: config.attach_stdin,
        attach_stdout: config.attach_stdout,
        attach_stderr: config.attach_stderr,
        exposed_ports: config.exposed_ports.clone(),
        tty: config.tty,
        open_stdin: config.open_stdin,
        stdin_once: config.stdin_once,
        env: (!env.is_empty()).then_some(env),
        cmd: own(config.cmd.clone(), &old_image.cmd),
        healthcheck: own(config.healthcheck.clone(), &old_image.healthcheck),
        args_escaped: None,
        image: Some(image.to_string()),
        volumes: (!volumes.is_empty()).then_some(volumes),
        working_dir: own(config.working_dir.clone(), &old_image.working_dir),
        entrypoint: own(config.entrypoint.clone(), &old_image.entrypoint),
        network_disabled: config.network_disabled,
        mac_address: None,
        on_build: None,
        labels: (!labels.is_empty()).then_some(labels),
        stop_signal: own(config.stop_signal.clone(), &old_image.stop_signal),
        stop_timeout: config.stop_timeout,
        shell: None,
        host_config: Some(host),
        networking_config: primary.map(|(network, settings)| NetworkingConfig {
            endpoints_config: Some(HashMap::from([(network, settings)])),
        }),
    };
    (body, extra)
}

/// One line made safe for a terminal: control characters (escape sequences) become spaces,
/// at most `max` bytes.
fn clean_line(line: &str, max: usize) -> String {
    let mut out: String = line
        .chars()
        .map(|c| if c.is_control() && c != '\t' { ' ' } else { c })
        .collect();
    if crate::text::truncate(&mut out, max) {
        out.push('…');
    }
    out
}

/// Several lines made safe for a terminal (newlines kept).
fn clean_block(text: &str) -> String {
    text.lines()
        .map(|l| clean_line(l, usize::MAX))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The last `lines` lines of `text` that fit in `max_bytes` together (the newest kept).
pub fn bounded_tail(text: &str, lines: usize, max_bytes: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut used = 0;
    for line in text.lines().rev().take(lines) {
        // One long line must not take the whole budget.
        let line = clean_line(line.trim_end_matches('\r'), MAX_TAIL_LINE);
        if used + line.len() > max_bytes {
            break;
        }
        used += line.len();
        out.push(line);
    }
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_keeps_the_newest_lines_within_its_bounds() {
        let text = (0..100)
            .map(|i| format!("line {i}\x1b[31m"))
            .collect::<Vec<_>>()
            .join("\n");
        let tail = bounded_tail(&text, 50, 8 * 1024);
        assert_eq!(tail.len(), 50);
        assert_eq!(tail.last().unwrap(), "line 99 [31m");
        let tail = bounded_tail(&"x\n".repeat(100_000), 50, 8 * 1024);
        assert_eq!(tail.len(), 50);
        let tail = bounded_tail(&"y".repeat(100_000), 50, 8 * 1024);
        assert_eq!(tail.len(), 1);
        assert!(tail[0].len() <= 1024 + 3);
        let small = bounded_tail(&"abcdefghij\n".repeat(100), 50, 55);
        assert_eq!(small.len(), 5);
    }
}
