//! Administration from the command line (admin role): `zedops agent revoke|rotate`,
//! `zedops sessions`, `zedops token create|list|revoke`, `zedops user …` and `zedops audit`.
//! The relay checks the role; these only ask and print.

use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde_json::json;
use zedops_client::Client;
use zedops_protocol::{
    AgentRevoked, AgentRotated, AuditListResponse, Role, SessionListResponse, SessionRevoked,
    TokenCreated, TokenListResponse, TokenRevoked, UserListResponse, UserPasswordSet, UserSummary,
    subject,
};

use super::{CliError, CliResult, Global, connect, print_json, print_stdout, table};

/// One admin request over a fresh connection, its answer decoded as `T`.
async fn ask<T: DeserializeOwned>(
    global: &Global,
    subject: &str,
    data: serde_json::Value,
) -> Result<(Client, T), CliError> {
    let client = connect(global).await?;
    let answer = client.request_raw(subject, data).await;
    let value = match answer {
        Ok(value) => value,
        Err(e) => {
            client.close().await;
            return Err(e.into());
        }
    };
    let decoded = serde_json::from_value(value).map_err(|e| {
        CliError::new(
            "PROTOCOL_ERROR",
            format!("the relay's answer could not be read: {e}"),
        )
    })?;
    Ok((client, decoded))
}

pub async fn revoke_agent(global: &Global, agent: &str, json: bool) -> CliResult {
    let (client, revoked): (_, AgentRevoked) =
        ask(global, subject::AGENT_REVOKE, json!({ "agentId": agent })).await?;
    client.close().await;
    if json {
        print_json(&revoked)?;
    }
    eprintln!(
        "revoked agent {} ({}); its connection is closed and its token refused",
        table::clean(&revoked.name),
        revoked.agent_id
    );
    Ok(())
}

