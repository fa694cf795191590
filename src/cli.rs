//! Command-line flags (clap derive). The doc comments are the help text.
//! Nothing past `config.rs` sees these types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// A cluster of small boards on one MQTT broker that elects a leader, mines
/// SHA-1 proof-of-work challenges with every core, votes on solutions with
/// signed messages and keeps an agreed, durable ledger.
#[derive(Debug, Parser)]
#[command(name = "edgeminer", version, propagate_version = true)]
pub struct Cli {
    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only warnings and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Log lines as readable text or as one JSON object per line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// No live progress line (`run` and `demo` draw one below the log
    /// when stderr is a terminal).
    #[arg(long, global = true)]
    pub no_progress: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a whole cluster in this process on an embedded broker, until a
    /// number of transactions are committed; print them and whether all
    /// nodes agree.
    Demo(DemoArgs),
    /// Run one node of a cluster.
    Run(Box<RunArgs>),
    /// Print the committed transactions of a node's ledger.
    Ledger(LedgerArgs),
    /// Re-check every committed entry (proof of work, certificates, and
    /// every signer against the roster in force at its height).
    Verify(StateArgs),
    /// Drop a stopped node's oldest transactions, keeping the last ones
    /// and a head that every later certificate still checks against.
    Prune(PruneArgs),
    /// Create the node's key in its state directory and print its id.
    Keygen(StateArgs),
    /// Write a cluster's genesis (its name, members, quorum, difficulty
    /// and admin key) and print the cluster id.
    Genesis(GenesisArgs),
    /// Show the roster in force, or ask the cluster to change it (signed
    /// with the admin key of the genesis).
    #[command(subcommand)]
    Roster(RosterCommand),
    /// Print the node id of the key in a state directory (a secured
    /// broker's username for that node), or of a key file.
    Id(IdArgs),
    /// Measure the mining engine.
    Bench(BenchArgs),
    /// Show a running cluster: its nodes, leader, open transaction and last
    /// commits, as an observer that never votes, mines or publishes.
    Status(StatusArgs),
    /// Check this board's setup and say in one screen what is wrong and
    /// what to do: clock, configuration, genesis and membership, state
    /// directory, key, TLS files, broker, thermal sensor, mining engine.
    Doctor(DoctorArgs),
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Nodes in the cluster.
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    /// Transactions to commit before stopping.
    #[arg(long, default_value_t = 5)]
    pub rounds: u64,
    /// Difficulty range in leading zero bits, A..B (or a single number).
    #[arg(long, default_value = "16..20")]
    pub difficulty: String,
    /// Use this broker (mqtt://host:port) instead of the embedded one.
    #[arg(long)]
    pub broker: Option<String>,
    /// Mining threads per node (default: cores divided among the nodes).
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The cluster's genesis file (written by `edgeminer genesis`; the same
    /// file on every board): its name, members, quorum and difficulty.
    #[arg(long, value_name = "FILE")]
    pub genesis: Option<PathBuf>,
    /// Directory for the key, the ledger and the vote state.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// Human-readable node name (default: the hostname).
    #[arg(long)]
    pub name: Option<String>,
    /// Mining threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// TOML configuration file; flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Temperature file for thermal care (millidegrees Celsius; default
    /// /sys/class/thermal/thermal_zone0/temp); refused if unreadable.
    #[arg(long, value_name = "FILE", conflicts_with = "no_thermal")]
    pub thermal_path: Option<PathBuf>,
    /// No thermal care: mine with every thread whatever the temperature.
    #[arg(long)]
    pub no_thermal: bool,
    /// Serve Prometheus metrics on http://ADDR/metrics (IP:PORT, such as
    /// 0.0.0.0:9848); off by default.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<String>,
    /// Flags of earlier versions, now fixed by the genesis: refused with
    /// a message that says so.
    #[command(flatten)]
    pub gone: GoneArgs,
}

/// Flags that earlier versions took and the genesis now fixes. Hidden;
/// given, they are refused with a message that says what replaced them.
#[derive(Debug, Clone, Default, Args)]
pub struct GoneArgs {
    #[arg(long, hide = true)]
    pub cluster: Option<String>,
    #[arg(long, hide = true)]
    pub nodes: Option<String>,
    #[arg(long, hide = true)]
    pub quorum: Option<String>,
    #[arg(long, hide = true)]
    pub difficulty: Option<String>,
    #[arg(long, hide = true)]
    pub ephemeral_key: bool,
}

