//! `zedops update --agent A CONTAINER [--image REF] [--health-timeout 60s]`: update one container
//! to the newest build of its image (or to `--image`) with a health check and automatic
//! rollback, showing each step live and a summary at the end; exits non-zero when the update
//! was rolled back. (`--all`, `--canary` and `--parallel` belong to fleet updates.)

use std::io::IsTerminal;

use clap::Args;
use zedops_client::{ContainerUpdate, UpdateOptions};
use zedops_protocol::{
    ContainerUpdateFrame, MAX_UPDATE_HEALTH_TIMEOUT_SECS, MAX_UPDATE_STABLE_SECS,
};

use super::{CliError, CliResult, Global, JsonArg, call, print_json, table};

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Agent name or id
    #[arg(long, env = "ZEDOPS_AGENT", value_name = "AGENT")]
    pub agent: Option<String>,
    /// Container name, id or id prefix
    #[arg(required_unless_present = "all")]
    pub container: Option<String>,
    /// Move to this image reference instead of pulling the container's own again
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// How long the new container gets to become healthy (e.g. 60s, 2m; at most 1h)
    #[arg(long, value_name = "DURATION", value_parser = parse_health_timeout)]
    pub health_timeout: Option<u32>,
    /// For a container without a health check: how long it must run without restarting
    /// (default 10s)
    #[arg(long, value_name = "DURATION", value_parser = parse_stable)]
    pub stable: Option<u32>,
    /// Recreate the container even when its image is already the newest
    #[arg(long)]
    pub force: bool,
    /// Every container with an update (on --agent A, or on every agent)
    #[arg(long, conflicts_with = "container")]
    pub all: bool,
    /// With --all: containers updated one at a time first; a rollback stops the rest
    #[arg(long, value_name = "N", requires = "all")]
    pub canary: Option<usize>,
    /// With --all: containers updated at once after the canaries
    #[arg(long, value_name = "N", requires = "all")]
    pub parallel: Option<usize>,
    /// With --all: also update this container although it is labelled zedops.update=pinned
    /// (repeatable; CONTAINER or AGENT/CONTAINER). Containers labelled never stay skipped.
    #[arg(long, value_name = "[AGENT/]CONTAINER", requires = "all")]
    pub include: Vec<String>,
    #[command(flatten)]
    pub output: JsonArg,
}

impl UpdateArgs {
    /// The options of one container's update.
    pub fn options(&self) -> UpdateOptions {
        UpdateOptions {
            image: self.image.clone(),
            health_timeout_secs: self.health_timeout,
            stable_secs: self.stable,
            force: self.force,
        }
    }
}

/// `60`, `60s`, `2m`, `1m30s`, `1h` as seconds.
fn parse_duration(text: &str) -> Result<u32, String> {
    let bad = || format!("{text:?} is not a duration; write e.g. 60s, 2m or 1m30s");
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = total.saturating_add(n.saturating_mul(unit));
        number.clear();
    }
    if !number.is_empty() {
        total = total.saturating_add(number.parse::<u64>().map_err(|_| bad())?);
    } else if total == 0 && text.trim().is_empty() {
        return Err(bad());
    }
    u32::try_from(total).map_err(|_| bad())
}

fn parse_health_timeout(text: &str) -> Result<u32, String> {
    let secs = parse_duration(text)?;
    if secs == 0 || secs > MAX_UPDATE_HEALTH_TIMEOUT_SECS {
        return Err("the health timeout must be from 1s to 1h".into());
    }
    Ok(secs)
}

fn parse_stable(text: &str) -> Result<u32, String> {
    let secs = parse_duration(text)?;
    if secs > MAX_UPDATE_STABLE_SECS {
        return Err("the stable time must be at most 10m".into());
    }
    Ok(secs)
}