pub async fn sessions(global: &Global, json: bool) -> CliResult {
    let (client, list): (_, SessionListResponse) =
        ask(global, subject::SESSION_LIST, json!({})).await?;
    client.close().await;
    if json {
        return print_json(&list);
    }
    let rows: Vec<Vec<String>> = list
        .sessions
        .iter()
        .map(|s| {
            vec![
                format!(
                    "{}{}",
                    table::clean(&s.id),
                    if s.current { " (this one)" } else { "" }
                ),
                table::clean(&s.user),
                s.device
                    .as_deref()
                    .map(table::clean)
                    .unwrap_or_else(|| "-".into()),
                s.created_at.clone(),
                s.last_used_at.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    print_stdout(&table::render(
        &["ID", "USER", "DEVICE", "CREATED", "LAST USED"],
        &rows,
    ))
}

pub async fn revoke_session(global: &Global, id: &str, json: bool) -> CliResult {
    let (client, revoked): (_, SessionRevoked) =
        ask(global, subject::SESSION_REVOKE, json!({ "sessionId": id })).await?;
    client.close().await;
    if json {
        print_json(&revoked)?;
    }
    eprintln!(
        "revoked session {}; its connections are closed",
        revoked.session_id
    );
    Ok(())
}

pub async fn create_token(global: &Global, ttl: Duration, json: bool) -> CliResult {
    let (client, created): (_, TokenCreated) = ask(
        global,
        subject::TOKEN_CREATE,
        json!({ "ttlSecs": ttl.as_secs().max(1) }),
    )
    .await?;
    client.close().await;
    if json {
        return print_json(&created);
    }
    eprintln!(
        "single-use registration token, valid until {}:",
        created.expires_at
    );
    print_stdout(&format!("{}\n", created.token))
}

/// `--since`: a duration ago (`1h`, `2d`) or an RFC 3339 time, as RFC 3339 for the relay.
pub fn since(text: &str) -> Result<String, String> {
    if let Ok(ago) = humantime::parse_duration(text) {
        let at = SystemTime::now()
            .checked_sub(ago)
            .ok_or_else(|| format!("{text} ago is before 1970"))?;
        return Ok(humantime::format_rfc3339_seconds(at).to_string());
    }
    humantime::parse_rfc3339_weak(text)
        .map(|at| humantime::format_rfc3339_seconds(at).to_string())
        .map_err(|_| {
            format!("{text:?} is neither a duration like 1h nor a time like 2026-11-23T09:00:00Z")
        })
}

pub async fn audit(
    global: &Global,
    agent: Option<&str>,
    since: Option<&str>,
    limit: u32,
    json: bool,
) -> CliResult {
    let (client, log): (_, AuditListResponse) = ask(
        global,
        subject::AUDIT_LIST,
        json!({ "agentId": agent, "since": since, "limit": limit }),
    )
    .await?;
    if json {
        client.close().await;
        return print_json(&log);
    }
    // Show agent names rather than ids where the relay still knows them.
    let names: std::collections::HashMap<String, String> = client
        .agents()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|a| (a.id, a.name))
        .collect();
    client.close().await;
    let dash = || "-".to_string();
    let rows: Vec<Vec<String>> = log
        .entries
        .iter()
        .map(|e| {
            let agent = e
                .agent_id
                .as_ref()
                .map(|id| names.get(id).unwrap_or(id).clone());
            vec![
                e.at.clone(),
                e.user.as_deref().map(table::clean).unwrap_or_else(dash),
                agent.as_deref().map(table::clean).unwrap_or_else(dash),
                e.container
                    .as_deref()
                    .map(table::clean)
                    .unwrap_or_else(dash),
                table::clean(&e.operation),
                table::clean(&e.result),
                e.error_code
                    .as_deref()
                    .map(table::clean)
                    .unwrap_or_else(dash),
                match (&e.target, &e.detail) {
                    (Some(t), Some(d)) => format!("{} ({})", table::clean(t), table::clean(d)),
                    (Some(t), None) => table::clean(t),
                    (None, Some(d)) => table::clean(d),
                    (None, None) => dash(),
                },
            ]
        })
        .collect();
    print_stdout(&table::render(
        &[
            "TIME",
            "USER",
            "AGENT",
            "CONTAINER",
            "OPERATION",
            "RESULT",
            "CODE",
            "CHANGED",
        ],
        &rows,
    ))
}

pub async fn rotate_agent(global: &Global, agent: &str, json: bool) -> CliResult {
    let (client, rotated): (_, AgentRotated) =
        ask(global, subject::AGENT_ROTATE, json!({ "agentId": agent })).await?;
    client.close().await;
    if json {
        print_json(&rotated)?;
    }
    eprintln!(
        "rotated the token of agent {} ({}); the agent stored the new one and the old one is refused",
        table::clean(&rotated.name),
        rotated.agent_id
    );
    Ok(())
}

pub async fn tokens(global: &Global, json: bool) -> CliResult {
    let (client, list): (_, TokenListResponse) =
        ask(global, subject::TOKEN_LIST, json!({})).await?;
    client.close().await;
    if json {
        return print_json(&list);
    }
    let dash = || "-".to_string();
    let rows: Vec<Vec<String>> = list
        .tokens
        .iter()
        .map(|t| {
            vec![
                table::clean(&t.id),
                t.created_at.clone(),
                t.expires_at.clone(),
                table::clean(&t.state),
                t.used_by_agent
                    .as_deref()
                    .map(table::clean)
                    .unwrap_or_else(dash),
            ]
        })
        .collect();
    print_stdout(&table::render(
        &["ID", "CREATED", "EXPIRES", "STATE", "USED BY AGENT"],
        &rows,
    ))
}

pub async fn revoke_token(global: &Global, id: &str, json: bool) -> CliResult {
    let (client, revoked): (_, TokenRevoked) =
        ask(global, subject::TOKEN_REVOKE, json!({ "tokenId": id })).await?;
    client.close().await;
    if json {
        print_json(&revoked)?;
    }
    eprintln!(
        "revoked registration token {}; it can no longer enrol a server",
        table::clean(&revoked.token_id)
    );
    Ok(())
}

pub async fn users(global: &Global, json: bool) -> CliResult {
    let (client, list): (_, UserListResponse) = ask(global, subject::USER_LIST, json!({})).await?;
    client.close().await;
    if json {
        return print_json(&list);
    }
    let rows: Vec<Vec<String>> = list
        .users
        .iter()
        .map(|u| {
            vec![
                table::clean(&u.name),
                u.role.to_string(),
                if u.disabled { "disabled" } else { "enabled" }.to_string(),
                u.sessions.to_string(),
                u.created_at.clone(),
            ]
        })
        .collect();
    print_stdout(&table::render(
        &["NAME", "ROLE", "STATUS", "SESSIONS", "CREATED"],
        &rows,
    ))
}

pub async fn add_user(
    global: &Global,
    name: &str,
    role: Role,
    password: String,
    json: bool,
) -> CliResult {
    let (client, user): (_, UserSummary) = ask(
        global,
        subject::USER_CREATE,
        json!({ "name": name, "role": role, "password": password }),
    )
    .await?;
    client.close().await;
    if json {
        print_json(&user)?;
    }
    eprintln!("created {} {}", user.role, table::clean(&user.name));
    Ok(())
}

pub async fn set_password(global: &Global, name: &str, password: String, json: bool) -> CliResult {
    let (client, set): (_, UserPasswordSet) = ask(
        global,
        subject::USER_PASSWORD,
        json!({ "name": name, "password": password }),
    )
    .await?;
    client.close().await;
    if json {
        print_json(&set)?;
    }
    eprintln!(
        "set a new password for {}; ended {} other device session(s) of theirs",
        table::clean(&set.name),
        set.sessions_ended
    );
    Ok(())
}

pub async fn update_user(
    global: &Global,
    name: &str,
    role: Option<Role>,
    disabled: Option<bool>,
    json: bool,
) -> CliResult {
    let (client, user): (_, UserSummary) = ask(
        global,
        subject::USER_UPDATE,
        json!({ "name": name, "role": role, "disabled": disabled }),
    )
    .await?;
    client.close().await;
    if json {
        print_json(&user)?;
    }
    let name = table::clean(&user.name);
    match (role, disabled) {
        (_, Some(true)) => {
            eprintln!("disabled {name}; their sessions are revoked and their connections closed")
        }
        (_, Some(false)) => eprintln!("enabled {name}; they can log in again"),
        (Some(role), None) => {
            eprintln!("{name} is now {role}; their open connections reconnect with the new role")
        }
        (None, None) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_durations_and_times() {
        let an_hour_ago = since("1h").unwrap();
        assert!(
            an_hour_ago.ends_with('Z') && an_hour_ago.len() == 20,
            "{an_hour_ago}"
        );
        assert_eq!(
            since("2026-11-23T09:00:00Z").unwrap(),
            "2026-11-23T09:00:00Z"
        );
        assert!(since("yesterday").unwrap_err().contains("neither"));
    }
}
