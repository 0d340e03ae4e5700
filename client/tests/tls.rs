//! wss:// end to end: a relay with a certificate from a private CA; agent and client that trust
//! the CA (`--ca-file`) get through, a client that does not is refused.

use zedops_client::{Client, ConnectOptions};
use zedops_protocol::Role;
use zedops_testkit::{TEST_PASSWORD, TestAgent, TestPki, TestRelay};

#[tokio::test]
async fn wss_with_a_private_ca_works_and_without_it_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let relay = TestRelay::builder().tls(&pki).start().await;
    assert!(relay.url.starts_with("https://"), "{}", relay.url);

    let agent = TestAgent::builder(&relay)
        .name("secure-1")
        .data_dir(&dir.path().join("agent"))
        .ca_file(&pki.ca_cert)
        .online()
        .await;

    relay.login("alice", Role::Viewer).await;
    let login = zedops_client::login(
        &relay.url,
        "alice",
        TEST_PASSWORD,
        Some(&pki.ca_cert),
        false,
    )
    .await
    .expect("login over https with the CA");
    let client = Client::connect(ConnectOptions {
        relay: relay.url.clone(),
        token: login.token.clone(),
        ca_file: Some(pki.ca_cert.clone()),
        insecure: false,
    })
    .await
    .expect("wss with the CA");
    let agents = client.agents().await.unwrap();
    assert!(agents.iter().any(|a| a.name == "secure-1" && a.online));

    // Without the CA the relay's certificate is not trusted, on both routes.
    let refused = Client::connect(ConnectOptions {
        relay: relay.url.clone(),
        token: login.token,
        ca_file: None,
        insecure: false,
    })
    .await
    .expect_err("an untrusted certificate is refused");
    assert!(
        refused.to_string().to_lowercase().contains("certificate"),
        "{refused}"
    );
    assert!(
        zedops_client::login(&relay.url, "alice", TEST_PASSWORD, None, false)
            .await
            .is_err()
    );
    agent.stop().await.unwrap();
}

/// A relay without TLS given as `host:port` (taken as https://): the error says to use
/// http:// with that address, instead of a TLS parser's "corrupt message".
#[tokio::test]
async fn a_plain_relay_given_without_a_scheme_is_told_to_use_http() {
    let relay = TestRelay::builder().start().await;
    let token = relay.login("bea", Role::Viewer).await;
    let address = relay.addr.to_string();
    let refused = Client::connect(ConnectOptions {
        relay: address.clone(),
        token,
        ca_file: None,
        insecure: false,
    })
    .await
    .expect_err("TLS to a plain relay fails");
    let said = refused.to_string();
    assert!(
        said.contains("answered without TLS") && said.contains(&format!("http://{address}")),
        "{said}"
    );
}
