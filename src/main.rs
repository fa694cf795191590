//! The `edgeminer` binary: flags to configuration, logging, and one call
//! into the library per subcommand. Errors are printed once, with their
//! chain of causes, and map to named exit codes.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;

use edgeminer::cli::{
    BenchArgs, Cli, Command, DemoArgs, Format, LedgerArgs, LogFormat, StateArgs, StatusArgs,
};
use edgeminer::config::{self, NodeConfig};
use edgeminer::identity::Identity;
use edgeminer::progress::{Progress, Screen};
use edgeminer::{bench, chain, demo, logging, node, report, status};

/// Exit codes with names.
mod exit {
    pub const OK: u8 = 0;
    /// The command failed (bad flags, broker unreachable, IO error, ...).
    pub const FAILURE: u8 = 1;
    /// `verify` found a bad entry, or `demo` saw the ledgers disagree.
    pub const INVALID: u8 = 2;
    /// `run`'s configuration (file or flags) is invalid: `EX_CONFIG` of
    /// sysexits.h. Starting again cannot help, so the systemd unit does not
    /// (`RestartPreventExitStatus=78`).
    pub const CONFIG: u8 = 78;
}

/// Marks an error as the configuration's (exit code [`exit::CONFIG`]).
#[derive(Debug)]
struct BadConfig;

impl std::fmt::Display for BadConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("invalid configuration")
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.log_format == LogFormat::Json;
    let opts =
        logging::Options::detect(logging::Verbosity::from_flags(cli.quiet, cli.verbose), json);
    // A progress line for the commands that mine, on a terminal.
    let mines = matches!(cli.command, Command::Run(_) | Command::Demo(_));
    let screen = (mines && opts.progress() && !cli.no_progress).then(Screen::new);
    logging::init(&opts, screen.clone());
    match run(cli, screen) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if json {
                // Every line of a JSON log is JSON, the last one too.
                tracing::error!("edgeminer: {e:#}");
            } else {
                eprintln!("edgeminer: {e:#}");
            }
            if e.downcast_ref::<BadConfig>().is_some() {
                ExitCode::from(exit::CONFIG)
            } else {
                ExitCode::from(exit::FAILURE)
            }
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run(cli: Cli, screen: Option<Arc<Screen>>) -> Result<u8> {
    if cfg!(feature = "sim-hash-signatures") {
        anyhow::bail!(
            "this binary was built with the `sim-hash-signatures` feature, whose \
             signatures anyone can forge; rebuild it without that feature"
        );
    }
    match cli.command {
        Command::Run(args) => {
            let cfg = NodeConfig::from_args(&args).context(BadConfig)?;
            let engine = node::pick_engine(None)?;
            // `signals()` inside the runtime: it installs its handlers at once.
            let redraw = screen.map(Progress::start);
            let outputs = node::Outputs {
                reports: None,
                progress: redraw.as_ref().map(Progress::board),
            };
            runtime()?
                .block_on(async { node::run(cfg, engine, node::signals(), outputs).await })?;
            Ok(exit::OK)
        }
        Command::Demo(args) => demo(args, screen),
        Command::Ledger(args) => ledger(args),
        Command::Verify(args) => verify(args),
        Command::Keygen(StateArgs { state_dir }) => {
            let id = Identity::create_new(&state_dir)
                .with_context(|| format!("creating a key in {}", state_dir.display()))?;
            println!("{}", id.id);
            Ok(exit::OK)
        }
        Command::Id(StateArgs { state_dir }) => {
            let id = Identity::load_existing(&state_dir)
                .with_context(|| format!("reading the node key in {}", state_dir.display()))?;
            println!("{}", id.id);
            Ok(exit::OK)
        }
        Command::Bench(args) => bench(args),
        Command::Status(args) => watch(args),
    }
}

fn watch(args: StatusArgs) -> Result<u8> {
    let (cluster, broker) = config::observer_settings(&args)?;
    if !(args.wait.is_finite() && (0.0..=600.0).contains(&args.wait)) {
        anyhow::bail!("--wait {}: use 0 to 600 seconds", args.wait);
    }
    let opts = status::Options {
        cluster,
        broker,
        wait: std::time::Duration::from_secs_f64(args.wait),
        watch: args.watch,
        json: args.json,
        terminal: std::io::stdout().is_terminal(),
    };
    runtime()?.block_on(async { status::run(opts, node::signals()).await })?;
    Ok(exit::OK)
}

fn demo(args: DemoArgs, screen: Option<Arc<Screen>>) -> Result<u8> {
    let redraw = screen.map(Progress::start);
    let cfg = demo::DemoConfig {
        nodes: args.nodes,
        rounds: args.rounds.max(1),
        difficulty: config::parse_difficulty(&args.difficulty)?,
        broker: args.broker,
        threads: args.threads,
        progress: redraw.as_ref().map(Progress::board),
    };
    let engine = node::pick_engine(None)?;
    let outcome = runtime()?.block_on(demo::run(cfg, engine));
    // The line goes before the table is printed.
    drop(redraw);
    let outcome = outcome?;
    print!("{}", outcome.table);
    println!("{}", outcome.summary);
    Ok(if outcome.agree {
        exit::OK
    } else {
        exit::INVALID
    })
}

fn ledger(args: LedgerArgs) -> Result<u8> {
    let commits = chain::read(&args.state_dir)
        .with_context(|| format!("reading the ledger in {}", args.state_dir.display()))?
        .map(|(_, c)| c)
        .unwrap_or_default();
    match args.format {
        Format::Table => print!("{}", report::table(&commits, &HashMap::new())),
        Format::Csv => print!("{}", report::csv(&commits)),
        Format::Json => println!("{}", report::json(&commits)),
    }
    Ok(exit::OK)
}

fn verify(args: StateArgs) -> Result<u8> {
    match chain::read(&args.state_dir) {
        Ok(None) => {
            println!(
                "verify: no ledger in {} (nothing to check)",
                args.state_dir.display()
            );
            Ok(exit::OK)
        }
        Ok(Some((meta, commits))) => {
            println!(
                "verify: {} transactions of cluster '{}' check (proof of work, election and approval certificates)",
                commits.len(),
                meta.cluster
            );
            Ok(exit::OK)
        }
        Err(chain::ChainError::BadEntry { tx, reason }) => {
            println!("verify: transaction {tx} is invalid: {reason}");
            Ok(exit::INVALID)
        }
        Err(e) => {
            Err(e).with_context(|| format!("reading the ledger in {}", args.state_dir.display()))
        }
    }
}

fn bench(args: BenchArgs) -> Result<u8> {
    if args.list {
        print!("{}", bench::list());
        return Ok(exit::OK);
    }
    let engines = if args.all {
        edgeminer::pow::engine::all()
    } else {
        vec![node::pick_engine(args.engine.as_deref())?]
    };
    let threads = args.threads.unwrap_or_else(num_cpus::get).max(1);
    let seconds = if args.seconds > 0.0 {
        args.seconds
    } else {
        1.0
    };
    for (i, engine) in engines.into_iter().enumerate() {
        let report = bench::run(threads, seconds, engine);
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            if i > 0 {
                println!();
            }
            print!("{}", report.to_text());
        }
    }
    Ok(exit::OK)
}
