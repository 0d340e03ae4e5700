//! `zedops agent update NAME` and `zedops agent update --all`: have agents install the signed
//! build the relay serves, then watch each come back. One line per agent and state, as it
//! happens: `updating` (the agent downloads and verifies), `restarting` (installed), then
//! `online with <new version>` or `rolled back` (it came back on its old version, or not at all,
//! within its revert deadline plus a margin). `--all` updates `--canary` agents first, one at a
//! time, then the rest `--parallel` at a time, and stops at the first failure: agents not yet
//! started are left as they are and listed.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use zedops_client::{Client, ClientError};
use zedops_protocol::{AgentSummary, AgentUpdated};

use super::{CliError, CliResult, Global, connect, table};

/// Time beyond the agent's revert deadline to wait for it to show up again.
const COME_BACK_MARGIN: Duration = Duration::from_secs(30);
/// How often the agent list is asked while waiting.
const POLL: Duration = Duration::from_secs(1);

pub struct UpdateArgs<'a> {
    /// One agent; `None`: every online agent not on the relay's version (`--all`).
    pub agent: Option<&'a str>,
    pub version: Option<&'a str>,
    pub allow_downgrade: bool,
    pub canary: usize,
    pub parallel: usize,
}

/// How one agent's update ended.
enum Outcome {
    Updated,
    Failed(String),
}

pub async fn update(global: &Global, args: UpdateArgs<'_>) -> CliResult {
    let client = connect(global).await?;
    let result = run(global, &client, &args).await;
    client.close().await;
    result
}

async fn run(global: &Global, client: &Client, args: &UpdateArgs<'_>) -> CliResult {
    if let Some(agent) = args.agent {
        return match one(client, agent, args).await {
            Outcome::Updated => Ok(()),
            Outcome::Failed(why) => Err(CliError::new("UPDATE_FAILED", why)),
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
    let canaries = args.canary.min(targets.len());
    let mut done = 0;
    let waves = targets[..canaries]
        .chunks(1)
        .chain(targets[canaries..].chunks(args.parallel.max(1)));
    for wave in waves {
        let outcomes = join_all(wave.iter().map(|name| one(client, name, args))).await;
        done += wave.len();
        let failed: Vec<String> = wave
            .iter()
            .zip(&outcomes)
            .filter_map(|(name, outcome)| match outcome {
                Outcome::Failed(why) => Some(format!("{}: {why}", table::clean(name))),
                Outcome::Updated => None,
            })
            .collect();
        if !failed.is_empty() {
            let left: Vec<String> = targets[done..].iter().map(|n| table::clean(n)).collect();
            return Err(CliError::new(
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
            ));
        }
    }
    eprintln!("all {} agent(s) run {release}", targets.len());
    Ok(())
}

/// Updates one agent and waits for it to come back, printing each state.
async fn one(client: &Client, agent: &str, args: &UpdateArgs<'_>) -> Outcome {
    let shown = table::clean(agent);
    eprintln!("{shown}: updating (downloading and verifying the build)");
    let started = Instant::now();
    let answer = client
        .update_agent(agent, args.version, args.allow_downgrade)
        .await;
    let updated = match answer {
        Ok(updated) => updated,
        Err(err) => {
            let why = describe(&err);
            eprintln!("{shown}: refused, nothing replaced: {why}");
            return Outcome::Failed(why);
        }
    };
    eprintln!(
        "{shown}: {} -> {} installed, restarting",
        table::clean(&updated.from),
        table::clean(&updated.to)
    );
    match come_back(client, &updated).await {
        Ok(()) => {
            eprintln!(
                "{shown}: online with {} ({} s)",
                table::clean(&updated.to),
                started.elapsed().as_secs()
            );
            Outcome::Updated
        }
        Err(why) => {
            eprintln!("{shown}: rolled back: {why}");
            Outcome::Failed(format!("rolled back: {why}"))
        }
    }
}

fn describe(err: &ClientError) -> String {
    err.to_string()
}

/// Waits until the agent is online again reporting the new version; says what was seen instead
/// when the deadline passes (back on the old version: it reverted).
async fn come_back(client: &Client, updated: &AgentUpdated) -> Result<(), String> {
    let deadline =
        Instant::now() + Duration::from_secs(updated.revert_after_secs) + COME_BACK_MARGIN;
    // First it goes offline (the restart), then it comes back.
    let mut last: Option<AgentSummary> = None;
    let mut went_offline = false;
    loop {
        tokio::time::sleep(POLL).await;
        if let Ok(agents) = client.agents().await
            && let Some(agent) = agents.into_iter().find(|a| a.id == updated.agent_id)
        {
            let version = agent.info.as_ref().map(|i| i.version.clone());
            if agent.online && version.as_deref() == Some(updated.to.as_str()) {
                return Ok(());
            }
            went_offline |= !agent.online;
            // Gone and back on the old version: the new build was reverted.
            let reverted = went_offline && agent.online;
            last = Some(agent);
            if reverted {
                break;
            }
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    Err(match last {
        Some(agent) if agent.online => format!(
            "it is online with {} again, not {}; its log says why",
            agent
                .info
                .as_ref()
                .map_or("an unknown version".to_string(), |i| table::clean(
                    &i.version
                )),
            table::clean(&updated.to)
        ),
        _ => format!(
            "it did not come back within {} s; check the agent on that server",
            updated.revert_after_secs + COME_BACK_MARGIN.as_secs()
        ),
    })
}
