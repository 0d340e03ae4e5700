//! Registry logins in the store, on a real SQLite file and on a real PostgreSQL (the shared
//! test server; under CI=true a missing one fails): stored sealed, replaced, listed by server,
//! removed; and the sealed text opens only with the relay's key for its own server.

use zedops_relay::registry_key::RegistryKey;
use zedops_relay::store::Store;
use zedops_relay::store::registry_logins::{all, count, delete, upsert};
use zedops_testkit::TestPostgres;

async fn logins_are_stored_replaced_and_removed(store: Store, key: RegistryKey) {
    let sealed = key.seal("registry.example:5000", "hunter2").unwrap();
    assert!(
        !upsert(&store, "registry.example:5000", "ci", &sealed, "ann")
            .await
            .unwrap()
    );
    let other = key.seal("docker.io", "token-1").unwrap();
    assert!(
        !upsert(&store, "docker.io", "bot", &other, "ann")
            .await
            .unwrap()
    );
    let resealed = key.seal("registry.example:5000", "hunter3").unwrap();
    assert!(
        upsert(&store, "registry.example:5000", "ci2", &resealed, "bob")
            .await
            .unwrap(),
        "replaced"
    );
    let rows = all(&store).await.unwrap();
    let servers: Vec<&str> = rows.iter().map(|r| r.server.as_str()).collect();
    assert_eq!(servers, ["docker.io", "registry.example:5000"]);
    let row = &rows[1];
    assert_eq!(
        (row.username.as_str(), row.updated_by.as_deref()),
        ("ci2", Some("bob"))
    );
    assert!(!row.secret.contains("hunter"));
    assert!(
        !format!("{row:?}").contains(&row.secret),
        "the sealed text is not debug-printed"
    );
    assert_eq!(key.open(&row.server, &row.secret).unwrap(), "hunter3");
    // Moved to another server's row, it does not open.
    assert!(key.open("docker.io", &row.secret).is_err());
    assert_eq!(count(&store).await.unwrap(), 2);
    assert!(delete(&store, "docker.io").await.unwrap());
    assert!(!delete(&store, "docker.io").await.unwrap());
    assert_eq!(count(&store).await.unwrap(), 1);
}

#[tokio::test]
async fn on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("relay.db").display().to_string();
    let store = Store::open(&db).await.unwrap();
    logins_are_stored_replaced_and_removed(store, RegistryKey::for_db(&db)).await;
    assert!(
        dir.path().join("registry.key").exists(),
        "the key beside the database"
    );
}

#[tokio::test]
async fn on_postgres() {
    let Some(pg) = TestPostgres::shared() else {
        return;
    };
    let store = Store::open(&pg.database()).await.unwrap();
    // The key of an in-memory database: no file written to the machine's data directory.
    logins_are_stored_replaced_and_removed(store, RegistryKey::for_db("sqlite::memory:")).await;
}
