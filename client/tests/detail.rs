//! `container.inspect` end to end on the real engine: the detail a container view and
//! `zedops inspect` show, with secret-looking environment values masked before they leave the
//! server.

mod support;

use bollard::models::{ContainerCreateBody, HostConfig, RestartPolicy, RestartPolicyNameEnum};
use serde_json::Value;
use zedops_testkit::{Served, TestContainers};

#[tokio::test]
async fn inspect_shows_the_container_and_masks_secrets() {
    let data = tempfile::tempdir().unwrap();
    let body = ContainerCreateBody {
        env: Some(vec![
            "SERVER_NAME=pz-eu".into(),
            "RCON_PASSWORD=hunter2".into(),
            "STEAM_API_KEY=abc123".into(),
        ]),
        host_config: Some(HostConfig {
            binds: Some(vec![format!("{}:/data:ro", data.path().display())]),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            ..Default::default()
        }),
        ..TestContainers::sleeper_body()
    };
    let Some((served, game)) = Served::open("detail-1", async |c| {
        c.create_with("game", body, true).await
    })
    .await
    else {
        return;
    };
    let (relay, client, token) = (&served.relay, &served.client, &served.token);

    let detail = client.inspect("detail-1", &game).await.unwrap();
    assert_eq!(detail.name, game);
    assert_eq!(detail.id.len(), 64);
    assert_eq!(detail.image, zedops_testkit::docker::TEST_IMAGE);
    assert!(
        detail.image_id.starts_with("sha256:"),
        "{}",
        detail.image_id
    );
    assert_eq!(detail.command, TestContainers::SLEEP_CMD);
    assert_eq!(detail.state, "running");
    assert!(detail.started_at.is_some());
    assert_eq!(detail.restart_policy, "unless-stopped");
    let env: Vec<(String, Option<String>, bool)> = detail
        .env
        .iter()
        .filter(|e| !e.name.starts_with("PATH"))
        .map(|e| (e.name.clone(), e.value.clone(), e.masked))
        .collect();
    assert_eq!(
        env,
        [
            ("SERVER_NAME".into(), Some("pz-eu".into()), false),
            ("RCON_PASSWORD".into(), None, true),
            ("STEAM_API_KEY".into(), None, true),
        ]
    );
    let mount = detail.mounts.first().expect("the bind mount");
    assert_eq!(
        (
            mount.kind.as_str(),
            mount.destination.as_str(),
            mount.read_only
        ),
        ("bind", "/data", true)
    );
    assert_eq!(
        detail.labels.get("zedops-test").map(String::as_str),
        Some("1")
    );

    // Unknown container: its own code.
    let err = client
        .inspect("detail-1", "no-such-container")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "CONTAINER_NOT_FOUND");
    client.close().await;

    // The CLI: the JSON never carries the secret, and the table says it is masked.
    let config = tempfile::tempdir().unwrap();
    let out = support::zedops(config.path())
        .env("ZEDOPS_TOKEN", token)
        .args([
            "inspect", "--agent", "detail-1", &game, "--relay", &relay.url, "--json",
        ])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", support::text(&out.stderr));
    let stdout = support::text(&out.stdout);
    assert!(
        !stdout.contains("hunter2") && !stdout.contains("abc123"),
        "{stdout}"
    );
    let json: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["restartPolicy"], "unless-stopped");
    // As an env file or `$(cat token)` may give it: with a trailing newline, which is trimmed.
    let out = support::zedops(config.path())
        .env("ZEDOPS_TOKEN", format!(" {token}\n"))
        .args([
            "inspect", "--agent", "detail-1", &game, "--relay", &relay.url,
        ])
        .output()
        .await
        .unwrap();
    let table = support::text(&out.stdout);
    assert!(table.contains("RCON_PASSWORD=(masked)"), "{table}");
    assert!(table.contains("SERVER_NAME=pz-eu"), "{table}");
    assert!(!table.contains("hunter2"), "{table}");
}

/// Every form of secret the masking promises to withhold, through the relay to the JSON and the
/// table the CLI prints: short secret words in names, passwords in URLs in any variable, and
/// secret flags in the command. Plain values stay readable.
#[tokio::test]
async fn inspect_withholds_short_secret_names_url_passwords_and_secret_flags() {
    let body = ContainerCreateBody {
        cmd: Some(
            [
                "/bin/sh",
                "-c",
                "trap 'exit 0' TERM; sleep 100000 & wait",
                "server",
                "--admin-password=hunter2",
                "--token",
                "hunter2",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ),
        env: Some(vec![
            "PATH=/usr/local/bin:/usr/bin:/bin".into(),
            "SERVER_NAME=pz-eu".into(),
            "MYSQL_ROOT_PASSWORD=hunter2".into(),
            "RCON_PW=hunter2".into(),
            "ADMIN_PIN=hunter2".into(),
            "DATABASE_URL=postgres://u:secret@h/db".into(),
            "SMTP_URI=smtp://u:secret@h".into(),
        ]),
        ..Default::default()
    };
    let Some((served, game)) = Served::open("detail-2", async |c| {
        c.create_with("masks", body, true).await
    })
    .await
    else {
        return;
    };
    let (relay, client, token) = (&served.relay, &served.client, &served.token);

    let detail = client.inspect("detail-2", &game).await.unwrap();
    let env: Vec<(String, Option<String>, bool)> = detail
        .env
        .iter()
        .map(|e| (e.name.clone(), e.value.clone(), e.masked))
        .collect();
    let shown = |name: &str| env.iter().find(|e| e.0 == name).cloned().unwrap();
    assert!(
        shown("PATH").1.is_some_and(|p| p.contains("/bin")),
        "{env:?}"
    );
    assert_eq!(
        shown("SERVER_NAME"),
        ("SERVER_NAME".into(), Some("pz-eu".into()), false)
    );
    for secret in ["MYSQL_ROOT_PASSWORD", "RCON_PW", "ADMIN_PIN"] {
        assert_eq!(shown(secret), (secret.into(), None, true), "{env:?}");
    }
    assert_eq!(
        shown("DATABASE_URL").1.as_deref(),
        Some("postgres://u:******@h/db")
    );
    assert_eq!(shown("SMTP_URI").1.as_deref(), Some("smtp://u:******@h"));
    assert_eq!(
        &detail.command[3..],
        ["server", "--admin-password=******", "--token", "******"]
    );
    client.close().await;

    let config = tempfile::tempdir().unwrap();
    for json in [true, false] {
        let mut cmd = support::zedops(config.path());
        cmd.env("ZEDOPS_TOKEN", token).args([
            "inspect", "--agent", "detail-2", &game, "--relay", &relay.url,
        ]);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().await.unwrap();
        assert!(out.status.success(), "{}", support::text(&out.stderr));
        let stdout = support::text(&out.stdout);
        assert!(
            !stdout.contains("hunter2") && !stdout.contains("secret@"),
            "a secret reached the CLI output: {stdout}"
        );
        assert!(
            stdout.contains("pz-eu") && stdout.contains("postgres://u:"),
            "{stdout}"
        );
    }
}
