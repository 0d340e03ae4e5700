//! Processes in containers for console sessions: `docker exec` with or without a terminal,
//! attaching to a container's main process, one line to its stdin, and ending an exec's process
//! (Docker has no "kill exec": see [`DockerClient::exec_kill`]).

use std::pin::Pin;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, InspectContainerOptions, ResizeContainerTTYOptions,
    ResizeExecOptions,
};
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use zedops_protocol::{ConsoleStream, ErrorCode, ExecRequest, MAX_CONSOLE_CHUNK_BYTES, TermSize};

use super::{DockerClient, DockerError, bare};

/// Output of a console process as Docker hands it over, tagged by stream.
pub type ConsoleOutputStream =
    Pin<Box<dyn Stream<Item = Result<(ConsoleStream, Vec<u8>), DockerError>> + Send>>;
/// The process's stdin.
pub type ConsoleInput = Pin<Box<dyn AsyncWrite + Send>>;

/// A process a console session talks to.
pub struct ConsoleIo {
    pub output: ConsoleOutputStream,
    pub input: ConsoleInput,
    /// The session has a terminal.
    pub tty: bool,
}

/// How long a process gets after SIGHUP before SIGKILL when its session ends.
const KILL_GRACE: Duration = Duration::from_secs(2);

impl DockerClient {
    /// Creates and starts an exec for `request`, attached to its output (and stdin).
    /// Returns the exec's id with its I/O.
    pub async fn exec_start(
        &self,
        request: &ExecRequest,
    ) -> Result<(String, ConsoleIo), DockerError> {
        let config = CreateExecOptions {
            attach_stdin: Some(request.stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(request.tty),
            env: (!request.env.is_empty()).then(|| request.env.clone()),
            cmd: Some(request.cmd.clone()),
            working_dir: request.working_dir.clone(),
            ..Default::default()
        };
        let start = StartExecOptions {
            detach: false,
            tty: request.tty,
            output_capacity: Some(MAX_CONSOLE_CHUNK_BYTES),
        };
        let (id, started) = self
            .exec_create_start(&request.container_id, config, Some(start))
            .await?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(DockerError::new(
                ErrorCode::ExecFailed,
                "Docker started the exec detached",
            ));
        };
        if let (true, Some(size)) = (request.tty, request.size)
            // Before the first keystroke, so the program sees the right size from the start.
            // Not fatal: a short command may have ended already ("cannot resize a stopped
            // container"), and its output is still to be read.
            && let Err(err) = self.exec_resize(&id, size).await
        {
            tracing::debug!(%err, "the exec's first resize failed");
        }
        Ok((
            id,
            ConsoleIo {
                output: tag(output, self.host.clone()),
                input,
                tty: request.tty,
            },
        ))
    }

    /// Creates an exec of `config` in `container` and starts it with `start`: the exec's id
    /// and what Docker started. A container Docker does not find is CONTAINER_NOT_FOUND.
    pub(super) async fn exec_create_start(
        &self,
        container: &str,
        config: CreateExecOptions<String>,
        start: Option<StartExecOptions>,
    ) -> Result<(String, StartExecResults), DockerError> {
        let name = bare(container).to_string();
        let created = self
            .call(ErrorCode::ExecFailed, Some(container), |d| async move {
                d.create_exec(&name, config).await
            })
            .await
            .map_err(|err| not_running(err, container))?;
        let exec_id = created.id.clone();
        let started = self
            .call(ErrorCode::ExecFailed, Some(container), |d| async move {
                d.start_exec(&exec_id, start).await
            })
            .await?;
        Ok((created.id, started))
    }

    /// Sets the terminal size of an exec.
    pub async fn exec_resize(&self, exec_id: &str, size: TermSize) -> Result<(), DockerError> {
        let options = ResizeExecOptions {
            h: i32::from(size.rows),
            w: i32::from(size.cols),
        };
        self.call(ErrorCode::ExecFailed, None, |d| async move {
            d.resize_exec(exec_id, options).await
        })
        .await
    }

