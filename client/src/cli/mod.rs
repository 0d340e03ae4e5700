//! Argument parsing, the shared plumbing of every command (which relay, which token, errors and
//! exit codes), and dispatch to the command modules.

mod admin;
mod auth;
mod console;
mod container_update;
mod deploy;
mod events;
mod files;
mod fleet;
mod fleet_update;
mod logs;
mod registry;
mod stats;
mod table;
mod tty;
mod update;
mod updates;
mod vt;
mod watch;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::BoolishValueParser;
use clap::{Args, CommandFactory, Parser, Subcommand};
use zedops_client::{Client, ClientError, ConnectOptions, Operation, StreamReader, store};

/// Environment variable with a device token, for machines without a keyring.
const TOKEN_ENV: &str = "ZEDOPS_TOKEN";

#[derive(Debug, Parser)]
#[command(
    name = "zedops",
    // Usage lines say `zedops` on every system (clap would take `zedops.exe` from argv[0]).
    bin_name = "zedops",
    version,
    about = "Control Docker containers on ZedOps agents through a ZedOps relay",
    after_help = "Headless use: set ZEDOPS_TOKEN to a device token (from `zedops login --print-token`) \
                  instead of using the OS keyring.\n\
                  Errors are printed as `error: CODE: sentence` with exit code 1; usage errors exit with 2."
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
struct Global {
    /// Relay URL, e.g. https://relay.example (default: the relay of the last login)
    #[arg(long, global = true, env = "ZEDOPS_RELAY", value_name = "URL")]
    relay: Option<String>,
    /// PEM file with a private CA certificate to trust for the relay's TLS
    #[arg(long, global = true, env = "ZEDOPS_CA_FILE", value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Allow plaintext http:// or ws:// to a relay that is not on this machine
    #[arg(long, global = true, env = "ZEDOPS_INSECURE", value_parser = BoolishValueParser::new())]
    insecure: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Log in to a relay; the device token goes into the OS keyring
    Login(auth::LoginArgs),
    /// End this device's session at the relay and delete the stored token
    Logout,
    /// List the agents the relay knows
    Agents(JsonArg),
    /// List the containers on an agent
    Ps(PsArgs),
    /// Show one container in detail (secret-looking environment values are masked)
    Inspect(ActionArgs),
    /// Start a container
    Start(ActionArgs),
    /// Stop a container
    Stop(ActionArgs),
    /// Restart a container
    Restart(ActionArgs),
    /// Print container events as they happen, one per line, until Ctrl-C
    Events(EventsArgs),
    /// Print a container's output (stdout to stdout, stderr to stderr)
    Logs(LogsArgs),
    /// Print a running container's CPU, memory, network and block I/O, every second until Ctrl-C
    Stats(StatsArgs),
    /// Manage agents (admin)
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
    /// List device sessions, or revoke one (admin)
    Sessions(SessionsArgs),
    /// Create, list and revoke registration tokens to enrol servers (admin)
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// List, create, disable and enable users and change their roles (admin)
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Show the audit log, newest first (admin)
    Audit(AuditArgs),
    /// Container templates: list and show them; add, update and remove them (admin)
    Template {
        #[command(subcommand)]
        command: deploy::TemplateCommand,
    },
    /// Logins to private image registries, kept encrypted at the relay and used by every agent
    /// (admin)
    Registry {
        #[command(subcommand)]
        command: registry::RegistryCommand,
    },
    /// Create a container on an agent from a template, pulling its image if missing (operator)
    Create(deploy::CreateArgs),
    /// Remove a container (operator)
    Rm(deploy::RmArgs),
    /// List an agent's images and the containers that use them
    Images(deploy::ImagesArgs),
    /// Pull an image on an agent (operator)
    Pull(deploy::PullArgs),
    /// Remove an image from an agent (operator)
    Rmi(deploy::RmiArgs),
    /// List containers whose image has a newer build in its registry; --check asks now
    Updates(updates::UpdatesArgs),
    /// Update a container to the newest build of its image: pull, recreate with the same
    /// settings, wait until healthy, or put the old one back (operator); exits 1 on a rollback
    Update(container_update::UpdateArgs),
    /// Run a command in a container, like docker exec (admin); exits with its exit code
    Exec(ExecArgs),
    /// Attach to a container's main process (a game server's console): its output, and your
    /// keystrokes; detach with ctrl-p,ctrl-q, which leaves it running (operator)
    Attach(AttachArgs),
    /// Send one line to a container's console (its main process's stdin) (operator)
    Send(SendArgs),
    /// A container's files: list and download (operator), upload, remove, mkdir (admin)
    Files {
        #[command(subcommand)]
        command: FilesCommand,
    },
}

