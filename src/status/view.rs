//! The cluster as `edgeminer status` shows it: built from the collector's
//! messages, printed as a plain text table or serialised as JSON.
//!
//! The expected time to solve the open transaction is 2^difficulty
//! candidates (the mean number of tries for `difficulty` leading zero bits)
//! divided by the cluster's total hash rate: the sum of the online nodes'
//! latest reported rates.

use std::fmt::{self, Write as _};

use serde::Serialize;

use super::collect::Collector;
use crate::service::Rate;

/// Commits listed, newest first.
pub const SHOWN_COMMITS: usize = 5;

/// The whole cluster at one moment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClusterView {
    pub cluster: String,
    pub cluster_id: String,
    /// The roster in force, as the members report it.
    pub roster: RosterInfo,
    /// Every member of that roster, seen or not.
    pub nodes: Vec<NodeView>,
    /// Nodes on the cluster's topics that no roster lists (refused).
    pub not_members: usize,
    /// The leader of the open transaction: the signer of its challenge, or
    /// as most online nodes report it.
    pub leader: Option<NodeRef>,
    pub open_transaction: Option<OpenTx>,
    /// Transactions committed, as far as the observer can tell.
    pub committed: u64,
    /// Sum of the online nodes' hash rates, candidates per second.
    pub hashrate: u64,
    /// The latest commits the observer saw, newest first.
    pub commits: Vec<CommitView>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RosterInfo {
    /// Changes committed since the genesis (0: the genesis roster).
    pub version: u32,
    pub members: usize,
    pub quorum: usize,
    /// The first transaction it decides.
    pub since: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeRef {
    pub id: String,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeView {
    pub name: String,
    pub id: String,
    /// Its presence says online (a node that left or died says gone).
    pub online: bool,
    /// From its latest status, when there is one.
    pub phase: Option<&'static str>,
    pub tx: Option<u64>,
    pub round: Option<u32>,
    pub cores: Option<u16>,
    pub threads: Option<u16>,
    pub active_threads: Option<u16>,
    pub hashrate: u64,
    pub temperature_c: Option<f64>,
    pub version: Option<String>,
    /// Seconds since its latest status arrived here.
    pub status_age_s: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OpenTx {
    pub tx: u64,
    pub round: u32,
    pub difficulty: Option<u8>,
    /// Seconds since the challenge was accepted (by the node that has had it
    /// longest; a retained status read at start may be a few seconds old).
    pub elapsed_s: Option<f64>,
    /// 2^difficulty / the cluster's hash rate, in seconds.
    pub expected_s: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CommitView {
    pub tx: u64,
    pub round: u32,
    pub difficulty: u8,
    pub leader: String,
    pub winner: String,
    /// The seed in hex, as `edgeminer ledger` prints it.
    pub seed: String,
}

pub(super) fn build(c: &Collector, now: u64) -> ClusterView {
    let roster = c.roster();
    let mut nodes = Vec::new();
    let mut hashrate = 0u64;
    // (tx, round) under way, its leader votes: leader -> (count, difficulty, elapsed ms)
    let mut open: Option<(u64, u32)> = None;
    let unseen = super::collect::Entry::default();
    for id in roster.ids() {
        let e = c.nodes.get(&id).unwrap_or(&unseen);
        let online = e.presence.as_ref().is_some_and(|p| p.online);
        let s = e.status.as_ref();
        if online {
            if let Some(s) = s {
                hashrate = hashrate.saturating_add(s.status.hashrate);
                open = open.max(Some((s.tx, s.round)));
            }
        }
        let name = match roster.name(id) {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => c.name_of(id),
        };
        nodes.push(NodeView {
            name,
            id: id.to_string(),
            online,
            phase: s.map(|s| s.status.phase.as_str()),
            tx: s.map(|s| s.tx),
            round: s.map(|s| s.round),
            cores: s.map(|s| s.status.cores),
            threads: s.map(|s| s.status.threads),
            active_threads: s.map(|s| s.status.active),
            hashrate: if online {
                s.map_or(0, |s| s.status.hashrate)
            } else {
                0
            },
            temperature_c: s
                .and_then(|s| s.status.temp_mc)
                .map(|t| f64::from(t) / 1000.0),
            version: s.map(|s| s.status.version.clone()),
            status_age_s: s.map(|s| now.saturating_sub(s.at) as f64 / 1000.0),
        });
    }
    nodes.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));

    // A commit newer than every status means the statuses describe a
    // transaction that is closed: the open one is past the newest commit.
    // A challenge for a later transaction or round than the statuses name
    // is the newest word on it (statuses trail a fast cluster by a second).
    let newest = c.commits.keys().next_back().copied().unwrap_or(0);
    if open.is_none_or(|(tx, _)| tx <= newest) && newest > 0 {
        open = Some((newest + 1, 0));
    }
    let challenge = c
        .challenges
        .iter()
        .next_back()
        .filter(|((tx, _), _)| *tx > newest);
    if let Some((at, _)) = challenge {
        open = open.max(Some(*at));
    }
    // The leader of the open transaction: the one most online nodes name.
    let mut tally: std::collections::BTreeMap<_, (usize, Option<u8>, u64)> = Default::default();
    if let Some((tx, _)) = open {
        for e in roster.ids().filter_map(|id| c.nodes.get(&id)) {
            let Some(s) = &e.status else { continue };
            if !e.presence.as_ref().is_some_and(|p| p.online) || s.tx != tx {
                continue;
            }
            if let Some(leader) = s.status.leader {
                let t = tally.entry(leader).or_insert((0, None, 0));
                t.0 += 1;
                t.1 = t.1.or(s.status.difficulty);
                let open_ms = s.status.open_ms.unwrap_or(0);
                t.2 = t.2.max(open_ms.saturating_add(now.saturating_sub(s.at)));
            }
        }
    }
    let mut best = tally.into_iter().max_by_key(|(_, t)| t.0);
    // The leader's own challenge for the open transaction outranks what the
    // statuses say; its time open is at least since it arrived here.
    if let (Some((tx, round)), Some(((ctx, cround), (leader, difficulty, at)))) = (open, challenge)
    {
        if (tx, round) == (*ctx, *cround) {
            let since = now.saturating_sub(*at);
            let reported = best
                .as_ref()
                .filter(|(id, _)| id == leader)
                .map_or(0, |(_, t)| t.2);
            best = Some((*leader, (0, Some(*difficulty), since.max(reported))));
        }
    }
    let leader = best.as_ref().map(|(id, _)| NodeRef {
        id: id.to_string(),
        name: c.name_of(*id),
    });
    let open_transaction = open.map(|(tx, round)| {
        let difficulty = best.as_ref().and_then(|(_, t)| t.1);
        OpenTx {
            tx,
            round,
            difficulty,
            elapsed_s: best.as_ref().map(|(_, t)| t.2 as f64 / 1000.0),
            expected_s: difficulty
                .filter(|_| hashrate > 0)
                .map(|d| 2f64.powi(i32::from(d)) / hashrate as f64),
        }
    });
    let committed = newest.max(open.map_or(0, |(tx, _)| tx.saturating_sub(1)));
    let commits = c
        .commits
        .iter()
        .rev()
        .take(SHOWN_COMMITS)
        .map(
            |(tx, (round, difficulty, leader, winner, seed))| CommitView {
                tx: *tx,
                round: *round,
                difficulty: *difficulty,
                leader: c.name_of(*leader),
                winner: c.name_of(*winner),
                seed: format!("{seed:016x}"),
            },
        )
        .collect();
    ClusterView {
        cluster: c.cluster.clone(),
        cluster_id: c.cluster_id.to_string(),
        roster: RosterInfo {
            version: roster.version(),
            members: roster.len(),
            quorum: roster.quorum(),
            since: roster.since(),
        },
        nodes,
        not_members: c.not_members.len(),
        leader,
        open_transaction,
        committed,
        hashrate,
        commits,
    }
}

/// Seconds, short: "850 ms", "12.3 s", "4 min 05 s", "2 h 10 min".
struct Secs(f64);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.max(0.0);
        if s < 1.0 {
            write!(f, "{:.0} ms", s * 1000.0)
        } else if s < 60.0 {
            write!(f, "{s:.1} s")
        } else if s < 3600.0 {
            write!(f, "{} min {:02} s", (s / 60.0) as u64, (s % 60.0) as u64)
        } else {
            write!(
                f,
                "{} h {:02} min",
                (s / 3600.0) as u64,
                ((s % 3600.0) / 60.0) as u64
            )
        }
    }
}

