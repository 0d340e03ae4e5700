//! The relay on PostgreSQL beyond the store suite: a whole relay serving from it (login over
//! HTTP, an agent enrolling and connecting, the agent list), `zedops-relay migrate` copying a
//! SQLite relay's data into an empty database (and refusing a non-empty one, and a password on
//! the command line), and a database that goes away and comes back. Real PostgreSQL; under
//! `CI=true` a missing one fails.

use std::process::{Command, Output};
use std::time::Duration;

use zedops_protocol::Role;
use zedops_relay::Store;
use zedops_relay::store::AuditEntry;
use zedops_relay::store::templates;
use zedops_testkit::{TEST_PASSWORD, TestAgent, TestPki, TestPostgres, TestRelay, agent_info};

fn relay_command(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zedops-relay"))
        .args(args)
        .env_remove("ZEDOPS_DATABASE_URL")
        .env_remove("ZEDOPS_DB")
        .output()
        .expect("zedops-relay runs")
}

#[tokio::test]
async fn a_relay_on_postgres_logs_in_enrols_and_lists_agents() {
    let Some(pg) = TestPostgres::shared() else {
        return;
    };
    let url = pg.database();
    let relay = TestRelay::builder().database(url.clone()).start().await;
    assert_eq!(relay.store.backend(), "postgres");
    relay
        .store
        .add_user("ann", TEST_PASSWORD, Role::Operator)
        .await
        .unwrap();
    let login = zedops_client::login(&relay.url, "ann", TEST_PASSWORD, None, false)
        .await
        .expect("ann logs in over HTTP");
    let client = relay.client_with(&login.token).await;
    let _agent = TestAgent::builder(&relay).name("pg-web").online().await;
    let agents = client.agents().await.unwrap();
    assert_eq!(agents.len(), 1);
    assert_eq!(
        (agents[0].name.as_str(), agents[0].online),
        ("pg-web", true)
    );
    // The enrolment is in PostgreSQL, as any other relay of the cluster would read it.
    let other = Store::open(&url).await.unwrap();
    let stored = other.find_agent("pg-web").await.unwrap().unwrap();
    assert_eq!(stored.id, agents[0].id);
    assert!(
        other
            .sessions()
            .await
            .unwrap()
            .iter()
            .any(|s| s.user == "ann")
    );
}