#[derive(Debug, Subcommand)]
enum FilesCommand {
    /// List a directory: mode, size, modification time, name
    Ls {
        #[arg(long, env = "ZEDOPS_AGENT", value_name = "AGENT")]
        agent: String,
        container: String,
        path: String,
        #[command(flatten)]
        output: JsonArg,
    },
    /// Download a file to DEST (default: stdout)
    Get {
        #[arg(long, env = "ZEDOPS_AGENT", value_name = "AGENT")]
        agent: String,
        container: String,
        path: String,
        #[arg(default_value = "-")]
        dest: String,
    },
    /// Upload the local file SOURCE to PATH (its directory must exist)
    Put {
        #[arg(long, env = "ZEDOPS_AGENT", value_name = "AGENT")]
        agent: String,
        container: String,
        source: String,
        path: String,
    },
    /// Remove a file, or a directory with everything in it
    Rm {
        #[arg(long, env = "ZEDOPS_AGENT", value_name = "AGENT")]
        agent: String,
        container: String,
        path: String,
    },
    /// Make a directory (its parent must exist)
    Mkdir {
        #[arg(long, env = "ZEDOPS_AGENT", value_name = "AGENT")]
        agent: String,
        container: String,
        path: String,
    },
}

#[derive(Debug, Args)]
struct ExecArgs {
    /// Agent name or id
    #[arg(long, env = "ZEDOPS_AGENT", value_name = "AGENT")]
    agent: String,
    /// Pass this terminal's stdin to the command
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a terminal: with -i this terminal goes raw (Ctrl-C reaches the command) and
    /// its size follows yours
    #[arg(short, long)]
    tty: bool,
    /// Container name, id or id prefix
    container: String,
    /// The command and its arguments (after --)
    #[arg(last = true, required = true)]
    cmd: Vec<String>,
}

#[derive(Debug, Args)]
struct AttachArgs {
    /// Agent name or id
    #[arg(long, env = "ZEDOPS_AGENT", value_name = "AGENT")]
    agent: String,
    /// Do not pass this terminal's keystrokes: watch the output only
    #[arg(long)]
    no_stdin: bool,
    /// The keys that detach, comma-separated: a character or ctrl-<a-z, @, [, \, ], ^, _>
    #[arg(long, value_name = "KEYS", default_value = tty::DEFAULT_DETACH_KEYS)]
    detach_keys: String,
    /// Container name, id or id prefix
    container: String,
}

#[derive(Debug, Args)]
struct SendArgs {
    /// Agent name or id
    #[arg(long, env = "ZEDOPS_AGENT", value_name = "AGENT")]
    agent: String,
    /// Container name, id or id prefix
    container: String,
    /// The line (without its newline)
    line: String,
}

#[derive(Debug, Subcommand)]
enum AgentCommand {
    /// Revoke an agent: its connection closes at once and its token is refused from then on
    Revoke {
        /// Agent name or id
        agent: String,
        #[command(flatten)]
        output: JsonArg,
    },
    /// Give a connected agent a new permanent token; the old one is refused from then on
    Rotate {
        /// Agent name or id
        agent: String,
        #[command(flatten)]
        output: JsonArg,
    },
    /// Have agents install the signed build the relay serves, and watch them come back with it
    /// (an agent whose new build does not connect reverts to its old one by itself)
    Update(UpdateArgs),
}

