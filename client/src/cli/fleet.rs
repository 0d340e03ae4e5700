//! `zedops agents`, `zedops ps` and `zedops start|stop|restart`: one request each over a fresh
//! connection.

use zedops_client::{Operation, OperationSuccess};
use zedops_protocol::{AgentListResponse, ContainerListResponse};

use super::{CliResult, Global, connect, print_json, print_stdout, table};

pub async fn agents(global: &Global, json: bool) -> CliResult {
    let client = connect(global).await?;
    let result = client.agents().await;
    client.close().await;
    let agents = result?;
    if json {
        return print_json(&AgentListResponse {
            count: agents.len(),
            agents,
        });
    }
    print_stdout(&table::agents(&agents))
}

pub async fn ps(global: &Global, agent: &str, json: bool) -> CliResult {
    let client = connect(global).await?;
    let result = client.containers(agent).await;
    client.close().await;
    let containers = result?;
    if json {
        return print_json(&ContainerListResponse {
            count: containers.len(),
            containers,
        });
    }
    print_stdout(&table::containers(&containers))
}

pub async fn action(
    global: &Global,
    agent: &str,
    container: &str,
    op: Operation,
    json: bool,
) -> CliResult {
    let client = connect(global).await?;
    let result = client.action(agent, container, op).await;
    client.close().await;
    let done: OperationSuccess = result?;
    if json {
        print_json(&done)?;
    }
    eprintln!(
        "{} {} on {}",
        past_tense(op),
        table::clean(container),
        table::clean(agent)
    );
    Ok(())
}

fn past_tense(op: Operation) -> &'static str {
    match op {
        Operation::Start => "started",
        Operation::Stop => "stopped",
        Operation::Restart => "restarted",
    }
}
