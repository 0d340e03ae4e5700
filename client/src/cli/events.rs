//! `zedops events`: the live stream of container events (and agent status changes) of one agent
//! or the whole fleet, one line per event, until interrupted.

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use zedops_client::{ClientEvent, ContainerEvent};
use zedops_protocol::{AgentStatus, ContainerSync};

use super::{CliError, CliResult, Global, connect, print_json, print_stdout, table};

/// One line of `--json` output: what happened (`kind`), on which agent, and the push itself.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Line<'a, T: Serialize> {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_name: Option<&'a str>,
    #[serde(flatten)]
    data: &'a T,
}

pub async fn events(global: &Global, agent: Option<&str>, json: bool) -> CliResult {
    let client = connect(global).await?;
    // Subscribed to the client's events before asking the relay, so nothing is missed.
    let mut received = client.events();
    let agents = match client.agents().await {
        Ok(list) => list,
        Err(err) => {
            client.close().await;
            return Err(err.into());
        }
    };
    let mut names: HashMap<String, String> = agents.into_iter().map(|a| (a.id, a.name)).collect();
    // The relay resolves the reference (an exact id first, then a name); statuses are shown
    // for the ids it answered, so an agent named like another's id is never taken for it.
    let watched_ids = match client.subscribe(agent.map(|a| vec![a.to_string()])).await {
        Ok(subscribed) => subscribed.agents,
        Err(err) => {
            client.close().await;
            return Err(err.into());
        }
    };
    eprintln!(
        "watching {}; Ctrl-C stops",
        agent.map_or("every agent".to_string(), |a| format!(
            "agent {}",
            table::clean(a)
        ))
    );
    let outcome = loop {
        let event = tokio::select! {
            _ = tokio::signal::ctrl_c() => break Ok(()),
            event = received.recv() => event,
        };
        let shown = match event {
            Ok(ClientEvent::Container(event)) => {
                let name = names.get(event.agent_id.as_str()).map(String::as_str);
                show_event(&event, name, json)
            }
            Ok(ClientEvent::Sync(sync)) => {
                let name = names.get(sync.agent_id.as_str()).map(String::as_str);
                show_sync(&sync, name, json)
            }
            Ok(ClientEvent::AgentStatus(status)) => {
                names.insert(status.agent_id.to_string(), status.name.clone());
                let watched = watched_ids
                    .as_ref()
                    .is_none_or(|ids| ids.iter().any(|id| status.agent_id == *id));
                if watched {
                    show_status(&status, json)
                } else {
                    Ok(())
                }
            }
            Ok(ClientEvent::Resync { missed }) => {
                eprintln!(
                    "the relay dropped {missed} events for this slow connection; the next snapshot is complete"
                );
                Ok(())
            }
            Ok(ClientEvent::Disconnected { reason, fatal }) => {
                if client.is_closed() {
                    let code = fatal.map_or("DISCONNECTED", |code| code.as_str());
                    break Err(CliError::new(code, reason));
                }
                eprintln!("lost the connection to the relay ({reason}); reconnecting");
                Ok(())
            }
            Ok(ClientEvent::Connected) => {
                eprintln!("reconnected; events that happened meanwhile arrive as snapshots");
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(RecvError::Lagged(missed)) => {
                eprintln!("this terminal fell behind and skipped {missed} events");
                Ok(())
            }
            Err(RecvError::Closed) => break Ok(()),
        };
        if let Err(err) = shown {
            break Err(err);
        }
    };
    client.close().await;
    outcome
}

fn show_event(event: &ContainerEvent, agent: Option<&str>, json: bool) -> CliResult {
    if json {
        return print_json(&Line {
            kind: "container.event",
            agent_name: agent,
            data: event,
        });
    }
    let mut what = event.action.to_string();
    let mut notes = Vec::new();
    if let Some(code) = event.exit_code {
        notes.push(format!("exit code {code}"));
    }
    if let Some(health) = &event.health {
        notes.push(table::clean(health));
    }
    if event.is_unexpected_death() {
        notes.push("not requested through ZedOps".into());
    }
    if !notes.is_empty() {
        what = format!("{what} ({})", notes.join(", "));
    }
    print_stdout(&format!(
        "{}  {}  {}  {what}\n",
        time(event.time_nano),
        table::clean(agent.unwrap_or(&event.agent_id)),
        table::clean(&event.name),
    ))
}

fn show_sync(sync: &ContainerSync, agent: Option<&str>, json: bool) -> CliResult {
    if json {
        return print_json(&Line {
            kind: "container.sync",
            agent_name: agent,
            data: sync,
        });
    }
    let running = sync
        .containers
        .iter()
        .filter(|c| c.state == "running")
        .count();
    eprintln!(
        "{}: {}, {running} running ({})",
        table::clean(agent.unwrap_or(&sync.agent_id)),
        table::count(sync.containers.len() as u64, "container", "containers"),
        table::clean(&sync.reason)
    );
    Ok(())
}

fn show_status(status: &AgentStatus, json: bool) -> CliResult {
    if json {
        return print_json(&Line {
            kind: "agent.status",
            agent_name: None,
            data: status,
        });
    }
    eprintln!(
        "agent {} is {}",
        table::clean(&status.name),
        if status.online { "online" } else { "offline" }
    );
    Ok(())
}

/// Docker's event time as RFC 3339 with milliseconds.
fn time(nanos: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_nanos(nanos.max(0) as u64);
    humantime::format_rfc3339_millis(at).to_string()
}