#[derive(Debug, Args)]
struct UpdateArgs {
    /// Agent name or id
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    agent: Option<String>,
    /// Every online agent not on the relay's version: canaries first, then waves; stops at the
    /// first failure
    #[arg(long)]
    all: bool,
    /// The version expected; refused when the relay serves another
    #[arg(long, value_name = "V")]
    version: Option<String>,
    /// Install even when the relay's version is not newer than the agent's
    #[arg(long)]
    allow_downgrade: bool,
    /// With --all: agents updated one at a time first
    #[arg(long, default_value_t = 1, requires = "all")]
    canary: usize,
    /// With --all: agents updated at once after the canaries
    #[arg(long, default_value_t = 5, requires = "all", value_parser = clap::value_parser!(u64).range(1..=100))]
    parallel: u64,
    /// One JSON object per agent and state change on stdout (`{"agent", "state", …}`)
    #[command(flatten)]
    output: JsonArg,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// List users with their roles and live sessions
    List {
        #[command(flatten)]
        output: JsonArg,
    },
    /// Create a user; the password is read from stdin or a file, never from an argument
    Add {
        /// User name (1 to 64 of A-Z a-z 0-9 . _ -)
        name: String,
        /// admin, operator or viewer
        #[arg(long, value_parser = parse_role)]
        role: zedops_protocol::Role,
        #[command(flatten)]
        password: NewPassword,
        #[command(flatten)]
        output: JsonArg,
    },
    /// Give a user a new password (from stdin or a file); the user's other sessions end
    SetPassword {
        name: String,
        #[command(flatten)]
        password: NewPassword,
        #[command(flatten)]
        output: JsonArg,
    },
    /// Change a user's role; their live connections reconnect with the new role at once
    SetRole {
        name: String,
        /// admin, operator or viewer
        #[arg(value_parser = parse_role)]
        role: zedops_protocol::Role,
        #[command(flatten)]
        output: JsonArg,
    },
    /// Disable a user: their sessions are revoked and connections closed; they cannot log in
    Disable {
        name: String,
        #[command(flatten)]
        output: JsonArg,
    },
    /// Enable a disabled user again (they log in anew)
    Enable {
        name: String,
        #[command(flatten)]
        output: JsonArg,
    },
}

fn parse_role(s: &str) -> Result<zedops_protocol::Role, String> {
    zedops_protocol::Role::parse(s)
        .ok_or_else(|| format!("{s:?} is not a role: use admin, operator or viewer"))
}

#[derive(Debug, Args)]
struct SessionsArgs {
    #[command(subcommand)]
    command: Option<SessionsCommand>,
    #[command(flatten)]
    output: JsonArg,
}

