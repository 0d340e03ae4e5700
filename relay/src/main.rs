//! `zedops-relay`: run the relay, and administer its database (users, registration tokens,
//! agents) from the same machine, also while the relay runs.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use zedops_protocol::{Role, payload::is_valid_name};
use zedops_relay::{Options, Server, Store, Timeouts};

#[derive(Parser)]
#[command(
    name = "zedops-relay",
    version,
    about = "ZedOps relay: connects admins to the agents on their servers"
)]
struct Cli {
    /// SQLite database: a file path or a sqlite:// URL [default: the platform data dir]
    #[arg(long, global = true, env = "ZEDOPS_DB")]
    db: Option<String>,
    /// PostgreSQL database shared by a cluster of relays, instead of SQLite:
    /// postgres://USER@HOST/DB. Give the password in PGPASSWORD or a pgpass file, or the whole
    /// URL in this variable or --database-file, never on the command line
    #[arg(
        long,
        global = true,
        env = "ZEDOPS_DATABASE_URL",
        conflicts_with = "db"
    )]
    database: Option<String>,
    /// A file holding the PostgreSQL URL (with its password, e.g. a systemd credential)
    #[arg(long, global = true, env = "ZEDOPS_DATABASE_FILE", conflicts_with_all = ["db", "database"])]
    database_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start; boxing `serve`'s flags would only make the code noisier.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the relay.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "ZEDOPS_LISTEN", default_value = "127.0.0.1:7878")]
        listen: SocketAddr,
        /// PEM certificate chain; serves wss:// and https:// with --tls-key.
        #[arg(long, env = "ZEDOPS_TLS_CERT", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key of --tls-cert.
        #[arg(long, env = "ZEDOPS_TLS_KEY", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Directory of agent binaries served at /download/agent/<os>-<arch> for /install.sh
        /// (zedops-agent-linux-x86_64, zedops-agent-linux-aarch64); hashed at start.
        #[arg(long, env = "ZEDOPS_DOWNLOADS")]
        downloads: Option<PathBuf>,
        /// URL servers reach this relay at, written into /install.sh [default: from each request's Host]
        #[arg(long, env = "ZEDOPS_PUBLIC_URL")]
        public_url: Option<String>,
        /// Sustained messages per second one client connection may send, with a burst of 256;
        /// over it: RATE_LIMITED, and a connection that keeps flooding is closed. 0: no limit
        #[arg(long, env = "ZEDOPS_MAX_MESSAGES_PER_SEC", default_value_t = zedops_relay::rate_limit::MESSAGES_PER_SEC)]
        max_messages_per_sec: u32,
        /// The same for one agent connection (Docker events, heartbeats; answers to the relay's
        /// requests do not count), with a burst of twice the rate. 0: no limit
        #[arg(long, env = "ZEDOPS_MAX_AGENT_MESSAGES_PER_SEC", default_value_t = zedops_relay::rate_limit::AGENT_MESSAGES_PER_SEC)]
        max_agent_messages_per_sec: u32,
        /// Requests one agent may have in flight from all clients together; more: RATE_LIMITED
        #[arg(long, env = "ZEDOPS_MAX_AGENT_REQUESTS", default_value_t = zedops_relay::rate_limit::AGENT_IN_FLIGHT as u32,
              value_parser = clap::value_parser!(u32).range(1..))]
        max_agent_requests: u32,
        #[command(flatten)]
        guards: GuardArgs,
        #[command(flatten)]
        console: zedops_relay::console_limits::ConsoleArgs,
        #[command(flatten)]
        nats: NatsArgs,
        /// On SIGTERM, how long requests in flight may take to finish before every connection
        /// is closed (agents and clients then reconnect, to another relay of a cluster)
        #[arg(long, env = "ZEDOPS_DRAIN_TIMEOUT", default_value = "10s", value_parser = positive_duration)]
        drain_timeout: Duration,
    },
    /// Copy this relay's SQLite database (users, sessions, tokens, agents, audit log,
    /// templates) into an empty PostgreSQL database, to move it into a cluster. Stop the relay
    /// first; the SQLite file is only read.
    Migrate {
        /// The SQLite database: sqlite:FILE or a path [default: --db or its default]
        #[arg(long)]
        from: Option<String>,
        /// The empty PostgreSQL database: postgres://USER@HOST/DB [default: --database,
        /// ZEDOPS_DATABASE_URL or --database-file]. No password here (see --database)
        #[arg(long)]
        to: Option<String>,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage registration tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Manage enrolled agents.
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
}