#[tokio::test]
async fn migrate_copies_a_sqlite_relay_into_an_empty_postgres_database() {
    let Some(pg) = TestPostgres::shared() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("relay.db");
    let sqlite = Store::open(file.to_str().unwrap()).await.unwrap();
    sqlite
        .add_user("root", "pw-root-123", Role::Admin)
        .await
        .unwrap();
    sqlite
        .add_user("Viv", "pw-viv-1234", Role::Viewer)
        .await
        .unwrap();
    sqlite.update_user("Viv", None, Some(true)).await.unwrap();
    let (_, session) = sqlite
        .login("root", "pw-root-123", Some("laptop"))
        .await
        .unwrap()
        .unwrap();
    let token = sqlite
        .create_registration_token(Duration::from_secs(600))
        .await
        .unwrap();
    let (agent, agent_token) = sqlite
        .enrol_agent(&token, "web-1", &agent_info())
        .await
        .unwrap();
    let (unused_id, _) = sqlite
        .create_registration_token_with_id(Duration::from_secs(600))
        .await
        .unwrap();
    for n in 0..3 {
        sqlite
            .audit(AuditEntry {
                user: Some("root"),
                agent_id: Some(&agent.id),
                operation: "container.stop",
                result: if n == 1 { "error" } else { "ok" },
                detail: Some("line"),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let body: zedops_protocol::TemplateBody =
        serde_json::from_value(serde_json::json!({"name": "web", "spec": {"image": "nginx:1"}}))
            .unwrap();
    templates::insert(&sqlite, &body, "root").await.unwrap();
    let body2 = zedops_protocol::TemplateBody {
        spec: serde_json::from_value(serde_json::json!({"image": "nginx:2"})).unwrap(),
        ..body.clone()
    };
    templates::update(&sqlite, &body2, "root").await.unwrap();
    let audit_before = sqlite.audit_list(None, None, 100).await.unwrap();
    sqlite.close().await;

    let url = pg.database();
    let from = format!("sqlite:{}", file.display());
    let out = relay_command(&["migrate", "--from", &from, "--to", &url]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("users: 2 rows"), "{stderr}");
    assert!(stderr.contains("audit_log: 3 rows"), "{stderr}");

    let pg_store = Store::open(&url).await.unwrap();
    // The same password, session, agent token and disabled flag work on PostgreSQL.
    assert!(
        pg_store
            .login("root", "pw-root-123", None)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        pg_store
            .login("Viv", "pw-viv-1234", None)
            .await
            .unwrap()
            .is_none()
    );
    assert!(pg_store.user("Viv").await.unwrap().unwrap().disabled);
    assert_eq!(
        pg_store.session(&session).await.unwrap().unwrap().user,
        "root"
    );
    assert!(
        pg_store
            .authenticate_agent(&agent.id, &agent_token, &agent_info())
            .await
            .unwrap()
            .is_some()
    );
    let tokens = pg_store.registration_tokens().await.unwrap();
    let now = zedops_relay::store::now();
    let unused = tokens.iter().find(|t| t.id == unused_id).unwrap();
    assert_eq!(unused.state(now), "valid");
    assert_eq!(tokens.iter().filter(|t| t.state(now) == "used").count(), 1);
    // The audit log keeps its ids, and new entries continue after them.
    let audit_after = pg_store.audit_list(None, None, 100).await.unwrap();
    let key = |rows: &[zedops_relay::store::AuditRow]| {
        rows.iter()
            .map(|r| (r.id, r.at, r.result.clone(), r.agent_id.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(key(&audit_after), key(&audit_before));
    let next = pg_store
        .audit_begin(AuditEntry {
            operation: "user.add",
            result: "ok",
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(next, audit_before[0].id + 1);
    let web = templates::get(&pg_store, "web").await.unwrap().unwrap();
    assert_eq!(web.version, 2);
    assert_eq!(
        templates::version(&pg_store, "web", 1)
            .await
            .unwrap()
            .unwrap()
            .spec["image"],
        "nginx:1"
    );

    // A second copy into the now non-empty database is refused, and changes nothing.
    let again = relay_command(&["migrate", "--from", &from, "--to", &url]);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success());
    assert!(stderr.contains("not empty"), "{stderr}");
    assert_eq!(pg_store.users().await.unwrap().len(), 2);
}

#[test]
fn a_database_password_on_the_command_line_is_refused() {
    for args in [
        &[
            "migrate",
            "--to",
            "postgres://zedops:hunter2@127.0.0.1:1/zedops",
        ][..],
        &[
            "--database",
            "postgres://zedops:hunter2@127.0.0.1:1/zedops",
            "agent",
            "list",
        ][..],
        &[
            "--database",
            "postgres://127.0.0.1:1/zedops?password=hunter2",
            "agent",
            "list",
        ][..],
    ] {
        let out = relay_command(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains("PGPASSWORD"), "{stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
    // From the environment it is accepted (and then fails to connect, without showing it).
    let out = Command::new(env!("CARGO_BIN_EXE_zedops-relay"))
        .args(["agent", "list"])
        .env(
            "ZEDOPS_DATABASE_URL",
            "postgres://zedops:hunter2@127.0.0.1:1/zedops",
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!stderr.contains("PGPASSWORD"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[tokio::test]
async fn a_stopped_database_fails_requests_and_they_work_again_when_it_returns() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    let store = Store::open(&pg.database()).await.unwrap();
    store
        .add_user("ann", "pw-ann-123", Role::Viewer)
        .await
        .unwrap();
    pg.stop();
    let err = store.users().await.expect_err("the database is down");
    assert!(err.is_unavailable(), "{err}");
    assert!(err.to_string().contains("cannot be reached"), "{err}");
    pg.resume();
    let mut users = None;
    // The pool notices the server is back on the next connection it opens.
    for _ in 0..50 {
        if let Ok(found) = store.users().await {
            users = Some(found);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(users.expect("the store recovers").len(), 1);
}

#[test]
fn a_database_url_is_logged_without_its_password() {
    use zedops_relay::store::redacted;
    assert_eq!(
        redacted("postgres://zedops:hunter2@db.example:5432/zedops?sslmode=disable&password=x"),
        "postgres://db.example:5432/zedops"
    );
    assert_eq!(redacted("postgresql://db/zedops"), "postgresql://db/zedops");
    assert_eq!(
        redacted("/var/lib/zedops/relay.db"),
        "/var/lib/zedops/relay.db"
    );
}

#[tokio::test]
async fn the_database_is_reached_over_verified_tls() {
    let (dir, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let pki = TestPki::generate(dir.path());
    let Some(pg) = TestPostgres::start_with_tls(&pki) else {
        return;
    };
    let url = pg.database();
    // This server accepts TLS connections only.
    let plain = Store::open(&format!("{url}?sslmode=disable")).await;
    assert!(plain.is_err(), "a plain connection was accepted");
    let verified = format!(
        "{url}?sslmode=verify-full&sslrootcert={}",
        pki.ca_cert.display()
    );
    let store = Store::open(&verified).await.unwrap();
    store
        .add_user("ann", "pw-ann-123", Role::Viewer)
        .await
        .unwrap();
    assert_eq!(store.users().await.unwrap().len(), 1);
    // A server whose certificate another CA signed is refused under verify-full.
    let stranger = TestPki::generate(other.path());
    let wrong = format!(
        "{url}?sslmode=verify-full&sslrootcert={}",
        stranger.ca_cert.display()
    );
    assert!(
        Store::open(&wrong).await.is_err(),
        "an unknown CA was trusted"
    );
}

#[tokio::test]
async fn a_client_is_told_in_plain_words_when_the_database_is_down() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    let relay = TestRelay::builder().database(pg.database()).start().await;
    let admin = relay.client("root", Role::Admin).await;
    assert_eq!(admin.users().await.unwrap().users.len(), 1);
    pg.stop();
    let err = admin.users().await.expect_err("the database is down");
    let zedops_client::ClientError::Remote(reply) = &err else {
        panic!("{err:?}");
    };
    assert_eq!(reply.error_code, zedops_protocol::ErrorCode::Unavailable);
    assert!(reply.error.contains("cannot be reached"), "{}", reply.error);
    // A write too, and /readyz tells a load balancer the relay cannot serve.
    let err = admin
        .create_token(None)
        .await
        .expect_err("the database is down");
    assert_eq!(
        err.error_code(),
        Some(zedops_protocol::ErrorCode::Unavailable),
        "{err:?}"
    );
    let ready = reqwest_status(&relay, "/readyz").await;
    assert_eq!(ready.0, 503, "{}", ready.1);
    assert!(ready.1.contains(r#""database":false"#), "{}", ready.1);
    pg.resume();
    let mut back = false;
    for _ in 0..50 {
        if admin.users().await.is_ok() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        back,
        "the relay's requests work again once PostgreSQL is back"
    );
    assert_eq!(reqwest_status(&relay, "/readyz").await.0, 200);
}

/// Status code and body of a plain GET to the relay (HTTP/1.1 over a raw socket).
async fn reqwest_status(relay: &TestRelay, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut text = String::new();
    tcp.read_to_string(&mut text).await.unwrap();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}
