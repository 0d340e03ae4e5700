//! `zedops-agent`: the command line over the agent library.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use zedops_agent::AgentOptions;

#[derive(Parser)]
#[command(
    version = zedops_agent::VERSION,
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
    /// Install this binary as a hardened systemd service (user zedops-agent), enabled and started.
    Install(InstallArgs),
    /// Stop and remove the systemd service; --purge also removes its settings and credentials.
    Uninstall(UninstallArgs),
    /// Started by `run` beside a newly installed update: puts the previous build back and stops
    /// the new one if it has not connected to the relay by its deadline.
    #[cfg(unix)]
    #[command(hide = true)]
    UpdateGuard(GuardArgs),
}

#[cfg(unix)]
#[derive(Args)]
struct GuardArgs {
    #[arg(long)]
    data_dir: PathBuf,
    /// The process running the new build.
    #[arg(long)]
    pid: u32,
}

/// Where to enrol and as what: the same flags for `install` and `run`.
#[derive(Args)]
struct EnrolArgs {
    /// Relay base URL, e.g. https://relay.example.com; several relays of a cluster
    /// comma-separated, tried in order
    #[arg(long, env = "ZEDOPS_RELAY")]
    relay: String,
    /// Single-use registration token from `zedops-relay token create`, to enrol [not needed
    /// once enrolled]
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
}

impl EnrolArgs {
    /// The registration token given on the command line or in its file, if any.
    fn registration_token(&self) -> anyhow::Result<Option<String>> {
        match (&self.token, &self.token_file) {
            (Some(token), _) => Ok(Some(token.clone())),
            (None, Some(path)) => Ok(Some(read_token(path)?)),
            (None, None) => Ok(None),
        }
    }
}

#[derive(Args)]
struct InstallArgs {
    #[command(flatten)]
    enrol: EnrolArgs,
    /// Install into this directory instead of the system (packaging, tests): no useradd,
    /// chown or systemctl, which are printed instead.
    #[arg(long, env = "ZEDOPS_INSTALL_ROOT")]
    root: Option<PathBuf>,
    /// Install, but do not enable or start the service.
    #[arg(long, env = "ZEDOPS_NO_START")]
    no_start: bool,
    /// Extra CA certificate (PEM) to trust for the relay; copied to /etc/zedops-agent/ca.pem.
    #[arg(long, env = "ZEDOPS_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// Allow plaintext ws:// to a relay that is not on this machine.
    #[arg(long, env = "ZEDOPS_INSECURE")]
    insecure: bool,
    /// A minisign public key file to trust for agent updates beside the release key built in;
    /// copied to /etc/zedops-agent/release-key.pub (root's) and named in the service settings.
    #[arg(long, value_name = "FILE")]
    trusted_key: Option<PathBuf>,
    /// Seconds to wait for the started service to enrol and connect; a refusal, a stopped
    /// service or the time running out fails the install with the reason. 0: do not wait.
    #[arg(long, env = "ZEDOPS_INSTALL_WAIT", default_value_t = 60)]
    wait: u64,
}

#[derive(Args)]
struct UninstallArgs {
    /// Uninstall from this directory instead of the system (see install --root).
    #[arg(long, env = "ZEDOPS_INSTALL_ROOT")]
    root: Option<PathBuf>,
    /// Also tell the relay to forget this agent, then remove /etc/zedops-agent,
    /// /var/lib/zedops-agent (the credentials) and the user.
    #[arg(long)]
    purge: bool,
    /// Do not stop and disable the service first.
    #[arg(long)]
    no_stop: bool,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    enrol: EnrolArgs,
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
    /// Let containers created through ZedOps bind-mount server paths under DIR (repeatable;
    /// none by default). The Docker socket is refused even inside DIR. In agent.env:
    /// ZEDOPS_ALLOW_BIND=/srv/games:/srv/backups
    #[arg(
        long = "allow-bind",
        value_name = "DIR",
        env = "ZEDOPS_ALLOW_BIND",
        value_delimiter = ':'
    )]
    allow_bind: Vec<PathBuf>,
    /// Largest file one download or upload of a container's files may move, in bytes
    /// (256 MiB by default); larger transfers are refused before any byte moves
    #[arg(
        long,
        value_name = "BYTES",
        env = "ZEDOPS_MAX_FILE_SIZE",
        default_value_t = zedops_protocol::DEFAULT_MAX_FILE_SIZE
    )]
    max_file_size: u64,
    /// Container events pushed to the relay per second at most (bursts of twice that); faster
    /// ones are coalesced into one container.sync. Keep it at or under half of the relay's
    /// --max-agent-messages-per-sec (1,000 by default); 0 turns pacing off.
    #[arg(
        long,
        env = "ZEDOPS_MAX_PUSHES_PER_SEC",
        default_value_t = zedops_agent::pacing::DEFAULT_PUSHES_PER_SEC
    )]
    max_pushes_per_sec: u32,
    /// A minisign public key file whose key, beside the release key built in, may sign agent
    /// updates. Local configuration only (this flag or agent.env): nothing the relay sends can
    /// add a key.
    #[arg(long, env = "ZEDOPS_TRUSTED_KEY_FILE")]
    trusted_key_file: Option<PathBuf>,
    /// Seconds an installed update has to connect to the relay before the previous build comes
    /// back by itself.
    #[arg(long, env = "ZEDOPS_UPDATE_REVERT_AFTER", default_value_t = 60, value_parser = clap::value_parser!(u64).range(5..=3600))]
    update_revert_after: u64,
    /// How often to ask the registries whether the images of this server's containers have
    /// newer builds (e.g. 6h, 30m; the first check comes at a random point of the first
    /// interval, so a fleet does not ask a registry at once). 0 turns the periodic check off;
    /// `zedops updates --check` still asks.
    #[arg(long, env = "ZEDOPS_UPDATE_CHECK_INTERVAL", default_value = "6h", value_parser = parse_interval)]
    update_check_interval: std::time::Duration,
}

