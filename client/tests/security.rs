//! Security promises, end to end against the real relay: the role matrix on every subject,
//! revocation of agents and device sessions cutting live connections, brute-force protection
//! at login, registration tokens from the admin API, and the audit log.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use zedops_client::{Client, ClientEvent, ConnectOptions};
use zedops_protocol::{Role, subject};
use zedops_relay::policy::{self, CLIENT_SUBJECTS};
use zedops_testkit::{TEST_PASSWORD, TestAgent, TestRelay};

async fn connect(relay: &TestRelay, user: &str, role: Role) -> Client {
    let token = relay.login(user, role).await;
    Client::connect(ConnectOptions {
        relay: relay.url.clone(),
        token,
        ca_file: None,
        insecure: false,
    })
    .await
    .expect("client connects")
}

/// A well-formed request for every subject the relay serves. A new subject without an entry
/// here fails the matrix test, so nobody adds a subject without deciding who may send it.
fn sample(subject: &str) -> Value {
    match subject {
        subject::AGENT_LIST | subject::SESSION_LIST => json!({}),
        subject::CONTAINER_LIST => json!({"agentId": "no-such-agent"}),
        subject::CONTAINER_START
        | subject::CONTAINER_STOP
        | subject::CONTAINER_RESTART
        | subject::CONTAINER_INSPECT => {
            json!({"agentId": "no-such-agent", "containerId": "web"})
        }
        subject::AGENT_REVOKE => json!({"agentId": "no-such-agent"}),
        subject::SESSION_REVOKE => json!({"sessionId": "no-such-session"}),
        subject::TOKEN_CREATE => json!({"ttlSecs": 60}),
        subject::AUDIT_LIST => json!({"limit": 10}),
        subject::EVENT_SUBSCRIBE => json!({}),
        subject::CONTAINER_LOGS | subject::CONTAINER_STATS => {
            json!({"agentId": "no-such-agent", "containerId": "web"})
        }
        subject::STREAM_CANCEL => json!({"inbox": "_INBOX.none"}),
        other => panic!("no sample request for {other}: add one and a row in the policy table"),
    }
}

#[tokio::test]
async fn every_role_gets_exactly_what_the_policy_allows_on_every_subject() {
    let relay = TestRelay::start().await;
    for role in [Role::Admin, Role::Operator, Role::Viewer] {
        let client = connect(&relay, &format!("{role}-matrix"), role).await;
        for (subject, need) in CLIENT_SUBJECTS {
            let answer = client.request_raw(subject, sample(subject)).await;
            let forbidden = matches!(&answer, Err(e) if e.code() == "FORBIDDEN");
            assert_eq!(
                forbidden,
                !policy::allows(role, *need),
                "{role} sending {subject}: {answer:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_revoked_agent_is_cut_off_at_once_and_stays_out() {
    let relay = TestRelay::start().await;
    let admin = connect(&relay, "root", Role::Admin).await;
    let data = tempfile::tempdir().unwrap();
    let agent = TestAgent::spawn(
        &relay.url,
        Some(relay.registration_token().await),
        "doomed",
        &data.path().join("a"),
    );
    relay.wait_agent("doomed", true).await;
    agent.wait_credentials().await;

    let started = Instant::now();
    let revoked = admin
        .request_raw(subject::AGENT_REVOKE, json!({"agentId": "doomed"}))
        .await
        .unwrap();
    assert_eq!(revoked["name"], "doomed");
    relay.wait_agent("doomed", false).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "cut off in {:?}",
        started.elapsed()
    );
    // Its reconnect with the old credentials is refused, which the agent treats as final.
    let err = agent.exit().await.expect_err("a revoked agent stops");
    assert!(
        format!("{err:#}").contains("revoked") || format!("{err:#}").contains("UNAUTHORIZED"),
        "{err:#}"
    );
    assert!(relay.state.hub.agent("doomed").is_none());

    // Revocation from another process (the admin CLI on the same database) is noticed too.
    let data2 = tempfile::tempdir().unwrap();
    let other = TestAgent::spawn(
        &relay.url,
        Some(relay.registration_token().await),
        "doomed-2",
        &data2.path().join("a"),
    );
    relay.wait_agent("doomed-2", true).await;
    let started = Instant::now();
    relay.store.revoke_agent("doomed-2").await.unwrap();
    relay.wait_agent("doomed-2", false).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "cut off in {:?}",
        started.elapsed()
    );
    other.exit().await.expect_err("refused afterwards");
}

#[tokio::test]
async fn a_revoked_session_is_disconnected_and_refused() {
    let relay = TestRelay::start().await;
    let admin = connect(&relay, "root", Role::Admin).await;
    let victim = connect(&relay, "ops", Role::Operator).await;
    let mut events = victim.events();

    let sessions = admin
        .request_raw(subject::SESSION_LIST, json!({}))
        .await
        .unwrap();
    let list = sessions["sessions"].as_array().unwrap();
    let current: Vec<_> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(
        current.len(),
        1,
        "the admin's own session is marked: {sessions}"
    );
    let target = list
        .iter()
        .find(|s| s["user"] == "ops")
        .expect("ops session listed")["id"]
        .as_str()
        .unwrap()
        .to_string();

    admin
        .request_raw(subject::SESSION_REVOKE, json!({"sessionId": target}))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv())
            .await
            .expect("disconnected within 2 s")
        {
            Ok(ClientEvent::Disconnected { .. }) => break,
            Ok(_) => continue,
            Err(e) => panic!("event stream ended: {e}"),
        }
    }
    let err = victim
        .agents()
        .await
        .expect_err("no requests after revocation");
    assert!(
        ["DISCONNECTED", "UNAUTHORIZED"].contains(&err.code()),
        "{err}"
    );
    let again = admin
        .request_raw(subject::SESSION_REVOKE, json!({"sessionId": target}))
        .await
        .unwrap_err();
    assert_eq!(again.code(), "NOT_FOUND");
}