/// Joining a cluster of relays over NATS (`serve`); see docs/CLUSTER.md.
#[derive(clap::Args)]
struct NatsArgs {
    /// Join a cluster of relays through these NATS servers (nats://HOST:4222 or tls://…,
    /// comma-separated); the relays must share one PostgreSQL database (--database)
    #[arg(long = "nats", env = "ZEDOPS_NATS_URL", value_name = "URL[,URL…]")]
    urls: Option<String>,
    /// NATS credentials file (JWT and NKey seed) to authenticate with
    #[arg(long = "nats-creds", env = "ZEDOPS_NATS_CREDS", requires = "urls")]
    creds: Option<PathBuf>,
    /// PEM CA of the NATS servers' certificates (requires TLS to NATS)
    #[arg(long = "nats-ca", env = "ZEDOPS_NATS_CA", requires = "urls")]
    ca: Option<PathBuf>,
    /// PEM client certificate for NATS servers that verify clients (with --nats-key)
    #[arg(long = "nats-cert", env = "ZEDOPS_NATS_CERT", requires_all = ["urls", "nats_key"])]
    nats_cert: Option<PathBuf>,
    /// PEM private key of --nats-cert
    #[arg(long = "nats-key", env = "ZEDOPS_NATS_KEY", requires = "nats_cert")]
    nats_key: Option<PathBuf>,
}

impl NatsArgs {
    fn into_options(self) -> anyhow::Result<Option<zedops_relay::cluster::ClusterOptions>> {
        let Some(urls) = self.urls else {
            return Ok(None);
        };
        let from_env = std::env::var("ZEDOPS_NATS_URL").is_ok_and(|v| v == urls);
        let mut options = zedops_relay::cluster::ClusterOptions::from_urls(&urls, from_env)?;
        options.credentials = self.creds;
        options.ca = self.ca;
        options.client_cert = self.nats_cert.zip(self.nats_key);
        Ok(Some(options))
    }
}

/// Bounds on unauthenticated peers and device session lifetimes (`serve`).
#[derive(clap::Args)]
struct GuardArgs {
    /// Open connections at most (HTTP and WebSocket); lowered to what the descriptor limit allows
    #[arg(long, env = "ZEDOPS_MAX_CONNECTIONS", default_value_t = zedops_relay::accept::MAX_CONNECTIONS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_connections: usize,
    /// Open connections from one client address at most (trusted proxies are exempt)
    #[arg(long, env = "ZEDOPS_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = zedops_relay::accept::MAX_CONNECTIONS_PER_ADDRESS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_connections_per_address: usize,
    /// Time a peer has for the TLS handshake and each request's headers; also how long an HTTP
    /// connection may sit idle between requests
    #[arg(long, env = "ZEDOPS_HEADER_TIMEOUT", default_value = "15s", value_parser = positive_duration)]
    header_timeout: Duration,
    /// Time a request has to arrive whole and be answered (WebSockets are not limited by it)
    #[arg(long, env = "ZEDOPS_REQUEST_TIMEOUT", default_value = "30s", value_parser = positive_duration)]
    request_timeout: Duration,
    /// Time a write to a peer may make no progress (it stopped reading) before its connection
    /// is closed
    #[arg(long, env = "ZEDOPS_SEND_TIMEOUT", default_value = "60s", value_parser = positive_duration)]
    send_timeout: Duration,
    /// A reverse proxy (address or CIDR) whose Forwarded / X-Forwarded-For header names the
    /// client's address for login limits; repeat, or separate with commas in the variable
    #[arg(long = "trusted-proxy", env = "ZEDOPS_TRUSTED_PROXY", value_delimiter = ',', value_parser = parse_cidr)]
    trusted_proxies: Vec<ipnet::IpNet>,
    /// Passwords checked at once at most; more logins are refused with 503 and Retry-After
    /// [default: twice the cores]
    #[arg(long, env = "ZEDOPS_MAX_LOGIN_CHECKS", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_login_checks: Option<usize>,
    /// A device session unused this long ends; the user logs in again
    #[arg(long, env = "ZEDOPS_SESSION_IDLE_TIMEOUT", default_value = "30days", value_parser = positive_duration)]
    session_idle_timeout: Duration,
    /// A device session ends this long after login, however much it is used
    #[arg(long, env = "ZEDOPS_SESSION_MAX_AGE", default_value = "90days", value_parser = positive_duration)]
    session_max_age: Duration,
}

