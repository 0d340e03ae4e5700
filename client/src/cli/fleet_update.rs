//! `zedops update --all`: the fleet update over [`zedops_client::fleet_update`], canaries first,
//! one line per step on stderr and a summary at the end.

use std::collections::HashMap;
use std::sync::Mutex;

use zedops_client::fleet_update::{self, FleetOptions, FleetProgress, FleetTarget, Outcome};
use zedops_protocol::PullProgress;

use super::container_update::UpdateArgs;
use super::updates::short;
use super::{CliError, CliResult, Global, connect, print_json, table};

/// `zedops update --all [--agent A] [--canary N] [--parallel P]`: every container with an
/// update, canaries first; one line per step and per container, a summary at the end, and a
/// non-zero exit when anything rolled back or failed.
pub async fn update_all(global: &Global, args: UpdateArgs) -> CliResult {
    let options = FleetOptions {
        agent: args.agent.clone(),
        canary: args.canary.unwrap_or(1),
        parallel: args.parallel.unwrap_or(2).max(1),
        named: args.include.clone(),
        update: args.options(),
    };
    let client = connect(global).await?;
    let states = match client.updates(options.agent.as_deref()).await {
        Ok(states) => states,
        Err(err) => {
            client.close().await;
            return Err(err.into());
        }
    };
    let plan = fleet_update::plan(&states, &options);
    for skipped in &plan.skipped {
        eprintln!(
            "{}: skipped: {}",
            name(&skipped.target),
            table::clean(&skipped.reason)
        );
    }
    if plan.targets.is_empty() {
        eprintln!("no container to update (`zedops updates --check` looks for new builds)");
    } else {
        eprintln!(
            "updating {}: {} canary first, then {} at a time",
            table::count(plan.targets.len() as u64, "container", "containers"),
            options.canary.min(plan.targets.len()),
            options.parallel
        );
    }
    let pulls = PullLines::default();
    let summary = fleet_update::run(&client, plan, &options, &|event| {
        print_progress(&pulls, event)
    })
    .await;
    client.close().await;
    if args.output.json {
        print_json(&summary)?;
    }
    let unchanged = match summary.unchanged.len() {
        0 => String::new(),
        n => format!(", {n} already on the newest build"),
    };
    eprintln!(
        "summary: {} updated{unchanged}, {} rolled back, {} failed, {} skipped",
        summary.updated.len(),
        summary.rolled_back.len(),
        summary.failed.len(),
        summary.skipped.len()
    );
    if summary.ok() {
        return Ok(());
    }
    let first = summary
        .rolled_back
        .first()
        .or(summary.failed.first())
        .expect("not ok: something rolled back or failed");
    let code = if summary.rolled_back.is_empty() {
        "UPDATE_FAILED"
    } else {
        "UPDATE_ROLLED_BACK"
    };
    Err(CliError::new(
        code,
        format!(
            "{} did not update ({}); the updates after it were not started. Fix its image, then run again",
            name(&first.target),
            first.reason
        ),
    ))
}

/// Which pull lines were printed for each container: lines of several containers interleave,
/// so a pull is not redrawn in place but said again only when it has come a tenth further or
/// finished another layer.
#[derive(Default)]
struct PullLines(Mutex<HashMap<(String, String), (u64, u32)>>);

impl PullLines {
    /// True when `progress` says something new for `target`.
    fn worth_saying(&self, target: &FleetTarget, progress: &PullProgress) -> bool {
        let tenth = (progress.current * 10)
            .checked_div(progress.total)
            .unwrap_or(0)
            .min(10);
        let now = (tenth, progress.layers_done);
        let key = (target.agent.clone(), target.container.clone());
        let mut said = self.0.lock().unwrap_or_else(|e| e.into_inner());
        said.insert(key, now) != Some(now)
    }
}

/// One line per event on stderr (stdout stays for --json).
fn print_progress(pulls: &PullLines, event: FleetProgress) {
    match event {
        FleetProgress::Pull { target, progress } => {
            if pulls.worth_saying(&target, &progress) {
                eprintln!("{}: {}", name(&target), table::pull_summary(&progress));
            }
        }
        FleetProgress::Started { target, canary } => eprintln!(
            "{}: updating{} {} → {}",
            name(&target),
            if canary { " (canary)" } else { "" },
            short(&target.current_digest),
            short(&target.new_digest)
        ),
        FleetProgress::Step {
            target, message, ..
        } => eprintln!("{}: {}", name(&target), table::clean(&message)),
        FleetProgress::Finished { target, outcome } => match outcome {
            Outcome::Updated { updated } if !updated.changed => {
                eprintln!(
                    "{}: already on the newest build; left as it was",
                    name(&target)
                )
            }
            Outcome::Updated { .. } => eprintln!("{}: updated", name(&target)),
            Outcome::RolledBack { reason, rollback } => {
                eprintln!("{}: ROLLED BACK: {}", name(&target), table::clean(&reason));
                for line in rollback.iter().flat_map(|r| r.logs.iter()) {
                    eprintln!("{}:   | {}", name(&target), table::clean(line));
                }
            }
            Outcome::Failed { code, reason } => eprintln!(
                "{}: FAILED: {}: {}",
                name(&target),
                table::clean(&code),
                table::clean(&reason)
            ),
        },
    }
}

fn name(target: &FleetTarget) -> String {
    format!(
        "{}/{}",
        table::clean(&target.agent),
        table::clean(&target.container)
    )
}
