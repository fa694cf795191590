//! The `edgeminer` binary: flags to configuration, logging, and one call
//! into the library per subcommand. Errors are printed once, with their
//! chain of causes, and map to named exit codes.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;

use edgeminer::cli::{
    BenchArgs, ChangeArgs, Cli, Command, DemoArgs, DoctorArgs, Format, GenesisArgs, LedgerArgs,
    LogFormat, PruneArgs, RosterArgs, RosterCommand, StateArgs, StatusArgs,
};
use edgeminer::config::{self, NodeConfig};
use edgeminer::identity::Identity;
use edgeminer::pow::engine;
use edgeminer::progress::{Progress, Screen};
use edgeminer::protocol::{quorum, Genesis};
use edgeminer::{admin, bench, demo, genesis_file, logging, node, report, signals, status, store};

/// Exit codes with names.
mod exit {
    pub const OK: u8 = 0;
    /// The command failed (bad flags, broker unreachable, IO error, ...).
    pub const FAILURE: u8 = 1;
    /// `verify` found a bad entry, or `demo` saw the ledgers disagree.
    pub const INVALID: u8 = 2;
    /// `run`'s configuration (file or flags) is invalid, the state
    /// directory belongs to another cluster, the node is no member of its
    /// cluster's roster, the broker refused its login or certificates, or
    /// its metrics address cannot be served: `EX_CONFIG` of sysexits.h. Starting again
    /// cannot help, so the systemd unit does not
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
    // The doctor's findings say what its checks' log lines would; -v shows
    // them too.
    if !matches!(cli.command, Command::Doctor(_)) || cli.verbose > 0 {
        logging::init(&opts, screen.clone());
    }
    match run(cli, screen) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if json {
                // Every line of a JSON log is JSON, the last one too.
                tracing::error!("edgeminer: {e:#}");
            } else {
                // A closed or full stderr loses the line, not the exit code;
                // under journald it is an error entry.
                let priority = if opts.journald { "<3>" } else { "" };
                let _ = writeln!(std::io::stderr(), "{priority}edgeminer: {e:#}");
            }
            let config = e.downcast_ref::<BadConfig>().is_some()
                || e.downcast_ref::<node::NotAMember>().is_some()
                || e.chain()
                    .any(|c| c.downcast_ref::<node::Misconfigured>().is_some())
                || e.chain().any(|c| {
                    matches!(
                        c.downcast_ref::<store::ledger::LedgerError>(),
                        Some(
                            store::ledger::LedgerError::OtherCluster { .. }
                                | store::ledger::LedgerError::BadGenesis(..)
                        )
                    )
                });
            if config {
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
            let engine = engine::pick(None)?;
            // `signals::shutdown()` inside the runtime: it installs its handlers
            // at once.
            let redraw = screen.map(Progress::start);
            let outputs = node::Outputs {
                reports: None,
                progress: redraw.as_ref().map(Progress::board),
            };
            runtime()?
                .block_on(async { node::run(cfg, engine, signals::shutdown(), outputs).await })?;
            Ok(exit::OK)
        }
        Command::Demo(args) => demo(args, screen),
        Command::Ledger(args) => ledger(args),
        Command::Verify(args) => verify(args),
        Command::Prune(args) => prune(args),
        Command::Keygen(StateArgs { state_dir }) => {
            let id = Identity::create_new(&state_dir)
                .with_context(|| format!("creating a key in {}", state_dir.display()))?;
            println!("{}", id.id);
            Ok(exit::OK)
        }
        Command::Id(args) => {
            let id = match (&args.state_dir, &args.key_file) {
                (Some(dir), _) => Identity::load_existing(dir)
                    .with_context(|| format!("reading the node key in {}", dir.display()))?,
                (None, Some(file)) => Identity::load(file)
                    .with_context(|| format!("reading the key {}", file.display()))?,
                (None, None) => anyhow::bail!("give --state-dir DIR or --key-file FILE"),
            };
            println!("{}", id.id);
            Ok(exit::OK)
        }
        Command::Bench(args) => bench(args),
        Command::Status(args) => watch(args),
        Command::Doctor(args) => doctor(args),
        Command::Genesis(args) => genesis(args),
        Command::Roster(cmd) => roster(cmd),
    }
}

/// `edgeminer doctor`: the findings on stdout; exit 1 when one failed.
fn doctor(args: DoctorArgs) -> Result<u8> {
    let findings = runtime()?.block_on(edgeminer::doctor::run(&args));
    print!("{}", edgeminer::doctor::render(&findings));
    Ok(if edgeminer::doctor::failed(&findings) {
        exit::FAILURE
    } else {
        exit::OK
    })
}

