//! The `zedops` binary against the real relay, a real agent and the real Docker engine: login
//! into the OS keyring (the password nowhere on disk), tables and `--json`, actions that change
//! real containers, error lines and exit codes, admin commands, and logout.

mod support;

use std::process::Output;

use support::{Zed, json, run, text, zedops};
use zedops_client::store;
use zedops_protocol::Role;
use zedops_testkit::{TEST_PASSWORD, TestAgent, TestRelay};

/// Asserts the run failed with exit code 1 and only the error line `error: CODE: …`.
fn failed_with(out: &Output, code: &str) {
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with(&format!("error: {code}: ")), "{stderr}");
    assert!(out.stdout.is_empty(), "errors go to stderr only");
}

#[tokio::test]
async fn drives_real_containers_through_the_cli() {
    let Some((containers, web, relay, agent)) = support::sleeper_and_agent("web", "cli-host").await
    else {
        return;
    };
    let token = relay.login("ops", Role::Operator).await;
    let as_ops = Zed::new(&relay.url, &token);

    let agents = json(&as_ops.run(&["agents", "--json"]).await);
    assert_eq!(agents["count"], 1);
    assert_eq!(agents["agents"][0]["name"], "cli-host");
    assert_eq!(agents["agents"][0]["online"], true);

    let table = as_ops.run(&["ps", "--agent", "cli-host"]).await;
    assert!(table.status.success());
    let table = text(&table.stdout);
    assert!(table.starts_with("ID"), "{table}");
    let row = table
        .lines()
        .find(|l| l.contains(&web))
        .expect("container row");
    assert!(
        row.contains("running") && row.contains(zedops_testkit::docker::TEST_IMAGE),
        "{row}"
    );

    let ps = json(&as_ops.run(&["ps", "--agent", "cli-host", "--json"]).await);
    let listed = ps["containers"].as_array().unwrap();
    assert_eq!(ps["count"], listed.len());
    assert!(
        listed
            .iter()
            .any(|c| c["names"][0] == format!("/{web}") && c["state"] == "running")
    );

    let stop = as_ops.run(&["stop", "--agent", "cli-host", &web]).await;
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    assert_eq!(text(&stop.stderr), format!("stopped {web} on cli-host\n"));
    assert_eq!(containers.state(&web).await, "exited");
    let start = json(
        &as_ops
            .run(&["start", "--agent", "cli-host", &web, "--json"])
            .await,
    );
    assert_eq!(start["success"], true);
    assert_eq!(start["operation"], "start");
    assert_eq!(containers.state(&web).await, "running");

    failed_with(
        &as_ops
            .run(&["stop", "--agent", "cli-host", "no-such-box"])
            .await,
        "CONTAINER_NOT_FOUND",
    );
    failed_with(
        &as_ops.run(&["ps", "--agent", "nowhere"]).await,
        "NOT_FOUND",
    );
    failed_with(
        &Zed::new(&relay.url, "zd_forged").run(&["agents"]).await,
        "UNAUTHORIZED",
    );
    // An operator is not an admin.
    failed_with(&as_ops.run(&["audit"]).await, "FORBIDDEN");

    agent.kill().await;
    relay.wait_agent("cli-host", false).await;
    failed_with(
        &as_ops.run(&["ps", "--agent", "cli-host"]).await,
        "AGENT_OFFLINE",
    );
}