impl GuardArgs {
    fn into_guards(self) -> zedops_relay::Guards {
        zedops_relay::Guards {
            connections: zedops_relay::accept::ConnectionLimits {
                max: self.max_connections,
                per_address: self.max_connections_per_address,
                header_timeout: self.header_timeout,
                request_timeout: self.request_timeout,
                send_timeout: self.send_timeout,
                trusted_proxies: self.trusted_proxies,
            },
            max_login_checks: self
                .max_login_checks
                .unwrap_or_else(zedops_relay::login_limit::default_max_checks),
            sessions: zedops_relay::store::SessionLifetimes {
                idle: self.session_idle_timeout,
                max_age: self.session_max_age,
            },
        }
    }
}

/// A duration such as `15s` or `30days`, more than zero.
fn positive_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => Err("must be more than zero".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("{e} (e.g. 15s, 10m, 30days)")),
    }
}

/// `10.0.0.0/8`, `2001:db8::/32`, or a single address.
fn parse_cidr(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{s:?} is not an address or CIDR block (e.g. 10.0.0.0/8)"))
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user. The password is read from stdin (one line) or a file, never from a flag.
    Add {
        name: String,
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Read the password from standard input.
        #[arg(long, conflicts_with = "password_file")]
        password_stdin: bool,
        /// Read the password from this file.
        #[arg(long, env = "ZEDOPS_PASSWORD_FILE")]
        password_file: Option<PathBuf>,
    },
    /// Give a user a new password (read from stdin or a file) and end the user's device
    /// sessions; works while the relay runs, which closes their connections within a second.
    SetPassword {
        name: String,
        /// Read the password from standard input.
        #[arg(long, conflicts_with = "password_file")]
        password_stdin: bool,
        /// Read the password from this file.
        #[arg(long, env = "ZEDOPS_PASSWORD_FILE")]
        password_file: Option<PathBuf>,
    },
}

/// `token create --ttl`: from 1 second to 30 days, as the relay's API takes it.
fn token_ttl(text: &str) -> Result<Duration, String> {
    let ttl = humantime::parse_duration(text).map_err(|e| format!("{text:?}: {e}"))?;
    zedops_protocol::check_token_ttl(ttl)?;
    Ok(ttl)
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a new single-use registration token, alone on stdout.
    Create {
        /// How long the token stays valid (e.g. 15m, 1h, 2d; at most 30 days).
        #[arg(long, default_value = "15m", value_parser = token_ttl)]
        ttl: Duration,
        /// Print the one-line command that enrols a server with the token, instead of the token.
        #[arg(long)]
        install_command: bool,
        /// URL servers reach this relay at, for --install-command (e.g. https://relay.example.com).
        #[arg(long, env = "ZEDOPS_PUBLIC_URL", requires = "install_command")]
        public_url: Option<String>,
    },
}

#[derive(Subcommand)]
enum AgentCommand {
    /// List enrolled agents.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke an agent by name or id: its token stops working.
    Revoke { name_or_id: String },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("{s:?} is not a role: use admin, operator or viewer"))
}

