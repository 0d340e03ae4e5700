//! Security promises, end to end against the real relay: the role matrix on every subject,
//! revocation of agents and device sessions cutting live connections, brute-force protection
//! at login, registration tokens from the admin API, the audit log, user management (role
//! changes and disabling reach live connections), registration token listing and revocation,
//! and agent token rotation.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use zedops_client::{Client, ClientEvent};
use zedops_protocol::{Role, subject};
use zedops_relay::policy::{self, CLIENT_SUBJECTS};
use zedops_testkit::wire::{FakeAgent, dial, next_text, send};
use zedops_testkit::{TEST_PASSWORD, TestAgent, TestRelay};

/// A fresh relay and a client of its admin `root`.
async fn relay_with_admin() -> (TestRelay, Client) {
    let relay = TestRelay::builder().start().await;
    let admin = relay.client("root", Role::Admin).await;
    (relay, admin)
}

/// The audit log's entries that `filter` (an `audit.list` request) selects, as `admin` reads
/// them.
async fn audit(admin: &Client, filter: Value) -> Vec<Value> {
    let log = admin
        .request_raw(subject::AUDIT_LIST, filter)
        .await
        .unwrap();
    log["entries"].as_array().expect("audit entries").clone()
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
        subject::USER_LIST | subject::TOKEN_LIST => json!({}),
        subject::USER_CREATE => {
            json!({"name": "matrix-new", "role": "viewer", "password": "matrix-pass"})
        }
        subject::USER_UPDATE => json!({"name": "no-such-user", "role": "viewer"}),
        subject::USER_PASSWORD => json!({"name": "no-such-user", "password": "matrix-pass"}),
        subject::TOKEN_REVOKE => json!({"tokenId": "no-such-token"}),
        subject::AGENT_ROTATE => json!({"agentId": "no-such-agent"}),
        subject::AGENT_UPDATE => json!({"agentId": "no-such-agent"}),
        subject::CONTAINER_DEPLOY => {
            json!({"agentId": "no-such-agent", "template": "no-such-template", "name": "web"})
        }
        subject::CONTAINER_REMOVE => json!({"agentId": "no-such-agent", "containerId": "web"}),
        subject::CONTAINER_UPDATE => json!({"agentId": "no-such-agent", "containerId": "web"}),
        subject::UPDATES_LIST => json!({}),
        subject::UPDATES_CHECK => json!({"agentId": "no-such-agent"}),
        subject::IMAGE_LIST => json!({"agentId": "no-such-agent"}),
        subject::IMAGE_PULL | subject::IMAGE_REMOVE => {
            json!({"agentId": "no-such-agent", "image": "busybox:1"})
        }
        subject::TEMPLATE_LIST | subject::REGISTRY_LIST => json!({}),
        subject::REGISTRY_ADD => {
            json!({"server": "registry.invalid:5000", "username": "ci", "password": "pw"})
        }
        subject::REGISTRY_REMOVE => json!({"server": "no-such-registry.invalid"}),
        subject::TEMPLATE_SHOW | subject::TEMPLATE_REMOVE => json!({"name": "no-such-template"}),
        subject::TEMPLATE_ADD | subject::TEMPLATE_UPDATE => {
            json!({"template": {"name": "matrix-template", "spec": {"image": "busybox:1"}}})
        }
        subject::CONTAINER_EXEC => {
            json!({"agentId": "no-such-agent", "containerId": "web", "cmd": ["sh"]})
        }
        subject::CONTAINER_ATTACH => json!({"agentId": "no-such-agent", "containerId": "web"}),
        subject::CONTAINER_SEND => {
            json!({"agentId": "no-such-agent", "containerId": "web", "line": "save"})
        }
        subject::STREAM_INPUT => json!({"inbox": "_INBOX.none", "grant": 1}),
        subject::FILE_LIST | subject::FILE_GET | subject::FILE_REMOVE | subject::FILE_MKDIR => {
            json!({"agentId": "no-such-agent", "containerId": "web", "path": "/srv"})
        }
        subject::FILE_PUT => {
            json!({"agentId": "no-such-agent", "containerId": "web", "path": "/srv/a", "size": 1})
        }
        other => panic!("no sample request for {other}: add one and a row in the policy table"),
    }
}

