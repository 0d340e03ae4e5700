//! Waiting for the new container to be healthy: its own health check when it has one (Docker's
//! `healthy`; `unhealthy` fails at once), otherwise running without a restart for the stable
//! time. Exiting, restarting or the health timeout fail, each with a sentence for the person
//! who asked.

use std::time::Duration;

use tokio::time::Instant;

use crate::docker::DockerClient;

/// How often the container's state is read while waiting.
const POLL: Duration = Duration::from_millis(250);

/// Waits until container `id` is healthy, at most `timeout`; the reason when it is not.
pub async fn wait(
    docker: &DockerClient,
    id: &str,
    timeout: Duration,
    stable: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let first = docker
        .run_state(id)
        .await
        .map_err(|e| format!("reading the new container's state failed: {e}"))?;
    let stable_since = Instant::now();
    let mut state = first.clone();
    loop {
        if state.status == "restarting" || state.restart_count != first.restart_count {
            return Err(format!(
                "the new container restarted (it exited with code {})",
                code(state.exit_code)
            ));
        }
        if !state.running {
            return Err(format!(
                "the new container exited with code {}",
                code(state.exit_code)
            ));
        }
        match &state.health {
            Some(health) if health.status == "healthy" => return Ok(()),
            Some(health) if health.status == "unhealthy" => {
                return Err(if health.last_output.is_empty() {
                    "the new container's health check failed".to_string()
                } else {
                    format!(
                        "the new container's health check failed: {}",
                        health.last_output
                    )
                });
            }
            Some(_) => {}
            None if stable_since.elapsed() >= stable => return Ok(()),
            None => {}
        }
        if Instant::now() >= deadline {
            return Err(match state.health {
                Some(_) => format!(
                    "the new container was not healthy within {} s",
                    timeout.as_secs()
                ),
                None => format!(
                    "the new container did not run {} s without restarting within {} s",
                    stable.as_secs(),
                    timeout.as_secs()
                ),
            });
        }
        tokio::time::sleep(POLL.min(deadline.saturating_duration_since(Instant::now()))).await;
        state = docker
            .run_state(id)
            .await
            .map_err(|e| format!("reading the new container's state failed: {e}"))?;
    }
}

fn code(exit: Option<i64>) -> String {
    exit.map_or_else(|| "unknown".to_string(), |c| c.to_string())
}
