//! `ui/src/lib/bindings.ts` is what tauri-specta exports from the Rust commands, events and
//! types. This test exports afresh and compares; a stale committed file fails it. Outside CI it
//! also rewrites the file, so re-running passes once the new file is reviewed and committed.

use std::path::Path;

#[test]
fn committed_bindings_match_the_rust_side() {
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join(zedops_desktop::BINDINGS_PATH);
    let dir = tempfile::tempdir().unwrap();
    let fresh_path = dir.path().join("bindings.ts");
    zedops_desktop::export_bindings(&fresh_path).expect("the bindings export");
    let fresh = std::fs::read_to_string(&fresh_path).unwrap();
    let old = std::fs::read_to_string(&committed).unwrap_or_default();
    if fresh == old {
        return;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{} is stale: run `cargo test -p zedops-desktop --test bindings` outside CI and commit the result",
            committed.display()
        );
    }
    std::fs::write(&committed, fresh).unwrap();
    panic!(
        "{} was stale and has been regenerated: review and commit it",
        committed.display()
    );
}