pub async fn update(global: &Global, args: UpdateArgs) -> CliResult {
    let (Some(agent), Some(container)) = (args.agent.clone(), args.container.clone()) else {
        return Err(CliError::new(
            "USAGE",
            "say which container: zedops update --agent AGENT CONTAINER",
        ));
    };
    let (options, json) = (args.options(), args.output.json);
    let (on, name) = (&agent, &container);
    let last = call(global, |c| async move {
        let stream = c.update_container(on, name, options).await?;
        follow(stream, json).await
    })
    .await?;
    if args.output.json {
        print_json(&last)?;
    }
    let end = last
        .end
        .clone()
        .unwrap_or_else(|| zedops_protocol::StreamEnd {
            error_code: None,
            reason: String::new(),
        });
    if let Some(code) = end.error_code {
        if let (Some(rollback), false) = (&last.rolled_back, args.output.json)
            && !rollback.logs.is_empty()
        {
            eprintln!("last lines of the new container's output:");
            for line in &rollback.logs {
                eprintln!("  {}", table::clean(line));
            }
        }
        return Err(CliError::new(code.as_str(), table::clean(&end.reason)));
    }
    if let (Some(updated), false) = (&last.updated, args.output.json) {
        let short = |id: &str| {
            let id = id.strip_prefix("sha256:").unwrap_or(id);
            id[..id.len().min(12)].to_string()
        };
        if updated.changed {
            eprintln!(
                "updated {} on {} to {}: image {} -> {}",
                table::clean(&updated.name),
                table::clean(&agent),
                table::clean(&updated.image),
                short(&updated.old_image_id),
                short(&updated.new_image_id),
            );
        } else {
            eprintln!(
                "{} on {} already runs the newest {} ({}); nothing changed (--force recreates it)",
                table::clean(&updated.name),
                table::clean(&agent),
                table::clean(&updated.image),
                short(&updated.new_image_id),
            );
        }
        if !end.reason.is_empty() && end.reason.contains("could not be removed") {
            eprintln!("warning: {}", table::clean(&end.reason));
        }
    }
    Ok(())
}

/// Reads an update's frames to the last one, showing steps, pull progress and the hook's
/// outcome on stderr (nothing with `--json`); returns the last frame.
async fn follow(mut stream: ContainerUpdate, json: bool) -> Result<ContainerUpdateFrame, CliError> {
    let terminal = std::io::stderr().is_terminal();
    let mut progress_shown = false;
    while let Some(frame) = stream.next().await {
        let frame = frame?;
        if frame.end.is_some() {
            if progress_shown && terminal && !json {
                eprintln!();
            }
            return Ok(frame);
        }
        if json {
            continue;
        }
        if let Some(progress) = &frame.progress {
            let line = table::pull_summary(progress);
            if terminal {
                eprint!("\r\x1b[2K{line}");
                progress_shown = true;
            }
            continue;
        }
        if progress_shown && terminal {
            eprintln!();
            progress_shown = false;
        }
        if let Some(step) = &frame.step {
            eprintln!("[{}] {}", step.phase, table::clean(&step.message));
        }
        if let Some(hook) = &frame.hook {
            let exit = hook
                .exit_code
                .map_or_else(|| "did not end".to_string(), |c| format!("exit {c}"));
            eprintln!("[hook] {} ({exit})", table::clean(&hook.command));
            for line in hook.output.lines() {
                eprintln!("  {}", table::clean(line));
            }
        }
    }
    Err(CliError::new(
        "DISCONNECTED",
        "the connection ended before the update did; the agent finishes or rolls it back on its own; `zedops ps` shows the container",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("60"), Ok(60));
        assert_eq!(parse_duration("60s"), Ok(60));
        assert_eq!(parse_duration("2m"), Ok(120));
        assert_eq!(parse_duration("1m30s"), Ok(90));
        assert_eq!(parse_duration("1h"), Ok(3600));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_health_timeout("0s").is_err());
        assert!(parse_health_timeout("2h").is_err());
        assert!(parse_stable("11m").is_err());
    }
}
