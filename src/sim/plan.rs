//! The faults of one simulated run, drawn up front from the run's seed.
//!
//! A plan is a list of timed fault events that all end by [`Plan::heal`];
//! after that the network is clean and every node that is not dead for good
//! is up and connected. Drawing the whole plan first (from its own RNG
//! stream) lets a failing run be replayed with some of its faults left out,
//! which is how a failure is shrunk to the few faults that cause it.

use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;

/// One fault, starting at `at` (virtual milliseconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub at: u64,
    pub kind: FaultKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// The process dies; `cut` of the actions of its next step are carried
    /// out first (a crash in the middle of an action list). It starts again
    /// from its durable state after `down` ms, or never when `down` is None.
    Crash {
        node: usize,
        cut: usize,
        down: Option<u64>,
    },
    /// These nodes lose the broker for `dur` ms (the broker publishes their
    /// wills once the keep-alive runs out).
    Partition { nodes: Vec<usize>, dur: u64 },
    /// The broker stops for `down` ms: every session and every message in
    /// flight is lost; `lose_retained` also loses the retained messages
    /// (a broker without persistence).
    BrokerRestart { down: u64, lose_retained: bool },
    /// For `dur` ms, each delivery is dropped with `drop_pct` percent
    /// chance and duplicated with `dup_pct` percent chance.
    Lossy {
        dur: u64,
        drop_pct: u32,
        dup_pct: u32,
    },
    /// For `dur` ms, deliveries to `node` take up to `extra` ms longer.
    Slow { node: usize, dur: u64, extra: u64 },
    /// For `dur` ms, every `every` ms, someone outside the cluster signs
    /// with `keys` keys it minted (as many as a quorum): votes, a challenge,
    /// a solution, approvals and confirmations of the next transaction, the
    /// certificate they make (sometimes retained), and claims of a
    /// far-future transaction. With `insider`, the first key is that
    /// member's (a board that died for good and whose key was stolen).
    Forgery {
        dur: u64,
        every: u64,
        keys: usize,
        insider: Option<usize>,
    },
    /// `count` made-up keys publish themselves online (retained, so they
    /// stay after the faults end).
    Ghosts { count: usize },
    /// The admin removes member `node` (quorum: a majority of the rest),
    /// when that leaves enough members that never die for a quorum.
    Remove { node: usize },
    /// The admin adds spare board `spare` (host `n + spare`), then starts it.
    Add { spare: usize },
}

impl Fault {
    /// When the fault is over (for crashes that never end: when it starts).
    pub fn end(&self) -> u64 {
        self.at
            + match &self.kind {
                FaultKind::Crash { down, .. } => down.unwrap_or(0),
                FaultKind::Partition { dur, .. } => *dur,
                FaultKind::BrokerRestart { down, .. } => *down,
                FaultKind::Lossy { dur, .. } => *dur,
                FaultKind::Slow { dur, .. } => *dur,
                FaultKind::Forgery { dur, .. } => *dur,
                FaultKind::Ghosts { .. } | FaultKind::Remove { .. } | FaultKind::Add { .. } => 0,
            }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "t={}ms ", self.at)?;
        match &self.kind {
            FaultKind::Crash { node, cut, down } => match down {
                Some(d) => write!(
                    f,
                    "crash n{node} (after {cut} actions), restart after {d}ms"
                ),
                None => write!(f, "crash n{node} (after {cut} actions) for good"),
            },
            FaultKind::Partition { nodes, dur } => {
                let names: Vec<String> = nodes.iter().map(|n| format!("n{n}")).collect();
                write!(
                    f,
                    "partition {} from the broker for {dur}ms",
                    names.join(",")
                )
            }
            FaultKind::BrokerRestart {
                down,
                lose_retained,
            } => write!(
                f,
                "broker restart, down {down}ms{}",
                if *lose_retained {
                    ", retained messages lost"
                } else {
                    ""
                }
            ),
            FaultKind::Lossy {
                dur,
                drop_pct,
                dup_pct,
            } => write!(
                f,
                "lossy for {dur}ms: drop {drop_pct}%, duplicate {dup_pct}%"
            ),
            FaultKind::Slow { node, dur, extra } => {
                write!(f, "slow links to n{node} for {dur}ms (+{extra}ms)")
            }
            FaultKind::Forgery {
                dur,
                every,
                keys,
                insider,
            } => {
                match insider {
                    Some(n) => write!(
                        f,
                        "forgeries with the stolen key of n{n} and {} minted keys",
                        keys - 1
                    )?,
                    None => write!(f, "forgeries with {keys} minted keys")?,
                }
                write!(f, " every {every}ms for {dur}ms")
            }
            FaultKind::Ghosts { count } => write!(f, "{count} ghost members announce themselves"),
            FaultKind::Remove { node } => write!(f, "the admin removes n{node}"),
            FaultKind::Add { spare } => {
                write!(f, "the admin adds spare board {spare}, then starts it")
            }
        }
    }
}

