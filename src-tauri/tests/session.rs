//! Sign-in, silent sign-in and sign-out against a real relay and the real OS keyring (a Secret
//! Service such as gnome-keyring in a D-Bus session; `scripts/test` provides one). The errors
//! that reach the UI are checked as the JSON the UI receives.
//!
//! Without a keyring the keyring test fails under `CI=true` and is skipped loudly otherwise.

use std::sync::OnceLock;

use zedops_client::store;
use zedops_desktop::session;
use zedops_protocol::Role;
use zedops_testkit::{TEST_PASSWORD, TestRelay};

/// One config directory for the whole binary (the variable is process-wide).
fn isolate_config() {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().unwrap());
    // SAFETY: set once, before any test reads it, from whichever test gets here first; every
    // test calls this first and they all set the same value.
    unsafe { std::env::set_var(store::CONFIG_DIR_ENV, dir.path()) };
}

fn keyring_reachable() -> bool {
    match store::load_token("http://127.0.0.1:1") {
        Ok(_) => true,
        Err(err) => {
            let message = format!("no OS keyring is reachable ({err}); run under scripts/test");
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true and {message}");
            }
            eprintln!("SKIPPED: {message}");
            false
        }
    }
}

fn json(err: &zedops_desktop::error::AppError) -> serde_json::Value {
    serde_json::to_value(err).unwrap()
}

#[tokio::test]
async fn sign_in_refusals_reach_the_ui_as_code_and_message() {
    isolate_config();
    let relay = TestRelay::builder().start().await;
    relay.login("alice", Role::Operator).await;

    // A wrong password and a relay that is not there: each its code and what to check.
    for (relay_url, password, code, says) in [
        (
            relay.url.as_str(),
            "wrong-password",
            "UNAUTHORIZED",
            "check the user name and password",
        ),
        (
            "http://127.0.0.1:1",
            TEST_PASSWORD,
            "RELAY_UNREACHABLE",
            "that the relay is running",
        ),
    ] {
        let err = session::sign_in(relay_url, "alice", password)
            .await
            .unwrap_err();
        assert_eq!(json(&err)["code"], code);
        assert!(err.message.contains(says), "{}", err.message);
    }

    let err = session::sign_in(&relay.url, "", TEST_PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(
        json(&err),
        serde_json::json!({"code": "INVALID_INPUT", "message": "Enter the relay URL, your user name and your password."})
    );

    let err = session::sign_in("ftp://relay", "alice", TEST_PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(json(&err)["code"], "INVALID_URL");
}

#[tokio::test]
async fn the_token_lives_in_the_keyring_until_sign_out() {
    isolate_config();
    if !keyring_reachable() {
        return;
    }
    let relay = TestRelay::builder().start().await;
    relay.login("bob", Role::Admin).await;

    let (live, info) = session::sign_in(&relay.url, "bob", TEST_PASSWORD)
        .await
        .unwrap();
    assert_eq!((info.user.as_str(), info.role.as_str()), ("bob", "admin"));
    assert_eq!(info.keyring_warning, None);
    let token = store::load_token(&relay.url)
        .unwrap()
        .expect("a token in the keyring");
    // The config remembers where, never a secret.
    let config = store::load_config().unwrap();
    assert_eq!(config.relay.as_deref(), Some(relay.url.as_str()));
    let text = std::fs::read_to_string(store::config_path().unwrap()).unwrap();
    assert!(
        !text.contains(TEST_PASSWORD) && !text.contains(&token),
        "{text}"
    );
    assert_eq!(live.client.agents().await.unwrap(), vec![]);
    live.client.close().await;

    // The next start signs in silently.
    let (resumed, info) = session::resume().await.unwrap().expect("a silent sign-in");
    assert_eq!(info.user, "bob");
    assert_eq!(
        session::last_login().await.unwrap().user.as_deref(),
        Some("bob")
    );

    session::sign_out(resumed).await.unwrap();
    assert_eq!(store::load_token(&relay.url).unwrap(), None);
    assert!(session::resume().await.unwrap().is_none());
    // The relay ended the session too: the old token no longer connects.
    let err = zedops_client::Client::connect(zedops_client::ConnectOptions {
        relay: relay.url.clone(),
        token,
        ca_file: None,
        insecure: false,
    })
    .await
    .unwrap_err();
    assert_eq!(err.code(), "UNAUTHORIZED");
}
