//! The `zedops` binary against the scripted fake relay: what goes to stdout and stderr, exit
//! codes, `ZEDOPS_TOKEN`, and that the config file never holds a secret.

mod support;

use serde_json::{Value, json};
use support::{FakeRelay, answer, fake_http, recv, run, text, zedops};

#[tokio::test]
async fn login_with_print_token_keeps_the_secret_out_of_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let (url, mut requests) = fake_http(
        "200 OK",
        r#"{"token":"zd_secret_token","user":"alice","role":"operator"}"#,
    )
    .await;
    let out = run(
        zedops(dir.path()).args([
            "login",
            "--relay",
            &url,
            "--user",
            "alice",
            "--password-stdin",
            "--print-token",
        ]),
        "hunter2 x\n",
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "zd_secret_token\n");
    assert_eq!(
        text(&out.stderr),
        format!("Logged in to {url} as alice (operator)\n")
    );
    let body = requests.recv().await.unwrap();
    assert!(body.contains(r#""password":"hunter2 x""#), "{body}");

    let config = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    let parsed: Value = serde_json::from_str(&config).unwrap();
    assert_eq!(parsed, json!({"relay": url, "user": "alice"}));
    assert!(
        !config.contains("zd_secret_token") && !config.contains("hunter2"),
        "{config}"
    );
}

#[tokio::test]
async fn a_refused_login_is_an_error_line_and_exit_code_1() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _) = fake_http(
        "401 Unauthorized",
        r#"{"errorCode":"UNAUTHORIZED","error":"wrong user name or password"}"#,
    )
    .await;
    let out = run(
        zedops(dir.path()).args([
            "login",
            "--relay",
            &url,
            "--user",
            "alice",
            "--password-stdin",
        ]),
        "no\n",
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: UNAUTHORIZED: login refused (wrong user name or password)"),
        "{stderr}"
    );
    assert!(!dir.path().join("config.json").exists());
}

#[tokio::test]
async fn usage_errors_exit_with_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(zedops(dir.path()).args(["start", "--agent", "a"]), "").await;
    assert_eq!(out.status.code(), Some(2));
    let out = run(
        zedops(dir.path()).args(["login", "--relay", "https://r.example", "--user", "u"]),
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--password-stdin"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn without_a_login_commands_say_how_to_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(zedops(dir.path()).arg("agents"), "").await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: NOT_LOGGED_IN: not logged in")
            && stderr.contains("zedops login --relay URL"),
        "{stderr}"
    );
}

#[tokio::test]
async fn tables_json_and_actions_with_zedops_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut relay = FakeRelay::start().await;
    let url = relay.url.clone();
    let serving = tokio::spawn(async move {
        // One connection per command; each command sends one request.
        for _ in 0..5 {
            let mut ws = relay.accept("operator").await;
            let request = recv(&mut ws).await.unwrap();
            let data = &request["data"];
            let reply = match request["subject"].as_str().unwrap() {
                "agent.list" => {
                    json!({"agents": [{"id": "a-1", "name": "agent-1", "online": true, "lastSeen": null,
                    "info": {"version": "0.1.0", "dockerVersion": "26.1.5", "os": "linux", "arch": "x86_64"}}], "count": 1})
                }
                "container.list" => {
                    json!({"containers": [{"id": "0123456789abcdef".repeat(4), "names": ["/web"],
                    "image": "busybox", "state": "running", "status": "Up 1 second", "created": 1,
                    "ports": [{"privatePort": 80, "publicPort": 8080, "type": "tcp", "ip": "0.0.0.0"},
                              {"privatePort": 53, "type": "udp"}]}], "count": 1})
                }
                "container.stop" => {
                    json!({"success": true, "containerId": data["containerId"], "operation": "stop"})
                }
                _ => {
                    json!({"success": false, "containerId": data["containerId"], "operation": "start",
                    "error": "container web is wedged", "errorCode": "DOCKER_START_FAILED"})
                }
            };
            answer(&mut ws, &request, reply).await;
            // Wait for the client's close so the next accept is the next command.
            while recv(&mut ws).await.is_some() {}
        }
    });
    let cmd = |args: &[&str]| {
        let mut cmd = zedops(dir.path());
        cmd.env("ZEDOPS_TOKEN", "tok-1")
            .env("ZEDOPS_RELAY", &url)
            .args(args);
        cmd
    };

    let out = run(&mut cmd(&["agents"]), "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "ID", "STATUS", "LAST", "SEEN", "DOCKER", "OS"]
    );
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["agent-1", "a-1", "online", "-", "26.1.5", "linux/x86_64"]
    );

    let out = run(&mut cmd(&["ps", "--agent", "agent-1", "--json"]), "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["count"], 1);
    assert_eq!(listed["containers"][0]["names"][0], "/web");
    assert_eq!(listed["containers"][0]["ports"][0]["privatePort"], 80);

    let out = run(&mut cmd(&["ps", "--agent", "agent-1"]), "").await;
    let table = text(&out.stdout);
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("0123456789ab  web   busybox  running  Up 1 second"),
        "{table}"
    );
    assert!(table.ends_with("0.0.0.0:8080->80/tcp, 53/udp\n"), "{table}");

    let out = run(
        &mut cmd(&["stop", "--agent", "agent-1", "web", "--json"]),
        "",
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "stopped web on agent-1\n");
    let done: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        done,
        json!({"success": true, "containerId": "web", "operation": "stop"})
    );

    let out = run(&mut cmd(&["start", "--agent", "agent-1", "web"]), "").await;
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr).starts_with("error: DOCKER_START_FAILED: container web is wedged"),
        "{}",
        text(&out.stderr)
    );
    serving.await.unwrap();
}