#[tokio::test]
async fn brute_force_logins_are_rate_limited() {
    let relay = TestRelay::start().await;
    relay.login("alice", Role::Viewer).await;
    for _ in 0..zedops_relay::login_limit::PER_USER {
        let err = zedops_client::login(&relay.url, "alice", "wrong-guess", None, false)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "UNAUTHORIZED", "{err}");
    }
    let err = zedops_client::login(&relay.url, "alice", TEST_PASSWORD, None, false)
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        "RATE_LIMITED",
        "even the right password waits: {err}"
    );
    assert!(err.retry_after_secs().is_some_and(|s| s > 0), "{err}");
    assert!(err.to_string().contains("try again"), "{err}");
}

#[tokio::test]
async fn admins_create_tokens_and_read_the_audit_log() {
    let relay = TestRelay::start().await;
    let admin = connect(&relay, "root", Role::Admin).await;
    let viewer = connect(&relay, "watcher", Role::Viewer).await;

    let created = admin
        .request_raw(subject::TOKEN_CREATE, json!({"ttlSecs": 600}))
        .await
        .unwrap();
    let token = created["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("zr_"));
    let data = tempfile::tempdir().unwrap();
    let agent = TestAgent::spawn(&relay.url, Some(token), "from-api", &data.path().join("a"));
    relay.wait_agent("from-api", true).await;

    let refused = viewer
        .request_raw(
            subject::CONTAINER_STOP,
            json!({"agentId": "from-api", "containerId": "web"}),
        )
        .await;
    assert_eq!(refused.unwrap_err().code(), "FORBIDDEN");

    let log = admin
        .request_raw(subject::AUDIT_LIST, json!({"agentId": "from-api"}))
        .await
        .unwrap();
    let entries = log["entries"].as_array().unwrap();
    let forbidden = entries
        .iter()
        .find(|e| e["result"] == "forbidden")
        .expect("the refused stop is audited");
    assert_eq!(forbidden["user"], "watcher");
    assert_eq!(forbidden["container"], "web");
    assert_eq!(forbidden["errorCode"], "FORBIDDEN");
    let all = admin
        .request_raw(subject::AUDIT_LIST, json!({}))
        .await
        .unwrap();
    assert!(
        all["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["operation"] == "token.create")
    );
    let bad = admin
        .request_raw(subject::AUDIT_LIST, json!({"since": "yesterday"}))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), "INVALID_REQUEST");
    agent.stop().await.unwrap();
}