#[tokio::test]
async fn every_role_gets_exactly_what_the_policy_allows_on_every_subject() {
    let relay = TestRelay::builder().start().await;
    for role in [Role::Admin, Role::Operator, Role::Viewer] {
        let client = relay.client(&format!("{role}-matrix"), role).await;
        for (subject, need) in CLIENT_SUBJECTS {
            let answer = client.request_raw(subject, sample(subject)).await;
            let forbidden = matches!(&answer, Err(e) if e.code() == "FORBIDDEN");
            assert_eq!(
                forbidden,
                !policy::allows(role, *need),
                "{role} sending {subject}: {answer:?}"
            );
            // The refusal names the role that would be allowed.
            if let Err(err) = &answer
                && forbidden
            {
                let wanted = if *need == policy::Need::Admin {
                    "the admin role"
                } else {
                    "the operator role"
                };
                assert!(err.to_string().contains(wanted), "{subject}: {err}");
            }
        }
    }
}

#[tokio::test]
async fn a_revoked_agent_is_cut_off_at_once_and_stays_out() {
    let (relay, admin) = relay_with_admin().await;
    let agent = TestAgent::builder(&relay).name("doomed").online().await;
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
    let other = TestAgent::builder(&relay).name("doomed-2").online().await;
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
    let (relay, admin) = relay_with_admin().await;
    let victim = relay.client("ops", Role::Operator).await;
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
    wait_events(&mut events, false, 2).await;
    let err = victim
        .agents()
        .await
        .expect_err("no requests after revocation");
    assert!(
        ["DISCONNECTED", "UNAUTHORIZED"].contains(&err.code().as_str()),
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
    let relay = TestRelay::builder().start().await;
    relay.login("alice", Role::Viewer).await;
    for _ in 0..zedops_relay::login_limit::FREE_FAILURES {
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
        "from the guessing address even the right password waits: {err}"
    );
    assert!(err.retry_after_secs().is_some_and(|s| s > 0), "{err}");
    assert!(err.to_string().contains("try again"), "{err}");
}

#[tokio::test]
async fn admins_create_tokens_and_read_the_audit_log() {
    let (relay, admin) = relay_with_admin().await;
    let viewer = relay.client("watcher", Role::Viewer).await;

    let created = admin
        .request_raw(subject::TOKEN_CREATE, json!({"ttlSecs": 600}))
        .await
        .unwrap();
    let token = created["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("zr_"));
    let agent = TestAgent::builder(&relay)
        .name("from-api")
        .token(token)
        .online()
        .await;

    // Refused: a stop, and a file listing (a refusal of any subject records the agent and
    // container its payload names).
    for (subject, data) in [
        (
            subject::CONTAINER_STOP,
            json!({"agentId": "from-api", "containerId": "web"}),
        ),
        (
            subject::FILE_LIST,
            json!({"agentId": "from-api", "containerId": "db", "path": "/etc"}),
        ),
    ] {
        let refused = viewer.request_raw(subject, data).await;
        assert_eq!(refused.unwrap_err().code(), "FORBIDDEN", "{subject}");
    }
    let entries = audit(&admin, json!({"agentId": "from-api"})).await;
    let refusal = |operation: &str| {
        entries
            .iter()
            .find(|e| e["operation"] == operation && e["result"] == "forbidden")
            .unwrap_or_else(|| panic!("the refused {operation} is audited under its agent"))
    };
    let forbidden = refusal("stop");
    assert_eq!(forbidden["user"], "watcher");
    // Named like an allowed stop, so one filter finds both.
    assert_eq!(forbidden["container"], "web");
    assert_eq!(forbidden["errorCode"], "FORBIDDEN");
    let listing = refusal("file.list");
    assert_eq!(listing["container"], "db");
    assert_eq!(
        listing["agentId"], forbidden["agentId"],
        "recorded by id, as the stop"
    );
    // An agent name that is neither known nor in the log is a mistake, said as one.
    let typo = admin
        .request_raw(subject::AUDIT_LIST, json!({"agentId": "from-apj"}))
        .await
        .unwrap_err();
    assert_eq!(typo.code(), "NOT_FOUND");
    assert!(typo.to_string().contains("from-apj"), "{typo}");
    let all = audit(&admin, json!({})).await;
    assert!(all.iter().any(|e| e["operation"] == "token.create"));
    let bad = admin
        .request_raw(subject::AUDIT_LIST, json!({"since": "yesterday"}))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), "INVALID_REQUEST");
    agent.stop().await.unwrap();
}