#[derive(Debug, Subcommand)]
enum SessionsCommand {
    /// End a device session; its connections close at once
    Revoke {
        /// Session id (from `zedops sessions`)
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print a new token alone on stdout
    Create {
        /// How long the token stays valid (e.g. 15m, 1h, 2d; at most 30 days)
        #[arg(long, default_value = "15m", value_parser = admin::token_ttl)]
        ttl: std::time::Duration,
        #[command(flatten)]
        output: JsonArg,
    },
    /// List registration tokens: id, created, expires, state (never the tokens themselves)
    List {
        #[command(flatten)]
        output: JsonArg,
    },
    /// Revoke an unused registration token so it can no longer enrol a server
    Revoke {
        /// Token id (from `zedops token list`)
        id: String,
        #[command(flatten)]
        output: JsonArg,
    },
}

#[derive(Debug, Args)]
struct AuditArgs {
    /// Only entries for this agent (name or id)
    #[arg(long, env = "ZEDOPS_AGENT", value_name = "AGENT")]
    agent: Option<String>,
    /// Only entries since this long ago (1h, 2d) or this time (2026-11-23T09:00:00Z)
    #[arg(long, value_name = "WHEN", value_parser = admin::since)]
    since: Option<String>,
    /// At most this many entries (1 to 1000)
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    limit: u32,
    #[command(flatten)]
    output: JsonArg,
}

#[derive(Debug, Args)]
struct LogsArgs {
    /// Agent name or id
    #[arg(long, env = "ZEDOPS_AGENT", value_name = "AGENT")]
    agent: String,
    /// Container name, id or id prefix
    container: String,
    /// Lines from the end to start with (at most 10000)
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    tail: u32,
    /// Keep printing new lines until the container stops or Ctrl-C
    #[arg(long, short = 'f')]
    follow: bool,
    /// Prefix each line with Docker's timestamp
    #[arg(long, short = 't')]
    timestamps: bool,
}

#[derive(Debug, Args)]
struct StatsArgs {
    /// Agent name or id
    #[arg(long, env = "ZEDOPS_AGENT", value_name = "AGENT")]
    agent: String,
    /// Container name, id or id prefix
    container: String,
    /// Print one sample and exit
    #[arg(long)]
    no_stream: bool,
    #[command(flatten)]
    output: JsonArg,
}

#[derive(Debug, Args)]
struct EventsArgs {
    /// Only this agent's events (name or id); all agents when left out
    #[arg(long, env = "ZEDOPS_AGENT", value_name = "AGENT")]
    agent: Option<String>,
    #[command(flatten)]
    output: JsonArg,
}

#[derive(Debug, Args)]
struct JsonArg {
    /// Print the relay's answer as JSON on stdout instead of a table
    #[arg(long, env = "ZEDOPS_JSON", value_parser = BoolishValueParser::new())]
    json: bool,
}

#[derive(Debug, Args)]
struct PsArgs {
    /// Agent name or id
    #[arg(long, env = "ZEDOPS_AGENT", value_name = "AGENT")]
    agent: String,
    #[command(flatten)]
    output: JsonArg,
}

/// One container on one agent: inspect, start, stop, restart.
#[derive(Debug, Args)]
struct ActionArgs {
    /// Agent name or id
    #[arg(long, env = "ZEDOPS_AGENT", value_name = "AGENT")]
    agent: String,
    /// Container name, id or id prefix
    container: String,
    #[command(flatten)]
    output: JsonArg,
}

/// A failure as the user sees it: a code and a sentence.
#[derive(Debug)]
pub struct CliError {
    code: &'static str,
    message: String,
}

impl CliError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<ClientError> for CliError {
    fn from(err: ClientError) -> Self {
        Self {
            code: err.code().as_str(),
            message: err.to_string(),
        }
    }
}

type CliResult = Result<(), CliError>;

/// Parses the command line, runs the command, and turns the outcome into an exit code.
pub async fn main() -> ExitCode {
    // Parsing exits with code 2 on usage errors, before logging is set up.
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a script's captured stderr gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Error messages can quote what an agent or container reported.
            eprintln!(
                "error: {}: {}",
                table::clean(err.code),
                table::clean(&err.message)
            );
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> CliResult {
    let global = cli.global;
    match cli.command {
        Command::Login(args) => auth::login(&global, args).await,
        Command::Logout => auth::logout(&global).await,
        Command::Agents(out) => fleet::agents(&global, out.json).await,
        Command::Ps(args) => fleet::ps(&global, &args.agent, args.output.json).await,
        Command::Inspect(args) => {
            fleet::inspect(&global, &args.agent, &args.container, args.output.json).await
        }
        Command::Start(args) => action(&global, args, Operation::Start).await,
        Command::Stop(args) => action(&global, args, Operation::Stop).await,
        Command::Restart(args) => action(&global, args, Operation::Restart).await,
        Command::Exec(args) => {
            console::exec(
                &global,
                &args.agent,
                &args.container,
                args.cmd,
                args.interactive,
                args.tty,
            )
            .await
        }
        Command::Attach(args) => {
            console::attach(
                &global,
                &args.agent,
                &args.container,
                args.no_stdin,
                &args.detach_keys,
            )
            .await
        }
        Command::Send(args) => {
            console::send(&global, &args.agent, &args.container, &args.line).await
        }
        Command::Files { command } => match command {
            FilesCommand::Ls {
                agent,
                container,
                path,
                output,
            } => files::ls(&global, &agent, &container, &path, output.json).await,
            FilesCommand::Get {
                agent,
                container,
                path,
                dest,
            } => files::get(&global, &agent, &container, &path, &dest).await,
            FilesCommand::Put {
                agent,
                container,
                source,
                path,
            } => files::put(&global, &agent, &container, &source, &path).await,
            FilesCommand::Rm {
                agent,
                container,
                path,
            } => {
                let change = files::Change::Remove;
                files::change(&global, change, &agent, &container, &path).await
            }
            FilesCommand::Mkdir {
                agent,
                container,
                path,
            } => {
                let change = files::Change::Mkdir;
                files::change(&global, change, &agent, &container, &path).await
            }
        },
        Command::Logs(args) => {
            let options = zedops_client::LogsOptions {
                tail: Some(args.tail),
                follow: args.follow,
                timestamps: args.timestamps,
            };
            logs::logs(&global, &args.agent, &args.container, options).await
        }
        Command::Stats(args) => {
            stats::stats(
                &global,
                &args.agent,
                &args.container,
                !args.no_stream,
                args.output.json,
            )
            .await
        }
        Command::Events(args) => {
            events::events(&global, args.agent.as_deref(), args.output.json).await
        }
        Command::Agent {
            command: AgentCommand::Revoke { agent, output },
        } => admin::revoke_agent(&global, &agent, output.json).await,
        Command::Sessions(args) => match args.command {
            None => admin::sessions(&global, args.output.json).await,
            Some(SessionsCommand::Revoke { id }) => {
                admin::revoke_session(&global, &id, args.output.json).await
            }
        },
        Command::Agent {
            command: AgentCommand::Rotate { agent, output },
        } => admin::rotate_agent(&global, &agent, output.json).await,
        Command::Agent {
            command: AgentCommand::Update(args),
        } => {
            update::update(
                &global,
                update::UpdateArgs {
                    agent: args.agent.as_deref(),
                    version: args.version.as_deref(),
                    allow_downgrade: args.allow_downgrade,
                    canary: args.canary,
                    parallel: args.parallel as usize,
                    json: args.output.json,
                },
            )
            .await
        }
        Command::Token { command } => match command {
            TokenCommand::Create { ttl, output } => {
                admin::create_token(&global, ttl, output.json).await
            }
            TokenCommand::List { output } => admin::tokens(&global, output.json).await,
            TokenCommand::Revoke { id, output } => {
                admin::revoke_token(&global, &id, output.json).await
            }
        },
        Command::User { command } => match command {
            UserCommand::List { output } => admin::users(&global, output.json).await,
            UserCommand::Add {
                name,
                role,
                password,
                output,
            } => {
                let password = password.read(
                    &["user", "add"],
                    "give the new user's password with --password-stdin or --password-file FILE",
                )?;
                admin::add_user(&global, &name, role, password, output.json).await
            }
            UserCommand::SetPassword {
                name,
                password,
                output,
            } => {
                let password = password.read(
                    &["user", "set-password"],
                    "give the new password with --password-stdin or --password-file FILE",
                )?;
                admin::set_password(&global, &name, password, output.json).await
            }
            UserCommand::SetRole { name, role, output } => {
                admin::update_user(&global, &name, Some(role), None, output.json).await
            }
            UserCommand::Disable { name, output } => {
                admin::update_user(&global, &name, None, Some(true), output.json).await
            }
            UserCommand::Enable { name, output } => {
                admin::update_user(&global, &name, None, Some(false), output.json).await
            }
        },
        Command::Template { command } => deploy::template(&global, command).await,
        Command::Registry { command } => registry::registry(&global, command).await,
        Command::Update(args) if args.all => fleet_update::update_all(&global, args).await,
        Command::Update(args) => container_update::update(&global, args).await,
        Command::Create(args) => deploy::create(&global, args).await,
        Command::Rm(args) => deploy::rm(&global, args).await,
        Command::Images(args) => deploy::images(&global, args).await,
        Command::Updates(args) => updates::updates(&global, args).await,
        Command::Pull(args) => deploy::pull(&global, args).await,
        Command::Rmi(args) => deploy::rmi(&global, args).await,
        Command::Audit(args) => {
            admin::audit(
                &global,
                args.agent.as_deref(),
                args.since.as_deref(),
                args.limit,
                args.output.json,
            )
            .await
        }
    }
}

/// One call over a fresh connection, which is closed whatever the outcome (a streamed answer
/// is followed to its end inside `ask`).
async fn call<T, E, F, Fut>(global: &Global, ask: F) -> Result<T, CliError>
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    CliError: From<E>,
{
    let client = connect(global).await?;
    let answer = ask(client.clone()).await;
    client.close().await;
    Ok(answer?)
}

/// Starts a streamed answer over a fresh connection; a refusal closes the connection and is the
/// error. The caller closes the connection once the stream is over.
async fn open_stream<T, F, Fut>(
    global: &Global,
    start: F,
) -> Result<(Client, StreamReader<T>), CliError>
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = Result<StreamReader<T>, ClientError>>,
{
    let client = connect(global).await?;
    match start(client.clone()).await {
        Ok(stream) => Ok((client, stream)),
        Err(err) => {
            client.close().await;
            Err(err.into())
        }
    }
}

/// Start, stop or restart: the three commands take the same arguments.
async fn action(global: &Global, args: ActionArgs, op: Operation) -> CliResult {
    fleet::action(global, &args.agent, &args.container, op, args.output.json).await
}

/// Where a new password (or a registry's access token) comes from: the first line of stdin or
/// of a file, never an argument.
#[derive(Debug, Args)]
struct NewPassword {
    /// Read the password from the first line of stdin
    #[arg(long, value_parser = BoolishValueParser::new())]
    password_stdin: bool,
    /// Read the password from the first line of this file
    #[arg(long, value_name = "FILE", conflicts_with = "password_stdin")]
    password_file: Option<PathBuf>,
}

impl NewPassword {
    /// The password; without --password-stdin or --password-file, a usage error of `command`
    /// that says `missing`.
    fn read(&self, command: &[&str], missing: &str) -> Result<String, CliError> {
        if self.password_stdin {
            auth::read_password(std::io::stdin().lock(), "stdin")
        } else if let Some(path) = &self.password_file {
            auth::read_password_file(path)
        } else {
            usage_error(command, missing)
        }
    }
}

/// Exits with clap's usage error (code 2) for `command` (`["user", "add"]`): the message, then
/// that command's usage line rather than the whole tool's.
fn usage_error(command: &[&str], message: &str) -> ! {
    let mut cli = Cli::command();
    // Built, so a subcommand's usage line reads `zedops user add …`.
    cli.build();
    let mut cmd = &mut cli;
    for name in command {
        cmd = cmd
            .find_subcommand_mut(name)
            .expect("usage_error names a zedops command");
    }
    cmd.error(clap::error::ErrorKind::MissingRequiredArgument, message)
        .exit()
}

/// Runs a blocking store call (keyring, config file) off the async worker threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ClientError> + Send + 'static,
) -> Result<T, CliError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| CliError::new("INTERNAL", format!("a background task failed: {e}")))?
        .map_err(CliError::from)
}

