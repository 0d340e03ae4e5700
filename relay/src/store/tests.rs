//! The store's own tests, against a real SQLite file.

use std::time::Duration;

use zedops_protocol::{AgentInfo, Role};

use super::templates::{TemplateError, delete, get, insert, update, version};
use super::*;
use crate::secret::{self, TokenKind};

fn info() -> AgentInfo {
    AgentInfo {
        version: "1".into(),
        os: "linux".into(),
        arch: "x86_64".into(),
        ..Default::default()
    }
}

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("relay.db").to_str().unwrap())
        .await
        .unwrap();
    (dir, store)
}

#[tokio::test]
async fn registration_tokens_are_single_use_and_expire() {
    let (_dir, store) = store().await;
    let token = store
        .create_registration_token(Duration::from_secs(60))
        .await
        .unwrap();
    let (agent, permanent) = store.enrol_agent(&token, "web-1", &info()).await.unwrap();
    assert!(matches!(
        store.enrol_agent(&token, "web-2", &info()).await,
        Err(StoreError::BadRegistrationToken)
    ));
    assert!(
        store
            .authenticate_agent(&agent.id, &permanent, &info())
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .authenticate_agent(&agent.id, "za_wrong", &info())
            .await
            .unwrap()
            .is_none()
    );

    let expired = store
        .create_registration_token(Duration::ZERO)
        .await
        .unwrap();
    assert!(matches!(
        store.enrol_agent(&expired, "web-3", &info()).await,
        Err(StoreError::BadRegistrationToken)
    ));

    // A taken name leaves the token usable.
    let token = store
        .create_registration_token(Duration::from_secs(60))
        .await
        .unwrap();
    assert!(matches!(
        store.enrol_agent(&token, "web-1", &info()).await,
        Err(StoreError::NameTaken(_))
    ));
    store.enrol_agent(&token, "web-2", &info()).await.unwrap();

    store.revoke_agent("web-1").await.unwrap();
    assert!(
        store
            .authenticate_agent(&agent.id, &permanent, &info())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn logins_open_sessions_and_store_no_plain_secret() {
    let (dir, store) = store().await;
    store
        .add_user("alice", "s3cret-pass", Role::Operator)
        .await
        .unwrap();
    assert!(matches!(
        store.add_user("alice", "x", Role::Viewer).await,
        Err(StoreError::UserExists(_))
    ));
    assert!(store.login("alice", "wrong", None).await.unwrap().is_none());
    assert!(
        store
            .login("bob", "s3cret-pass", None)
            .await
            .unwrap()
            .is_none()
    );
    let (session, token) = store
        .login("alice", "s3cret-pass", Some("laptop"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(session.role, Role::Operator);
    assert_eq!(store.session(&token).await.unwrap().unwrap().user, "alice");
    assert!(store.revoke_session_token(&token).await.unwrap());
    assert!(store.session(&token).await.unwrap().is_none());
    store.close().await;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("s3cret-pass") && !text.contains(&token));
    }
}

#[tokio::test]
async fn the_last_admin_stays_and_disabling_revokes_sessions() {
    let (_dir, store) = store().await;
    store
        .add_user("root", "pw-root", Role::Admin)
        .await
        .unwrap();
    store
        .add_user("bob", "pw-bob", Role::Operator)
        .await
        .unwrap();
    let (bob, token) = store.login("bob", "pw-bob", None).await.unwrap().unwrap();
    assert!(matches!(
        store.update_user("root", Some(Role::Viewer), None).await,
        Err(StoreError::LastAdmin(_))
    ));
    assert!(matches!(
        store.update_user("root", None, Some(true)).await,
        Err(StoreError::LastAdmin(_))
    ));
    assert!(matches!(
        store.update_user("nobody", None, Some(true)).await,
        Err(StoreError::NoSuchUser(_))
    ));

    let change = store
        .update_user("bob", Some(Role::Viewer), None)
        .await
        .unwrap();
    assert!(change.role_changed && !change.disabled_now);
    assert_eq!(change.sessions, vec![bob.id.clone()]);
    assert_eq!(
        store.session_role(&bob.id).await.unwrap(),
        Some(Role::Viewer)
    );
    assert_eq!(
        store.session(&token).await.unwrap().unwrap().role,
        Role::Viewer
    );

    let change = store.update_user("bob", None, Some(true)).await.unwrap();
    assert!(change.disabled_now && change.user.disabled);
    assert_eq!(change.user.sessions, 0);
    assert!(store.session(&token).await.unwrap().is_none());
    assert!(store.login("bob", "pw-bob", None).await.unwrap().is_none());
    // Enabling does not bring the old sessions back; a new login works.
    store.update_user("bob", None, Some(false)).await.unwrap();
    assert!(store.session(&token).await.unwrap().is_none());
    assert!(store.login("bob", "pw-bob", None).await.unwrap().is_some());

    // With a second admin, the first may step down.
    store
        .update_user("bob", Some(Role::Admin), None)
        .await
        .unwrap();
    store
        .update_user("root", Some(Role::Viewer), None)
        .await
        .unwrap();
}

#[tokio::test]
async fn revoked_registration_tokens_cannot_enrol() {
    let (_dir, store) = store().await;
    let (id, token) = store
        .create_registration_token_with_id(Duration::from_secs(60))
        .await
        .unwrap();
    let listed = store.registration_tokens().await.unwrap();
    assert_eq!((listed.len(), listed[0].state(now())), (1, "valid"));
    let row = store.revoke_registration_token(&id).await.unwrap();
    assert_eq!(row.state(now()), "revoked");
    // Twice is harmless.
    store.revoke_registration_token(&id).await.unwrap();
    assert!(matches!(
        store.enrol_agent(&token, "web-1", &info()).await,
        Err(StoreError::BadRegistrationToken)
    ));
    assert!(matches!(
        store.revoke_registration_token("nope").await,
        Err(StoreError::NoSuchToken(_))
    ));
    let (used_id, used) = store
        .create_registration_token_with_id(Duration::from_secs(60))
        .await
        .unwrap();
    store.enrol_agent(&used, "web-1", &info()).await.unwrap();
    assert!(matches!(
        store.revoke_registration_token(&used_id).await,
        Err(StoreError::TokenUsed(_))
    ));
}

#[tokio::test]
async fn a_rotation_switches_tokens_only_when_confirmed() {
    let (_dir, store) = store().await;
    let token = store
        .create_registration_token(Duration::from_secs(60))
        .await
        .unwrap();
    let (agent, old) = store.enrol_agent(&token, "web-1", &info()).await.unwrap();
    let auth = |t: String| {
        let store = store.clone();
        let id = agent.id.clone();
        async move {
            store
                .authenticate_agent(&id, &t, &info())
                .await
                .unwrap()
                .is_some()
        }
    };

    // Pending: both work until one is used; using the old one cancels the rotation.
    let new = secret::new_token(TokenKind::Agent);
    store
        .begin_rotation(&agent.id, &secret::token_hash(&new))
        .await
        .unwrap();
    assert!(auth(old.clone()).await);
    assert!(
        !auth(new.clone()).await,
        "authenticating with the old token settles it"
    );

    // Confirmed: the new token replaces the old one.
    store
        .begin_rotation(&agent.id, &secret::token_hash(&new))
        .await
        .unwrap();
    assert!(
        store
            .finish_rotation(&agent.id, &secret::token_hash(&new))
            .await
            .unwrap()
    );
    assert!(!auth(old.clone()).await);
    assert!(auth(new.clone()).await);

    // Confirmation lost, agent reconnects with the newer token: it becomes the only one.
    let newer = secret::new_token(TokenKind::Agent);
    store
        .begin_rotation(&agent.id, &secret::token_hash(&newer))
        .await
        .unwrap();
    assert!(auth(newer.clone()).await);
    assert!(!auth(new.clone()).await);
    assert!(
        !store
            .finish_rotation(&agent.id, &secret::token_hash(&newer))
            .await
            .unwrap()
    );

    // Aborted: the current token stays.
    let spare = secret::new_token(TokenKind::Agent);
    store
        .begin_rotation(&agent.id, &secret::token_hash(&spare))
        .await
        .unwrap();
    store
        .abort_rotation(&agent.id, &secret::token_hash(&spare))
        .await
        .unwrap();
    assert!(!auth(spare).await);
    assert!(auth(newer).await);
}

fn template(image: &str) -> zedops_protocol::TemplateBody {
    serde_json::from_value(serde_json::json!({
        "name": "web",
        "variables": {"PW": {"secret": true, "required": true}},
        "spec": {"image": image, "env": {"PW": "${PW}"}}
    }))
    .unwrap()
}

#[tokio::test]
async fn versions_count_up_and_survive_removal() {
    let (_dir, store) = store().await;
    assert_eq!(
        insert(&store, &template("nginx:1"), "ann").await.unwrap(),
        1
    );
    assert!(matches!(
        insert(&store, &template("nginx:1"), "ann").await,
        Err(TemplateError::Exists(_))
    ));
    assert_eq!(
        update(&store, &template("nginx:2"), "bob").await.unwrap(),
        2
    );
    let row = get(&store, "web").await.unwrap().unwrap();
    assert_eq!(row.version, 2);
    assert_eq!(row.created_by.as_deref(), Some("ann"));
    assert_eq!(row.updated_by.as_deref(), Some("bob"));
    assert_eq!(delete(&store, "web").await.unwrap(), 2);
    assert!(get(&store, "web").await.unwrap().is_none());
    assert_eq!(
        version(&store, "web", 1).await.unwrap().unwrap().spec["image"],
        "nginx:1"
    );
    // A new template of the same name never reuses a version number.
    assert_eq!(
        insert(&store, &template("nginx:3"), "ann").await.unwrap(),
        3
    );
    assert!(matches!(
        update(
            &store,
            &zedops_protocol::TemplateBody {
                name: "nope".into(),
                ..template("x")
            },
            "a"
        )
        .await,
        Err(TemplateError::NotFound(_))
    ));
}