/// Waits for a `Disconnected` event, then (when `reconnects`) for `Connected`, within `secs`.
async fn wait_events(
    events: &mut tokio::sync::broadcast::Receiver<ClientEvent>,
    reconnects: bool,
    secs: u64,
) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut disconnected = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = tokio::time::timeout(left, events.recv())
            .await
            .unwrap_or_else(|_| panic!("no disconnect/reconnect within {secs} s"))
            .expect("event stream open");
        match event {
            ClientEvent::Disconnected { .. } => {
                disconnected = true;
                if !reconnects {
                    return;
                }
            }
            ClientEvent::Connected if disconnected => return,
            _ => {}
        }
    }
}

#[tokio::test]
async fn admins_manage_users_and_changes_reach_live_connections_at_once() {
    let (relay, admin) = relay_with_admin().await;
    // The admin's requests, sent raw so that what the relay checks is what is under test.
    let create_user = |user: Value| admin.request_raw(subject::USER_CREATE, user);
    let update_user = |change: Value| admin.request_raw(subject::USER_UPDATE, change);

    let created =
        create_user(json!({"name": "carol", "role": "operator", "password": "carol-pass-1"}))
            .await
            .unwrap();
    assert_eq!(
        (created["name"].as_str(), created["role"].as_str()),
        (Some("carol"), Some("operator"))
    );
    let again = create_user(json!({"name": "carol", "role": "viewer", "password": "x"}))
        .await
        .unwrap_err();
    assert_eq!(again.code(), "NAME_TAKEN", "{again}");
    let bad = create_user(json!({"name": "carol; rm -rf /", "role": "viewer", "password": "x"}))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), "INVALID_REQUEST", "{bad}");

    // Carol signs in with the password the admin set, twice (laptop and CLI).
    let login = zedops_client::login(&relay.url, "carol", "carol-pass-1", None, false)
        .await
        .expect("the new user logs in");
    let carol = relay.client_with(&login.token).await;
    assert_eq!(carol.role(), Role::Operator);
    let mut events = carol.events();

    // Demoted: the live connection is closed and comes back as a viewer; the old role is gone.
    let changed = update_user(json!({"name": "carol", "role": "viewer"}))
        .await
        .unwrap();
    assert_eq!(changed["role"], "viewer");
    wait_events(&mut events, true, 10).await;
    assert_eq!(carol.role(), Role::Viewer);
    let refused = carol
        .request_raw(
            subject::CONTAINER_STOP,
            json!({"agentId": "any", "containerId": "web"}),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "FORBIDDEN", "{refused}");

    // Promoted: the same, the other way.
    update_user(json!({"name": "carol", "role": "admin"}))
        .await
        .unwrap();
    wait_events(&mut events, true, 10).await;
    assert_eq!(carol.role(), Role::Admin);
    carol
        .request_raw(subject::USER_LIST, json!({}))
        .await
        .expect("admins list users");

    let users = admin
        .request_raw(subject::USER_LIST, json!({}))
        .await
        .unwrap();
    let listed = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "carol")
        .expect("carol listed")
        .clone();
    assert_eq!(
        (
            listed["role"].as_str(),
            listed["disabled"].as_bool(),
            listed["sessions"].as_u64()
        ),
        (Some("admin"), Some(false), Some(1))
    );
    assert!(
        !users.to_string().contains("argon2"),
        "no password hash in the list: {users}"
    );

    // Disabled: cut off at once, the session revoked, no reconnect, no login.
    let started = Instant::now();
    update_user(json!({"name": "carol", "disabled": true}))
        .await
        .unwrap();
    wait_events(&mut events, false, 2).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "cut off in {:?}",
        started.elapsed()
    );
    let err = carol.agents().await.unwrap_err();
    assert!(
        ["DISCONNECTED", "UNAUTHORIZED"].contains(&err.code().as_str()),
        "{err}"
    );
    assert!(relay.store.session(&login.token).await.unwrap().is_none());
    let err = zedops_client::login(&relay.url, "carol", "carol-pass-1", None, false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "UNAUTHORIZED", "{err}");
    // Still disabled: her old session's token does not come back to life after enabling.
    update_user(json!({"name": "carol", "disabled": false}))
        .await
        .unwrap();
    assert!(relay.store.session(&login.token).await.unwrap().is_none());
    zedops_client::login(&relay.url, "carol", "carol-pass-1", None, false)
        .await
        .expect("enabled again");

    // The relay keeps an admin: the last one cannot be demoted or disabled.
    update_user(json!({"name": "carol", "role": "viewer"}))
        .await
        .unwrap();
    let last = update_user(json!({"name": "root", "disabled": true}))
        .await
        .unwrap_err();
    assert_eq!(last.code(), "INVALID_REQUEST");
    assert!(last.to_string().contains("last enabled admin"), "{last}");
    let missing = update_user(json!({"name": "nobody", "role": "viewer"}))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), "NOT_FOUND");

    // Every change is in the audit log, with what changed, and no password anywhere on disk.
    let log = audit(&admin, json!({})).await;
    let changes: Vec<(String, String, String)> = log
        .iter()
        .filter(|e| e["target"] == "carol")
        .map(|e| {
            (
                e["operation"].as_str().unwrap().to_string(),
                e["detail"].as_str().unwrap_or("").to_string(),
                e["result"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for expected in [
        ("user.create", "role operator", "ok"),
        ("user.create", "role viewer", "failed"),
        ("user.update", "role viewer", "ok"),
        ("user.update", "role admin", "ok"),
        ("user.update", "disable", "ok"),
        ("user.update", "enable", "ok"),
    ] {
        assert!(
            changes
                .iter()
                .any(|(o, d, r)| (o.as_str(), d.as_str(), r.as_str()) == expected),
            "{expected:?} not in {changes:?}"
        );
    }
    relay.store.close().await;
    for file in std::fs::read_dir(relay.db_path().parent().unwrap()).unwrap() {
        let bytes = std::fs::read(file.unwrap().path()).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("carol-pass-1"));
    }
}

/// The entry of a `token.list` answer for the token with this id.
fn listed_token<'a>(listed: &'a Value, id: &Value) -> &'a Value {
    listed["tokens"]
        .as_array()
        .expect("a list of tokens")
        .iter()
        .find(|t| t["id"] == *id)
        .unwrap_or_else(|| panic!("token {id} not listed: {listed}"))
}