/// How to reach the broker and log in: `run` and `status` share these.
#[derive(Debug, Clone, Default, Args)]
pub struct BrokerArgs {
    /// MQTT broker URL: mqtt://HOST[:1883], or mqtts://HOST[:8883] for TLS.
    #[arg(long = "broker", value_name = "URL")]
    pub url: Option<String>,
    /// CA certificate (PEM) that signed the broker's certificate; needed
    /// for mqtts://.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for a broker that asks for one; with
    /// --client-key.
    #[arg(long, value_name = "FILE")]
    pub client_cert: Option<PathBuf>,
    /// Private key (PEM) of --client-cert; refused if other users can read it.
    #[arg(long, value_name = "FILE")]
    pub client_key: Option<PathBuf>,
    /// File with `username = ...` and `password = ...` lines for the broker
    /// (for `status` a read-only login is enough); refused if other users
    /// can read it. (A password is never a flag.)
    #[arg(long, value_name = "FILE")]
    pub credentials_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The node's TOML configuration file.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/etc/edgeminer/config.toml"
    )]
    pub config: PathBuf,
    /// The node's state directory (default: the file's `state_dir`, else
    /// /var/lib/edgeminer, where the packaged service keeps it).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// The cluster's genesis file, instead of the configuration's.
    #[arg(long, value_name = "FILE")]
    pub genesis: Option<PathBuf>,
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// Seconds to wait for the broker's answer.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    pub timeout: f64,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The cluster's genesis file (as the nodes were given it).
    #[arg(long, value_name = "FILE")]
    pub genesis: Option<PathBuf>,
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// A node's TOML configuration file, for its genesis and broker
    /// settings; flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Seconds to collect the retained messages before printing once.
    #[arg(long, default_value_t = 2.0)]
    pub wait: f64,
    /// Keep a live view, redrawn every second, until Ctrl-C.
    #[arg(long)]
    pub watch: bool,
    /// Print JSON (one object; with --watch, one per line every second).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct GenesisArgs {
    /// The cluster's name (1 to 64 of A-Z a-z 0-9 _ -): the prefix of its
    /// MQTT topics.
    #[arg(long)]
    pub cluster: String,
    /// Difficulty range in leading zero bits, A..B (or a single number).
    #[arg(long)]
    pub difficulty: String,
    /// Approvals (and election votes) needed to commit; default: a
    /// majority of the members.
    #[arg(long)]
    pub quorum: Option<usize>,
    /// A member: its id (printed by `edgeminer keygen` on its board), and
    /// a name for logs and tables. Once per member.
    #[arg(long = "member", value_name = "ID[=NAME]", required = true)]
    pub members: Vec<String>,
    /// The admin key file that may sign roster changes later (created,
    /// owner-only, when it does not exist). Without one the roster is fixed
    /// for good.
    #[arg(long, value_name = "FILE")]
    pub admin_key: Option<PathBuf>,
    /// Continue the ledger of a cluster that lost its quorum for good: the
    /// state directory of a surviving node of it (see "Recovery" in
    /// docs/PROTOCOL.md).
    #[arg(long, value_name = "DIR")]
    pub continue_from: Option<PathBuf>,
    /// Where to write the genesis (never overwritten).
    #[arg(long, value_name = "FILE", default_value = "genesis.toml")]
    pub out: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum RosterCommand {
    /// Print the roster in force (as the members report it) and which
    /// members are online.
    Show(RosterArgs),
    /// Add members: each id (printed by `edgeminer keygen` on the new
    /// board) with an optional name.
    Add {
        #[arg(value_name = "ID[=NAME]", required = true)]
        members: Vec<String>,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Remove members (boards that died for good, say).
    Remove {
        #[arg(value_name = "ID", required = true)]
        members: Vec<String>,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Set the quorum.
    Quorum {
        #[arg(value_name = "Q", id = "new_quorum")]
        quorum: usize,
        #[command(flatten)]
        change: ChangeArgs,
    },
}

/// Where the cluster is: its genesis and its broker.
#[derive(Debug, Clone, Args)]
pub struct RosterArgs {
    /// The cluster's genesis file.
    #[arg(long, value_name = "FILE")]
    pub genesis: Option<PathBuf>,
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// A node's TOML configuration file, for its genesis and broker
    /// settings; flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Seconds to collect the members' reports before deciding.
    #[arg(long, default_value_t = 2.0)]
    pub settle: f64,
}

/// A roster change: where, signed by whom, and how long to wait for it.
#[derive(Debug, Clone, Args)]
pub struct ChangeArgs {
    #[command(flatten)]
    pub roster: RosterArgs,
    /// The admin key file named in the genesis.
    #[arg(long, value_name = "FILE")]
    pub admin_key: PathBuf,
    /// The quorum of the new roster (default: a majority of it when the
    /// quorum in force is a majority, else the quorum in force).
    #[arg(long)]
    pub quorum: Option<usize>,
    /// Seconds to wait for a transaction to commit the change.
    #[arg(long, default_value_t = 60.0)]
    pub wait: f64,
}

/// The format of the log on stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub struct LedgerArgs {
    #[arg(long)]
    pub state_dir: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    #[arg(long)]
    pub state_dir: PathBuf,
    /// Transactions to keep (the newest).
    #[arg(long)]
    pub keep: u64,
    /// Keep the whole old ledger under this name (a hard link on the same
    /// filesystem; check it with `verify` after copying it as `ledger.bin`
    /// into an empty directory).
    #[arg(long)]
    pub archive: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StateArgs {
    #[arg(long)]
    pub state_dir: PathBuf,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct IdArgs {
    /// The state directory whose `node.key` to read.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// A key file (such as the admin key of `edgeminer genesis`).
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Seconds to measure.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Print JSON (one object per measurement).
    #[arg(long)]
    pub json: bool,
    /// Engine to use (default: the fastest available).
    #[arg(long, conflicts_with = "all")]
    pub engine: Option<String>,
    /// Measure every engine this CPU runs, one after the other (with
    /// `--json`, one object per line).
    #[arg(long)]
    pub all: bool,
    /// Measure P-256 signing and verification on one core instead of
    /// mining: the protocol's cost per message on this board.
    #[arg(long, conflicts_with_all = ["all", "engine", "threads"])]
    pub signatures: bool,
    /// List the engines built in, which this CPU runs and which is chosen.
    #[arg(long)]
    pub list: bool,
}
