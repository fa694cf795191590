//! Deterministic simulation of a whole cluster of protocol cores.
//!
//! A run takes one seed and derives everything from it: the cluster size
//! (3 to 15), the node keys, delivery delays and order, drops and duplicates,
//! mining times, and a [`Plan`] of faults (crashes in the middle of an action
//! list with restarts from the durable ledger and vote state, partitions
//! that heal, broker restarts that lose sessions, messages in flight and
//! sometimes the retained messages, lossy and slow links, nodes that die for
//! good). After every step the [`check`] module checks agreement, validity
//! and durability; once the faults are over, a new commit must reach every
//! live node within [`progress_bound`]. A restart storm ([`Plan::storm`],
//! `Options::storm`) replaces the drawn faults with a member crashing and
//! starting again every 2 to 4 s for two minutes, with the daemon's
//! timeouts, and adds a check while it lasts: no gap between commits
//! longer than [`stall_bound`].
//!
//! A failing run is shrunk by leaving out faults while it still fails, and
//! replayed with a trace: `cargo run --release --example sim -- --seed S
//! --faults 0,3 --trace` reproduces it exactly.

pub mod check;
pub mod forge;
pub mod plan;
pub mod world;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

pub use check::Violation;
pub use plan::{Fault, FaultKind, Plan};
use world::World;

use std::sync::Arc;

use crate::protocol::{quorum, Config, Genesis};

/// How to run one seed.
#[derive(Clone, Debug)]
pub struct Options {
    /// Cluster size; drawn from the seed (3 to 15) when None.
    pub nodes: Option<usize>,
    /// Quorum; a majority of the size when None. (Smaller quorums are
    /// unsafe, which the checker must notice.)
    pub quorum: Option<usize>,
    /// Draw a fault plan (otherwise the run is fault-free).
    pub faults: bool,
    /// Instead of the drawn faults, a restart storm ([`Plan::storm`]), with
    /// its own check: no gap between commits longer than [`stall_bound`]
    /// while it lasts. Its plan comes from an RNG stream of its own, so
    /// the runs without it are unchanged.
    pub storm: bool,
    /// Keep only these faults of the plan (replaying a shrunk failure).
    pub keep: Option<Vec<usize>>,
    /// Commits every live node must reach after the faults stop.
    pub commits_after_heal: u64,
    /// Record a trace of every event.
    pub trace: bool,
    /// Print the trace to stderr as it happens.
    pub live: bool,
    /// Give up (as a progress failure) after this many steps, for up to
    /// 16 nodes; a larger cluster gets more in proportion to N².
    pub max_steps: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            nodes: None,
            quorum: None,
            faults: true,
            storm: false,
            keep: None,
            commits_after_heal: 2,
            trace: false,
            live: false,
            max_steps: 2_000_000,
        }
    }
}

/// What one run did.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub seed: u64,
    pub nodes: usize,
    pub quorum: usize,
    pub plan: Plan,
    /// Indexes (in the drawn plan) of the faults this run had.
    pub kept: Vec<usize>,
    pub steps: u64,
    /// Distinct transactions committed.
    pub commits: u64,
    /// Of those, how many were first committed after voting round 0.
    pub late_commits: u64,
    /// Virtual time at the end and when the faults stopped (ms).
    pub end_ms: u64,
    pub heal_ms: u64,
    /// From the end of the faults to a new commit on every live node (ms).
    pub recovery_ms: Option<u64>,
    /// Whether the run was a restart storm.
    pub storm: bool,
    /// In a restart storm, the longest time without a new commit while it
    /// lasted (ms).
    pub longest_gap_ms: Option<u64>,
    pub violation: Option<Violation>,
    pub trace: Vec<String>,
}

/// The settings of the simulated nodes of the cluster `genesis`.
pub fn config(genesis: Arc<Genesis>) -> Config {
    Config {
        genesis,
        election_timeout_ms: 1_000,
        solution_window_ms: 100,
        init_timeout_ms: 2_000,
        name: String::new(),
        threads: 1,
    }
}

/// The daemon's default timeouts (`src/config.rs`): a restart storm runs
/// with them, so that a crash every 2 to 4 s weighs against an election
/// round and the init wait as it does on boards.
pub fn daemon_timing(cfg: &mut Config) {
    cfg.election_timeout_ms = 5_000;
    cfg.solution_window_ms = 100;
    cfg.init_timeout_ms = 15_000;
}

/// How long a restart storm may go without a commit: three election
/// timeouts. A storm crashes a member every 2 to 4 s, so most rounds lose
/// nobody, and a leader that crashes before its challenge is out costs the
/// round it was elected in.
pub fn stall_bound(cfg: &Config) -> u64 {
    3 * cfg.election_timeout_ms
}

/// How long after the faults stop a new commit must have reached every live
/// node. See "Progress" in `docs/PROTOCOL.md` for where the terms come from.
pub fn progress_bound(cfg: &Config) -> u64 {
    let e = cfg.election_timeout_ms;
    // A reconnect, stale wills, the longest resend back-off, then a few
    // election and voting rounds with the slowest miner. No init wait: a
    // restarted member joins the round under way, or starts with a quorum
    // online.
    world::WILL_AFTER_MS + 8 * e + 12 * e
}

fn seed_stream(seed: u64, which: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(which);
    r
}

