//! `zedops-agent`: the command line over the agent library.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use zedops_agent::AgentOptions;

#[derive(Parser)]
#[command(
    version,
    about = "ZedOps agent: lets a ZedOps relay manage this server's Docker containers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enrol (first start, with a registration token) or reconnect (stored credentials), then serve.
    Run(RunArgs),
}

#[derive(Args)]
struct RunArgs {
    /// Relay base URL, e.g. https://relay.example.com
    #[arg(long, env = "ZEDOPS_RELAY")]
    relay: String,
    /// Single-use registration token from `zedops-relay token create` (first start only).
    #[arg(
        long,
        env = "ZEDOPS_TOKEN",
        hide_env_values = true,
        conflicts_with = "token_file"
    )]
    token: Option<String>,
    /// File holding the registration token, so it does not show up in `ps`.
    #[arg(long, env = "ZEDOPS_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// Name to enrol under [default: this host's name]
    #[arg(long, env = "ZEDOPS_NAME")]
    name: Option<String>,
    /// Where credentials are stored [default: /var/lib/zedops-agent as root, else the user's data dir]
    #[arg(long, env = "ZEDOPS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Docker engine: unix:///path or tcp://host:port [default: DOCKER_HOST, else the local socket]
    #[arg(long, env = "ZEDOPS_DOCKER_HOST")]
    docker_host: Option<String>,
    /// Extra CA certificate (PEM) to trust for the relay.
    #[arg(long, env = "ZEDOPS_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// Allow plaintext ws:// to a relay that is not on this machine.
    #[arg(long, env = "ZEDOPS_INSECURE")]
    insecure: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let Command::Run(args) = Cli::parse().command;
    let options = match options(args) {
        Ok(options) => options,
        Err(err) => {
            tracing::error!("{err:#}");
            return ExitCode::FAILURE;
        }
    };
    // `run` logs its own fatal error.
    match zedops_agent::run(options, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

fn options(args: RunArgs) -> anyhow::Result<AgentOptions> {
    let registration_token = match (&args.token, &args.token_file) {
        (Some(token), _) => Some(token.clone()),
        (None, Some(path)) => Some(read_token(path)?),
        (None, None) => None,
    };
    let data_dir = match args.data_dir {
        Some(dir) => dir,
        None => default_data_dir()?,
    };
    Ok(AgentOptions {
        relay_url: args.relay,
        registration_token,
        name: args.name,
        data_dir,
        docker_host: args.docker_host,
        ca_file: args.ca_file,
        insecure: args.insecure,
    })
}

fn read_token(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read token file {}", path.display()))?;
    Ok(text.trim().to_string())
}

/// `/var/lib/zedops-agent` for a system service, else the user's data directory.
fn default_data_dir() -> anyhow::Result<PathBuf> {
    if is_root() {
        return Ok(PathBuf::from("/var/lib/zedops-agent"));
    }
    let base = directories::BaseDirs::new()
        .context("cannot find a data directory for this user; pass --data-dir")?;
    Ok(base.data_dir().join("zedops-agent"))
}

/// Whether the effective user is root, read from `/proc` to avoid unsafe code for one syscall.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
            .unwrap_or(false)
    })
}

/// Completes on Ctrl-C or SIGTERM (what systemd sends on stop).
async fn shutdown_signal() {
    // A signal that cannot be watched must never count as received.
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}