/// The relay to talk to: `--relay`/`ZEDOPS_RELAY`, else the last login's.
async fn relay(global: &Global) -> Result<Option<String>, CliError> {
    if let Some(relay) = &global.relay {
        return Ok(Some(relay.clone()));
    }
    Ok(blocking(store::load_config).await?.relay)
}

fn env_token() -> Option<String> {
    // Trimmed as token files are: a value from an env file or `$(cat …)` may end in a newline.
    std::env::var(TOKEN_ENV)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// True when the token comes from `ZEDOPS_TOKEN` rather than the keyring.
fn token_from_env() -> bool {
    env_token().is_some()
}

/// The token for `relay`: `ZEDOPS_TOKEN`, else the keyring entry.
async fn token(relay: &str) -> Result<Option<String>, CliError> {
    if let Some(token) = env_token() {
        return Ok(Some(token));
    }
    let key = relay.to_string();
    blocking(move || store::load_token(&key)).await
}

/// Connects with the stored (or `ZEDOPS_TOKEN`) credentials.
async fn connect(global: &Global) -> Result<Client, CliError> {
    let relay = relay(global)
        .await?
        .ok_or(ClientError::NotLoggedIn { relay: None })?;
    let canonical = store::keyring_user(&relay)?;
    let token = token(&relay).await?.ok_or(ClientError::NotLoggedIn {
        relay: Some(canonical),
    })?;
    Ok(Client::connect(ConnectOptions {
        relay,
        token,
        ca_file: global.ca_file.clone(),
        insecure: global.insecure,
    })
    .await?)
}

/// Writes to stdout; a closed pipe (`zedops ps | head`) is not an error.
fn print_stdout(text: &str) -> CliResult {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::new(
            "OUTPUT_FAILED",
            format!("cannot write to stdout: {err}"),
        )),
        _ => Ok(()),
    }
}

