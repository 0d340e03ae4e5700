//! Build script: Tauri's code generation, and a stand-in page when the UI has not been built.
//!
//! `tauri::generate_context!` refuses to compile when `frontendDist` (`../ui/dist`) is missing,
//! which would break `cargo test --workspace` on a fresh clone. So a one-page stand-in that says
//! how to build the UI is written there instead; `npm --prefix ui run build` replaces it.

use std::path::Path;

fn main() {
    let dist = Path::new("../ui/dist");
    if !dist.join("index.html").exists() {
        println!(
            "cargo:warning=ui/dist is missing; embedding a stand-in page. Build the UI first: npm --prefix ui ci && npm --prefix ui run build"
        );
        std::fs::create_dir_all(dist).expect("create ui/dist");
        std::fs::write(dist.join("index.html"), STAND_IN).expect("write ui/dist/index.html");
    }
    tauri_build::build()
}

const STAND_IN: &str = "<!doctype html><meta charset=utf-8><title>ZedOps</title>\
<p>This build of ZedOps has no user interface: build it with \
<code>npm --prefix ui ci &amp;&amp; npm --prefix ui run build</code>, then \
<code>cargo build -p zedops-desktop</code> again.</p>\n";
