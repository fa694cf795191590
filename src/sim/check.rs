//! The safety checker of the simulation, run on everything nodes commit.
//!
//! It holds the global view no node has: every commit of every node, in
//! every incarnation. Agreement is checked against the first commit seen for
//! each transaction; validity by verifying each distinct ledger record on its
//! own (certificate, proof of work, election of the leader, every signer a
//! member of the roster in force at its height), against the agreed chain
//! and independently of the node that wrote it.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::identity::NodeId;
use crate::protocol::certificate::verify_commit_with;
use crate::protocol::history::roster_at;
use crate::protocol::{Committed, Genesis, History};
use crate::wire::Commit;
use crate::wire::SigCache;

/// What a run found wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// Two nodes committed different solutions for one transaction.
    Agreement {
        tx: u64,
        first: String,
        second: String,
    },
    /// A node wrote or reported a commit that does not verify.
    Validity {
        node: usize,
        tx: u64,
        reason: String,
    },
    /// A node's durable ledger went backwards or skipped a transaction.
    Durability { node: usize, reason: String },
    /// An honest node was accused of signing conflicting messages.
    FalseAccusation { accuser: usize, accused: usize },
    /// A node asks for its timer again and again at one instant (the
    /// daemon would spin the CPU).
    Spin { node: usize, at: u64 },
    /// A member asks for a transaction no node has committed: it believed
    /// a claim it could not check, or one member's lie in a roster that
    /// tolerates a liar.
    CatchUp { node: usize, tx: u64, agreed: u64 },
    /// During a restart storm, no new transaction was committed for
    /// longer than the stall bound (from `from` to `at`, virtual ms).
    Stall {
        from: u64,
        at: u64,
        bound: u64,
        height: u64,
    },
    /// No commit within the stated bound after the faults stopped.
    Progress {
        heal: u64,
        bound: u64,
        heights: Vec<u64>,
    },
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Violation::Agreement { tx, first, second } => write!(
                f,
                "AGREEMENT: tx {tx} committed as {first} and as {second}"
            ),
            Violation::Validity { node, tx, reason } => {
                write!(f, "VALIDITY: n{node} committed an invalid tx {tx}: {reason}")
            }
            Violation::Durability { node, reason } => write!(f, "DURABILITY: n{node}: {reason}"),
            Violation::FalseAccusation { accuser, accused } => write!(
                f,
                "FALSE ACCUSATION: n{accuser} calls honest n{accused} a liar"
            ),
            Violation::Spin { node, at } => write!(
                f,
                "SPIN: n{node} keeps asking for its timer at t={at}ms without moving it"
            ),
            Violation::CatchUp { node, tx, agreed } => write!(
                f,
                "CATCH-UP: n{node} asks for tx {tx}, but no node has committed beyond tx {agreed}"
            ),
            Violation::Stall {
                from,
                at,
                bound,
                height,
            } => write!(
                f,
                "STALL: during the restart storm no transaction was committed from t={from}ms to t={at}ms (bound {bound}ms, agreed height {height})"
            ),
            Violation::Progress {
                heal,
                bound,
                heights,
            } => write!(
                f,
                "PROGRESS: faults stopped at t={heal}ms but no new commit reached every live node within {bound}ms (heights {heights:?})"
            ),
        }
    }
}

/// The global record of commits.
pub struct Checker {
    genesis: Arc<Genesis>,
    /// The agreed chain, as far as any node has written it.
    chain: History,
    ids: Vec<NodeId>,
    /// tx -> (reference, winner, seed) of the first commit seen.
    agreed: BTreeMap<u64, ([u8; 16], NodeId, u64)>,
    /// Records already verified (by their bytes): (reference, winner, seed).
    verified: BTreeMap<Vec<u8>, ([u8; 16], NodeId, u64)>,
    /// Signatures already checked (by anyone: the result is the same).
    sigs: SigCache,
    /// Transactions first committed after voting round 0 (a split vote,
    /// lost ballots or dead voters cost them a round or more).
    late: u64,
}

