//! Bollard's container models converted to the protocol's `Container`, so bollard never reaches
//! the wire and a Docker API change is absorbed here.

use bollard::models::{ContainerInspectResponse, ContainerSummary, Port as DockerPort};
use zedops_protocol::{Container, ContainerDetail, EnvVar, Health, HealthCheck, Mount, Port};

/// One container from Docker's list, as the protocol describes it.
pub fn container(summary: ContainerSummary) -> Container {
    let status = summary.status.unwrap_or_default();
    let mut ports: Vec<Port> = summary
        .ports
        .unwrap_or_default()
        .into_iter()
        .map(port)
        .collect();
    sort_ports(&mut ports);
    Container {
        id: summary.id.unwrap_or_default(),
        names: summary.names.unwrap_or_default(),
        image: summary.image.unwrap_or_default(),
        state: summary.state.map(|s| s.to_string()).unwrap_or_default(),
        health: health(&status),
        status,
        created: summary.created.unwrap_or_default(),
        ports,
        labels: summary.labels.unwrap_or_default().into_iter().collect(),
    }
}

/// One container from Docker's inspect, as the detail view shows it. Environment values whose
/// names look secret, passwords in URLs and the values of secret-looking flags in the command
/// are withheld here, so they never leave the server.
pub fn detail(inspect: ContainerInspectResponse) -> ContainerDetail {
    let config = inspect.config.unwrap_or_default();
    let state = inspect.state.unwrap_or_default();
    let mut command = config.entrypoint.unwrap_or_default();
    command.extend(config.cmd.unwrap_or_default());
    // Passwords are often passed as flags or in URLs; they never leave the server either.
    let command = zedops_protocol::mask_command(&command);
    let restart = inspect
        .host_config
        .and_then(|h| h.restart_policy)
        .unwrap_or_default();
    let restart_name = restart
        .name
        .map(|n| n.to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "no".into());
    let restart_policy = match restart.maximum_retry_count {
        Some(n) if n > 0 && restart_name == "on-failure" => format!("on-failure:{n}"),
        _ => restart_name,
    };
    let mut ports = Vec::new();
    for (key, bindings) in inspect
        .network_settings
        .and_then(|n| n.ports)
        .unwrap_or_default()
    {
        let (number, kind) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
        let Ok(private_port) = number.parse() else {
            continue;
        };
        let bindings = bindings.unwrap_or_default();
        if bindings.is_empty() {
            ports.push(Port {
                private_port,
                public_port: None,
                kind: kind.to_string(),
                ip: None,
            });
        }
        for b in bindings {
            ports.push(Port {
                private_port,
                public_port: b.host_port.and_then(|p| p.parse().ok()),
                kind: kind.to_string(),
                ip: b.host_ip.filter(|ip| !ip.is_empty()),
            });
        }
    }
    sort_ports(&mut ports);
    let health = state.health.map(|h| Health {
        status: h.status.map(|s| s.to_string()).unwrap_or_default(),
        failing_streak: h.failing_streak.unwrap_or_default(),
        log: h
            .log
            .unwrap_or_default()
            .into_iter()
            .map(|r| HealthCheck {
                start: r.start.map(|t| t.to_string()).unwrap_or_default(),
                end: r.end.map(|t| t.to_string()).unwrap_or_default(),
                exit_code: r.exit_code.unwrap_or_default(),
                output: r.output.unwrap_or_default(),
            })
            .collect(),
    });
    // Docker reports "never" as the zero time.
    let time = |t: Option<String>| t.filter(|t| !t.starts_with("0001-"));
    ContainerDetail {
        id: inspect.id.unwrap_or_default(),
        name: inspect
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        image: config.image.unwrap_or_default(),
        image_id: inspect.image.unwrap_or_default(),
        command,
        created: inspect.created.map(|t| t.to_string()).unwrap_or_default(),
        state: state.status.map(|s| s.to_string()).unwrap_or_default(),
        started_at: time(state.started_at),
        finished_at: time(state.finished_at),
        exit_code: state.exit_code,
        restart_policy,
        restart_count: inspect.restart_count.unwrap_or_default(),
        env: config
            .env
            .unwrap_or_default()
            .iter()
            .map(|e| EnvVar::from_docker(e))
            .collect(),
        mounts: inspect
            .mounts
            .unwrap_or_default()
            .into_iter()
            .map(|m| Mount {
                kind: m.typ.map(|t| t.to_string()).unwrap_or_default(),
                source: m
                    .name
                    .filter(|n| !n.is_empty())
                    .or(m.source)
                    .unwrap_or_default(),
                destination: m.destination.unwrap_or_default(),
                read_only: !m.rw.unwrap_or(true),
            })
            .collect(),
        ports,
        labels: config.labels.unwrap_or_default().into_iter().collect(),
        health,
    }
}

