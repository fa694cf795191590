//! Builds the state directories of a small cluster whose ledger holds N
//! transactions, for `bench/longevity.sh` (how a node starts on a long
//! ledger).
//!
//! ```text
//! cargo run --release --example longevity_ledger -- --transactions 100000 --out DIR
//! ```
//!
//! The members' protocol cores run in this process, without a broker:
//! every message one of them publishes goes to all of them (itself
//! included), one message at a time, in the order they were published, as
//! one broker with no losses would deliver them. Mining is done in line at
//! the genesis difficulty, 1..1 by default (a seed or two per job), by one
//! miner per transaction drawn at random, since its solution reaches the
//! others before they would find theirs. Signatures are real P-256 (the
//! members share one cache of signatures already checked, as the
//! simulation's nodes do, so each is checked once in this process), so a
//! real node opens, and re-checks, what this writes.
//!
//! The output, in DIR (which must not exist):
//! - `genesis.toml`, the cluster's genesis file (no admin key);
//! - `n1` .. `nK`, one state directory per member: its key (`node.key`,
//!   owner-only, as `edgeminer keygen` makes it), its ledger and its vote
//!   state, written through the node's own store, each as that member's
//!   core asked for them.
//!
//! `edgeminer run --genesis DIR/genesis.toml --state-dir DIR/n1 --broker
//! URL` runs member `n1` on it; `edgeminer verify --state-dir DIR/n1`
//! checks it.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use edgeminer::genesis_file;
use edgeminer::identity::Identity;
use edgeminer::pow::{self, Job};
use edgeminer::protocol::memory::{self, Disk, Outward};
use edgeminer::protocol::{quorum, Config, Event, Genesis, Input, Node, Persist, Step};
use edgeminer::store::ledger;
use edgeminer::store::records::LEDGER_FILE;
use edgeminer::wire::roster::Entry;
use edgeminer::wire::SigCache;

#[derive(Parser)]
#[command(about = "Builds a cluster's state directories with a ledger of N transactions")]
struct Args {
    /// Transactions to commit (0: a ledger that holds only the genesis).
    #[arg(long)]
    transactions: u64,
    /// Members of the cluster (quorum: a majority).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(3..=5))]
    nodes: u8,
    /// Difficulty of every challenge, in leading zero bits.
    #[arg(long, default_value_t = 1)]
    difficulty: u8,
    /// Seed of the choice of miners and of the cores' RNGs (keys always
    /// come from the operating system, as `edgeminer keygen` makes them).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where to write (must not exist).
    #[arg(long)]
    out: PathBuf,
}

/// One member: its core, what it has asked to make durable, its job, and
/// what it wrote (for the report).
struct Member {
    node: Node,
    disk: Disk,
    job: Option<Job>,
    ledger_bytes: u64,
    vote_saves: u64,
    vote_bytes: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(
        !args.out.exists(),
        "{} exists: give a new directory",
        args.out.display()
    );
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let n = usize::from(args.nodes);
    let dirs: Vec<PathBuf> = (1..=n).map(|i| args.out.join(format!("n{i}"))).collect();
    let keys = dirs
        .iter()
        .map(|d| Identity::create_new(d).with_context(|| format!("key in {}", d.display())))
        .collect::<Result<Vec<_>>>()?;
    let members = keys
        .iter()
        .enumerate()
        .map(|(i, k)| Entry {
            id: k.id,
            name: format!("n{}", i + 1),
        })
        .collect();
    let genesis = Genesis::new(
        "longevity".into(),
        members,
        quorum::majority(n),
        (args.difficulty, args.difficulty),
        None,
        None,
    )
    .map_err(|e| anyhow::anyhow!("genesis: {e}"))?;
    let genesis = Arc::new(genesis);
    genesis_file::write_new(&args.out.join("genesis.toml"), &genesis)?;

    let started = Instant::now();
    let mut cluster = Cluster::new(&genesis, &keys, args.seed);
    cluster.run_to(args.transactions)?;
    let generated = started.elapsed();

