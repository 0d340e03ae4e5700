//! Relays authenticating to NATS with a credentials file (`--nats-creds`, issue 18): a real
//! `nats-server` in operator mode (an operator, the relays' account preloaded in a memory
//! resolver, as `nsc generate config --mem-resolver` writes it), with keys and JWTs made here
//! (the `nats-jwt` crate on `nkeys`; no `nsc` needed). The relays' user may publish and
//! subscribe only under `zedops.>` and `_INBOX.>`, as docs/CLUSTER.md advises. Real PostgreSQL
//! and `nats-server`; under CI=true a missing part fails. Refused, expiring and missing
//! credentials leave the relay not ready (or stopped) with a plain explanation.

mod cluster_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use cluster_support::{RelayProcess, Seeded, answer_all, enrol_at, http_status, seed};
use nats_jwt::{KeyPair, Token};
use zedops_testkit::{TestNats, TestPostgres};

/// The operator's own JWT, self-signed (`nats-jwt` makes account and user JWTs only): a JWT
/// of NATS is base64url(header).base64url(claims).base64url(ed25519 signature of the two).
fn operator_jwt(operator: &KeyPair) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "jti": uuid::Uuid::new_v4().simple().to_string().to_uppercase(),
        "iat": now,
        "iss": operator.public_key(),
        "sub": operator.public_key(),
        "name": "zedops-test-operator",
        "nats": {"type": "operator", "version": 2},
    });
    let signed = format!(
        "{}.{}",
        b64.encode(r#"{"typ":"JWT","alg":"ed25519-nkey"}"#),
        b64.encode(claims.to_string())
    );
    let signature = operator.sign(signed.as_bytes()).expect("sign");
    format!("{signed}.{}", b64.encode(signature))
}

/// A credentials file (as `nsc` writes them) for a new user of `account`, signed by it,
/// allowed only the relays' subjects; its JWT expires at `expires` (Unix seconds) if given.
fn user_creds(dir: &Path, file: &str, account: &KeyPair, expires: Option<i64>) -> PathBuf {
    let user = KeyPair::new_user();
    let mut token = Token::new_user(account.public_key(), user.public_key())
        .name("zedops-relay")
        .allow_publish("zedops.>")
        .allow_publish("_INBOX.>")
        .allow_subscribe("zedops.>")
        .allow_subscribe("_INBOX.>");
    if let Some(expires) = expires {
        token = token.expires(expires);
    }
    let jwt = token.sign(account);
    let seed = user.seed().expect("user seed");
    let text = format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n"
    );
    let path = dir.join(file);
    std::fs::write(&path, text).expect("write the credentials file");
    path
}

#[tokio::test]
async fn relays_with_a_credentials_file_route_and_refused_credentials_are_explained() {
    let Some(postgres) = TestPostgres::shared() else {
        return;
    };
    let operator = KeyPair::new_operator();
    let account = KeyPair::new_account();
    let account_jwt = Token::new_account(account.public_key())
        .name("zedops-relays")
        .sign(&operator);
    let config = format!(
        "operator: {}\nresolver: MEMORY\nresolver_preload: {{\n  {}: {}\n}}\n",
        operator_jwt(&operator),
        account.public_key(),
        account_jwt
    );
    let Some(nats) = TestNats::start_with_config(&config) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let good = user_creds(dir.path(), "relay.creds", &account, None);
    let good = good.to_str().unwrap();

    let database = postgres.database();
    let Seeded {
        device,
        registration,
    } = seed(&database, "creds-admin").await;

    // Ready only once NATS accepted the credentials.
    let creds = ["--nats-creds", good];
    let a = RelayProcess::start_with(&database, &nats.url(), &creds).await;
    let b = RelayProcess::start_with(&database, &nats.url(), &creds).await;
    let answering = answer_all(enrol_at(&a, &registration, "creds-agent").await);
    // A client on B reaches the agent on A: the relays' user may use their subjects.
    let client = zedops_client::Client::connect(zedops_client::ConnectOptions {
        relay: b.url.clone(),
        token: device,
        ca_file: None,
        insecure: false,
    })
    .await
    .expect("the client connects to B");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let asked = client
            .request_raw(
                "container.list",
                serde_json::json!({"agentId": "creds-agent"}),
            )
            .await;
        match asked {
            Ok(answer) if answer["asked"] == "container.list" => break,
            Ok(answer) => panic!("not the agent's answer: {answer}"),
            Err(e) => assert!(
                Instant::now() < deadline,
                "B never reached the agent on A through NATS with credentials: {e}\nA's log:\n{}\nB's log:\n{}",
                a.log(),
                b.log()
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client.close().await;
    answering.abort();

    // A user of an account the servers do not know: NATS refuses it; the relay runs, stays
    // not ready, and says why in plain words (once, not at every retry).
    let stranger = user_creds(dir.path(), "stranger.creds", &KeyPair::new_account(), None);
    let refused = RelayProcess::spawn(
        &database,
        &nats.url(),
        &["--nats-creds", stranger.to_str().unwrap()],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !refused
        .log()
        .contains("NATS refused this relay's credentials")
    {
        assert!(
            Instant::now() < deadline,
            "the relay did not say why NATS refused it; its log:\n{}",
            refused.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(http_status(&refused.addr, "/healthz").await, 200);
    // Several attempts (0.1 s apart at first) in this time: never ready, said once.
    for _ in 0..10 {
        assert_eq!(http_status(&refused.addr, "/readyz").await, 503);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = refused.log();
    assert_eq!(
        log.matches("NATS refused this relay's credentials").count(),
        1,
        "{log}"
    );
    assert!(log.contains("--nats-creds"), "{log}");

    // A user whose JWT expires while its relay runs (credentials not renewed in time): NATS
    // cuts the relay off at the expiry and refuses it after; the relay keeps running, is no
    // longer ready (a load balancer sends its traffic elsewhere), and says why.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let expiring = user_creds(dir.path(), "expiring.creds", &account, Some(now + 4));
    let expired = RelayProcess::start_with(
        &database,
        &nats.url(),
        &["--nats-creds", expiring.to_str().unwrap()],
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while http_status(&expired.addr, "/readyz").await != 503
        || !expired.log().contains("JWT of its user (--nats-creds")
        || !expired
            .log()
            .contains("NATS refused this relay's credentials")
    {
        assert!(
            Instant::now() < deadline,
            "the relay whose NATS user expired is still ready or did not say why; its log:\n{}",
            expired.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(http_status(&expired.addr, "/healthz").await, 200);
    drop(expired);

    // A credentials file that is not there: the relay does not start, and names the file.
    let missing = dir.path().join("missing.creds");
    let mut gone = RelayProcess::spawn(
        &database,
        &nats.url(),
        &["--nats-creds", missing.to_str().unwrap()],
    );
    let status = gone
        .exited(Duration::from_secs(10))
        .await
        .expect("a relay whose credentials file is missing stops");
    assert!(!status.success());
    let log = gone.log();
    assert!(
        log.contains("NATS credentials file") && log.contains(missing.to_str().unwrap()),
        "{log}"
    );
}