/// `0` (off) or a duration such as `6h`, `30m`, `1h 30m`.
fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    if text.trim() == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    humantime::parse_duration(text).map_err(|e| format!("{e}: write e.g. 6h, 30m or 0 (off)"))
}

// One thread: the agent waits on sockets almost all the time, and every worker thread of a
// multi-threaded runtime costs memory on servers that want it for their game servers.
/// What to log: `RUST_LOG` in the `target=level,level` form (`info` when unset or unreadable).
/// Targets rather than an `EnvFilter`: no regular expressions, which would weigh on the binary.
fn log_filter() -> Targets {
    let default = Targets::new().with_default(tracing::Level::INFO);
    match std::env::var("RUST_LOG") {
        Ok(text) => text.parse().unwrap_or_else(|err| {
            eprintln!("zedops-agent: ignoring RUST_LOG ({err}); logging at info");
            default
        }),
        Err(_) => default,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_max_level(tracing::Level::TRACE)
        .finish()
        .with(log_filter())
        .init();
    let args = match Cli::parse().command {
        Command::Run(args) => args,
        Command::Install(args) => return report(install(args)),
        Command::Uninstall(args) => return report(uninstall(args)),
        #[cfg(unix)]
        Command::UpdateGuard(args) => {
            zedops_agent::selfupdate::guard(&args.data_dir, args.pid);
            return ExitCode::SUCCESS;
        }
    };
    let budget = zedops_agent::PushBudget::per_sec(args.max_pushes_per_sec);
    #[cfg(unix)]
    zedops_agent::selfupdate::configure(zedops_agent::selfupdate::Settings {
        trusted_key_file: args.trusted_key_file.clone(),
        revert_after: std::time::Duration::from_secs(args.update_revert_after),
    });
    let options = match options(args) {
        Ok(options) => options,
        Err(err) => {
            tracing::error!("{err:#}");
            return ExitCode::from(EXIT_NEEDS_ATTENTION);
        }
    };
    // The packaged binary hands over to an installed update here (and does not come back);
    // an update that is not confirmed yet watches its own first connection.
    #[cfg(unix)]
    {
        zedops_agent::selfupdate::launch(&options.data_dir);
        if let Some(watch) =
            zedops_agent::selfupdate::watch_first_connection(options.data_dir.clone())
        {
            tokio::spawn(watch);
        }
    }
    // `run` retries everything that can heal by itself and logs its own fatal error, so an error
    // here (bad options, a spent token, a revoked agent) needs a person.
    match zedops_agent::run_paced(options, budget, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(EXIT_NEEDS_ATTENTION),
    }
}

/// Exit status of `run` when retrying cannot help (EX_CONFIG); the systemd unit's
/// `RestartPreventExitStatus=` names it so that systemd does not restart into the same refusal.
const EXIT_NEEDS_ATTENTION: u8 = 78;

fn options(args: RunArgs) -> anyhow::Result<AgentOptions> {
    let registration_token = args.enrol.registration_token()?;
    let data_dir = match args.data_dir {
        Some(dir) => dir,
        None => default_data_dir()?,
    };
    Ok(AgentOptions {
        relay_url: args.enrol.relay,
        registration_token,
        name: args.enrol.name,
        data_dir,
        docker_host: args.docker_host,
        ca_file: args.ca_file,
        insecure: args.insecure,
        allow_bind: args.allow_bind,
        max_file_size: args.max_file_size,
        update_check_interval: args.update_check_interval,
    })
}

#[cfg(not(unix))]
fn install(_: InstallArgs) -> anyhow::Result<()> {
    anyhow::bail!("install sets the agent up as a systemd service, which needs Linux")
}

#[cfg(not(unix))]
fn uninstall(_: UninstallArgs) -> anyhow::Result<()> {
    anyhow::bail!("uninstall removes a systemd service, which needs Linux")
}

#[cfg(unix)]
fn install(args: InstallArgs) -> anyhow::Result<()> {
    let token = args.enrol.registration_token()?;
    let binary = std::env::current_exe().context("cannot find the running zedops-agent binary")?;
    zedops_agent::install::install(&zedops_agent::install::InstallOptions {
        relay: args.enrol.relay,
        token,
        name: args.enrol.name,
        root: args.root,
        start: !args.no_start,
        ca_file: args.ca_file,
        insecure: args.insecure,
        trusted_key: args.trusted_key,
        binary,
        wait: std::time::Duration::from_secs(args.wait),
    })?;
    Ok(())
}

#[cfg(unix)]
fn uninstall(args: UninstallArgs) -> anyhow::Result<()> {
    zedops_agent::install::uninstall(&zedops_agent::install::UninstallOptions {
        root: args.root,
        purge: args.purge,
        stop: !args.no_stop,
    })?;
    Ok(())
}

/// Install and uninstall talk to a person: plain sentences on stderr, no log decoration.
fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn read_token(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read token file {}", path.display()))?;
    Ok(text.trim().to_string())
}

/// The system service's data directory (`/var/lib/zedops-agent`) for root, else the user's.
fn default_data_dir() -> anyhow::Result<PathBuf> {
    #[cfg(unix)]
    if zedops_agent::install::is_root() {
        return Ok(PathBuf::from(zedops_agent::install::DATA_DIR));
    }
    let base = directories::BaseDirs::new()
        .context("cannot find a data directory for this user; pass --data-dir")?;
    Ok(base.data_dir().join("zedops-agent"))
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
