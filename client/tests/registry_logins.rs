//! Private registry logins end to end: a real relay and agent, a real loopback registry with
//! htpasswd authentication, the client library and the `zedops` binary. Admins only; a pull
//! without a login, with a wrong one and with the right one (stored by `zedops registry add
//! --password-stdin`); an agent connecting later gets the logins; removing the login takes it
//! away; audit entries without the secret; and the passwords never in the relay's or agent's
//! log (at debug level), in any answer or in the CLI's output.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use support::{headless, text};
use zedops_client::{Client, ClientError};
use zedops_protocol::{AuditListRequest, DeployFrame, ErrorCode, Role, StreamEnd};
use zedops_testkit::docker::Cleanup;
use zedops_testkit::registry::{AUTH_PASSWORD, AUTH_USER, TestRegistry};
use zedops_testkit::{TestAgent, TestRelay, require_docker};

const WRONG_PASSWORD: &str = "not-the-password-7f3a";

/// Everything the relay and the agent (both in this process) log, at debug level.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn install() -> Self {
        let captured = Self::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        captured
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Pulls `image` on `agent` to the end, each frame added to `answers` (searched for secrets
/// later): the final frame's `end`, and whether anything said `pulled`.
async fn pull(
    client: &Client,
    agent: &str,
    image: &str,
    answers: &mut Vec<String>,
) -> (StreamEnd, bool) {
    let mut stream = client.pull(agent, image).await.expect("pull opened");
    let mut pulled = false;
    while let Some(frame) = stream.next().await {
        let frame: DeployFrame = frame.expect("a pull frame");
        answers.push(serde_json::to_string(&frame).unwrap());
        pulled |= frame.pulled.is_some_and(|p| p.pulled);
        if let Some(end) = frame.end {
            return (end, pulled);
        }
    }
    panic!("the pull stream ended without an end frame");
}

/// Asserts the pull ended refused by the registry's login check, its reason saying every one
/// of `parts`.
fn assert_login_refused(end: &StreamEnd, parts: &[&str]) {
    assert_eq!(
        end.error_code,
        Some(ErrorCode::RegistryAuthFailed),
        "{}",
        end.reason
    );
    for part in parts {
        assert!(end.reason.contains(part), "not {part:?} in: {}", end.reason);
    }
}

/// Removes the pulled `image` from the engine, so the next pull must fetch it again.
async fn remove_image(docker: &bollard::Docker, image: &str) {
    docker
        .remove_image(
            image,
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await
        .expect("remove the pulled image");
}

/// The error code of a refused client request.
fn code(err: &ClientError) -> String {
    err.code().as_str().to_string()
}

#[tokio::test]
async fn private_registry_logins_are_used_by_agents_and_never_shown() {
    let captured = Captured::install();
    let Some(docker) = require_docker().await else {
        return;
    };
    let Some(registry) = TestRegistry::start_with_auth().await else {
        return;
    };
    let mut cleanup = Cleanup::new("zreg");
    let repo = format!("zedops/{}", cleanup.prefix);
    let image = registry.push_test_image(&docker, &repo, "1").await;
    cleanup.images.push(image.clone());
    let server = registry.host();

    let relay = TestRelay::builder().start().await;
    let agent = TestAgent::builder(&relay).name("private-1").online().await;
    let admin = relay.client("ann", Role::Admin).await;
    let operator = relay.client("otto", Role::Operator).await;
    let viewer = relay.client("vera", Role::Viewer).await;
    let mut answers = Vec::new();

    // Only admins see or change logins.
    for (who, client) in [("operator", &operator), ("viewer", &viewer)] {
        let err = client
            .add_registry(&server, AUTH_USER, AUTH_PASSWORD.into())
            .await
            .unwrap_err();
        assert_eq!(code(&err), "FORBIDDEN", "{who}");
        assert_eq!(code(&client.registries().await.unwrap_err()), "FORBIDDEN");
        let err = client.remove_registry(&server).await.unwrap_err();
        assert_eq!(code(&err), "FORBIDDEN", "{who}");
    }
    let err = admin
        .add_registry("not a server", AUTH_USER, AUTH_PASSWORD.into())
        .await
        .unwrap_err();
    assert_eq!(code(&err), "INVALID_REQUEST");

    // No login: the registry refuses, and the sentence says how to add one.
    let (end, pulled) = pull(&operator, "private-1", &image, &mut answers).await;
    assert_login_refused(
        &end,
        &[
            &format!("{server} needs a login"),
            &format!("zedops registry add {server}"),
        ],
    );
    assert!(!pulled);

    // A wrong password: the same code, and the sentence names the refused user.
    let added = admin
        .add_registry(&server, AUTH_USER, WRONG_PASSWORD.into())
        .await
        .unwrap();
    assert!(!added.replaced);
    assert_eq!(added.agents, 1, "the connected agent took the logins");
    answers.push(serde_json::to_string(&added).unwrap());
    let (end, pulled) = pull(&operator, "private-1", &image, &mut answers).await;
    assert_login_refused(
        &end,
        &[&format!("{server} refused the login of {AUTH_USER}")],
    );
    assert!(!pulled);

    // The right one, stored by the CLI from stdin: the pull works.
    let config = tempfile::tempdir().unwrap();
    let token = relay.login("ann", Role::Admin).await;
    let out = headless(
        &relay.url,
        &token,
        config.path(),
        &[
            "registry",
            "add",
            &server,
            "--user",
            AUTH_USER,
            "--password-stdin",
        ],
        &format!("{AUTH_PASSWORD}\n"),
    )
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "stderr: {stderr}");
    assert!(stderr.contains("replaced the login for"), "{stderr}");
    answers.push(stdout + &stderr);
    let (end, pulled) = pull(&operator, "private-1", &image, &mut answers).await;
    assert_eq!(end.error_code, None, "{}", end.reason);
    assert!(pulled);
    docker
        .inspect_image(&image)
        .await
        .expect("the image is on the engine");

    // The list names server and user only, in the library and the CLI.
    let listed = admin.registries().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].server.as_str(), listed[0].username.as_str()),
        (server.as_str(), AUTH_USER)
    );
    assert_eq!(listed[0].updated_by.as_deref(), Some("ann"));
    answers.push(serde_json::to_string(&listed).unwrap());
    let out = headless(
        &relay.url,
        &token,
        config.path(),
        &["registry", "list", "--json"],
        "",
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    answers.push(text(&out.stdout) + &text(&out.stderr));

    // An agent that connects later gets the logins at once.
    remove_image(&docker, &image).await;
    agent.stop().await.unwrap();
    let _later = TestAgent::builder(&relay).name("private-2").online().await;
    let mut end = None;
    // The logins go out right after the welcome; give them a moment to land.
    for _ in 0..50 {
        let (e, _) = pull(&operator, "private-2", &image, &mut answers).await;
        if e.error_code.is_none() {
            end = Some(e);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        end.is_some(),
        "the agent that connected later could not pull"
    );

    // Removed: the agents forget it.
    remove_image(&docker, &image).await;
    let removed = admin.remove_registry(&server).await.unwrap();
    assert_eq!(removed.agents, 1);
    answers.push(serde_json::to_string(&removed).unwrap());
    let err = admin.remove_registry(&server).await.unwrap_err();
    assert_eq!(code(&err), "NOT_FOUND");
    let (end, _) = pull(&operator, "private-2", &image, &mut answers).await;
    assert_login_refused(&end, &["needs a login"]);
    assert!(admin.registries().await.unwrap().is_empty());

    // Audited with who, what and the user, never the secret.
    let audit = admin
        .audit(&AuditListRequest {
            agent_id: None,
            since: None,
            limit: Some(100),
        })
        .await
        .unwrap();
    let ops: Vec<(&str, &str, Option<&str>)> = audit
        .entries
        .iter()
        .filter(|e| e.operation.starts_with("registry."))
        .map(|e| (e.operation.as_str(), e.result.as_str(), e.target.as_deref()))
        .collect();
    for wanted in [
        ("registry.add", "ok"),
        ("registry.remove", "ok"),
        ("registry.remove", "failed"),
    ] {
        assert!(
            ops.iter()
                .any(|(op, result, target)| (*op, *result) == wanted && *target == Some(&server)),
            "{wanted:?} not in {ops:?}"
        );
    }
    let adds = audit
        .entries
        .iter()
        .filter(|e| e.operation == "registry.add" && e.result == "ok")
        .count();
    assert_eq!(adds, 2, "the wrong and the right login");
    answers.push(serde_json::to_string(&audit).unwrap());

    // Nowhere a password: not in any answer, not in the logs of relay and agent.
    let logs = captured.text();
    assert!(
        logs.contains("stored a registry login"),
        "the capture works: {logs}"
    );
    assert!(logs.contains("took the registry logins from the relay"));
    for secret in [AUTH_PASSWORD, WRONG_PASSWORD] {
        assert!(!logs.contains(secret), "a password in the logs");
        for answer in &answers {
            assert!(
                !answer.contains(secret),
                "a password in an answer: {answer}"
            );
        }
    }
    // Nor in the database: sealed with the key beside it.
    let db = std::fs::read(relay.db_path()).unwrap_or_default();
    let wal = std::fs::read(relay.db_path().with_extension("db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        let hay = String::from_utf8_lossy(bytes);
        assert!(!hay.contains(AUTH_PASSWORD) && !hay.contains(WRONG_PASSWORD));
    }
    let key = relay.db_path().with_file_name("registry.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key)
            .expect("the key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
