//! The device token's round trip through the real OS keyring (on Linux the Secret Service, e.g.
//! gnome-keyring in a D-Bus session), checked from outside with `secret-tool` where available.
//!
//! Run under a session with an unlocked keyring:
//! `dbus-run-session -- bash -c 'echo -n pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null; cargo test -p zedops-client --test keyring'`.
//! Without a reachable keyring the test fails under `CI=true` and is skipped (loudly) otherwise.

use std::process::Command;

use zedops_client::store;

/// Returns false (after saying why) when the test cannot run here; panics under CI.
fn keyring_reachable(relay: &str) -> bool {
    match store::load_token(relay) {
        Ok(_) => true,
        Err(err) if err.code() == "KEYRING_UNAVAILABLE" => {
            let message = format!(
                "no OS keyring is reachable ({err}). Start one, e.g. `dbus-run-session -- bash -c 'echo -n pw | \
                 gnome-keyring-daemon --unlock --components=secrets; cargo test -p zedops-client --test keyring'`"
            );
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true and {message}");
            }
            eprintln!("SKIPPED keyring round trip: {message}");
            false
        }
        Err(err) => panic!("unexpected error probing the keyring: {err}"),
    }
}

/// What `secret-tool` finds under the attributes keyring-rs sets, or `None` when the tool is
/// missing (outside CI) or nothing matches.
fn secret_tool_lookup(user: &str) -> Option<String> {
    let output = Command::new("secret-tool")
        .args(["lookup", "service", "zedops", "username", user])
        .output();
    match output {
        Ok(out) if out.status.success() => Some(String::from_utf8(out.stdout).unwrap()),
        Ok(_) => None,
        Err(err) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true and secret-tool cannot run: {err}")
        }
        Err(err) => {
            eprintln!("secret-tool unavailable ({err}); checking through the library only");
            None
        }
    }
}

fn secret_tool_present() -> bool {
    Command::new("secret-tool")
        .arg("--version")
        .output()
        .is_ok()
}

#[test]
fn device_token_round_trips_through_the_os_keyring() {
    // A relay nobody else uses, so parallel runs and real logins are untouched.
    let relay = format!("https://keyring-test-{}.invalid/", uuid::Uuid::new_v4());
    if !keyring_reachable(&relay) {
        return;
    }
    let user = store::keyring_user(&relay).unwrap();
    assert_eq!(user, relay.trim_end_matches('/'));
    let check_outside = cfg!(target_os = "linux") && secret_tool_present();

    assert_eq!(store::load_token(&relay).unwrap(), None);
    store::save_token(&relay, "zd_first").unwrap();
    // Any spelling of the relay URL finds the same entry.
    assert_eq!(
        store::load_token(relay.trim_end_matches('/'))
            .unwrap()
            .as_deref(),
        Some("zd_first")
    );
    if check_outside {
        assert_eq!(secret_tool_lookup(&user).as_deref(), Some("zd_first"));
        let search = Command::new("secret-tool")
            .args(["search", "--all", "service", "zedops", "username", &user])
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&search.stdout).to_string()
            + &String::from_utf8_lossy(&search.stderr);
        assert!(listing.contains("attribute.target = default"), "{listing}");
        assert!(
            listing.contains("attribute.application = rust-keyring"),
            "{listing}"
        );
    }

    // Saving again replaces, never duplicates.
    store::save_token(&relay, "zd_second").unwrap();
    assert_eq!(
        store::load_token(&relay).unwrap().as_deref(),
        Some("zd_second")
    );
    if check_outside {
        assert_eq!(secret_tool_lookup(&user).as_deref(), Some("zd_second"));
    }

    store::delete_token(&relay).unwrap();
    assert_eq!(store::load_token(&relay).unwrap(), None);
    if check_outside {
        assert_eq!(
            secret_tool_lookup(&user),
            None,
            "secret-tool still finds the token after delete"
        );
    }
    // Deleting what is not there is fine (logout twice).
    store::delete_token(&relay).unwrap();
}
