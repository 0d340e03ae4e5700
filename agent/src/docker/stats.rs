//! A running container's resource usage from Docker's stats API, computed the way `docker stats`
//! shows it.

use bollard::models::ContainerStatsResponse;
use bollard::query_parameters::StatsOptionsBuilder;
use futures_util::{Stream, StreamExt};
use zedops_protocol::{ContainerStats, ErrorCode};

use super::{DockerClient, DockerError, bare};

impl DockerClient {
    /// One sample, or (with `stream`) a sample about every second until the container stops.
    /// Fails at once for an unknown container, and for one that is not running: Docker would
    /// answer with an all-zero sample, which reads as a container that uses nothing.
    pub async fn stats(
        &self,
        id: &str,
        stream: bool,
    ) -> Result<impl Stream<Item = Result<ContainerStats, DockerError>> + use<>, DockerError> {
        let name = bare(id).to_string();
        let detail = self.inspect(id).await?;
        if !matches!(detail.state.as_str(), "running" | "paused") {
            return Err(DockerError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "container {} is {}, not running: it has no resource usage to show; start it first",
                    detail.name, detail.state
                ),
            ));
        }
        let docker = self.engine().await?;
        // Not one-shot: Docker then waits for a second reading, so the first CPU figure is real.
        let options = StatsOptionsBuilder::new()
            .stream(stream)
            .one_shot(false)
            .build();
        let host = self.host.clone();
        Ok(docker.stats(&name, Some(options)).map(move |item| {
            item.map(sample).map_err(|err| {
                DockerError::new(
                    ErrorCode::DockerNotAvailable,
                    format!(
                        "reading stats from Docker at {host} failed: {}",
                        super::chain(&err)
                    ),
                )
            })
        }))
    }
}

/// One of Docker's raw readings as `docker stats` computes it: CPU from the difference to the
/// previous reading, memory without the page cache.
pub fn sample(raw: ContainerStatsResponse) -> ContainerStats {
    let cpu = raw.cpu_stats.unwrap_or_default();
    let pre = raw.precpu_stats.unwrap_or_default();
    let total = |c: &bollard::models::ContainerCpuStats| {
        c.cpu_usage
            .as_ref()
            .and_then(|u| u.total_usage)
            .unwrap_or_default()
    };
    let cpu_delta = total(&cpu).saturating_sub(total(&pre)) as f64;
    let system_delta = cpu
        .system_cpu_usage
        .unwrap_or_default()
        .saturating_sub(pre.system_cpu_usage.unwrap_or_default()) as f64;
    let cpus = cpu
        .online_cpus
        .map(f64::from)
        .or_else(|| {
            cpu.cpu_usage
                .as_ref()
                .and_then(|u| u.percpu_usage.as_ref())
                .map(|p| p.len() as f64)
        })
        .unwrap_or(1.0);
    let cpu_percent = if system_delta > 0.0 && cpu_delta > 0.0 {
        cpu_delta / system_delta * cpus * 100.0
    } else {
        0.0
    };
    let memory = raw.memory_stats.unwrap_or_default();
    let extra = memory.stats.unwrap_or_default();
    // cgroup v1 reports the cache as "total_inactive_file", v2 as "inactive_file".
    let cache = extra
        .get("total_inactive_file")
        .or_else(|| extra.get("inactive_file"))
        .copied()
        .unwrap_or_default();
    let memory_used = memory.usage.unwrap_or_default().saturating_sub(cache);
    let memory_limit = memory.limit.unwrap_or_default();
    let memory_percent = if memory_limit > 0 {
        memory_used as f64 / memory_limit as f64 * 100.0
    } else {
        0.0
    };
    let (net_rx, net_tx) = raw
        .networks
        .unwrap_or_default()
        .values()
        .fold((0, 0), |(rx, tx), n| {
            (
                rx + n.rx_bytes.unwrap_or_default(),
                tx + n.tx_bytes.unwrap_or_default(),
            )
        });
    let (block_read, block_write) = raw
        .blkio_stats
        .and_then(|b| b.io_service_bytes_recursive)
        .unwrap_or_default()
        .iter()
        .fold((0, 0), |(r, w), e| {
            let value = e.value.unwrap_or_default();
            match e.op.as_deref().map(str::to_ascii_lowercase).as_deref() {
                Some("read") => (r + value, w),
                Some("write") => (r, w + value),
                _ => (r, w),
            }
        });
    ContainerStats {
        read: raw.read.map(|t| t.to_string()).unwrap_or_default(),
        cpu_percent,
        memory_used,
        memory_limit,
        memory_percent,
        net_rx,
        net_tx,
        block_read,
        block_write,
        pids: raw.pids_stats.and_then(|p| p.current).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use bollard::models::{
        ContainerBlkioStatEntry, ContainerBlkioStats, ContainerCpuStats, ContainerCpuUsage,
        ContainerMemoryStats, ContainerNetworkStats, ContainerPidsStats,
    };

    use super::*;

    fn cpu(total: u64, system: u64) -> ContainerCpuStats {
        ContainerCpuStats {
            cpu_usage: Some(ContainerCpuUsage {
                total_usage: Some(total),
                ..Default::default()
            }),
            system_cpu_usage: Some(system),
            online_cpus: Some(4),
            ..Default::default()
        }
    }

    #[test]
    fn computes_what_docker_stats_shows() {
        let raw = ContainerStatsResponse {
            cpu_stats: Some(cpu(3_000, 20_000)),
            precpu_stats: Some(cpu(1_000, 10_000)),
            memory_stats: Some(ContainerMemoryStats {
                usage: Some(300),
                limit: Some(1_000),
                stats: Some([("inactive_file".to_string(), 100)].into()),
                ..Default::default()
            }),
            networks: Some(
                [
                    (
                        "eth0".to_string(),
                        ContainerNetworkStats {
                            rx_bytes: Some(10),
                            tx_bytes: Some(20),
                            ..Default::default()
                        },
                    ),
                    (
                        "eth1".to_string(),
                        ContainerNetworkStats {
                            rx_bytes: Some(1),
                            tx_bytes: Some(2),
                            ..Default::default()
                        },
                    ),
                ]
                .into(),
            ),
            blkio_stats: Some(ContainerBlkioStats {
                io_service_bytes_recursive: Some(vec![
                    ContainerBlkioStatEntry {
                        op: Some("Read".into()),
                        value: Some(7),
                        ..Default::default()
                    },
                    ContainerBlkioStatEntry {
                        op: Some("write".into()),
                        value: Some(9),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            }),
            pids_stats: Some(ContainerPidsStats {
                current: Some(3),
                limit: None,
            }),
            ..Default::default()
        };
        let s = sample(raw);
        // 2,000 of 10,000 system ticks on 4 CPUs: 80 % of one CPU.
        assert!((s.cpu_percent - 80.0).abs() < 1e-9, "{}", s.cpu_percent);
        assert_eq!((s.memory_used, s.memory_limit), (200, 1_000));
        assert!((s.memory_percent - 20.0).abs() < 1e-9);
        assert_eq!((s.net_rx, s.net_tx), (11, 22));
        assert_eq!((s.block_read, s.block_write), (7, 9));
        assert_eq!(s.pids, 3);
        // The first reading has no previous one: 0 %, not a division by zero.
        assert_eq!(sample(ContainerStatsResponse::default()).cpu_percent, 0.0);
    }
}