    let written = Instant::now();
    // The store syncs every append, as a node does once per commit: that
    // many syncs take milliseconds each on a disk, none in memory. So the
    // state is written in a directory in memory when there is one, then
    // copied, file by file, to the member's.
    let stage = match Path::new("/dev/shm") {
        shm if shm.is_dir() => tempfile::tempdir_in(shm),
        _ => tempfile::tempdir_in(&args.out),
    }
    .context("a directory to write the ledgers in")?;
    for (i, (m, dir)) in cluster.members.iter().zip(&dirs).enumerate() {
        let records = &m.disk.records[..args.transactions as usize];
        let staged = stage.path().join(format!("n{}", i + 1));
        write_state(&staged, &genesis, records, m.disk.votes.as_deref())?;
        for entry in std::fs::read_dir(&staged)? {
            let from = entry?.path();
            let to = dir.join(from.file_name().context("a file name")?);
            std::fs::copy(&from, &to)
                .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        }
    }
    drop(stage);
    let ledger_size = std::fs::metadata(dirs[0].join(LEDGER_FILE))?.len();
    let empty = ledger_file_of_genesis(&args.out, &genesis)?;
    let tx = args.transactions.max(1) as f64;
    let m0 = &cluster.members[0];
    println!(
        "cluster {} ({}), {n} members, quorum {}, difficulty {}: {} transactions in {:.1} s ({:.0} per second), ledgers written in {:.1} s",
        genesis.cluster(),
        genesis.id(),
        genesis.quorum(),
        args.difficulty,
        args.transactions,
        generated.as_secs_f64(),
        args.transactions as f64 / generated.as_secs_f64().max(1e-9),
        written.elapsed().as_secs_f64(),
    );
    println!(
        "ledger.bin: {ledger_size} bytes ({empty} with the genesis alone), {:.0} bytes per transaction",
        (ledger_size - empty) as f64 / tx
    );
    println!(
        "each member asked its store for, per transaction: {:.0} ledger bytes, {:.2} vote-state saves of {:.0} bytes each",
        m0.ledger_bytes as f64 / tx,
        m0.vote_saves as f64 / tx,
        m0.vote_bytes as f64 / m0.vote_saves.max(1) as f64
    );
    println!(
        "in-process messages: {} ({:.1} per transaction, {:.0} bytes per transaction)",
        cluster.delivered,
        cluster.delivered as f64 / tx,
        cluster.delivered_bytes as f64 / tx
    );
    Ok(())
}

/// Writes a member's state as its node would have: the ledger (the
/// genesis record, then each commit record) and its vote state, through
/// the store the node uses.
fn write_state(
    dir: &Path,
    genesis: &Genesis,
    records: &[Vec<u8>],
    votes: Option<&[u8]>,
) -> Result<()> {
    let (mut file, head) = ledger::open(dir, genesis)?;
    ensure!(head.chain.height() == 0, "{} has a ledger", dir.display());
    for r in records {
        file.append(r)?;
    }
    if let Some(v) = votes {
        ledger::save_votes(dir, v)?;
    }
    Ok(())
}

/// The size of a ledger file that holds the genesis alone.
fn ledger_file_of_genesis(out: &Path, genesis: &Genesis) -> Result<u64> {
    let dir = out.join(".genesis-only");
    write_state(&dir, genesis, &[], None)?;
    let size = std::fs::metadata(dir.join(LEDGER_FILE))?.len();
    std::fs::remove_dir_all(&dir)?;
    Ok(size)
}

/// The members and the messages between them.
struct Cluster {
    members: Vec<Member>,
    /// Published, not yet delivered: (topic, payload).
    queue: VecDeque<(String, Vec<u8>)>,
    rng: ChaCha8Rng,
    now: u64,
    delivered: u64,
    delivered_bytes: u64,
}