/// `edgeminer genesis`: writes the file, prints the cluster id.
fn genesis(args: GenesisArgs) -> Result<u8> {
    let members = args
        .members
        .iter()
        .map(|m| genesis_file::parse_member(m))
        .collect::<Result<Vec<_>>>()?;
    let difficulty = config::parse_difficulty(&args.difficulty)?;
    let q = args
        .quorum
        .unwrap_or_else(|| quorum::majority(members.len()));
    let admin = match &args.admin_key {
        Some(path) if path.exists() => Identity::load(path)
            .with_context(|| format!("reading the admin key {}", path.display()))?,
        Some(path) => {
            let key = Identity::create_file(path)
                .with_context(|| format!("creating the admin key {}", path.display()))?;
            eprintln!(
                "genesis: created the admin key {} (id {}): keep it private and safe, it signs every roster change",
                path.display(),
                key.id
            );
            key
        }
        None => Identity::ephemeral(&mut rand_core::OsRng),
    };
    let parent = match &args.continue_from {
        Some(dir) => Some(continued(dir)?),
        None => None,
    };
    let admin_key = args.admin_key.as_ref().map(|_| admin.public);
    let g = Genesis::new(
        args.cluster.clone(),
        members,
        q,
        difficulty,
        admin_key,
        parent,
    )?;
    genesis_file::write_new(&args.out, &g)?;
    let n = g.members().len();
    tracing::info!(
        "genesis: wrote {}: cluster '{}', {n} member{}, quorum {}, difficulty {}..{}, {}",
        args.out.display(),
        g.cluster(),
        if n == 1 { "" } else { "s" },
        g.quorum(),
        difficulty.0,
        difficulty.1,
        match g.admin_id() {
            Some(id) => format!("roster changes signed by admin {id}"),
            None => "no admin (the roster is fixed)".to_string(),
        }
    );
    println!("{}", g.id());
    Ok(exit::OK)
}

/// The head of a surviving ledger, for a genesis that continues it.
fn continued(dir: &std::path::Path) -> Result<edgeminer::protocol::genesis::Parent> {
    let (g, h) = store::ledger::read(dir)
        .with_context(|| format!("reading the ledger in {}", dir.display()))?
        .with_context(|| format!("no ledger in {}", dir.display()))?;
    eprintln!(
        "genesis: continuing cluster '{}' ({}) after its tx {}",
        g.cluster(),
        g.id(),
        h.height()
    );
    Ok(edgeminer::protocol::genesis::Parent {
        cluster: g.id(),
        height: h.height(),
        head: h.prev(),
    })
}