impl ClusterView {
    /// The plain text a person reads (also what `--watch` redraws).
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let online = self.nodes.iter().filter(|n| n.online).count();
        // Writing into a String cannot fail: the results are ignored.
        let _ = writeln!(
            o,
            "cluster {} ({}): {online} of {} members online, {} in all",
            self.cluster,
            self.cluster_id,
            self.nodes.len(),
            Rate(self.hashrate as f64)
        );
        let r = &self.roster;
        let _ = writeln!(
            o,
            "roster: version {}, {} members, quorum {}, in force since tx {}",
            r.version, r.members, r.quorum, r.since
        );
        if self.not_members > 0 {
            let _ = writeln!(
                o,
                "not members: {} node(s) on these topics that no roster lists (ignored)",
                self.not_members
            );
        }
        let _ = match &self.leader {
            Some(l) => writeln!(o, "leader: {} ({})", l.name, l.id),
            None => writeln!(o, "leader: none yet"),
        };
        let _ = match &self.open_transaction {
            Some(t) => {
                let _ = write!(o, "open: tx {} round {}", t.tx, t.round);
                if let Some(d) = t.difficulty {
                    let _ = write!(o, ", difficulty {d}");
                }
                if let Some(e) = t.elapsed_s {
                    let _ = write!(o, ", open for {}", Secs(e));
                }
                if let Some(x) = t.expected_s {
                    let _ = write!(
                        o,
                        ", expected {} at {}",
                        Secs(x),
                        Rate(self.hashrate as f64)
                    );
                }
                writeln!(o)
            }
            None => writeln!(o, "open: no transaction under way"),
        };
        let _ = writeln!(o, "committed: {} transactions", self.committed);
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "{:<16} {:<16} {:<7} {:<8} {:>6} {:>5} {:>7} {:>10} {:>8}",
            "NODE", "ID", "ONLINE", "PHASE", "TX", "CORES", "THREADS", "HASHRATE", "TEMP"
        );
        let dash = || "-".to_string();
        for n in &self.nodes {
            let threads = match (n.active_threads, n.threads) {
                (Some(a), Some(t)) if a != t => format!("{a}/{t}"),
                (_, Some(t)) => t.to_string(),
                _ => dash(),
            };
            let _ = writeln!(
                o,
                "{:<16} {:<16} {:<7} {:<8} {:>6} {:>5} {:>7} {:>10} {:>8}",
                n.name,
                n.id,
                if n.online { "yes" } else { "no" },
                n.phase.unwrap_or("-"),
                n.tx.map_or_else(dash, |t| t.to_string()),
                n.cores.map_or_else(dash, |c| c.to_string()),
                threads,
                if n.online {
                    Rate(n.hashrate as f64).to_string()
                } else {
                    dash()
                },
                n.temperature_c.map_or_else(dash, |t| format!("{t:.1} °C")),
            );
        }
        let _ = writeln!(o);
        if self.commits.is_empty() {
            let _ = writeln!(o, "last commits: none seen");
        } else {
            let _ = writeln!(o, "last commits:");
            let _ = writeln!(
                o,
                "{:>6} {:>5} {:>4} {:<16} {:<16} SEED",
                "TX", "ROUND", "DIFF", "LEADER", "WINNER"
            );
            for c in &self.commits {
                let _ = writeln!(
                    o,
                    "{:>6} {:>5} {:>4} {:<16} {:<16} {}",
                    c.tx, c.round, c.difficulty, c.leader, c.winner, c.seed
                );
            }
        }
        o
    }

    pub fn to_json(&self) -> String {
        // Plain data with string keys: serialising it cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}