/// A PostgreSQL URL given on the command line must hold no password (other users of the
/// machine can read a command line); one from the environment variable `env` may.
fn from_command_line_or_env(url: String, env: &str) -> anyhow::Result<String> {
    let from_env = !env.is_empty() && std::env::var(env).is_ok_and(|v| v == url);
    if !from_env && has_password(&url) {
        bail!(
            "a database password on the command line is visible to every user of this machine: \
             put it in PGPASSWORD or a pgpass file, or the whole URL in ZEDOPS_DATABASE_URL or --database-file"
        );
    }
    Ok(url)
}

/// Whether a postgres:// URL carries a password (`user:password@` or `password=`).
fn has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let user_info = authority.rsplit_once('@').map(|(info, _)| info);
    user_info.is_some_and(|info| info.contains(':'))
        || rest
            .split_once('?')
            .is_some_and(|(_, query)| query.split('&').any(|p| p.starts_with("password=")))
}

/// `zedops-relay migrate`: opens both (bringing the PostgreSQL schema up to date) and copies.
async fn migrate(from: String, to: String) -> anyhow::Result<()> {
    if zedops_relay::store::is_postgres(&from) {
        bail!("--from must be the SQLite database (sqlite:FILE or a path)");
    }
    let path = from.strip_prefix("sqlite:").unwrap_or(&from);
    let path = path.strip_prefix("//").unwrap_or(path);
    if !std::path::Path::new(path).exists() {
        bail!("no SQLite database at {path}; name it with --from sqlite:FILE");
    }
    let source = Store::open(&from)
        .await
        .with_context(|| format!("opening {from}"))?;
    let shown = zedops_relay::store::redacted(&to);
    let target = Store::open(&to)
        .await
        .with_context(|| format!("opening {shown}"))?;
    let copied = zedops_relay::store::copy::copy(&source, &target).await;
    source.close().await;
    target.close().await;
    let copied = copied?;
    for (table, rows) in &copied {
        eprintln!("{table}: {rows} rows");
    }
    eprintln!(
        "copied {from} into {shown}; start the relays with --database (or ZEDOPS_DATABASE_URL)"
    );
    Ok(())
}

/// Runs `work` on the database `db`, then closes the database whatever `work` returned, before
/// the command prints anything (a closed stdout ends the process at once): its last SQLite
/// connection folds the WAL into the database file instead of being cut off by the exit, which
/// left `relay.db-wal` and `relay.db-shm` beside the file after most commands.
async fn with_store<T>(
    db: &str,
    work: impl AsyncFnOnce(&Store) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let store = Store::open(db).await?;
    let result = work(&store).await;
    store.close().await;
    result
}

fn default_db() -> anyhow::Result<String> {
    let dirs = directories::ProjectDirs::from("", "", "zedops-relay")
        .context("no home directory to keep the database in; pass --db")?;
    Ok(dirs.data_dir().join("relay.db").display().to_string())
}

