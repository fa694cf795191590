//! Prometheus metrics of one node (`run --metrics-addr`, off by default).
//!
//! [`Metrics`] holds the registry (the `prometheus-client` crate) and the
//! handles the driver updates: after every batch of actions it copies the
//! protocol's state (phase, transaction, round, counters), and at every
//! status tick (5 s) the pool's candidate count, hash rate and threads. [`server`] serves the
//! registry over HTTP on its own thread, so a slow or hostile scraper never
//! holds up the node. Every name starts with `edgeminer_`, but for the
//! standard `process_*` metrics ([`process`]); docs/METRICS.md lists them
//! and `deploy/grafana/` has a dashboard built on them.

pub mod process;
pub mod server;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::protocol::{Counters, Node};
use crate::standing::Standing;
use crate::wire::messages::StatusPhase;

pub use server::Server;

/// Labels of a refused message.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Refusal {
    phase: &'static str,
    reason: &'static str,
}

/// No labels: a family of one series that exists only once set, so that a
/// node without a temperature reading has no temperature series (rather
/// than a made-up 0 °C).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Whole;

impl EncodeLabelSet for Whole {
    fn encode(&self, _: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: &'static str,
}

/// A member of the roster in force.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MemberLabel {
    id: String,
    member: String,
}

/// The phases a node reports, in the order of a transaction.
const PHASES: [StatusPhase; 5] = [
    StatusPhase::Learner,
    StatusPhase::Init,
    StatusPhase::Election,
    StatusPhase::Mining,
    StatusPhase::Voting,
];

/// What identifies the node in `edgeminer_node_info`.
#[derive(Clone, Debug)]
pub struct Identity {
    pub cluster: String,
    pub cluster_id: String,
    pub node: String,
    pub id: String,
    pub engine: &'static str,
    /// Mining threads the pool has.
    pub threads: usize,
}

/// The pool's side, read at every status tick.
#[derive(Clone, Copy, Debug, Default)]
pub struct Mining {
    /// Candidates tried since the pool started (monotonic).
    pub candidates: u64,
    /// Candidates per second since the previous reading.
    pub hashrate: f64,
    /// Threads allowed to mine now (thermal care may lower it).
    pub active: usize,
}

/// The handles the driver updates; the registry holds clones of them.
#[derive(Default)]
struct Handles {
    hashrate: Gauge<f64, AtomicU64>,
    candidates: Counter,
    commits: Counter,
    height: Gauge,
    ledger_bytes: Gauge,
    written: Counter,
    elections: Counter,
    rejected: Family<Refusal, Counter>,
    reconnects: Counter,
    connected: Gauge,
    phase: Family<PhaseLabel, Gauge>,
    tx: Gauge,
    round: Gauge,
    difficulty: Gauge,
    members: Gauge,
    active: Gauge,
    temperature: Family<Whole, Gauge<f64, AtomicU64>>,
    roster_size: Gauge,
    quorum: Gauge,
    roster_version: Gauge,
    member_online: Family<MemberLabel, Gauge>,
}

/// A node's metrics: the registry and the handles into it.
pub struct Metrics {
    registry: Arc<Registry>,
    h: Handles,
    /// The last values copied, to turn totals into counter increments.
    seen: Seen,
}

#[derive(Default)]
struct Seen {
    candidates: u64,
    elections: u64,
    rejected: BTreeMap<(&'static str, &'static str), u64>,
    /// The roster the member series were made for (its hash).
    roster: Option<[u8; 16]>,
    members: Vec<MemberLabel>,
}

