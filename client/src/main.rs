//! `zedops`: the ZedOps command line for scripts and headless admins. The commands live in `cli/`.

mod cli;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    cli::main().await
}
