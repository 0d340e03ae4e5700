//! `zedops updates`: which containers run an image whose registry now serves a newer build
//! (as each agent last checked), and `--check` to have agents ask their registries now.

use clap::Args;
use zedops_protocol::{AgentUpdates, UpdateListResponse};

use super::{CliError, CliResult, Global, JsonArg, connect, print_json, print_stdout, table};

#[derive(Debug, Args)]
pub struct UpdatesArgs {
    /// Only this agent (name or id)
    #[arg(
        long,
        env = "ZEDOPS_AGENT",
        value_name = "AGENT",
        conflicts_with = "all"
    )]
    agent: Option<String>,
    /// Every agent (the default for listing; with --check, every connected agent checks)
    #[arg(long)]
    all: bool,
    /// Ask the agent(s) to check their images' registries now and wait for the results
    /// (operator)
    #[arg(long)]
    check: bool,
    #[command(flatten)]
    output: JsonArg,
}

pub async fn updates(global: &Global, args: UpdatesArgs) -> CliResult {
    if args.check && args.agent.is_none() && !args.all {
        return Err(CliError::new(
            "USAGE",
            "say which agents check: --agent AGENT, or --all for every connected agent",
        ));
    }
    let client = connect(global).await?;
    let answer = if args.check {
        client.check_updates(args.agent.as_deref()).await
    } else {
        client.updates(args.agent.as_deref()).await
    };
    client.close().await;
    let answer = answer?;
    for failed in &answer.failed {
        eprintln!(
            "{}: could not check: {}: {}",
            table::clean(&failed.name),
            failed.error_code,
            table::clean(&failed.error)
        );
    }
    if args.output.json {
        return print_json(&answer);
    }
    print_stdout(&render(&answer, table::now()))?;
    notes(&answer.agents, args.check);
    Ok(())
}

/// The table of containers with an update, one row each.
fn render(answer: &UpdateListResponse, now: i64) -> String {
    let rows: Vec<Vec<String>> = answer
        .agents
        .iter()
        .flat_map(|agent| {
            agent.state.updates.iter().map(move |u| {
                vec![
                    table::clean(&agent.name),
                    table::clean(&u.container),
                    table::clean(&u.image),
                    short(&u.current_digest),
                    short(&u.new_digest),
                    table::ago(u.found_at, now),
                ]
            })
        })
        .collect();
    if rows.is_empty() {
        return "no container has an image update\n".to_string();
    }
    table::render(
        &["AGENT", "CONTAINER", "IMAGE", "CURRENT", "NEW", "FOUND"],
        &rows,
    )
}

/// What the table does not say, on stderr: agents never checked, images not checked.
fn notes(agents: &[AgentUpdates], checked_now: bool) {
    for agent in agents {
        let name = table::clean(&agent.name);
        match agent.state.checked_at {
            None => eprintln!(
                "{name}: has not checked yet; run `zedops updates --agent {name} --check`"
            ),
            Some(at) if !checked_now => {
                eprintln!("{name}: last checked {}", table::ago(at, table::now()))
            }
            Some(_) => {}
        }
        for skipped in &agent.state.skipped {
            eprintln!(
                "{name}: not checked: {}: {}",
                table::clean(&skipped.image),
                table::clean(&skipped.reason)
            );
        }
    }
}

/// `sha256:0123456789ab` → `0123456789ab` (12 hex digits, as Docker shows ids).
pub(super) fn short(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    table::clean(&hex[..hex.len().min(12)])
}

#[cfg(test)]
mod tests {
    use zedops_protocol::{ImageUpdate, UpdateState};

    use super::*;

    #[test]
    fn rows_show_short_digests_and_when() {
        let answer = UpdateListResponse {
            agents: vec![AgentUpdates {
                name: "web-1".into(),
                online: true,
                state: UpdateState {
                    agent_id: "id".into(),
                    checked_at: Some(100),
                    updates: vec![ImageUpdate {
                        container: "game".into(),
                        image: "reg:5000/game:1".into(),
                        current_digest: format!("sha256:{}", "a".repeat(64)),
                        new_digest: format!("sha256:{}", "b".repeat(64)),
                        found_at: 40,
                        label: None,
                    }],
                    skipped: vec![],
                },
            }],
            failed: vec![],
        };
        let text = render(&answer, 100 + 3 * 3600);
        assert!(text.contains("web-1"), "{text}");
        assert!(
            text.contains(&"a".repeat(12)) && !text.contains(&"a".repeat(13)),
            "{text}"
        );
        assert!(text.contains("3 hours ago"), "{text}");
        assert_eq!(
            render(&UpdateListResponse::default(), 0),
            "no container has an image update\n"
        );
    }
}