/// Prints a protocol value as one line of JSON on stdout.
fn print_json(value: &impl serde::Serialize) -> CliResult {
    let mut text = table::json_for_terminal(
        &serde_json::to_string(value).expect("protocol types always serialise"),
    );
    text.push('\n');
    print_stdout(&text)
}

/// What a command that changes something prints: the answer as JSON when asked, and a note of
/// what was done on stderr either way (stdout stays pure JSON for scripts).
fn print_done(json: bool, answer: &impl serde::Serialize, note: String) -> CliResult {
    if json {
        print_json(answer)?;
    }
    eprintln!("{note}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_global_flags_anywhere_and_actions() {
        let cli = Cli::try_parse_from([
            "zedops",
            "stop",
            "--agent",
            "agent-1",
            "web",
            "--relay",
            "https://r",
            "--json",
        ])
        .unwrap();
        assert_eq!(cli.global.relay.as_deref(), Some("https://r"));
        let Command::Stop(args) = cli.command else {
            panic!("not stop")
        };
        assert_eq!(
            (
                args.agent.as_str(),
                args.container.as_str(),
                args.output.json
            ),
            ("agent-1", "web", true)
        );
        // A container is required; a missing one is a usage error (exit code 2).
        let err = Cli::try_parse_from(["zedops", "start", "--agent", "a"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn user_add_never_takes_a_password_argument() {
        // No password flag, and no role that does not exist.
        for line in [
            "zedops user add bob --role viewer --password p",
            "zedops user add bob --role root --password-stdin",
        ] {
            assert!(Cli::try_parse_from(line.split(' ')).is_err(), "{line}");
        }
        let cli = Cli::try_parse_from(["zedops", "user", "set-role", "bob", "operator"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::User {
                command: UserCommand::SetRole { .. }
            }
        ));
    }

    #[test]
    fn login_never_takes_a_password_flag() {
        assert!(
            Cli::try_parse_from(["zedops", "login", "--user", "u", "--password", "p"]).is_err()
        );
        let cli = Cli::try_parse_from([
            "zedops",
            "login",
            "--relay",
            "https://r",
            "--user",
            "u",
            "--password-stdin",
        ])
        .unwrap();
        assert!(matches!(cli.command, Command::Login(_)));
    }
}
