//! Signing in and out given several relays (those of a cluster, comma-separated, as the CLI's
//! `--relay` and the app's relay field take them): the first relay that answers does it.

use zedops_protocol::Role;
use zedops_testkit::{TEST_PASSWORD, TestRelay};

/// A URL on which nothing listens (the port was free a moment ago).
fn dead_relay() -> String {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", closed.local_addr().unwrap())
}

#[tokio::test]
async fn login_and_logout_pass_over_relays_that_do_not_answer() {
    let relay = TestRelay::builder().start().await;
    relay.login("erin", Role::Viewer).await;
    let dead = dead_relay();
    let list = format!("{dead}, {}", relay.url);

    let answer = zedops_client::login(&list, "erin", TEST_PASSWORD, None, false)
        .await
        .expect("signs in at the second relay of the list");
    let client = relay.client_with(&answer.token).await;
    client.agents().await.expect("the token it bought works");

    // An answer is final, a refusal too: the wrong password is refused, not "unreachable".
    let err = zedops_client::login(&list, "erin", "not-her-password", None, false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "UNAUTHORIZED", "{err}");

    zedops_client::logout(&list, &answer.token, None, false)
        .await
        .expect("signs out at the second relay of the list");
    let err = zedops_client::logout(&relay.url, &answer.token, None, false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "UNAUTHORIZED", "the session is gone: {err}");

    // No relay answers: the error names the last one tried and why.
    let other = dead_relay();
    let err = zedops_client::login(
        &format!("{dead},{other}"),
        "erin",
        TEST_PASSWORD,
        None,
        false,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "RELAY_UNREACHABLE", "{err}");
    assert!(
        err.to_string()
            .contains(other.trim_start_matches("http://")),
        "{err}"
    );
}
