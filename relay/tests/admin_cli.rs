//! The `zedops-relay` administration commands against a real SQLite file: users with passwords
//! from stdin (stored only as argon2id), registration tokens alone on stdout, agent listing and
//! revocation, and clear errors for bad input.

use std::process::{Command, Output, Stdio};

use zedops_testkit::process::run_admin;

/// `zedops-relay --db DB args…` with `stdin` on its standard input.
fn relay(db: &str, args: &[&str], stdin: Option<&str>) -> Output {
    run_admin(
        Command::new(env!("CARGO_BIN_EXE_zedops-relay")),
        db,
        args,
        stdin,
    )
}

/// `zedops-relay user add NAME --role ROLE --password-stdin` with `password` on stdin.
fn add_user(db: &str, name: &str, role: &str, password: &str) -> Output {
    let args = ["user", "add", name, "--role", role, "--password-stdin"];
    relay(db, &args, Some(&format!("{password}\n")))
}

/// The bytes as text, invalid UTF-8 replaced.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts the command succeeded; its stderr is the message otherwise.
fn assert_ok(out: &Output) {
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Asserts the command failed and its stderr says `part`.
fn assert_fails_saying(out: &Output, part: &str) {
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "succeeded: {stderr}");
    assert!(stderr.contains(part), "not {part:?} in: {stderr}");
}

#[tokio::test]
async fn administers_users_tokens_and_agents() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("relay.db").display().to_string();

    let out = add_user(&db, "alice", "operator", "hunter2-long");
    assert_ok(&out);
    let again = add_user(&db, "alice", "viewer", "x");
    assert_fails_saying(&again, "already exists");
    let bad = add_user(&db, "bob", "root", "x");
    assert_fails_saying(&bad, "admin, operator or viewer");
    let hostile = add_user(&db, "../../x", "viewer", "x");
    assert!(!hostile.status.success());

    // A token that could never be used, or one outliving the relay's limit, is not minted.
    let instant = relay(&db, &["token", "create", "--ttl", "0s"], None);
    assert_fails_saying(&instant, "at least 1s");
    let forever = relay(&db, &["token", "create", "--ttl", "90d"], None);
    assert_fails_saying(&forever, "at most 30 days");

    let out = relay(&db, &["token", "create", "--ttl", "1h"], None);
    assert_ok(&out);
    let token = text(&out.stdout);
    assert!(
        token.starts_with("zr_") && token.trim_end().lines().count() == 1,
        "token alone on stdout: {token:?}"
    );

    // The database holds hashes only.
    let store = zedops_relay::Store::open(&db).await.unwrap();
    let (agent, _) = store
        .enrol_agent(token.trim(), "web-1", &zedops_testkit::agent_info())
        .await
        .unwrap();
    assert!(
        store
            .login("alice", "hunter2-long", None)
            .await
            .unwrap()
            .is_some()
    );
    store.close().await;
    // Closed, the store has folded everything into the one database file (see
    // `Store::close`); the WAL would be scanned too if it were left.
    for file in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(file.unwrap().path()).expect("reading the relay's files");
        let content = String::from_utf8_lossy(&bytes);
        assert!(!content.contains("hunter2-long") && !content.contains(token.trim()));
    }

    let out = relay(&db, &["agent", "list", "--json"], None);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(listed["count"], 1);
    assert_eq!(listed["agents"][0]["name"], "web-1");
    assert_eq!(listed["agents"][0]["id"], agent.id.as_str());

    let out = relay(&db, &["agent", "revoke", "web-1"], None);
    assert_ok(&out);
    let out = relay(&db, &["agent", "revoke", "web-1"], None);
    assert!(
        !out.status.success(),
        "revoking twice is an error; it said: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = relay(&db, &["agent", "list", "--json"], None);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["count"], 0);
}

/// `user set-password` gives a new password (the old one stops working), ends the user's
/// sessions, is audited without the password, and names a missing user plainly.
#[tokio::test]
async fn set_password_replaces_the_password_and_ends_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("relay.db").display().to_string();
    let out = add_user(&db, "admin", "admin", "first-password");
    assert_ok(&out);
    let store = zedops_relay::Store::open(&db).await.unwrap();
    let (session, token) = store
        .login("admin", "first-password", None)
        .await
        .unwrap()
        .expect("the first password works");

    let out = relay(
        &db,
        &["user", "set-password", "admin", "--password-stdin"],
        Some("second-password\n"),
    );
    assert_ok(&out);
    assert!(
        text(&out.stderr).contains("ended 1 device session"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        store
            .login("admin", "first-password", None)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .login("admin", "second-password", None)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store.session(&token).await.unwrap().is_none(),
        "the old session ended"
    );
    let (_, sessions) = store.revoked_since(0).await.unwrap();
    assert!(
        sessions.contains(&session.id),
        "the running relay is told to close it"
    );
    let audit = store.audit_list(None, None, 10).await.unwrap();
    let entry = audit
        .iter()
        .find(|e| e.operation == "user.password")
        .expect("audited");
    assert_eq!(entry.target.as_deref(), Some("admin"));
    for e in &audit {
        assert!(!format!("{e:?}").contains("second-password"));
    }

    let missing = relay(
        &db,
        &["user", "set-password", "nobody", "--password-stdin"],
        Some("x\n"),
    );
    assert_fails_saying(&missing, "no user named");
}

/// A closed stdout (`zedops-relay token create | head -c0`, a shell's `<(…)` read too late)
/// ends the command quietly with SIGPIPE's status, never a panic.
#[test]
fn a_closed_stdout_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("relay.db").display().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_zedops-relay"))
        .args(["--db", &db, "token", "create"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}