#[tokio::test]
async fn registration_tokens_are_listed_without_secrets_and_revocable() {
    let (relay, admin) = relay_with_admin().await;
    let create = || async {
        admin
            .request_raw(subject::TOKEN_CREATE, json!({"ttlSecs": 600}))
            .await
            .unwrap()
    };
    let (doomed, kept) = (create().await, create().await);
    let listed = admin
        .request_raw(subject::TOKEN_LIST, json!({}))
        .await
        .unwrap();
    assert_eq!(listed["count"], 2, "{listed}");
    for token in [&doomed, &kept] {
        let secret = token["token"].as_str().unwrap();
        assert!(
            !listed.to_string().contains(secret),
            "the token is listed: {listed}"
        );
        let entry = listed_token(&listed, &token["id"]);
        assert_eq!(entry["state"], "valid");
        assert_eq!(entry["expiresAt"], token["expiresAt"]);
    }

    let revoked = admin
        .request_raw(subject::TOKEN_REVOKE, json!({"tokenId": doomed["id"]}))
        .await
        .unwrap();
    assert_eq!(revoked["tokenId"], doomed["id"]);
    let refused = TestAgent::builder(&relay)
        .name("too-late")
        .token(doomed["token"].as_str().unwrap().to_string())
        .spawn()
        .await;
    let err = refused
        .exit()
        .await
        .expect_err("a revoked token enrols nobody");
    assert!(format!("{err:#}").contains("UNAUTHORIZED"), "{err:#}");

    let agent = TestAgent::builder(&relay)
        .name("in-time")
        .token(kept["token"].as_str().unwrap().to_string())
        .online()
        .await;
    let listed = admin
        .request_raw(subject::TOKEN_LIST, json!({}))
        .await
        .unwrap();
    assert_eq!(listed_token(&listed, &doomed["id"])["state"], "revoked");
    let used = listed_token(&listed, &kept["id"]);
    assert_eq!(used["state"], "used");
    assert_eq!(
        used["usedByAgent"].as_str(),
        relay
            .state
            .hub
            .agent("in-time")
            .map(|l| l.id.clone())
            .as_deref()
    );
    let err = admin
        .request_raw(subject::TOKEN_REVOKE, json!({"tokenId": kept["id"]}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_REQUEST");
    assert!(err.to_string().contains("revoke that agent"), "{err}");
    let err = admin
        .request_raw(subject::TOKEN_REVOKE, json!({"tokenId": "no-such-token"}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "NOT_FOUND");
    let log = audit(&admin, json!({})).await;
    assert!(
        log.iter()
            .any(|e| e["operation"] == "token.revoke" && e["target"] == doomed["id"]),
        "{log:?}"
    );
    agent.stop().await.unwrap();
}

/// Sends an `agent.auth` hello by hand and returns the relay's first answer.
async fn raw_agent_auth(relay: &TestRelay, agent_id: &str, token: &str) -> Value {
    let mut ws = dial(relay, "/ws/agent").await;
    let hello = json!({"subject": "agent.auth", "data": {
        "protocolVersion": zedops_protocol::PROTOCOL_VERSION, "agentId": agent_id,
        "token": token, "info": {"version": "0", "os": "linux", "arch": "x86_64"}}});
    send(&mut ws, hello).await;
    next_text(&mut ws).await.expect("an answer within 10 s")
}

/// Sends `frame` as `agent` and returns the relay's next frame: its answer.
async fn ask(agent: &mut FakeAgent, frame: Value) -> Value {
    agent.send(frame).await;
    next_text(&mut agent.ws)
        .await
        .expect("an answer within 10 s")
}

/// `agent.forget` revokes the sending agent and no other: a frame naming another agent is
/// refused, the answer names the sender, its name enrols again, and clients cannot send it.
#[tokio::test]
async fn an_agent_can_forget_itself_and_no_other() {
    let (relay, admin) = relay_with_admin().await;
    let keep = TestAgent::builder(&relay).name("keeper").spawn().await;
    let leaver = TestAgent::builder(&relay).name("leaver").spawn().await;
    relay.wait_agent("keeper", true).await;
    let (keep_id, _) = stored_credentials(&keep.wait_credentials().await);
    let (id, token) = stored_credentials(&leaver.wait_credentials().await);
    leaver.stop().await.unwrap();
    relay.wait_agent("leaver", false).await;

    // Back with its stored credentials (welcomed: checked by FakeAgent::auth).
    let mut back = FakeAgent::auth(&relay, &id, &token).await;
    // Naming another agent is not a thing the subject takes.
    let refused = ask(
        &mut back,
        json!({"subject": "agent.forget", "reply": "_INBOX.a", "data": {"agentId": keep_id}}),
    )
    .await;
    assert_eq!(refused["subject"], "_INBOX.a");
    assert_eq!(refused["data"]["errorCode"], "INVALID_REQUEST", "{refused}");
    let refused = ask(&mut back, json!({"subject": "agent.forget", "data": {}})).await;
    assert_eq!(refused["data"]["errorCode"], "INVALID_REQUEST", "{refused}");
    assert_eq!(relay.agent_names().await.len(), 2, "nothing forgotten yet");

    let forgotten = ask(
        &mut back,
        json!({"subject": "agent.forget", "reply": "_INBOX.b", "data": {}}),
    )
    .await;
    assert_eq!(forgotten["subject"], "_INBOX.b");
    assert_eq!(forgotten["data"], json!({"agentId": id, "name": "leaver"}));
    assert_eq!(relay.agent_names().await, ["keeper"]);
    relay.wait_agent("keeper", true).await;
    let refused = raw_agent_auth(&relay, &id, &token).await;
    assert_eq!(refused["data"]["errorCode"], "UNAUTHORIZED", "{refused}");
    let log = audit(&admin, json!({})).await;
    assert!(
        log.iter().any(|e| e["operation"] == "agent.forget"
            && e["agentId"] == id.as_str()
            && e["target"] == "leaver"),
        "{log:?}"
    );
    // Clients cannot send it, and the name enrols again.
    assert!(
        admin
            .request_raw(subject::AGENT_FORGET, json!({}))
            .await
            .is_err()
    );
    let again = TestAgent::builder(&relay).name("leaver").online().await;
    again.stop().await.unwrap();
    keep.stop().await.unwrap();
}

fn stored_credentials(path: &std::path::Path) -> (String, String) {
    let stored: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    (
        stored["agentId"].as_str().unwrap().to_string(),
        stored["token"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn rotating_an_agent_token_replaces_it_on_both_sides() {
    let (relay, admin) = relay_with_admin().await;
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("a");
    let agent = TestAgent::builder(&relay)
        .name("spinner")
        .data_dir(&dir)
        .online()
        .await;
    let path = agent.wait_credentials().await;
    let (id, old) = stored_credentials(&path);
    let link_before = relay.state.hub.agent("spinner").unwrap().conn_id;

    let rotated = admin
        .request_raw(subject::AGENT_ROTATE, json!({"agentId": "spinner"}))
        .await
        .unwrap();
    assert_eq!(
        (rotated["agentId"].as_str(), rotated["name"].as_str()),
        (Some(id.as_str()), Some("spinner"))
    );
    // The agent stored the new token (atomically, still 0600) before the relay switched.
    let (same_id, new) = stored_credentials(&path);
    assert_eq!(same_id, id);
    assert_ne!(new, old);
    assert!(new.starts_with("za_"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // Its live connection carries on, and the old token is refused from now on.
    assert_eq!(
        relay.state.hub.agent("spinner").unwrap().conn_id,
        link_before
    );
    let refused = raw_agent_auth(&relay, &id, &old).await;
    assert_eq!(refused["data"]["errorCode"], "UNAUTHORIZED", "{refused}");
    admin
        .containers("spinner")
        .await
        .map(|_| ())
        .or_else(|e| {
            if e.code() == "DOCKER_NOT_AVAILABLE" {
                Ok(())
            } else {
                Err(e)
            }
        })
        .expect("the agent still answers");

    // Restarted, it authenticates with the new token from its file.
    agent.stop().await.unwrap();
    relay.wait_agent("spinner", false).await;
    let offline = admin
        .request_raw(subject::AGENT_ROTATE, json!({"agentId": "spinner"}))
        .await
        .unwrap_err();
    assert_eq!(offline.code(), "AGENT_OFFLINE", "{offline}");
    let agent = TestAgent::builder(&relay)
        .name("spinner")
        .stored_credentials()
        .data_dir(&dir)
        .online()
        .await;
    let missing = admin
        .request_raw(subject::AGENT_ROTATE, json!({"agentId": "nobody"}))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), "NOT_FOUND");

    // Audited, both the rotation and the refusal; neither token is in the database.
    let log = audit(&admin, json!({"agentId": "spinner"})).await;
    let results: Vec<_> = log
        .iter()
        .filter(|e| e["operation"] == "agent.rotate")
        .map(|e| (e["result"].as_str().unwrap(), e["errorCode"].as_str()))
        .collect();
    assert!(results.contains(&("ok", None)), "{results:?}");
    assert!(
        results.contains(&("failed", Some("AGENT_OFFLINE"))),
        "{results:?}"
    );
    agent.stop().await.unwrap();
    relay.store.close().await;
    for file in std::fs::read_dir(relay.db_path().parent().unwrap()).unwrap() {
        let bytes = std::fs::read(file.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(&new) && !text.contains(&old));
    }
}