impl Checker {
    pub fn new(genesis: Arc<Genesis>, ids: Vec<NodeId>, sigs: SigCache) -> Checker {
        Checker {
            sigs,
            chain: History::new(&genesis),
            genesis,
            ids,
            agreed: BTreeMap::new(),
            verified: BTreeMap::new(),
            late: 0,
        }
    }

    pub fn commits(&self) -> u64 {
        self.agreed.len() as u64
    }

    /// Transactions whose first commit came after voting round 0.
    pub fn late_commits(&self) -> u64 {
        self.late
    }

    fn name(&self, id: NodeId) -> String {
        match self.ids.iter().position(|x| *x == id) {
            Some(i) => format!("n{i}"),
            None => format!("{id}"),
        }
    }

    /// A node reports a commit (`Event::Committed`).
    pub fn committed(&mut self, node: usize, c: &Committed) -> Result<(), Violation> {
        let (reference, winner, seed) =
            *self
                .agreed
                .entry(c.tx)
                .or_insert((c.reference, c.winner, c.seed));
        if (reference, winner, seed) != (c.reference, c.winner, c.seed) {
            return Err(Violation::Agreement {
                tx: c.tx,
                first: format!("seed {seed} of {}", self.name(winner)),
                second: format!("seed {} of {} (by n{node})", c.seed, self.name(c.winner)),
            });
        }
        Ok(())
    }

    /// A node appends `record` as transaction `tx` of its durable ledger.
    pub fn appended(&mut self, node: usize, tx: u64, record: &[u8]) -> Result<(), Violation> {
        let entry = match self.verified.get(record) {
            Some(e) => *e,
            None => {
                let done = self
                    .verify(tx, record)
                    .map_err(|reason| Violation::Validity { node, tx, reason })?;
                let e = (done.reference, done.winner, done.seed);
                self.verified.insert(record.to_vec(), e);
                e
            }
        };
        let (reference, _, _) = *self.agreed.entry(tx).or_insert(entry);
        if reference != entry.0 {
            return Err(Violation::Agreement {
                tx,
                first: format!("reference {}", hex(&reference)),
                second: format!("reference {} (in the ledger of n{node})", hex(&entry.0)),
            });
        }
        Ok(())
    }

    /// Verifies one record as the checker sees it: it must build on the
    /// agreed previous transaction, with every signer a member of the
    /// roster that the agreed chain puts in force at its height.
    fn verify(&mut self, tx: u64, record: &[u8]) -> Result<Committed, String> {
        let commit = Commit::decode(record).map_err(|e| e.to_string())?;
        let height = self.chain.height();
        if tx > height + 1 {
            return Err(format!("tx {} was never committed", tx - 1));
        }
        let prev = match tx {
            1 => self.genesis.prev(),
            _ => self.chain.commits[(tx - 2) as usize].reference,
        };
        let roster = roster_at(self.chain.rosters(), tx).ok_or("no roster for it")?;
        let done = verify_commit_with(&self.genesis, roster, tx, &prev, &commit, &self.sigs)
            .map_err(|e| e.to_string())?;
        if tx == height + 1 {
            self.chain.push(done.clone()).map_err(|e| e.to_string())?;
            self.late += u64::from(done.vround > 0);
        }
        Ok(done)
    }

    /// The agreed height and the reference its next transaction builds on.
    pub fn head(&self) -> (u64, [u8; 16]) {
        let h = self.chain.height();
        let prev = match h {
            0 => self.genesis.prev(),
            _ => self.chain.commits[(h - 1) as usize].reference,
        };
        (h, prev)
    }

    /// The roster the agreed chain puts in force for its next transaction.
    pub fn roster(&self) -> &crate::protocol::Roster {
        self.chain.roster()
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
