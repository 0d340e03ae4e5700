//! Bollard's container models converted to the protocol's `Container`, so bollard never reaches
//! the wire and a Docker API change is absorbed here.

use bollard::models::{ContainerSummary, Port as DockerPort};
use zedops_protocol::{Container, Port};

/// One container from Docker's list, as the protocol describes it.
pub fn container(summary: ContainerSummary) -> Container {
    let status = summary.status.unwrap_or_default();
    let mut ports: Vec<Port> = summary
        .ports
        .unwrap_or_default()
        .into_iter()
        .map(port)
        .collect();
    // Docker's port order changes between calls; a stable order keeps tables from jumping.
    ports.sort_by(|a, b| {
        (a.private_port, a.public_port, &a.kind, &a.ip).cmp(&(
            b.private_port,
            b.public_port,
            &b.kind,
            &b.ip,
        ))
    });
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
