//! Entry point of the ZedOps desktop app; everything else lives in the library so tests reach it.

// No console window next to the app on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    zedops_desktop::run();
}