fn port(p: DockerPort) -> Port {
    Port {
        private_port: p.private_port,
        public_port: p.public_port,
        kind: p
            .typ
            .map(|t| t.to_string())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "tcp".into()),
        ip: p.ip.filter(|ip| !ip.is_empty()),
    }
}

/// The health a status line reports: `Up 5 seconds (healthy)` → `healthy`,
/// `Up 1 second (health: starting)` → `starting`. The list API (1.41) carries health only in
/// this human text, so it is parsed rather than inspecting every container.
pub fn health(status: &str) -> Option<String> {
    let inner = status.strip_suffix(')')?.rsplit_once('(')?.1;
    match inner {
        "healthy" | "unhealthy" => Some(inner.to_string()),
        _ => inner.strip_prefix("health: ").map(str::to_string),
    }
}

/// Docker's port order changes between calls; a stable order keeps tables from jumping.
fn sort_ports(ports: &mut [Port]) {
    ports.sort_by(|a, b| {
        (a.private_port, a.public_port, &a.kind, &a.ip).cmp(&(
            b.private_port,
            b.public_port,
            &b.kind,
            &b.ip,
        ))
    });
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bollard::models::{ContainerSummaryStateEnum, PortTypeEnum};

    use super::*;

    #[test]
    fn parses_health_from_status() {
        assert_eq!(health("Up 5 seconds (healthy)").as_deref(), Some("healthy"));
        assert_eq!(
            health("Up 2 hours (unhealthy)").as_deref(),
            Some("unhealthy")
        );
        assert_eq!(
            health("Up Less than a second (health: starting)").as_deref(),
            Some("starting")
        );
        assert_eq!(health("Up 3 minutes"), None);
        assert_eq!(health("Exited (137) 5 seconds ago"), None);
        assert_eq!(health("Up 4 seconds (Paused)"), None);
        assert_eq!(health(""), None);
    }

    #[test]
    fn converts_a_summary() {
        let summary = ContainerSummary {
            id: Some("ab".repeat(32)),
            names: Some(vec!["/web".into()]),
            image: Some("nginx:1.27".into()),
            state: Some(ContainerSummaryStateEnum::RUNNING),
            status: Some("Up 5 seconds (healthy)".into()),
            created: Some(1_700_000_000),
            ports: Some(vec![
                DockerPort {
                    ip: Some("0.0.0.0".into()),
                    private_port: 80,
                    public_port: Some(8080),
                    typ: Some(PortTypeEnum::TCP),
                },
                DockerPort {
                    ip: None,
                    private_port: 53,
                    public_port: None,
                    typ: Some(PortTypeEnum::UDP),
                },
            ]),
            labels: Some(HashMap::from([("app".to_string(), "shop".to_string())])),
            command: Some("nginx -g 'daemon off;'".into()),
            ..Default::default()
        };
        let c = container(summary);
        assert_eq!(c.id, "ab".repeat(32));
        assert_eq!(c.names, ["/web"]);
        assert_eq!(c.image, "nginx:1.27");
        assert_eq!(c.state, "running");
        assert_eq!(c.status, "Up 5 seconds (healthy)");
        assert_eq!(c.health.as_deref(), Some("healthy"));
        assert_eq!(c.created, 1_700_000_000);
        assert_eq!(
            c.ports,
            [
                Port {
                    private_port: 53,
                    public_port: None,
                    kind: "udp".into(),
                    ip: None
                },
                Port {
                    private_port: 80,
                    public_port: Some(8080),
                    kind: "tcp".into(),
                    ip: Some("0.0.0.0".into())
                },
            ]
        );
        assert_eq!(c.labels.get("app").map(String::as_str), Some("shop"));
    }

    #[test]
    fn missing_fields_become_empty_not_errors() {
        let c = container(ContainerSummary::default());
        assert_eq!((c.id.as_str(), c.state.as_str(), c.created), ("", "", 0));
        assert!(
            c.names.is_empty() && c.ports.is_empty() && c.labels.is_empty() && c.health.is_none()
        );
    }
}
