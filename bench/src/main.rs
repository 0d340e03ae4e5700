//! `zedops-bench`: measures ZedOps against the targets in BENCHMARKS.md. Each measurement puts
//! the thing measured and its baseline side by side in one run, because these machines are
//! shared and noisy. `scripts/bench` builds the release binaries and runs them all.

mod cluster;
mod console;
mod deploy;
mod events;
mod fake_peer;
mod footprint;
mod list;
mod process;
mod soak;
mod stats;
mod stats_load;
mod throughput;
mod update;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "zedops-bench", about = "ZedOps benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Listing N containers client → relay → agent → Docker vs straight through bollard.
    List {
        #[arg(long, default_value_t = 100)]
        containers: usize,
        #[arg(long, default_value_t = 200)]
        rounds: usize,
    },
    /// Create-and-start from a template (client → relay → agent) vs bollard create + start.
    Deploy {
        #[arg(long, default_value_t = 30)]
        rounds: usize,
    },
    /// `cat` of a file through `zedops exec` vs `docker exec` (farm-bench --vs), and the
    /// keystroke echo round trip of `zedops exec -it` vs `docker exec -it` under a pty.
    Console {
        /// The release `zedops` CLI.
        #[arg(long, default_value = "target/release/zedops")]
        zedops: PathBuf,
        /// Size of the file read, in MB (0: the keystroke echo alone).
        #[arg(long, default_value_t = 100)]
        megabytes: usize,
        /// Keystrokes timed in each session.
        #[arg(long, default_value_t = 200)]
        keys: usize,
        /// farm-bench runs of each command.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Downtime of one `zedops update` of a web server vs docker stop; rm; create + start.
    Update {
        #[arg(long, default_value_t = 10)]
        rounds: usize,
    },
    /// Docker event → subscribed client vs Docker's own event stream, side by side.
    Events {
        /// Start/kill cycles of 4 containers (3 events each per container).
        #[arg(long, default_value_t = 25)]
        cycles: usize,
        /// Also time, for each event, a list of that one container asked the moment Docker's
        /// stream delivers it (what the agent's push used to wait for), to attribute the delay.
        #[arg(long)]
        probe_list: bool,
    },
    /// The release agent's CPU and RSS while streaming the stats of N running containers.
    StatsLoad {
        #[arg(
            long,
            default_value = "target/x86_64-unknown-linux-musl/agent/zedops-agent"
        )]
        binary: PathBuf,
        #[arg(long, default_value_t = 50)]
        containers: usize,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
    /// The release agent binary: stripped size and idle RSS while connected to a relay.
    Agent {
        /// Path of the release `zedops-agent`.
        #[arg(
            long,
            default_value = "target/x86_64-unknown-linux-musl/agent/zedops-agent"
        )]
        binary: PathBuf,
    },
    /// The soak: the agent as shipped and the release relay with 50 running containers, an
    /// event a second and stats streamed one minute in ten; RSS of both every minute.
    Soak {
        #[arg(
            long,
            default_value = "target/x86_64-unknown-linux-musl/agent/zedops-agent"
        )]
        agent: PathBuf,
        #[arg(long, default_value = "target/release/zedops-relay")]
        relay: PathBuf,
        #[arg(long, default_value_t = 50)]
        containers: usize,
        /// Length of the soak; growth is measured from minute 10 to the last.
        #[arg(long, default_value_t = 60)]
        minutes: u64,
        /// Seconds in one minute of the schedule: 60 for the real soak, less to compress the
        /// schedule (samples, stats windows) for a quick check; events stay one a second.
        #[arg(long, default_value_t = 60)]
        minute_seconds: u64,
    },
    /// The release relay: RSS per idle agent connection.
    RelayMemory {
        #[arg(long, default_value = "target/release/zedops-relay")]
        binary: PathBuf,
        #[arg(long, default_value_t = 1000)]
        connections: usize,
    },
    /// Two release relays on one PostgreSQL and one NATS (issue 18): RSS per agent, requests/s
    /// through the cluster, and cross-relay vs same-relay request latency, in one run.
    Cluster {
        #[arg(long, default_value = "target/release/zedops-relay")]
        binary: PathBuf,
        /// Simulated agents, half on each relay (fewer for a quick run).
        #[arg(long, default_value_t = 10_000)]
        agents: usize,
        /// Timed requests on each path.
        #[arg(long, default_value_t = 1000)]
        rounds: usize,
        /// Seconds of pipelined load on each path.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// The release relay: routed requests per second.
    RelayThroughput {
        #[arg(long, default_value = "target/release/zedops-relay")]
        binary: PathBuf,
        /// Client connections sending requests.
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Agents answering them.
        #[arg(long, default_value_t = 4)]
        agents: usize,
        /// Requests each client keeps in flight.
        #[arg(long, default_value_t = 128)]
        window: usize,
        /// Seconds to measure.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::List { containers, rounds } => list::run(containers, rounds).await,
        Command::Deploy { rounds } => deploy::run(rounds).await,
        Command::Console {
            zedops,
            megabytes,
            keys,
            runs,
        } => console::run(&zedops, megabytes, keys, runs).await,
        Command::Update { rounds } => update::run(rounds).await,
        Command::Events { cycles, probe_list } => events::run(cycles, probe_list).await,
        Command::StatsLoad {
            binary,
            containers,
            seconds,
        } => stats_load::run(&binary, containers, seconds).await,
        Command::Soak {
            agent,
            relay,
            containers,
            minutes,
            minute_seconds,
        } => {
            soak::run(soak::Options {
                agent: &agent,
                relay: &relay,
                containers,
                minutes,
                minute_seconds,
            })
            .await
        }
        Command::Agent { binary } => footprint::agent(&binary).await,
        Command::RelayMemory {
            binary,
            connections,
        } => footprint::relay(&binary, connections).await,
        Command::Cluster {
            binary,
            agents,
            rounds,
            seconds,
        } => {
            cluster::run(cluster::Options {
                binary: &binary,
                agents,
                rounds,
                seconds,
            })
            .await
        }
        Command::RelayThroughput {
            binary,
            clients,
            agents,
            window,
            seconds,
        } => throughput::run(&binary, clients, agents, window, seconds).await,
    }
}
