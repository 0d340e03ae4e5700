//! `zedops agent update NAME` and `zedops agent update --all`: have agents install the signed
//! build the relay serves and follow each live (see [`zedops_client::agent_update`]). One line
//! per agent and state change on stderr, as it happens: `downloading 1.2 of 4.4 MB`,
//! `verifying`, `restarting (0.1.0 -> 0.2.0)`, `online with 0.2.0`, `rolled back: <why>`,
//! `failed, nothing replaced: <why>`, `not started`; with `--json`, one JSON object per change
//! on stdout instead (`{"agent": …, "state": …, …}`). `--all` updates `--canary` agents first,
//! one at a time, then the rest `--parallel` at a time, and stops at the first failure: agents
//! not yet started are left as they are and listed.

use std::io::Write;

use zedops_client::Client;
use zedops_client::agent_update::{self, AgentStep, AgentUpdateOptions};

use super::{CliError, CliResult, Global, connect, table};

pub struct UpdateArgs<'a> {
    /// One agent; `None`: every online agent not on the relay's version (`--all`).
    pub agent: Option<&'a str>,
    pub version: Option<&'a str>,
    pub allow_downgrade: bool,
    pub canary: usize,
    pub parallel: usize,
    /// One JSON object per state change on stdout.
    pub json: bool,
}

pub async fn update(global: &Global, args: UpdateArgs<'_>) -> CliResult {
    let client = connect(global).await?;
    let result = run(global, &client, &args).await;
    client.close().await;
    result
}

/// Prints one state change: a line for people on stderr, or a JSON line on stdout.
fn print(json: bool, agent: &str, step: &AgentStep) {
    if json {
        let mut value = serde_json::to_value(step).unwrap_or_default();
        value["agent"] = agent.into();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{value}");
        let _ = out.flush();
        return;
    }
    let shown = table::clean(agent);
    let said = match step {
        AgentStep::Queued => "queued".to_string(),
        AgentStep::Asked => "update requested from the relay".to_string(),
        AgentStep::Downloading { bytes, total } => format!(
            "downloading {:.1} of {:.1} MB",
            *bytes as f64 / 1e6,
            *total as f64 / 1e6
        ),
        AgentStep::Verifying => "verifying size, SHA-256 and signature".to_string(),
        AgentStep::Restarting { from, to } => format!(
            "installed, restarting ({} -> {})",
            table::clean(from),
            table::clean(to)
        ),
        AgentStep::Online { version } => format!("online with {}", table::clean(version)),
        AgentStep::RolledBack { reason } => format!("rolled back: {}", table::clean(reason)),
        AgentStep::Failed { reason, .. } => {
            format!("failed, nothing replaced: {}", table::clean(reason))
        }
        AgentStep::NotStarted => "not started: an agent before it failed".to_string(),
    };
    eprintln!("{shown}: {said}");
}

/// The wire code as the CLI's error takes it (a fixed set; anything else is UPDATE_FAILED).
fn static_code(code: &str) -> &'static str {
    const KNOWN: [&str; 8] = [
        "UPDATE_REFUSED",
        "UPDATE_IN_PROGRESS",
        "UNSUPPORTED",
        "NOT_FOUND",
        "AGENT_OFFLINE",
        "FORBIDDEN",
        "TIMEOUT",
        "DISCONNECTED",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == code)
        .unwrap_or("UPDATE_FAILED")
}

async fn run(global: &Global, client: &Client, args: &UpdateArgs<'_>) -> CliResult {
    let options = AgentUpdateOptions {
        version: args.version.map(str::to_string),
        allow_downgrade: args.allow_downgrade,
    };
    let json = args.json;
    let report = move |agent: &str, step: AgentStep| print(json, agent, &step);
    if let Some(agent) = args.agent {
        return match agent_update::update_one(client, agent, &options, &report).await {
            AgentStep::Online { .. } => Ok(()),
            AgentStep::Failed { code, reason } => Err(CliError::new(static_code(&code), reason)),
            AgentStep::RolledBack { reason } => Err(CliError::new(
                "UPDATE_FAILED",
                format!("rolled back: {reason}"),
            )),
            other => Err(CliError::new(
                "UPDATE_FAILED",
                format!("the update ended in state {other:?}"),
            )),
        };
    }
    let relay = client.relay();
    let release =
        zedops_client::agent_release(&relay, global.ca_file.as_deref(), global.insecure).await?;
    let Some(release) = release else {
        return Err(CliError::new(
            "UPDATE_REFUSED",
            "the relay serves no signed agent release: put the binaries and their .minisig \
             signatures from scripts/release in its --downloads directory and restart it",
        ));
    };
    if let Some(wanted) = args.version
        && wanted != release
    {
        return Err(CliError::new(
            "UPDATE_REFUSED",
            format!("the relay serves agent {release}, not {wanted}"),
        ));
    }
    let agents = client.agents().await?;
    let (mut targets, mut skipped) = (Vec::new(), Vec::new());
    for agent in &agents {
        let version = agent.info.as_ref().map(|i| i.version.as_str());
        if !agent.online {
            skipped.push(format!("{} (offline)", table::clean(&agent.name)));
        } else if version == Some(release.as_str()) {
            skipped.push(format!("{} (already {release})", table::clean(&agent.name)));
        } else {
            targets.push(agent.name.clone());
        }
    }
    for line in &skipped {
        eprintln!("{line}: skipped");
    }
    if targets.is_empty() {
        eprintln!("every online agent runs {release}; nothing to update");
        return Ok(());
    }
    eprintln!(
        "updating {} agent(s) to {release}: {} canary first, then {} at a time",
        targets.len(),
        args.canary.min(targets.len()),
        args.parallel
    );
    let summary = agent_update::roll_out(
        client,
        &targets,
        args.canary,
        args.parallel,
        &options,
        &report,
    )
    .await;
    if summary.failed.is_empty() {
        eprintln!("all {} agent(s) run {release}", targets.len());
        return Ok(());
    }
    let failed: Vec<String> = summary
        .failed
        .iter()
        .map(|(name, why)| format!("{}: {}", table::clean(name), table::clean(why)))
        .collect();
    let left: Vec<String> = summary
        .not_started
        .iter()
        .map(|n| table::clean(n))
        .collect();
    Err(CliError::new(
        "UPDATE_FAILED",
        format!(
            "stopped after {}; not started: {}",
            failed.join("; "),
            if left.is_empty() {
                "none".to_string()
            } else {
                left.join(", ")
            }
        ),
    ))
}
