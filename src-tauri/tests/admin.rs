//! The admin screens' backend against a real relay: "Add server" creates a registration token
//! whose install command is the relay's own and whose token really enrols an agent; the audit
//! view reads the relay's audit log, filtered by agent; other roles are refused with a sentence.

use std::time::{Duration, SystemTime};

use zedops_client::Operation;
use zedops_desktop::admin;
use zedops_protocol::Role;
use zedops_testkit::{TestAgent, TestRelay};

#[tokio::test]
async fn add_server_makes_an_install_command_whose_token_enrols_an_agent() {
    let relay = TestRelay::builder().start().await;
    let client = relay.client("ada", Role::Admin).await;

    let made = admin::create_registration_token(&client, 3600, &client.relay())
        .await
        .unwrap();
    assert_eq!(
        made.install_command,
        zedops_relay::download::install_command(&made.public_url, &made.token),
        "the same command as `zedops-relay token create --install-command`"
    );
    assert!(
        made.install_command.starts_with(&format!(
            "curl -fsSL {}/install.sh | ZEDOPS_TOKEN=",
            relay.url.trim_end_matches('/')
        )),
        "{}",
        made.install_command
    );
    assert!(made.loopback, "a 127.0.0.1 relay is flagged for the UI");
    let expires = humantime::parse_rfc3339_weak(&made.expires_at).expect("an RFC 3339 expiry");
    let left = expires.duration_since(SystemTime::now()).unwrap();
    assert!(
        left > Duration::from_secs(3500) && left <= Duration::from_secs(3600),
        "valid for the hour asked: {left:?}"
    );

    // The token in the command enrols a real agent.
    let token = made
        .install_command
        .rsplit("ZEDOPS_TOKEN=")
        .next()
        .and_then(|rest| rest.strip_suffix(" sh"))
        .unwrap()
        .to_string();
    let agent = TestAgent::builder(&relay)
        .name("added-from-app")
        .token(token)
        .online()
        .await;
    agent.kill().await;

    // A public address given by the admin goes into the command as given.
    let made = admin::create_registration_token(&client, 900, "https://relay.example.com/")
        .await
        .unwrap();
    assert!(!made.loopback);
    assert!(
        made.install_command
            .starts_with("curl -fsSL https://relay.example.com/install.sh | ZEDOPS_TOKEN="),
        "{}",
        made.install_command
    );
    let err = admin::create_registration_token(&client, 900, "relay.example.com; reboot")
        .await
        .unwrap_err();
    assert_eq!(serde_json::to_value(&err).unwrap()["code"], "INVALID_INPUT");
    let err = admin::create_registration_token(&client, 0, &client.relay())
        .await
        .unwrap_err();
    assert!(
        err.message.contains("between 1 minute and 30 days"),
        "{}",
        err.message
    );
    client.close().await;

    // Not for operators: the relay refuses, and the sentence says who may.
    let operator = relay.client("otto", Role::Operator).await;
    let err = admin::create_registration_token(&operator, 900, &operator.relay())
        .await
        .unwrap_err();
    assert_eq!(
        serde_json::to_value(&err).unwrap(),
        serde_json::json!({"code": "FORBIDDEN", "message": "Only admins may create registration tokens: ask a ZedOps admin of this relay."})
    );
    operator.close().await;
}

#[tokio::test]
async fn the_audit_view_reads_the_relays_log_by_agent() {
    let relay = TestRelay::builder().start().await;
    let admin_client = relay.client("ada", Role::Admin).await;
    let viewer = relay.client("vic", Role::Viewer).await;
    let operator = relay.client("otto", Role::Operator).await;

    // A viewer's stop is refused; an operator's stop on an agent that is not there fails.
    // Both are audited.
    let refused = viewer.action("far-away", "web", Operation::Stop).await;
    assert_eq!(refused.unwrap_err().code(), "FORBIDDEN");
    let failed = operator.action("nowhere", "db", Operation::Restart).await;
    assert!(failed.is_err());

    let all = admin::audit_log(&admin_client, None).await.unwrap();
    let stop = all
        .iter()
        .find(|e| e.operation == "stop" && e.user.as_deref() == Some("vic"))
        .unwrap_or_else(|| panic!("the viewer's stop is audited: {all:?}"));
    assert_eq!(stop.result, "forbidden");
    assert_eq!(stop.container.as_deref(), Some("web"));
    let restart = all
        .iter()
        .find(|e| e.operation == "restart")
        .unwrap_or_else(|| panic!("the operator's restart is audited: {all:?}"));
    assert_eq!(restart.result, "failed");
    assert!(restart.error_code.is_some());
    assert!(
        humantime::parse_rfc3339_weak(&restart.at).is_ok(),
        "{}",
        restart.at
    );
    // Newest first, as the relay answers.
    let ids: Vec<i64> = all.iter().map(|e| e.id.parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");

    let one = admin::audit_log(&admin_client, Some("nowhere"))
        .await
        .unwrap();
    assert!(!one.is_empty(), "{all:?}");
    assert!(
        one.iter().all(|e| e.agent_id.as_deref() == Some("nowhere")),
        "{one:?}"
    );
    assert!(
        admin::audit_log(&admin_client, Some("  "))
            .await
            .unwrap()
            .len()
            >= one.len()
    );

    let err = admin::audit_log(&operator, None).await.unwrap_err();
    assert_eq!(serde_json::to_value(&err).unwrap()["code"], "FORBIDDEN");
    assert!(
        err.message.contains("Only admins may read the audit log"),
        "{}",
        err.message
    );
    for c in [admin_client, viewer, operator] {
        c.close().await;
    }
}