fn roster(cmd: RosterCommand) -> Result<u8> {
    let secs = |s: f64, what: &str| {
        if s.is_finite() && (0.0..=3600.0).contains(&s) {
            Ok(std::time::Duration::from_secs_f64(s))
        } else {
            Err(anyhow::anyhow!("--{what} {s}: use 0 to 3600 seconds"))
        }
    };
    let open = |r: &RosterArgs| -> Result<(Genesis, config::BrokerSettings, std::time::Duration)> {
        let (g, b) =
            config::observer_settings(r.genesis.as_deref(), &r.broker, r.config.as_deref())?;
        Ok((g, b, secs(r.settle, "settle")?))
    };
    let (change, request) = match cmd {
        RosterCommand::Show(r) => {
            let (g, broker, settle) = open(&r)?;
            let timing = admin::Timing {
                settle,
                wait: std::time::Duration::ZERO,
            };
            runtime()?
                .block_on(async { admin::show(&g, &broker, timing, signals::shutdown()).await })?;
            return Ok(exit::OK);
        }
        RosterCommand::Add { members, change } => {
            let entries = members
                .iter()
                .map(|m| genesis_file::parse_member(m))
                .collect::<Result<Vec<_>>>()?;
            (change, admin::Request::Add(entries))
        }
        RosterCommand::Remove { members, change } => {
            let ids = members
                .iter()
                .map(|m| {
                    m.parse().map_err(|_| {
                        anyhow::anyhow!("member id '{m}': expected 16 lowercase hex characters")
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            (change, admin::Request::Remove(ids))
        }
        RosterCommand::Quorum { quorum, change } => (change, admin::Request::Quorum(quorum)),
    };
    let ChangeArgs {
        roster,
        admin_key,
        quorum,
        wait,
    } = change;
    let (g, broker, settle) = open(&roster)?;
    let key = admin::admin_key(&g, &admin_key)?;
    let timing = admin::Timing {
        settle,
        wait: secs(wait, "wait")?,
    };
    runtime()?.block_on(admin::change(&g, &broker, &key, request, quorum, timing))?;
    Ok(exit::OK)
}

fn watch(args: StatusArgs) -> Result<u8> {
    let (genesis, broker) = config::observer_settings(
        args.genesis.as_deref(),
        &args.broker,
        args.config.as_deref(),
    )?;
    if !(args.wait.is_finite() && (0.0..=600.0).contains(&args.wait)) {
        anyhow::bail!("--wait {}: use 0 to 600 seconds", args.wait);
    }
    let opts = status::Options {
        genesis,
        broker,
        wait: std::time::Duration::from_secs_f64(args.wait),
        watch: args.watch,
        json: args.json,
        terminal: std::io::stdout().is_terminal(),
    };
    runtime()?.block_on(async { status::run(opts, signals::shutdown()).await })?;
    Ok(exit::OK)
}

fn demo(args: DemoArgs, screen: Option<Arc<Screen>>) -> Result<u8> {
    let redraw = screen.map(Progress::start);
    let board = redraw.as_ref().map(Progress::board);
    let cfg = demo::DemoConfig {
        nodes: args.nodes,
        rounds: args.rounds.max(1),
        difficulty: config::parse_difficulty(&args.difficulty)?,
        broker: args.broker,
        threads: args.threads,
        progress: board.clone(),
    };
    // Commits print above the progress line; the cluster's line comes
    // before any node has drawn it.
    let show = |line| match (line, &board) {
        (demo::Line::Committed(text), Some(board)) => board.print_out(&text),
        (demo::Line::Cluster(text) | demo::Line::Committed(text), _) => println!("{text}"),
    };
    let engine = engine::pick(None)?;
    let outcome = runtime()?.block_on(demo::run(cfg, engine, show));
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
    let history = store::ledger::read(&args.state_dir)
        .with_context(|| format!("reading the ledger in {}", args.state_dir.display()))?
        .map(|(_, h)| h);
    if let Some(n @ 1..) = history.as_ref().map(|h| h.pruned()) {
        eprintln!("ledger: transactions 1..={n} were pruned from this ledger");
    }
    let commits = history.map(|h| h.commits).unwrap_or_default();
    match args.format {
        Format::Table => print!("{}", report::table(&commits, &HashMap::new())),
        Format::Csv => print!("{}", report::csv(&commits)),
        Format::Json => println!("{}", report::json(&commits)),
    }
    Ok(exit::OK)
}

fn prune(args: PruneArgs) -> Result<u8> {
    let dir = &args.state_dir;
    let done = store::prune::prune(dir, args.keep, args.archive.as_deref())
        .with_context(|| format!("pruning the ledger in {}", dir.display()))?;
    match done {
        None => println!(
            "prune: nothing to drop in {} (it holds no more than {} transactions after its base)",
            dir.display(),
            args.keep
        ),
        Some(p) => {
            println!(
                "prune: dropped transactions 1..={}, kept {}..={}; ledger.bin {} → {} bytes",
                p.upto,
                p.upto + 1,
                p.height,
                p.before,
                p.after
            );
            if let Some(a) = &p.archive {
                println!("prune: the whole old ledger is {}", a.display());
            }
        }
    }
    Ok(exit::OK)
}

fn verify(args: StateArgs) -> Result<u8> {
    match store::ledger::read(&args.state_dir) {
        Ok(None) => {
            println!(
                "verify: no ledger in {} (nothing to check)",
                args.state_dir.display()
            );
            Ok(exit::OK)
        }
        Ok(Some((genesis, history))) => {
            println!(
                "verify: {} transactions of cluster '{}' ({}) check (proof of work, election and approval certificates, every signer a member of the roster in force)",
                history.height() - history.pruned(),
                genesis.cluster(),
                genesis.id()
            );
            if history.pruned() > 0 {
                println!(
                    "verify: transactions 1..={} were pruned: the ledger holds {}..={}, checked from its base record (the head the pruned ones made, written by `edgeminer prune` from a ledger it checked whole)",
                    history.pruned(),
                    history.pruned() + 1,
                    history.height()
                );
            }
            if let Some(p) = genesis.parent() {
                println!(
                    "verify: this cluster continues cluster {} after its tx {} (head {})",
                    p.cluster,
                    p.height,
                    edgeminer::wire::hex(&p.head)
                );
            }
            for (c, r) in history
                .commits
                .iter()
                .filter(|c| c.change.is_some())
                .zip(history.rosters().iter().skip(1))
            {
                println!(
                    "verify: tx {} committed roster version {}: {} members, quorum {}",
                    c.tx,
                    r.version(),
                    r.len(),
                    r.quorum()
                );
            }
            let r = history.roster();
            println!(
                "verify: the roster in force: version {}, {} members, quorum {}",
                r.version(),
                r.len(),
                r.quorum()
            );
            let file = args.state_dir.join(store::records::LEDGER_FILE);
            let held = history.height() - history.pruned();
            if let (Ok(m), n @ 1..) = (std::fs::metadata(&file), held) {
                println!(
                    "verify: {} holds {} bytes, {} per transaction",
                    file.display(),
                    m.len(),
                    m.len() / n
                );
            }
            Ok(exit::OK)
        }
        Err(store::ledger::LedgerError::BadEntry { tx, reason }) => {
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
    if args.signatures {
        let report = bench::signatures::run(args.seconds.max(0.1));
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            print!("{}", report.to_text());
        }
        return Ok(exit::OK);
    }
    let engines = if args.all {
        engine::all()
    } else {
        vec![engine::pick(args.engine.as_deref())?]
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