#[tokio::test]
async fn admin_commands_create_tokens_revoke_and_read_the_audit_log() {
    let relay = TestRelay::builder().start().await;
    let admin = relay.login("root", Role::Admin).await;
    let as_admin = Zed::new(&relay.url, &admin);

    // A lifetime the relay would refuse is refused before a request is sent, as a usage error.
    let instant = as_admin.run(&["token", "create", "--ttl", "0s"]).await;
    assert_eq!(instant.status.code(), Some(2), "{}", text(&instant.stderr));
    assert!(
        text(&instant.stderr).contains("at least 1s"),
        "{}",
        text(&instant.stderr)
    );

    let out = as_admin.run(&["token", "create", "--ttl", "10m"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout);
    assert!(
        token.starts_with("zr_") && token.lines().count() == 1,
        "token alone on stdout: {token:?}"
    );
    let agent = TestAgent::builder(&relay)
        .name("enrolled")
        .token(token.trim().to_string())
        .online()
        .await;

    let viewer = relay.login("peek", Role::Viewer).await;

    let as_viewer = Zed::new(&relay.url, &viewer);
    failed_with(
        &as_viewer
            .run(&["restart", "--agent", "enrolled", "web"])
            .await,
        "FORBIDDEN",
    );
    let log = json(
        &as_admin
            .run(&["audit", "--agent", "enrolled", "--since", "1h", "--json"])
            .await,
    );
    let entry = &log["entries"][0];
    assert_eq!(
        (entry["user"].as_str(), entry["result"].as_str()),
        (Some("peek"), Some("forbidden")),
        "{log}"
    );
    let table = text(&as_admin.run(&["audit"]).await.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.contains("peek") && l.contains("enrolled") && l.contains("FORBIDDEN")),
        "{table}"
    );
    // A table cut by --limit says so; an agent name nobody knows is an error, not an empty log.
    let cut = as_admin.run(&["audit", "--limit", "1"]).await;
    assert_eq!(
        text(&cut.stdout).lines().count(),
        2,
        "{}",
        text(&cut.stdout)
    );
    assert!(
        text(&cut.stderr).contains("the newest 1 entry; --limit"),
        "{}",
        text(&cut.stderr)
    );
    failed_with(
        &as_admin.run(&["audit", "--agent", "enroled"]).await,
        "NOT_FOUND",
    );

    let sessions = json(&as_admin.run(&["sessions", "--json"]).await);
    let peek = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["user"] == "peek")
        .expect("listed")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = as_admin.run(&["sessions", "revoke", &peek]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    failed_with(&as_viewer.run(&["agents"]).await, "UNAUTHORIZED");

    let out = as_admin.run(&["agent", "revoke", "enrolled"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    relay.wait_agent("enrolled", false).await;
    agent.exit().await.expect_err("a revoked agent stays out");
}

#[tokio::test]
async fn admins_manage_users_tokens_and_agent_tokens_from_the_cli() {
    let relay = TestRelay::builder().start().await;
    let admin = relay.login("root", Role::Admin).await;
    let as_admin = Zed::new(&relay.url, &admin);

    // Users: the password comes from stdin, never from an argument.
    let out = as_admin
        .run_with(
            &[
                "user",
                "add",
                "dave",
                "--role",
                "operator",
                "--password-stdin",
            ],
            "dave-pass-9\n",
        )
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "created operator dave\n");
    assert!(out.stdout.is_empty());
    let usage = as_admin
        .run(&["user", "add", "erin", "--role", "viewer"])
        .await;
    assert_eq!(usage.status.code(), Some(2), "{}", text(&usage.stderr));
    // The usage shown is the command's own, not the whole tool's.
    let said = text(&usage.stderr);
    assert!(
        said.contains("--password-stdin or --password-file")
            && said.contains("Usage: zedops user add"),
        "{said}"
    );
    failed_with(
        &as_admin
            .run_with(
                &[
                    "user",
                    "add",
                    "dave",
                    "--role",
                    "viewer",
                    "--password-stdin",
                ],
                "x\n",
            )
            .await,
        "NAME_TAKEN",
    );
    zedops_client::login(&relay.url, "dave", "dave-pass-9", None, false)
        .await
        .expect("dave logs in with the password from stdin");

    let users = json(&as_admin.run(&["user", "list", "--json"]).await);
    let dave = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "dave")
        .expect("listed")
        .clone();
    assert_eq!(
        (dave["role"].as_str(), dave["disabled"].as_bool()),
        (Some("operator"), Some(false))
    );
    let table = text(&as_admin.run(&["user", "list"]).await.stdout);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.contains("dave") && l.contains("operator") && l.contains("enabled")),
        "{table}"
    );

    let changed = json(
        &as_admin
            .run(&["user", "set-role", "dave", "viewer", "--json"])
            .await,
    );
    assert_eq!(changed["role"], "viewer");
    let out = as_admin.run(&["user", "disable", "dave"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).starts_with("disabled dave"),
        "{}",
        text(&out.stderr)
    );
    let err = zedops_client::login(&relay.url, "dave", "dave-pass-9", None, false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "UNAUTHORIZED");
    let out = as_admin.run(&["user", "enable", "dave"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    failed_with(
        &as_admin.run(&["user", "set-role", "root", "viewer"]).await,
        "INVALID_REQUEST",
    );
    failed_with(
        &as_admin.run(&["user", "disable", "nobody"]).await,
        "NOT_FOUND",
    );

    // Registration tokens: listed by id and state, never the token; revoked by id.
    let created = json(&as_admin.run(&["token", "create", "--json"]).await);
    let (id, secret) = (
        created["id"].as_str().unwrap().to_string(),
        created["token"].as_str().unwrap().to_string(),
    );
    let out = as_admin.run(&["token", "list"]).await;
    let table = text(&out.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.contains(&id) && l.contains("valid")),
        "{table}"
    );
    assert!(!table.contains(&secret) && !text(&out.stderr).contains(&secret));
    let out = as_admin.run(&["token", "revoke", &id]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list = json(&as_admin.run(&["token", "list", "--json"]).await);
    assert_eq!(list["tokens"][0]["id"], id.as_str());
    assert_eq!(list["tokens"][0]["state"], "revoked");
    failed_with(
        &as_admin.run(&["token", "revoke", "no-such-token"]).await,
        "NOT_FOUND",
    );

    // Agent token rotation.
    let agent = TestAgent::builder(&relay).name("rotor").online().await;
    let path = agent.wait_credentials().await;
    let before = std::fs::read_to_string(&path).unwrap();
    let rotated = json(&as_admin.run(&["agent", "rotate", "rotor", "--json"]).await);
    assert_eq!(rotated["name"], "rotor");
    assert_ne!(std::fs::read_to_string(&path).unwrap(), before);
    failed_with(
        &as_admin.run(&["agent", "rotate", "nobody"]).await,
        "NOT_FOUND",
    );
    // Operators cannot manage users.
    let ops = relay.login("ops", Role::Operator).await;
    let as_ops = Zed::new(&relay.url, &ops);
    failed_with(&as_ops.run(&["user", "list"]).await, "FORBIDDEN");
    agent.stop().await.unwrap();
}

/// `zedops user set-password`: an admin gives a user a new password from stdin; the old one and
/// the user's sessions stop working, an admin changing their own keeps the asking session, the
/// change is audited without the password, and only admins may do it.
#[tokio::test]
async fn admins_set_passwords_and_the_users_sessions_end() {
    let relay = TestRelay::builder().start().await;
    let admin = relay.login("root", Role::Admin).await;
    let as_admin = Zed::new(&relay.url, &admin);
    let other_root_session = relay.login("root", Role::Admin).await;
    let as_other_root_session = Zed::new(&relay.url, &other_root_session);
    let dave = relay.login("dave", Role::Viewer).await;
    let as_dave = Zed::new(&relay.url, &dave);

    let out = as_admin
        .run_with(
            &["user", "set-password", "dave", "--password-stdin", "--json"],
            "dave-new-pass-1\n",
        )
        .await;
    let set = json(&out);
    assert_eq!(set["name"], "dave");
    assert_eq!(set["sessionsEnded"], 1);
    failed_with(&as_dave.run(&["agents"]).await, "UNAUTHORIZED");
    let err = zedops_client::login(&relay.url, "dave", TEST_PASSWORD, None, false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "UNAUTHORIZED");
    zedops_client::login(&relay.url, "dave", "dave-new-pass-1", None, false)
        .await
        .expect("the new password works");

    // Their own: the asking session lives on, the other one ends.
    let out = as_admin
        .run_with(
            &["user", "set-password", "root", "--password-stdin"],
            "root-new-pass-1\n",
        )
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(as_admin.run(&["agents"]).await.status.success());
    failed_with(
        &as_other_root_session.run(&["agents"]).await,
        "UNAUTHORIZED",
    );

    let audit = relay.store.audit_list(None, None, 100).await.unwrap();
    let targets: Vec<_> = audit
        .iter()
        .filter(|e| e.operation == "user.password")
        .map(|e| {
            (
                e.target.clone().unwrap_or_default(),
                e.user.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        targets,
        [
            ("root".to_string(), "root".to_string()),
            ("dave".to_string(), "root".to_string())
        ]
    );
    assert!(!format!("{audit:?}").contains("new-pass"));

    failed_with(
        &as_admin
            .run_with(
                &["user", "set-password", "nobody", "--password-stdin"],
                "x\n",
            )
            .await,
        "NOT_FOUND",
    );
    let ops = relay.login("ops", Role::Operator).await;
    let as_ops = Zed::new(&relay.url, &ops);
    failed_with(
        &as_ops
            .run_with(&["user", "set-password", "ops", "--password-stdin"], "x\n")
            .await,
        "FORBIDDEN",
    );
}

#[tokio::test]
async fn login_keeps_only_a_device_token_in_the_keyring_and_logout_removes_it() {
    let relay = TestRelay::builder().start().await;
    relay.login("alice", Role::Viewer).await;
    let config = tempfile::tempdir().unwrap();
    if let Err(err) = store::load_token(&relay.url) {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true and no OS keyring: {err}");
        }
        eprintln!("SKIPPED: no OS keyring ({err})");
        return;
    }

    let out = run(
        zedops(config.path()).args([
            "login",
            "--relay",
            &relay.url,
            "--user",
            "alice",
            "--password-stdin",
        ]),
        &format!("{TEST_PASSWORD}\n"),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        format!("Logged in to {} as alice (viewer)\n", relay.url)
    );
    assert!(out.stdout.is_empty());
    let token = store::load_token(&relay.url)
        .unwrap()
        .expect("token in the keyring");
    assert!(token.starts_with("zd_"));
    let found = std::process::Command::new("secret-tool")
        .args([
            "lookup",
            "service",
            "zedops",
            "username",
            &store::keyring_user(&relay.url).unwrap(),
        ])
        .output()
        .expect("secret-tool runs");
    assert_eq!(
        text(&found.stdout),
        token,
        "secret-tool finds the device token"
    );

    // Later commands use the stored login: no flags, no environment.
    let agents = run(zedops(config.path()).args(["agents", "--json"]), "").await;
    assert_eq!(json(&agents)["count"], 0);

    // Neither the password nor the token is on disk: not in the config, not in the relay's files.
    for dir in [config.path(), relay.db_path().parent().unwrap()] {
        for file in std::fs::read_dir(dir).unwrap() {
            let bytes = std::fs::read(file.unwrap().path()).unwrap();
            let content = String::from_utf8_lossy(&bytes);
            assert!(
                !content.contains(TEST_PASSWORD) && !content.contains(&token),
                "secret on disk in {}",
                dir.display()
            );
        }
    }

    let out = run(zedops(config.path()).arg("logout"), "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(store::load_token(&relay.url).unwrap(), None);
    assert!(
        relay.store.session(&token).await.unwrap().is_none(),
        "the relay session ended too"
    );
    let after = run(zedops(config.path()).arg("agents"), "").await;
    failed_with(&after, "NOT_LOGGED_IN");
    assert!(
        text(&after.stderr).contains("zedops login"),
        "says how to log in"
    );
}

#[tokio::test]
async fn usage_and_connection_errors_are_plain() {
    let config = tempfile::tempdir().unwrap();
    let usage = run(zedops(config.path()).args(["stop", "--agent", "a"]), "").await;
    assert_eq!(usage.status.code(), Some(2));
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = run(
        zedops(config.path()).env("ZEDOPS_TOKEN", "zd_x").args([
            "agents",
            "--relay",
            &format!("http://{closed}"),
        ]),
        "",
    )
    .await;
    failed_with(&out, "RELAY_UNREACHABLE");
    let out = run(
        zedops(config.path()).env("ZEDOPS_TOKEN", "zd_x").args([
            "agents",
            "--relay",
            "http://relay.example",
        ]),
        "",
    )
    .await;
    failed_with(&out, "INVALID_URL");
    assert!(
        text(&out.stderr).contains("--insecure"),
        "says how to allow it: {}",
        text(&out.stderr)
    );
}
