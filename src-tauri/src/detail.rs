//! The container detail view's backend: the inspected container, and the logs and stats it
//! watches live. A watch is a task that reads the client's stream and hands each batch to the
//! window over a Tauri channel; it ends when the stream ends, when the window closes it (or
//! goes away), or when the session ends, and the agent's stream is cancelled with it.

pub mod views;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use tauri::async_runtime::JoinHandle;
use zedops_client::{Client, LogsOptions, StreamChunk, StreamReader};

use crate::error::AppError;
use views::{ContainerDetailView, LogBatch, StatsUpdate, WatchEnd};

/// Lines of history a log watch starts with, unless asked otherwise: enough to see why a
/// container stopped, little enough to show at once.
pub const DEFAULT_TAIL: u32 = 500;

/// The inspected container; environment values with secret-looking names come masked.
pub async fn inspect(
    client: &Client,
    agent_id: &str,
    container: &str,
) -> Result<ContainerDetailView, AppError> {
    Ok(client.inspect(agent_id, container).await?.into())
}

/// Reads a container's output (the last `tail` lines, then new ones while it runs) and passes
/// each batch to `send` until the stream ends or `send` returns false (nobody listens). The
/// last batch carries `end`.
pub async fn pump_logs(
    client: &Client,
    agent_id: &str,
    container: &str,
    tail: Option<u32>,
    mut send: impl FnMut(LogBatch) -> bool,
) {
    let options = LogsOptions {
        tail: Some(tail.unwrap_or(DEFAULT_TAIL)),
        follow: true,
        timestamps: false,
    };
    let opened = client.logs(agent_id, container, options).await;
    pump(opened, &mut send, |err| LogBatch {
        lines: Vec::new(),
        dropped: 0,
        end: Some(err),
    })
    .await;
}

/// Reads a running container's resource usage, a sample about every second, and passes each to
/// `send` until the container stops or `send` returns false. The last update carries `end`.
pub async fn pump_stats(
    client: &Client,
    agent_id: &str,
    container: &str,
    mut send: impl FnMut(StatsUpdate) -> bool,
) {
    let opened = client.stats(agent_id, container, true).await;
    pump(opened, &mut send, |err| StatsUpdate {
        sample: None,
        end: Some(err),
    })
    .await;
}

/// Forwards a stream's chunks, converted; an error (refused, disconnected) becomes the last
/// item, built by `ended`. Dropping the reader on the way out cancels the agent's stream.
async fn pump<C, V>(
    opened: Result<StreamReader<C>, zedops_client::ClientError>,
    send: &mut impl FnMut(V) -> bool,
    ended: impl Fn(WatchEnd) -> V,
) where
    C: StreamChunk,
    V: From<C>,
{
    let mut reader = match opened {
        Ok(reader) => reader,
        Err(err) => {
            send(ended(AppError::from(err).into()));
            return;
        }
    };
    while let Some(item) = reader.next().await {
        let last = item.as_ref().map_or(true, |c| c.is_last());
        let value = match item {
            Ok(chunk) => V::from(chunk),
            Err(err) => ended(AppError::from(err).into()),
        };
        if !send(value) || last {
            return;
        }
    }
}

/// The open watches, by id, so the window can close one.
#[derive(Default)]
pub struct Watches {
    next: AtomicU32,
    open: Mutex<HashMap<u32, JoinHandle<()>>>,
}

impl Watches {
    /// Runs `work` as a watch and returns its id.
    pub fn start(&self, work: impl std::future::Future<Output = ()> + Send + 'static) -> u32 {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let mut open = self.lock();
        // Finished watches leave their handle behind; drop those first.
        open.retain(|_, task| !task.inner().is_finished());
        open.insert(id, tauri::async_runtime::spawn(work));
        id
    }

    /// Stops a watch (and with it the agent's stream); an unknown or finished id is fine.
    pub fn close(&self, id: u32) {
        if let Some(task) = self.lock().remove(&id) {
            task.abort();
        }
    }

    /// Stops every watch: the session ended.
    pub fn close_all(&self) {
        for (_, task) in self.lock().drain() {
            task.abort();
        }
    }

    /// How many watches are running (for tests and logs).
    pub fn running(&self) -> usize {
        let mut open = self.lock();
        open.retain(|_, task| !task.inner().is_finished());
        open.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, JoinHandle<()>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}