/// Runs one seed.
pub fn run(seed: u64, opt: &Options) -> Outcome {
    let mut r = seed_stream(seed, 0);
    let n = opt.nodes.unwrap_or(3 + (r.next_u32() % 13) as usize);
    let q = opt.quorum.unwrap_or_else(|| quorum::majority(n));
    let drawn = if opt.storm {
        Plan::storm(&mut seed_stream(seed, 7), n)
    } else if opt.faults {
        Plan::draw(&mut seed_stream(seed, 5), n, q).with_adversaries(
            &mut seed_stream(seed, 6),
            n,
            q,
        )
    } else {
        Plan::default()
    };
    let kept: Vec<usize> = match &opt.keep {
        Some(k) => k.clone(),
        None => (0..drawn.faults.len()).collect(),
    };
    let plan = drawn.only(&kept);
    let heal = plan.heal();
    let first_fault = plan.faults.first().map_or(heal, |f| f.at);
    let mut w = World::new(n, q, seed, plan, opt.trace, opt.live);
    if opt.storm {
        // Before any node starts: each takes the world's settings.
        daemon_timing(&mut w.cfg);
    }
    let bound = progress_bound(&w.cfg);
    // Every message goes to every node: steps per commit grow as N².
    let budget = opt.max_steps.saturating_mul(((n * n) as u64 / 256).max(1));
    let mut base: Option<u64> = None;
    let mut recovery = None;
    // A storm: from its first crash to its end, the time of the latest new
    // commit and the longest gap so far.
    let storm = opt.storm.then_some((first_fault, heal));
    let stall = stall_bound(&w.cfg);
    let (mut agreed, mut agreed_at) = (0, 0);
    let mut longest_gap = storm.map(|_| 0);
    while w.violation.is_none() {
        if let (Some((from, to)), Some(longest)) = (storm, longest_gap.as_mut()) {
            // Up to now, which may be the instant of a new commit.
            let since = agreed_at.max(from);
            let gap = w.now.min(to).saturating_sub(since);
            *longest = (*longest).max(gap);
            if gap > stall {
                w.violation = Some(Violation::Stall {
                    from: since,
                    at: w.now,
                    bound: stall,
                    height: agreed,
                });
                break;
            }
            let height = w.checker.commits();
            if height > agreed {
                (agreed, agreed_at) = (height, w.now);
            }
        }
        if w.now >= heal {
            let heights: Vec<u64> = w
                .live()
                .into_iter()
                .map(|h| w.hosts[h].disk.height())
                .collect();
            let b = *base
                .get_or_insert_with(|| w.hosts.iter().map(|h| h.disk.height()).max().unwrap_or(0));
            let low = heights.iter().copied().min().unwrap_or(0);
            if low > b && recovery.is_none() {
                recovery = Some(w.now - heal);
            }
            if low >= b + opt.commits_after_heal {
                break;
            }
            let late = if recovery.is_none() {
                w.now > heal + bound
            } else {
                w.now > heal + bound * opt.commits_after_heal
            };
            if late {
                w.violation = Some(Violation::Progress {
                    heal,
                    bound,
                    heights,
                });
                break;
            }
        }
        if w.steps >= budget || !w.step() {
            let heights = w.hosts.iter().map(|h| h.disk.height()).collect();
            w.violation = Some(Violation::Progress {
                heal,
                bound,
                heights,
            });
        }
    }
    Outcome {
        seed,
        nodes: n,
        quorum: q,
        plan: drawn,
        kept,
        steps: w.steps,
        commits: w.checker.commits(),
        late_commits: w.checker.late_commits(),
        end_ms: w.now,
        heal_ms: heal,
        recovery_ms: recovery,
        storm: opt.storm,
        longest_gap_ms: longest_gap,
        violation: w.violation.take(),
        trace: w.trace.take().unwrap_or_default(),
    }
}

/// Leaves out faults of a failing run one by one while it still fails,
/// then replays the smallest failing plan with a trace.
pub fn shrink(failed: &Outcome, opt: &Options) -> Outcome {
    let mut keep = failed.kept.clone();
    let mut i = 0;
    while i < keep.len() {
        let mut fewer = keep.clone();
        fewer.remove(i);
        let o = run(
            failed.seed,
            &Options {
                keep: Some(fewer.clone()),
                trace: false,
                ..opt.clone()
            },
        );
        if o.violation.is_some() {
            keep = fewer;
        } else {
            i += 1;
        }
    }
    run(
        failed.seed,
        &Options {
            keep: Some(keep),
            trace: true,
            ..opt.clone()
        },
    )
}

impl Outcome {
    /// A report of a failure: seed, faults, the violation, the replay
    /// command and the end of the trace.
    pub fn report(&self, trace_lines: usize) -> String {
        let mut s = format!(
            "seed {} ({} nodes, quorum {}): {}\n",
            self.seed,
            self.nodes,
            self.quorum,
            self.violation
                .as_ref()
                .map_or_else(|| "no violation".to_string(), |v| v.to_string())
        );
        s.push_str(&format!(
            "faults ({} of {} drawn):\n",
            self.kept.len(),
            self.plan.faults.len()
        ));
        for &i in &self.kept {
            s.push_str(&format!("  [{i}] {}\n", self.plan.faults[i]));
        }
        let keep: Vec<String> = self.kept.iter().map(|i| i.to_string()).collect();
        s.push_str(&format!(
            "replay: cargo run --release --example sim -- --seed {}{} --faults '{}' --trace{}\n",
            self.seed,
            if self.storm { " --storm" } else { "" },
            keep.join(","),
            if self.quorum != quorum::majority(self.nodes) {
                format!(" --nodes {} --quorum {}", self.nodes, self.quorum)
            } else {
                String::new()
            }
        ));
        let skip = self.trace.len().saturating_sub(trace_lines);
        if skip > 0 {
            s.push_str(&format!(
                "trace (last {trace_lines} of {} events):\n",
                self.trace.len()
            ));
        }
        for line in &self.trace[skip..] {
            s.push_str(line);
            s.push('\n');
        }
        s
    }
}
