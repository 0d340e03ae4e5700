//! What the container detail view shows, as the UI receives it: the inspected container, log
//! batches and stats samples. Byte counts are plain numbers (exact up to 2^53, i.e. 8 PiB).

use serde::{Deserialize, Serialize};
use specta::Type;
use zedops_client::{ContainerDetail, ContainerStats, LogChunk, LogStream, StatsChunk, StreamEnd};

use crate::error::{AppError, ErrorCode};
use crate::types::PortView;

/// One container in detail (`docker inspect`, trimmed to what an operator reads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ContainerDetailView {
    pub id: String,
    pub name: String,
    pub image: String,
    pub image_id: String,
    /// Entrypoint and command, as one argument list.
    pub command: Vec<String>,
    /// RFC 3339.
    pub created: String,
    pub state: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub exit_code: Option<i32>,
    /// `no`, `always`, `unless-stopped`, `on-failure` or `on-failure:N`.
    pub restart_policy: String,
    pub restart_count: u32,
    pub env: Vec<EnvVarView>,
    pub mounts: Vec<MountView>,
    pub ports: Vec<PortView>,
    /// Label name and value pairs, sorted by name.
    pub labels: Vec<(String, String)>,
    pub health: Option<HealthView>,
}

/// An environment variable; `value` is null when the agent masked it (a secret-looking name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct EnvVarView {
    pub name: String,
    pub value: Option<String>,
    pub masked: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct MountView {
    /// `bind`, `volume`, `tmpfs`, …
    pub kind: String,
    pub source: String,
    pub destination: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct HealthView {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    pub failing_streak: u32,
    /// The latest checks, oldest first.
    pub log: Vec<HealthCheckView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckView {
    pub start: String,
    pub end: String,
    pub exit_code: i32,
    pub output: String,
}

impl From<ContainerDetail> for ContainerDetailView {
    fn from(d: ContainerDetail) -> Self {
        Self {
            id: d.id,
            name: d.name,
            image: d.image,
            image_id: d.image_id,
            command: d.command,
            created: d.created,
            state: d.state,
            started_at: d.started_at,
            finished_at: d.finished_at,
            exit_code: d.exit_code.map(clamp_i32),
            restart_policy: d.restart_policy,
            restart_count: clamp_u32(d.restart_count),
            env: d
                .env
                .into_iter()
                .map(|e| EnvVarView {
                    name: e.name,
                    value: e.value,
                    masked: e.masked,
                })
                .collect(),
            mounts: d
                .mounts
                .into_iter()
                .map(|m| MountView {
                    kind: m.kind,
                    source: m.source,
                    destination: m.destination,
                    read_only: m.read_only,
                })
                .collect(),
            ports: d.ports.into_iter().map(PortView::from).collect(),
            labels: d.labels.into_iter().collect(),
            health: d.health.map(|h| HealthView {
                status: h.status,
                failing_streak: clamp_u32(h.failing_streak),
                log: h
                    .log
                    .into_iter()
                    .map(|c| HealthCheckView {
                        start: c.start,
                        end: c.end,
                        exit_code: clamp_i32(c.exit_code),
                        output: c.output,
                    })
                    .collect(),
            }),
        }
    }
}

// Docker's numbers are i64 on the wire; TypeScript numbers cannot hold every i64, and exit codes
// and counts never need to.
fn clamp_i32(n: i64) -> i32 {
    n.clamp(i32::MIN.into(), i32::MAX.into()) as i32
}

fn clamp_u32(n: i64) -> u32 {
    n.clamp(0, u32::MAX.into()) as u32
}

/// Why a watched stream ended: the container stopped, the watch was closed, or an error (with
/// its code, and a message that says what to do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct WatchEnd {
    pub code: Option<ErrorCode>,
    pub reason: String,
}

impl From<StreamEnd> for WatchEnd {
    fn from(end: StreamEnd) -> Self {
        Self {
            code: end.error_code.map(ErrorCode::from),
            reason: end.reason,
        }
    }
}

impl From<AppError> for WatchEnd {
    fn from(err: AppError) -> Self {
        Self {
            code: Some(err.code),
            reason: err.message,
        }
    }
}

/// One line of output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct LogLineView {
    /// True for stderr, false for stdout.
    pub stderr: bool,
    pub text: String,
    /// The line was longer than the agent's limit and was cut.
    pub truncated: bool,
}

/// Lines in order; the last batch of a watch has `end` set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct LogBatch {
    pub lines: Vec<LogLineView>,
    /// Lines the agent skipped to stay within the rate limit, just before these.
    pub dropped: u32,
    pub end: Option<WatchEnd>,
}

impl From<LogChunk> for LogBatch {
    fn from(chunk: LogChunk) -> Self {
        Self {
            lines: chunk
                .lines
                .into_iter()
                .map(|l| LogLineView {
                    stderr: l.stream == LogStream::Stderr,
                    text: l.text,
                    truncated: l.truncated,
                })
                .collect(),
            dropped: chunk.dropped.min(u32::MAX.into()) as u32,
            end: chunk.end.map(WatchEnd::from),
        }
    }
}

/// One resource usage sample, as `docker stats` computes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct StatsSample {
    /// RFC 3339 time Docker read the counters.
    pub read: String,
    pub cpu_percent: f64,
    /// Bytes, without the page cache (as `docker stats`).
    pub memory_used: f64,
    pub memory_limit: f64,
    pub memory_percent: f64,
    /// Bytes since the container started.
    pub net_rx: f64,
    pub net_tx: f64,
    pub block_read: f64,
    pub block_write: f64,
    pub pids: f64,
}

impl From<ContainerStats> for StatsSample {
    fn from(s: ContainerStats) -> Self {
        Self {
            read: s.read,
            cpu_percent: s.cpu_percent,
            memory_used: s.memory_used as f64,
            memory_limit: s.memory_limit as f64,
            memory_percent: s.memory_percent,
            net_rx: s.net_rx as f64,
            net_tx: s.net_tx as f64,
            block_read: s.block_read as f64,
            block_write: s.block_write as f64,
            pids: s.pids as f64,
        }
    }
}

/// A sample, or (last) why the watch ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct StatsUpdate {
    pub sample: Option<StatsSample>,
    pub end: Option<WatchEnd>,
}

impl From<StatsChunk> for StatsUpdate {
    fn from(chunk: StatsChunk) -> Self {
        Self {
            sample: chunk.stats.map(StatsSample::from),
            end: chunk.end.map(WatchEnd::from),
        }
    }
}
