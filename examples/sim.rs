//! Runs the deterministic cluster simulation over many seeds (a soak), or
//! replays one seed with a trace.
//!
//! ```text
//! cargo run --release --example sim -- --seeds 100000
//! cargo run --release --example sim -- --seed 42 --faults 0,3 --trace
//! cargo run --release --example sim -- --seeds 1000 --storm
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use clap::Parser;
use edgeminer::sim::{self, Options};

#[derive(Parser)]
#[command(about = "Deterministic simulation of an edgeminer cluster under faults")]
struct Args {
    /// How many seeds to run (from --start).
    #[arg(long, default_value_t = 1000)]
    seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// Run only this seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Keep only these faults of the seed's plan (comma-separated indexes).
    #[arg(long, value_delimiter = ',')]
    faults: Option<Vec<usize>>,
    /// Print the trace of the run (with --seed).
    #[arg(long)]
    trace: bool,
    /// Print events as they happen, with the nodes' logs (RUST_LOG, default
    /// info) in between.
    #[arg(long)]
    live: bool,
    /// Cluster size (default: drawn from the seed, 3 to 15).
    #[arg(long)]
    nodes: Option<usize>,
    /// Quorum (default: a majority).
    #[arg(long)]
    quorum: Option<usize>,
    /// Run without faults.
    #[arg(long)]
    no_faults: bool,
    /// Run restart storms instead of the drawn faults: a member crashes and
    /// starts again every 2 to 4 s for two minutes of virtual time, with
    /// the daemon's timeouts, and no gap between commits may last longer
    /// than three election timeouts (needs a quorum below the cluster size).
    #[arg(long, conflicts_with = "no_faults")]
    storm: bool,
    /// Give up after this many steps per seed (for up to 16 nodes; more
    /// in proportion to N² for larger clusters).
    #[arg(long, default_value_t = 2_000_000)]
    max_steps: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    jobs: Option<usize>,
}

fn main() {
    let args = Args::parse();
    if args.live {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "edgeminer=info".into()),
            )
            .with_writer(std::io::stderr)
            .without_time()
            .with_target(false)
            .init();
    }
    let opt = Options {
        nodes: args.nodes,
        quorum: args.quorum,
        faults: !args.no_faults,
        storm: args.storm,
        keep: args.faults.clone(),
        trace: args.trace,
        live: args.live,
        max_steps: args.max_steps,
        ..Options::default()
    };
    if let Some(seed) = args.seed {
        let o = sim::run(seed, &opt);
        print!("{}", o.report(usize::MAX));
        println!(
            "{} steps, {} commits, {} ms virtual, faults over at {} ms, recovery {:?} ms{}",
            o.steps,
            o.commits,
            o.end_ms,
            o.heal_ms,
            o.recovery_ms,
            o.longest_gap_ms
                .map(|g| format!(", longest gap between commits in the storm {g} ms"))
                .unwrap_or_default()
        );
        std::process::exit(i32::from(o.violation.is_some()));
    }
    let jobs = args.jobs.unwrap_or_else(num_cpus::get).max(1);
    let next = AtomicU64::new(args.start);
    let end = args.start + args.seeds;
    let stop = AtomicBool::new(false);
    let totals = Mutex::new(Totals::default());
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= end || stop.load(Ordering::Relaxed) {
                    return;
                }
                // A panic in a node is a failure like any other: name its seed.
                let o = match std::panic::catch_unwind(|| sim::run(seed, &opt)) {
                    Ok(o) => o,
                    Err(_) => {
                        stop.store(true, Ordering::Relaxed);
                        eprintln!("FAILED: seed {seed} panicked (replay: --seed {seed} --live)");
                        totals
                            .lock()
                            .expect("no worker panics while holding the lock")
                            .violations += 1;
                        return;
                    }
                };
                let mut t = totals
                    .lock()
                    .expect("no worker panics while holding the lock");
                t.add(&o);
                if o.violation.is_some() {
                    stop.store(true, Ordering::Relaxed);
                    drop(t);
                    let small = sim::shrink(&o, &opt);
                    eprintln!("FAILED\n{}", small.report(400));
                    return;
                }
                if t.runs % 1000 == 0 {
                    eprintln!(
                        "{} seeds, {} steps, {} commits, {} faults, {:.0} s",
                        t.runs,
                        t.steps,
                        t.commits,
                        t.faults,
                        started.elapsed().as_secs_f64()
                    );
                }
            });
        }
    });
    let t = totals.into_inner().expect("the workers have finished");
    println!(
        "{} seeds, {} violations, {} steps, {} commits ({} after voting round 0), {} faults; recovery after faults: mean {} ms, max {} ms (seed {}); {:.1} s",
        t.runs,
        t.violations,
        t.steps,
        t.commits,
        t.late_commits,
        t.faults,
        t.recovery_sum / t.recovered.max(1),
        t.recovery_max,
        t.recovery_max_seed,
        started.elapsed().as_secs_f64()
    );
    if args.storm {
        println!(
            "restart storms: longest gap between commits {} ms (seed {})",
            t.gap_max, t.gap_max_seed
        );
    }
    std::process::exit(i32::from(t.violations > 0));
}

#[derive(Default)]
struct Totals {
    runs: u64,
    violations: u64,
    steps: u64,
    commits: u64,
    late_commits: u64,
    faults: u64,
    recovered: u64,
    recovery_sum: u64,
    recovery_max: u64,
    recovery_max_seed: u64,
    gap_max: u64,
    gap_max_seed: u64,
}

impl Totals {
    fn add(&mut self, o: &sim::Outcome) {
        self.runs += 1;
        self.violations += u64::from(o.violation.is_some());
        self.steps += o.steps;
        self.commits += o.commits;
        self.late_commits += o.late_commits;
        self.faults += o.kept.len() as u64;
        if let Some(g) = o.longest_gap_ms {
            if g > self.gap_max {
                self.gap_max = g;
                self.gap_max_seed = o.seed;
            }
        }
        if let Some(r) = o.recovery_ms {
            self.recovered += 1;
            self.recovery_sum += r;
            if r > self.recovery_max {
                self.recovery_max = r;
                self.recovery_max_seed = o.seed;
            }
        }
    }
}