    /// The exit code of a finished exec; `None` while it runs or when Docker cannot tell.
    pub async fn exec_exit_code(&self, exec_id: &str) -> Option<i64> {
        let inspected = self
            .call(ErrorCode::ExecFailed, None, |d| async move {
                d.inspect_exec(exec_id).await
            })
            .await
            .ok()?;
        if inspected.running == Some(true) {
            return None;
        }
        inspected.exit_code
    }

    /// Ends an exec's process, which Docker would leave running when its client goes away: SIGHUP
    /// (what a terminal's hang-up sends; interactive shells ignore SIGTERM), then SIGKILL after
    /// [`KILL_GRACE`]. Docker reports the process's id in the host's PID namespace, which the
    /// agent may not share, so the signal is sent by a second exec of `kill` inside the
    /// container, with the id the container knows it by (the last `NSpid` of the host's
    /// `/proc/<pid>/status`). Returns whether the process is gone.
    pub async fn exec_kill(&self, container: &str, exec_id: &str) -> bool {
        let inspected = match self
            .call(ErrorCode::ExecFailed, None, |d| async move {
                d.inspect_exec(exec_id).await
            })
            .await
        {
            Ok(inspected) => inspected,
            Err(err) => {
                tracing::warn!(%err, "could not inspect an exec to end its process");
                return false;
            }
        };
        if inspected.running != Some(true) {
            return true;
        }
        let Some(host_pid) = inspected.pid.filter(|p| *p > 0) else {
            return false;
        };
        let Some(pid) = namespace_pid(host_pid) else {
            tracing::warn!(
                host_pid,
                "cannot see the exec's process in /proc (the agent does not share the host's PID namespace); it keeps running"
            );
            return false;
        };
        for signal in ["-HUP", "-KILL"] {
            if let Err(err) = self
                .run_quiet(container, &["kill", signal, &pid.to_string()])
                .await
            {
                tracing::warn!(%err, "kill in the container failed");
            }
            let deadline = tokio::time::Instant::now() + KILL_GRACE;
            while tokio::time::Instant::now() < deadline {
                if !self.exec_running(exec_id).await {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        !self.exec_running(exec_id).await
    }

    async fn exec_running(&self, exec_id: &str) -> bool {
        self.call(ErrorCode::ExecFailed, None, |d| async move {
            d.inspect_exec(exec_id).await
        })
        .await
        .is_ok_and(|i| i.running == Some(true))
    }

    /// Runs a short command in `container` as root and waits for it, output discarded.
    pub(super) async fn run_quiet(
        &self,
        container: &str,
        cmd: &[&str],
    ) -> Result<Option<i64>, DockerError> {
        let config = CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
            user: Some("0".to_string()),
            ..Default::default()
        };
        let (id, started) = self.exec_create_start(container, config, None).await?;
        if let StartExecResults::Attached { mut output, .. } = started {
            // Bounded: `kill` prints at most a line, and a stuck one is given up on.
            let drain = async { while output.next().await.is_some() {} };
            let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
        }
        Ok(self.exec_exit_code(&id).await)
    }

    /// Attaches to a running container's main process: its output from now on and, with `stdin`,
    /// its input. The session has a terminal when the container was created with one.
    pub async fn attach(
        &self,
        container: &str,
        stdin: bool,
        size: Option<TermSize>,
    ) -> Result<ConsoleIo, DockerError> {
        let name = bare(container).to_string();
        let inspected = self
            .call(ErrorCode::ExecFailed, Some(container), |d| async move {
                d.inspect_container(&name, None::<InspectContainerOptions>)
                    .await
            })
            .await?;
        let running = inspected
            .state
            .as_ref()
            .and_then(|s| s.running)
            .unwrap_or(false);
        if !running {
            return Err(DockerError::new(
                ErrorCode::ExecFailed,
                format!("{container} is not running; start it first"),
            ));
        }
        let config = inspected.config.unwrap_or_default();
        let tty = config.tty.unwrap_or(false);
        if stdin && !config.open_stdin.unwrap_or(false) {
            return Err(DockerError::new(
                ErrorCode::ExecFailed,
                format!(
                    "{container} was created without an open stdin (OpenStdin); recreate it with one (docker run -i) to type into its console"
                ),
            ));
        }
        let options = AttachContainerOptionsBuilder::new()
            .stdin(stdin)
            .stdout(true)
            .stderr(true)
            .stream(true)
            .logs(false)
            .build();
        let name = bare(container).to_string();
        let attached = self
            .call(ErrorCode::ExecFailed, Some(container), |d| async move {
                d.attach_container(&name, Some(options)).await
            })
            .await?;
        if let (true, Some(size)) = (tty, size)
            && let Err(err) = self.attach_resize(container, size).await
        {
            // As for an exec: the container may have stopped meanwhile; what it wrote is read.
            tracing::debug!(%err, "the attach's first resize failed");
        }
        Ok(ConsoleIo {
            output: tag(attached.output, self.host.clone()),
            input: attached.input,
            tty,
        })
    }

    /// Sets the terminal size of a container's main process.
    pub async fn attach_resize(&self, container: &str, size: TermSize) -> Result<(), DockerError> {
        let name = bare(container).to_string();
        let options = ResizeContainerTTYOptions {
            h: i32::from(size.rows),
            w: i32::from(size.cols),
        };
        self.call(ErrorCode::ExecFailed, Some(container), |d| async move {
            d.resize_container_tty(&name, options).await
        })
        .await
    }

    /// Writes `line` and a newline to the stdin of a container's main process; the bytes written.
    pub async fn send_line(&self, container: &str, line: &str) -> Result<u64, DockerError> {
        let mut io = self.attach(container, true, None).await?;
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\n');
        let write = async {
            io.input.write_all(&bytes).await?;
            io.input.flush().await
        };
        tokio::time::timeout(Duration::from_secs(10), write)
            .await
            .map_err(|_| {
                DockerError::new(
                    ErrorCode::ExecFailed,
                    "the container did not take the line within 10 s",
                )
            })?
            .map_err(|e| {
                DockerError::new(
                    ErrorCode::ExecFailed,
                    format!("writing to the container failed: {e}"),
                )
            })?;
        Ok(bytes.len() as u64)
    }
}

/// Tags Docker's output pieces with their stream; stdin echoes are dropped.
fn tag(
    output: Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>,
    host: String,
) -> ConsoleOutputStream {
    Box::pin(super::logs::tag_pieces(output, "reading from Docker", host))
}

/// The id a host process has in its innermost PID namespace, from `/proc/<pid>/status`.
fn namespace_pid(host_pid: i64) -> Option<i64> {
    let status = std::fs::read_to_string(format!("/proc/{host_pid}/status")).ok()?;
    parse_nspid(&status)
}

fn parse_nspid(status: &str) -> Option<i64> {
    let line = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

/// Docker's refusal to exec in a stopped container ("Container <64-hex id> is not running",
/// HTTP 409) said in the words the person used, with what to do; other errors as they are.
fn not_running(err: DockerError, container: &str) -> DockerError {
    if err.code() == ErrorCode::ExecFailed && err.to_string().contains("is not running") {
        return DockerError::new(
            ErrorCode::ExecFailed,
            format!("{container} is not running; start it first"),
        );
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_innermost_namespace_pid_is_the_last() {
        assert_eq!(
            parse_nspid("Name:\tsh\nNSpid:\t4242\t7\nPPid:\t1\n"),
            Some(7)
        );
        assert_eq!(parse_nspid("NSpid:\t99\n"), Some(99));
        assert_eq!(parse_nspid("Name:\tsh\n"), None);
    }
}