/// Saturating conversion for gauges.
fn int(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

impl Metrics {
    pub fn new(who: &Identity) -> Metrics {
        // The node's own metrics under `edgeminer_`, then the process
        // metrics, without a prefix (see the end).
        let mut root = Registry::default();
        let r = root.sub_registry_with_prefix("edgeminer");
        let info = Info::new(vec![
            ("version", env!("CARGO_PKG_VERSION").to_string()),
            ("cluster", who.cluster.clone()),
            ("cluster_id", who.cluster_id.clone()),
            ("node", who.node.clone()),
            ("id", who.id.clone()),
            ("engine", who.engine.to_string()),
        ]);
        r.register(
            "node",
            "This node: version, cluster (name and id), name, id and mining engine",
            info,
        );
        let h = Handles::default();
        r.register(
            "hashrate",
            "SHA-1 candidates this node tried per second, over the last status period (5 s)",
            h.hashrate.clone(),
        );
        r.register(
            "candidates",
            "SHA-1 candidates this node has tried since it started",
            h.candidates.clone(),
        );
        r.register(
            "commits",
            "Transactions committed to this node's ledger since it started",
            h.commits.clone(),
        );
        r.register(
            "ledger_height",
            "Transactions in this node's ledger",
            h.height.clone(),
        );
        r.register_with_unit(
            "ledger",
            "Size of this node's ledger file",
            Unit::Bytes,
            h.ledger_bytes.clone(),
        );
        r.register_with_unit(
            "disk_written",
            "Bytes this node wrote to its state directory since it started (ledger records and their index, vote state, rosters)",
            Unit::Bytes,
            h.written.clone(),
        );
        r.register(
            "elections",
            "Elections this node saw end with a leader",
            h.elections.clone(),
        );
        r.register(
            "rejected_messages",
            "Messages this node refused, by phase and reason",
            h.rejected.clone(),
        );
        r.register(
            "reconnects",
            "Times the broker connection came back after it was lost",
            h.reconnects.clone(),
        );
        r.register(
            "broker_connected",
            "1 while connected to the broker",
            h.connected.clone(),
        );
        r.register(
            "phase",
            "1 for the phase this node is in (learner, init, election, mining, voting), 0 for the others",
            h.phase.clone(),
        );
        r.register(
            "transaction",
            "The transaction under way (one past the ledger)",
            h.tx.clone(),
        );
        r.register(
            "round",
            "Election round of the transaction under way",
            h.round.clone(),
        );
        // Not `difficulty_bits`: `promtool check metrics` refuses a unit in
        // a name that is not a base unit, and bits are not one.
        r.register(
            "difficulty",
            "Leading zero bits of the SHA-1 hash the open challenge asks for (0 when none is open)",
            h.difficulty.clone(),
        );
        r.register(
            "members_online",
            "Members of the roster in force online as this node sees them, itself included",
            h.members.clone(),
        );
        r.register(
            "member_online",
            "For each member of the roster in force: 1 while online as this node sees it, else 0",
            h.member_online.clone(),
        );
        r.register(
            "roster_version",
            "Roster changes committed since the genesis (0: the genesis roster)",
            h.roster_version.clone(),
        );
        let threads: Gauge = Gauge::default();
        threads.set(int(who.threads));
        r.register("mining_threads", "Mining threads of this node", threads);
        r.register(
            "mining_threads_active",
            "Mining threads allowed now (fewer when thermal care slows the node)",
            h.active.clone(),
        );
        r.register(
            "cluster_nodes",
            "Members of the roster in force",
            h.roster_size.clone(),
        );
        r.register(
            "cluster_quorum",
            "Approvals needed to commit, by the roster in force",
            h.quorum.clone(),
        );
        for p in PHASES {
            h.phase
                .get_or_create(&PhaseLabel { phase: p.as_str() })
                .set(0);
        }
        r.register_with_unit(
            "temperature",
            "SoC temperature read by thermal care (absent without a sensor)",
            Unit::Celsius,
            h.temperature.clone(),
        );
        h.active.set(int(who.threads));
        root.sub_registry_with_labels(std::iter::empty())
            .register_collector(Box::new(process::Process::this()));
        Metrics {
            registry: Arc::new(root),
            h,
            seen: Seen::default(),
        }
    }

    /// The registry, for the server.
    pub fn registry(&self) -> Arc<Registry> {
        Arc::clone(&self.registry)
    }

    /// Copies where the node stands after a batch of actions, and the
    /// core's roster, members online and counters. The ledger height is set
    /// before the commit counter grows, so a scrape never sees more commits
    /// than the ledger holds.
    pub fn protocol(&mut self, s: &Standing, node: &Node) {
        let now: StatusPhase = s.phase.into();
        for p in PHASES {
            self.h
                .phase
                .get_or_create(&PhaseLabel { phase: p.as_str() })
                .set(i64::from(p == now));
        }
        self.h.height.set(int(s.height));
        self.h.tx.set(int(s.tx()));
        self.h.round.set(i64::from(s.round));
        self.h
            .difficulty
            .set(s.difficulty.map(i64::from).unwrap_or(0));
        self.h.members.set(int(node.members_online()));
        self.roster(node);
        self.h.commits.inc_by(s.commits);
        self.counters(node.counters());
    }

    /// The ledger file's size, and bytes just written to the state directory.
    pub fn disk(&mut self, ledger_bytes: u64, written: u64) {
        self.h.ledger_bytes.set(int(ledger_bytes));
        self.h.written.inc_by(written);
    }

    /// The roster's size, quorum and version, and which members are online.
    fn roster(&mut self, node: &Node) {
        let roster = node.roster();
        if self.seen.roster != Some(roster.hash()) {
            for old in self.seen.members.drain(..) {
                self.h.member_online.remove(&old);
            }
            self.seen.members = roster
                .ids()
                .map(|id| MemberLabel {
                    id: id.to_string(),
                    member: node.name_of(id),
                })
                .collect();
            self.seen.roster = Some(roster.hash());
            self.h.roster_size.set(int(roster.len()));
            self.h.quorum.set(int(roster.quorum()));
            self.h.roster_version.set(i64::from(roster.version()));
        }
        let online = node.members_online_ids();
        for (id, label) in roster.ids().zip(&self.seen.members) {
            let up = online.contains(&id);
            self.h.member_online.get_or_create(label).set(i64::from(up));
        }
    }

    fn counters(&mut self, c: &Counters) {
        self.h
            .elections
            .inc_by(c.elections.saturating_sub(self.seen.elections));
        self.seen.elections = c.elections;
        for (&(phase, reason), &n) in &c.rejected {
            let before = self.seen.rejected.insert((phase, reason), n).unwrap_or(0);
            if n > before {
                self.h
                    .rejected
                    .get_or_create(&Refusal { phase, reason })
                    .inc_by(n - before);
            }
        }
    }

    /// The broker connection came up (`again`: not for the first time).
    pub fn connected(&self, again: bool) {
        self.h.connected.set(1);
        if again {
            self.h.reconnects.inc();
        }
    }

    pub fn disconnected(&self) {
        self.h.connected.set(0);
    }

    /// The pool's figures, at every status tick.
    pub fn mining(&mut self, m: Mining) {
        self.h
            .candidates
            .inc_by(m.candidates.saturating_sub(self.seen.candidates));
        self.seen.candidates = self.seen.candidates.max(m.candidates);
        self.h.hashrate.set(m.hashrate);
        self.h.active.set(int(m.active));
    }

    /// A temperature reading of thermal care.
    pub fn temperature(&self, celsius: f64) {
        self.h.temperature.get_or_create(&Whole).set(celsius);
    }

    /// The exposition text (Prometheus 0.0.4, or OpenMetrics 1.0).
    pub fn encode(&self, openmetrics: bool) -> String {
        server::encode(&self.registry, openmetrics)
    }
}

#[cfg(test)]
mod tests;