/// When a restart storm ([`Plan::storm`]) begins, in virtual ms: the
/// cluster has started and committed by then.
pub const STORM_START_MS: u64 = 5_000;
/// How long a restart storm lasts, in virtual ms.
pub const STORM_MS: u64 = 120_000;

/// The faults of one run.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub faults: Vec<Fault>,
}

fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    rng.next_u64() % n.max(1)
}

fn pct(rng: &mut ChaCha8Rng, p: u64) -> bool {
    below(rng, 100) < p
}

impl Plan {
    /// Draws faults for `n` nodes with quorum `q`: up to `n - q` nodes may
    /// die for good, everything else heals.
    pub fn draw(rng: &mut ChaCha8Rng, n: usize, q: usize) -> Plan {
        let window = 2_000 + below(rng, 18_000);
        let count = below(rng, 8) as usize;
        let mut faults = Vec::new();
        for _ in 0..count {
            let at = below(rng, window);
            let node = below(rng, n as u64) as usize;
            let kind = match below(rng, 100) {
                0..=34 => FaultKind::Crash {
                    node,
                    cut: below(rng, 6) as usize,
                    down: Some(100 + below(rng, 8_000)),
                },
                35..=59 => {
                    let size = 1 + below(rng, (n - 1) as u64) as usize;
                    let mut nodes: Vec<usize> = (0..n).collect();
                    for i in 0..n {
                        let j = i + below(rng, (n - i) as u64) as usize;
                        nodes.swap(i, j);
                    }
                    nodes.truncate(size);
                    nodes.sort_unstable();
                    FaultKind::Partition {
                        nodes,
                        dur: 100 + below(rng, 12_000),
                    }
                }
                60..=74 => FaultKind::BrokerRestart {
                    down: 50 + below(rng, 5_000),
                    lose_retained: pct(rng, 15),
                },
                75..=89 => FaultKind::Lossy {
                    dur: 100 + below(rng, 6_000),
                    drop_pct: 1 + below(rng, 40) as u32,
                    dup_pct: below(rng, 20) as u32,
                },
                _ => FaultKind::Slow {
                    node,
                    dur: 100 + below(rng, 6_000),
                    extra: 50 + below(rng, 3_000),
                },
            };
            faults.push(Fault { at, kind });
        }
        // Sometimes nodes die for good (at most n - q, so a quorum lives on).
        if n > q && pct(rng, 30) {
            let dead = 1 + below(rng, (n - q) as u64) as usize;
            let mut picked: Vec<usize> = Vec::new();
            while picked.len() < dead {
                let node = below(rng, n as u64) as usize;
                if !picked.contains(&node) {
                    picked.push(node);
                }
            }
            for node in picked {
                faults.push(Fault {
                    at: below(rng, window),
                    kind: FaultKind::Crash {
                        node,
                        cut: below(rng, 6) as usize,
                        down: None,
                    },
                });
            }
        }
        faults.sort_by_key(|f| f.at);
        Plan { faults }
    }

