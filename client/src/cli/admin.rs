//! Administration from the command line (admin role): `zedops agent revoke|rotate`,
//! `zedops sessions`, `zedops token create|list|revoke`, `zedops user …` and `zedops audit`.
//! The relay checks the role; these only ask and print.

use std::time::{Duration, SystemTime};

use zedops_protocol::{AuditListRequest, Role};

use super::{CliResult, Global, call, connect, print_done, print_json, print_stdout, table};

pub async fn revoke_agent(global: &Global, agent: &str, json: bool) -> CliResult {
    let revoked = call(global, |c| async move { c.revoke_agent(agent).await }).await?;
    print_done(
        json,
        &revoked,
        format!(
            "revoked agent {} ({}); its connection is closed and its token refused",
            table::clean(&revoked.name),
            revoked.agent_id
        ),
    )
}

pub async fn sessions(global: &Global, json: bool) -> CliResult {
    let list = call(global, |c| async move { c.sessions().await }).await?;
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
    let revoked = call(global, |c| async move { c.revoke_session(id).await }).await?;
    print_done(
        json,
        &revoked,
        format!(
            "revoked session {}; its connections are closed",
            revoked.session_id
        ),
    )
}

pub async fn create_token(global: &Global, ttl: Duration, json: bool) -> CliResult {
    let created = call(global, |c| async move {
        c.create_token(Some(ttl.as_secs())).await
    })
    .await?;
    if json {
        return print_json(&created);
    }
    eprintln!(
        "single-use registration token, valid until {}:",
        created.expires_at
    );
    print_stdout(&format!("{}\n", created.token))
}

/// `token create --ttl`: from 1 second to 30 days (`15m`, `2d`); the relay takes whole seconds.
pub fn token_ttl(text: &str) -> Result<Duration, String> {
    let ttl = humantime::parse_duration(text).map_err(|e| format!("{text:?}: {e}"))?;
    zedops_protocol::check_token_ttl(ttl)?;
    Ok(ttl)
}

/// `--since`: a duration ago (`1h`, `2d`) or an RFC 3339 time, as RFC 3339 for the relay.
pub fn since(text: &str) -> Result<String, String> {
    if let Ok(ago) = humantime::parse_duration(text) {
        // Further back than the log can reach (before 1970) means all of it.
        let at = SystemTime::now()
            .checked_sub(ago)
            .filter(|at| *at >= SystemTime::UNIX_EPOCH)
            .unwrap_or(SystemTime::UNIX_EPOCH);
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
    let query = AuditListRequest {
        agent_id: agent.map(|a| a.into()),
        since: since.map(str::to_string),
        limit: Some(limit),
    };
    let client = connect(global).await?;
    let log = match client.audit(&query).await {
        Ok(log) => log,
        Err(e) => {
            client.close().await;
            return Err(e.into());
        }
    };
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
            let agent = e.agent_id.as_ref().map(|id| {
                names
                    .get(id.as_str())
                    .cloned()
                    .unwrap_or_else(|| id.to_string())
            });
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
    ))?;
    // The table alone would not say that older entries exist beyond it.
    if rows.len() as u64 >= u64::from(limit) {
        eprintln!(
            "the newest {}; --limit (up to 1000) or --since shows others",
            table::count(limit, "entry", "entries")
        );
    }
    Ok(())
}

pub async fn rotate_agent(global: &Global, agent: &str, json: bool) -> CliResult {
    let rotated = call(global, |c| async move { c.rotate_agent(agent).await }).await?;
    print_done(
        json,
        &rotated,
        format!(
            "rotated the token of agent {} ({}); the agent stored the new one and the old one is refused",
            table::clean(&rotated.name),
            rotated.agent_id
        ),
    )
}

pub async fn tokens(global: &Global, json: bool) -> CliResult {
    let list = call(global, |c| async move { c.tokens().await }).await?;
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
    let revoked = call(global, |c| async move { c.revoke_token(id).await }).await?;
    print_done(
        json,
        &revoked,
        format!(
            "revoked registration token {}; it can no longer enrol a server",
            table::clean(&revoked.token_id)
        ),
    )
}

pub async fn users(global: &Global, json: bool) -> CliResult {
    let list = call(global, |c| async move { c.users().await }).await?;
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
    let user = call(
        global,
        |c| async move { c.add_user(name, role, password).await },
    )
    .await?;
    print_done(
        json,
        &user,
        format!("created {} {}", user.role, table::clean(&user.name)),
    )
}

pub async fn set_password(global: &Global, name: &str, password: String, json: bool) -> CliResult {
    let set = call(
        global,
        |c| async move { c.set_password(name, password).await },
    )
    .await?;
    print_done(
        json,
        &set,
        format!(
            "set a new password for {}; ended {} other device session(s) of theirs",
            table::clean(&set.name),
            set.sessions_ended
        ),
    )
}

pub async fn update_user(
    global: &Global,
    name: &str,
    role: Option<Role>,
    disabled: Option<bool>,
    json: bool,
) -> CliResult {
    let user = call(global, |c| async move {
        c.update_user(name, role, disabled).await
    })
    .await?;
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
        // Before 1970: the whole log, not a crash.
        for long_ago in ["60y", "30000d", "100000y"] {
            assert_eq!(
                since(long_ago).unwrap(),
                "1970-01-01T00:00:00Z",
                "{long_ago}"
            );
        }
    }

    #[test]
    fn token_lifetimes_run_from_a_second_to_thirty_days() {
        assert_eq!(token_ttl("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(token_ttl("30d").unwrap(), Duration::from_secs(30 * 86_400));
        assert_eq!(token_ttl("1s").unwrap(), Duration::from_secs(1));
        for short in ["0s", "500ms"] {
            assert!(
                token_ttl(short).unwrap_err().contains("at least 1s"),
                "{short}"
            );
        }
        assert!(token_ttl("31d").unwrap_err().contains("at most 30 days"));
        assert!(token_ttl("soon").unwrap_err().contains("\"soon\""));
    }
}