impl Cluster {
    fn new(genesis: &Arc<Genesis>, keys: &[Identity], seed: u64) -> Cluster {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let sigs = SigCache::with_capacity(4096);
        let members = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let cfg = Config {
                    genesis: genesis.clone(),
                    election_timeout_ms: 3_000,
                    solution_window_ms: 50,
                    init_timeout_ms: 10_000,
                    name: format!("n{}", i + 1),
                    threads: 1,
                };
                let mut s = [0u8; 32];
                rng.fill_bytes(&mut s);
                Member {
                    node: Node::builder(cfg, k)
                        .rng_seed(s)
                        .incarnation(1)
                        .sig_cache(sigs.clone())
                        .start(0),
                    disk: Disk::default(),
                    job: None,
                    ledger_bytes: 0,
                    vote_saves: 0,
                    vote_bytes: 0,
                }
            })
            .collect();
        Cluster {
            members,
            queue: VecDeque::new(),
            rng,
            now: 0,
            delivered: 0,
            delivered_bytes: 0,
        }
    }

    /// Runs until every member has committed `target` transactions.
    fn run_to(&mut self, target: u64) -> Result<()> {
        for i in 0..self.members.len() {
            self.input(i, Input::Connected)?;
        }
        let started = Instant::now();
        let mut shown = 0;
        while self.members.iter().any(|m| m.disk.height() < target) {
            self.step()?;
            let low = self.members.iter().map(|m| m.disk.height()).min();
            let low = low.unwrap_or(0);
            if low >= shown + 10_000 {
                shown = low;
                eprintln!(
                    "longevity_ledger: {low} transactions, {:.0} s",
                    started.elapsed().as_secs_f64()
                );
            }
        }
        Ok(())
    }

    /// Delivers the oldest message to every member; with none, finishes
    /// one mining job; with none either, lets time pass to the next timer.
    fn step(&mut self) -> Result<()> {
        if let Some((topic, payload)) = self.queue.pop_front() {
            self.delivered += 1;
            self.delivered_bytes += payload.len() as u64;
            for i in 0..self.members.len() {
                let input = Input::Message {
                    topic: &topic,
                    payload: &payload,
                    retained: false,
                };
                self.input(i, input)?;
            }
            return Ok(());
        }
        let mining: Vec<usize> = (0..self.members.len())
            .filter(|&i| self.members[i].job.is_some())
            .collect();
        if !mining.is_empty() {
            let i = mining[self.rng.next_u32() as usize % mining.len()];
            let Some(job) = self.members[i].job.take() else {
                return Ok(());
            };
            let start = self.rng.next_u64() >> 8;
            let seed = (start..)
                .find(|&s| pow::verify(&job.salt, &job.solver, s, job.difficulty))
                .context("no seed meets the difficulty")?;
            return self.input(i, Input::Mined { job: job.id, seed });
        }
        let Some(next) = self
            .members
            .iter()
            .filter_map(|m| m.node.next_timeout())
            .min()
        else {
            bail!("the cluster is stuck: no message, job or timer left");
        };
        self.now = self.now.max(next);
        for i in 0..self.members.len() {
            if self.members[i]
                .node
                .next_timeout()
                .is_some_and(|t| t <= self.now)
            {
                self.input(i, Input::Tick)?;
            }
        }
        Ok(())
    }

    /// Hands member `i` one input and carries out its output as the
    /// daemon does: writes first, then what may follow them.
    fn input(&mut self, i: usize, input: Input<'_>) -> Result<()> {
        let m = &mut self.members[i];
        let out = m.node.handle(input, self.now);
        for step in out.into_steps() {
            match &step {
                Step::Write(Persist::AppendLedger(r)) => m.ledger_bytes += r.len() as u64,
                Step::Write(Persist::SaveVotes(v)) => {
                    m.vote_saves += 1;
                    m.vote_bytes += v.len() as u64;
                }
                _ => {}
            }
            match memory::carry_out(&m.node, &mut m.disk, &mut m.job, step) {
                Some(Outward::Publish(p)) => self.queue.push_back((p.topic, p.payload)),
                Some(Outward::Event(Event::Stop(why))) => {
                    bail!("member n{} stopped: {why:?}", i + 1)
                }
                Some(Outward::Event(Event::Committed(_))) | None => {}
            }
        }
        Ok(())
    }
}
