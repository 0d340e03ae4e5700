//! Host ports a new container asks for, checked against the ports running containers publish,
//! so a clash is told at create time (`PORT_IN_USE` naming the port and the container holding
//! it) even when the container is not started, rather than at some later start. Docker itself
//! only notices when the container starts; a port held by a process outside Docker is still
//! found then (see `create::start_error`).

use std::net::IpAddr;

use bollard::query_parameters::ListContainersOptionsBuilder;
use zedops_protocol::{ContainerSpec, ErrorCode};

use super::{DockerClient, DockerError};

/// Whether two host addresses overlap: either is "all addresses", or they are the same.
fn overlaps(asked: Option<IpAddr>, published: Option<&str>) -> bool {
    let published = published
        .filter(|ip| !ip.is_empty())
        .and_then(|ip| ip.parse::<IpAddr>().ok());
    match (asked, published) {
        (None, _) | (_, None) => true,
        (Some(a), Some(p)) => a == p || a.is_unspecified() || p.is_unspecified(),
    }
}

impl DockerClient {
    /// Refuses with `PORT_IN_USE` when a running container already publishes a host port
    /// `spec` asks for (same protocol, overlapping address). Ports left to Docker ("any free")
    /// never clash.
    pub async fn check_host_ports(&self, spec: &ContainerSpec) -> Result<(), DockerError> {
        if spec.ports.iter().all(|p| p.host.is_none()) {
            return Ok(());
        }
        let options = ListContainersOptionsBuilder::new().build();
        let running = self
            .call(ErrorCode::DockerListFailed, None, |d| async move {
                d.list_containers(Some(options)).await
            })
            .await?;
        for asked in &spec.ports {
            let Some(host) = asked.host else { continue };
            let protocol = asked.protocol.as_str();
            for container in &running {
                let holds = container.ports.iter().flatten().any(|p| {
                    p.public_port == Some(host)
                        && p.typ.map(|t| t.to_string()).as_deref() == Some(protocol)
                        && overlaps(asked.host_ip, p.ip.as_deref())
                });
                if holds {
                    let holder = container
                        .names
                        .iter()
                        .flatten()
                        .next()
                        .map(|n| n.trim_start_matches('/').to_string())
                        .unwrap_or_else(|| {
                            container
                                .id
                                .clone()
                                .unwrap_or_default()
                                .chars()
                                .take(12)
                                .collect()
                        });
                    return Err(DockerError::new(
                        ErrorCode::PortInUse,
                        format!(
                            "host port {host}/{protocol} is already published by container {holder} on this server; choose another port or stop {holder}"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_overlap_when_either_is_all_or_both_are_the_same() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(overlaps(None, Some("127.0.0.1")));
        assert!(overlaps(Some(lo), Some("0.0.0.0")));
        assert!(overlaps(Some(lo), Some("::")));
        assert!(overlaps(Some(lo), Some("127.0.0.1")));
        assert!(!overlaps(Some(lo), Some("127.0.0.2")));
        assert!(overlaps(Some(lo), None));
    }
}