fn read_password(stdin: bool, file: Option<PathBuf>) -> anyhow::Result<String> {
    let password = match (stdin, file) {
        (_, Some(path)) => {
            std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?
        }
        (true, None) => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line
        }
        (false, None) => bail!("give the password with --password-stdin or --password-file"),
    };
    let password = password.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        bail!("the password is empty");
    }
    Ok(password)
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colours for a person at a terminal; none in journald, files and pipes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Err(e) = run(Cli::parse()).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let postgres = match (cli.database_file, cli.database) {
        (Some(file), _) => Some(
            std::fs::read_to_string(&file)
                .with_context(|| format!("reading the database URL from {}", file.display()))?
                .trim()
                .to_string(),
        ),
        (None, Some(url)) => Some(from_command_line_or_env(url, "ZEDOPS_DATABASE_URL")?),
        (None, None) => None,
    };
    if let Some(url) = &postgres
        && !zedops_relay::store::is_postgres(url)
    {
        bail!(
            "the database URL must start with postgres:// or postgresql:// (got {}); for SQLite use --db FILE",
            zedops_relay::store::redacted(url)
        );
    }
    let sqlite = match cli.db {
        Some(db) => db,
        None => default_db()?,
    };
    if let Command::Migrate { from, to } = cli.command {
        let to = match to {
            Some(url) => from_command_line_or_env(url, "")?,
            None => postgres.context(
                "name the PostgreSQL database to copy into: --to postgres://USER@HOST/DB or ZEDOPS_DATABASE_URL",
            )?,
        };
        return migrate(from.unwrap_or(sqlite), to).await;
    }
    let db = postgres.unwrap_or(sqlite);
    match cli.command {
        Command::Migrate { .. } => unreachable!("handled above"),
        Command::Serve {
            listen,
            tls_cert,
            tls_key,
            downloads,
            public_url,
            max_messages_per_sec,
            max_agent_messages_per_sec,
            max_agent_requests,
            guards,
            console,
            nats,
            drain_timeout,
        } => {
            let cluster = nats.into_options()?;
            if cluster.is_some() && !zedops_relay::store::is_postgres(&db) {
                bail!(
                    "relays in a cluster (--nats) must share a PostgreSQL database: add --database postgres://…"
                );
            }
            match zedops_relay::accept::raise_descriptor_limit() {
                Some(limit) => tracing::info!(descriptors = limit, "descriptor limit"),
                None => tracing::warn!("could not read or raise the descriptor limit"),
            }
            let tls = tls_cert.zip(tls_key);
            let limits = zedops_relay::Limits {
                messages_per_sec: max_messages_per_sec,
                agent_messages_per_sec: max_agent_messages_per_sec,
                agent_message_burst: max_agent_messages_per_sec.saturating_mul(2),
                agent_in_flight: max_agent_requests as usize,
                console: console.into_limits(),
                ..Default::default()
            };
            if max_messages_per_sec == 0 || max_agent_messages_per_sec == 0 {
                tracing::warn!(
                    "a per-connection message rate limit is off (--max-messages-per-sec or --max-agent-messages-per-sec 0)"
                );
            }
            let installer = zedops_relay::download::InstallerOptions {
                downloads,
                public_url,
            };
            let shutdown = shutdown_signal().context("installing the SIGTERM handler")?;
            let server = Server::new_with(
                Options {
                    listen,
                    db,
                    tls,
                    timeouts: Timeouts::default(),
                    installer,
                    limits,
                },
                guards.into_guards(),
            )
            .await?;
            if let Some(cluster) = &cluster {
                server.join_cluster(cluster).await?;
            }
            let handle = server.drain_handle();
            tokio::spawn(async move {
                shutdown.await;
                tracing::info!("shutting down (SIGTERM or Ctrl-C): draining first");
                handle.drain(drain_timeout).await;
            });
            server.listen().await
        }
        Command::User {
            command:
                UserCommand::Add {
                    name,
                    role,
                    password_stdin,
                    password_file,
                },
        } => {
            if !is_valid_name(&name) {
                bail!("{name:?} is not a valid user name: use 1 to 64 of A-Z a-z 0-9 . _ -");
            }
            let password = read_password(password_stdin, password_file)?;
            with_store(&db, async |store| {
                Ok(store.add_user(&name, &password, role).await?)
            })
            .await?;
            eprintln!("created {role} {name}");
            Ok(())
        }
        Command::User {
            command:
                UserCommand::SetPassword {
                    name,
                    password_stdin,
                    password_file,
                },
        } => {
            let password = read_password(password_stdin, password_file)?;
            let ended = with_store(&db, async |store| {
                let ended = match store.set_password(&name, &password, None).await {
                    Ok(ended) => ended,
                    Err(zedops_relay::store::StoreError::NoSuchUser(_)) => bail!(
                        "there is no user named {name:?}; create one with `zedops-relay user add {name} --role admin --password-stdin`"
                    ),
                    Err(e) => return Err(e.into()),
                };
                // Written from outside the relay's process: the audit names no session, only
                // the command, and never the password.
                store
                    .audit(zedops_relay::store::AuditEntry {
                        user: Some("zedops-relay (local)"),
                        operation: zedops_protocol::subject::USER_PASSWORD,
                        result: "ok",
                        target: Some(&name),
                        detail: Some(&format!("{} session(s) ended", ended.len())),
                        ..Default::default()
                    })
                    .await?;
                Ok(ended)
            })
            .await?;
            eprintln!(
                "set a new password for {name}; ended {} device session(s) of theirs (they sign in again)",
                ended.len()
            );
            Ok(())
        }
        Command::Token {
            command:
                TokenCommand::Create {
                    ttl,
                    install_command,
                    public_url,
                },
        } => {
            // Check the URL before a token is spent on a command that cannot work.
            let public_url = match (install_command, public_url) {
                (false, _) => None,
                (true, Some(url)) => Some(
                    zedops_relay::download::check_public_url(&url).map_err(anyhow::Error::msg)?,
                ),
                (true, None) => bail!(
                    "--install-command needs the address servers reach this relay at: pass --public-url \
                     https://relay.example.com or set ZEDOPS_PUBLIC_URL"
                ),
            };
            let token = with_store(&db, async |store| {
                Ok(store.create_registration_token(ttl).await?)
            })
            .await?;
            match public_url {
                Some(url) => {
                    if url.starts_with("http://") {
                        eprintln!(
                            "warning: {url} is plaintext http; servers other than this one refuse it unless \
                             --insecure is added to the command (tokens then cross the network unencrypted)"
                        );
                    }
                    eprintln!(
                        "paste this on the server to enrol it, as root or a user who may use sudo (the token is single-use, valid {}):",
                        humantime::format_duration(ttl)
                    );
                    out(&format!(
                        "{}\n",
                        zedops_relay::download::install_command(&url, &token)
                    ));
                }
                None => out(&format!("{token}\n")),
            }
            Ok(())
        }
        Command::Agent {
            command: AgentCommand::List { json },
        } => {
            let agents = with_store(&db, async |store| Ok(store.agents().await?)).await?;
            if json {
                let list: Vec<_> = agents
                    .iter()
                    .map(|a| {
                        serde_json::json!({
                            "id": a.id, "name": a.name,
                            "lastSeen": a.last_seen.map(zedops_relay::time::rfc3339), "info": a.info,
                        })
                    })
                    .collect();
                out(&format!(
                    "{}\n",
                    serde_json::json!({ "agents": list, "count": list.len() })
                ));
            } else {
                let mut text = format!("{:<24} {:<36} LAST SEEN\n", "NAME", "ID");
                for a in agents {
                    let seen = a
                        .last_seen
                        .map(zedops_relay::time::rfc3339)
                        .unwrap_or_else(|| "never".into());
                    text.push_str(&format!("{:<24} {:<36} {seen}\n", a.name, a.id));
                }
                out(&text);
            }
            Ok(())
        }
        Command::Agent {
            command: AgentCommand::Revoke { name_or_id },
        } => {
            let agent = with_store(&db, async |store| {
                Ok(store.revoke_agent(&name_or_id).await?)
            })
            .await?;
            eprintln!("revoked agent {} ({})", agent.name, agent.id);
            Ok(())
        }
    }
}

/// Writes to stdout. A reader that went away (`zedops-relay token create | head -c0`) ends the
/// program quietly with the status a shell gives a command killed by SIGPIPE, like other Unix
/// tools, instead of a panic; any other write error is reported.
fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(141),
        Err(e) => {
            eprintln!("error: cannot write to standard output: {e}");
            std::process::exit(1);
        }
    }
}

/// Installs the SIGTERM and Ctrl-C handlers at once and returns the wait for either. Installed
/// before the port opens: a SIGTERM sent as soon as the relay listens (a service manager, a test)
/// then drains it instead of killing it with the default action.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