    /// A restart storm: from [`STORM_START_MS`] for [`STORM_MS`], a member
    /// chosen at random crashes every 2 to 4 s (at any point of an action
    /// list) and starts again from its disk 0.1 to 1.5 s later. At most one
    /// member is down at a time, so with `n` of at least 3 and a majority
    /// quorum a quorum of processes is always up; the members that just
    /// started are among it. Nothing else goes wrong.
    pub fn storm(rng: &mut ChaCha8Rng, n: usize) -> Plan {
        let mut faults = Vec::new();
        let mut at = STORM_START_MS + below(rng, 2_000);
        while at < STORM_START_MS + STORM_MS {
            faults.push(Fault {
                at,
                kind: FaultKind::Crash {
                    node: below(rng, n as u64) as usize,
                    cut: below(rng, 6) as usize,
                    down: Some(100 + below(rng, 1_400)),
                },
            });
            at += 2_000 + below(rng, 2_001);
        }
        Plan { faults }
    }

    /// Draws the adversaries and the admin of a run on top of its faults:
    /// forgers outside the cluster (sometimes with a dead member's stolen
    /// key), ghost members, and membership changes while the faults go on.
    pub fn with_adversaries(mut self, rng: &mut ChaCha8Rng, n: usize, q: usize) -> Plan {
        let window = self.heal().max(2_000);
        let dead = self.dead_for_good();
        let mut more = Vec::new();
        if pct(rng, 40) {
            let insider = (!dead.is_empty() && pct(rng, 50))
                .then(|| dead[below(rng, dead.len() as u64) as usize]);
            more.push(Fault {
                // Sometimes before anyone starts (retained certificates).
                at: if pct(rng, 30) { 0 } else { below(rng, window) },
                kind: FaultKind::Forgery {
                    dur: 500 + below(rng, window),
                    every: 300 + below(rng, 1_700),
                    keys: q,
                    insider,
                },
            });
        }
        if pct(rng, 25) {
            more.push(Fault {
                at: below(rng, window),
                kind: FaultKind::Ghosts {
                    count: 1 + below(rng, 12) as usize,
                },
            });
        }
        if pct(rng, 20) {
            let node = match dead.first() {
                Some(&d) if pct(rng, 70) => d,
                _ => below(rng, n as u64) as usize,
            };
            more.push(Fault {
                at: below(rng, window),
                kind: FaultKind::Remove { node },
            });
        }
        if pct(rng, 20) {
            let at = below(rng, window);
            // A full roster takes no other board: every node refuses the
            // change (a 65th member), so the board would wait for ever.
            if n < crate::wire::MAX_MEMBERS {
                more.push(Fault {
                    at,
                    kind: FaultKind::Add { spare: 0 },
                });
            }
        }
        self.faults.extend(more);
        self.faults.sort_by_key(|f| f.at);
        self
    }

    /// Spare boards the plan adds (hosts beyond the genesis members).
    pub fn spares(&self) -> usize {
        self.faults
            .iter()
            .filter_map(|f| match f.kind {
                FaultKind::Add { spare } => Some(spare + 1),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// The plan with only the faults at these indexes.
    pub fn only(&self, keep: &[usize]) -> Plan {
        Plan {
            faults: self
                .faults
                .iter()
                .enumerate()
                .filter(|(i, _)| keep.contains(i))
                .map(|(_, f)| f.clone())
                .collect(),
        }
    }

    /// When every fault is over.
    pub fn heal(&self) -> u64 {
        self.faults.iter().map(Fault::end).max().unwrap_or(0)
    }

    /// Nodes that die and never come back.
    pub fn dead_for_good(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .faults
            .iter()
            .filter_map(|f| match f.kind {
                FaultKind::Crash {
                    node, down: None, ..
                } => Some(node),
                _ => None,
            })
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}
