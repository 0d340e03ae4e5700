//! `zedops agents`, `zedops ps`, `zedops inspect` and `zedops start|stop|restart`: one request
//! each over a fresh connection.

use zedops_client::Operation;
use zedops_protocol::{AgentListResponse, ContainerListResponse};

use super::{CliResult, Global, call, print_done, print_json, print_stdout, table};

pub async fn agents(global: &Global, json: bool) -> CliResult {
    let agents = call(global, |c| async move { c.agents().await }).await?;
    if json {
        return print_json(&AgentListResponse {
            count: agents.len(),
            agents,
        });
    }
    print_stdout(&table::agents(&agents))
}

pub async fn ps(global: &Global, agent: &str, json: bool) -> CliResult {
    let containers = call(global, |c| async move { c.containers(agent).await }).await?;
    if json {
        return print_json(&ContainerListResponse {
            count: containers.len(),
            containers,
        });
    }
    print_stdout(&table::containers(&containers))
}

pub async fn inspect(global: &Global, agent: &str, container: &str, json: bool) -> CliResult {
    let detail = call(global, |c| async move { c.inspect(agent, container).await }).await?;
    if json {
        return print_json(&detail);
    }
    print_stdout(&describe(&detail))
}

/// The detail as aligned `field  value` lines; every value from the server is cleaned of
/// terminal control characters.
fn describe(d: &zedops_protocol::ContainerDetail) -> String {
    let c = table::clean;
    let mut rows: Vec<(&str, String)> = vec![
        ("name", c(&d.name)),
        ("id", c(&d.id)),
        ("image", format!("{} ({})", c(&d.image), c(&d.image_id))),
        ("command", c(&d.command.join(" "))),
        ("created", c(&d.created)),
    ];
    let mut state = c(&d.state);
    if let Some(at) = d.started_at.as_deref().filter(|_| d.state == "running") {
        state.push_str(&format!(" since {}", c(at)));
    } else if let (Some(at), Some(code)) = (&d.finished_at, d.exit_code) {
        state.push_str(&format!(" (exit code {code} at {})", c(at)));
    }
    rows.push(("state", state));
    rows.push((
        "restart",
        format!(
            "{} (restarted {} times)",
            c(&d.restart_policy),
            d.restart_count
        ),
    ));
    if let Some(h) = &d.health {
        rows.push((
            "health",
            format!("{} (failing streak {})", c(&h.status), h.failing_streak),
        ));
        if let Some(last) = h.log.last() {
            rows.push((
                "last check",
                format!("exit {}: {}", last.exit_code, c(last.output.trim())),
            ));
        }
    }
    rows.push(("ports", table::ports(&d.ports)));
    for (i, m) in d.mounts.iter().enumerate() {
        let mode = if m.read_only { "ro" } else { "rw" };
        rows.push((
            if i == 0 { "mounts" } else { "" },
            format!(
                "{} {} → {} ({mode})",
                c(&m.kind),
                c(&m.source),
                c(&m.destination)
            ),
        ));
    }
    for (i, e) in d.env.iter().enumerate() {
        let value = match (&e.value, e.masked) {
            (_, true) => "(masked)".to_string(),
            (Some(v), false) => c(v),
            (None, false) => String::new(),
        };
        rows.push((
            if i == 0 { "env" } else { "" },
            format!("{}={value}", c(&e.name)),
        ));
    }
    for (i, (k, v)) in d.labels.iter().enumerate() {
        rows.push((
            if i == 0 { "labels" } else { "" },
            format!("{}={}", c(k), c(v)),
        ));
    }
    rows.iter()
        .map(|(field, value)| format!("{field:<12}{value}\n"))
        .collect()
}

pub async fn action(
    global: &Global,
    agent: &str,
    container: &str,
    op: Operation,
    json: bool,
) -> CliResult {
    let done = call(
        global,
        |c| async move { c.action(agent, container, op).await },
    )
    .await?;
    print_done(
        json,
        &done,
        format!(
            "{} {} on {}",
            past_tense(op),
            table::clean(container),
            table::clean(agent)
        ),
    )
}

fn past_tense(op: Operation) -> &'static str {
    match op {
        Operation::Start => "started",
        Operation::Stop => "stopped",
        Operation::Restart => "restarted",
    }
}
