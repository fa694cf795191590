//! A board in memory, for the hosts that run the core without a disk or a
//! broker: the protocol tests, the simulation's world and the fuzz harness.
//! Each schedules messages its own way (in order, by seeded delays with
//! faults, by fuzz bytes); what a board does with its node's output is the
//! same for all, and the same as the daemon: writes land on its disk before
//! anything leaves it, history is served from the disk, and the miner holds
//! one job at a time.

use super::output::Step;
use super::{Effect, Event, Node, Persist, Publish};
use crate::pow::Job;

/// What a board keeps across restarts: its ledger's commit records
/// (transaction 1 first), its rosters file and its vote state.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    pub records: Vec<Vec<u8>>,
    pub rosters: Option<Vec<u8>>,
    pub votes: Option<Vec<u8>>,
}

impl Disk {
    /// A state directory as the daemon starts it: no commit yet, and the
    /// rosters file of the genesis roster (so that every restart resumes
    /// from the rosters file and the last certificate, as on a board).
    pub fn new(genesis: &super::Genesis) -> Disk {
        Disk {
            rosters: Some(super::head::saved_rosters(genesis, 0, &[genesis.roster()])),
            ..Disk::default()
        }
    }
}

impl super::head::Records for Disk {
    type Error = String;
    fn height(&self) -> u64 {
        self.records.len() as u64
    }
    fn record(&self, tx: u64) -> Result<Vec<u8>, String> {
        let i = usize::try_from(tx).ok().and_then(|t| t.checked_sub(1));
        i.and_then(|i| self.records.get(i).cloned())
            .ok_or_else(|| format!("no record of tx {tx}"))
    }
}

impl Disk {
    /// Carries out one durable write.
    pub fn write(&mut self, p: Persist) {
        match p {
            Persist::AppendLedger(record) => self.records.push(record),
            Persist::SaveVotes(v) => self.votes = Some(v),
            Persist::SaveRosters(r) => self.rosters = Some(r),
        }
    }

    /// Transactions on the disk.
    pub fn height(&self) -> u64 {
        self.records.len() as u64
    }

    /// The record of transaction `tx`, as the node asks it to be served.
    pub fn history(&self, node: &Node, tx: u64) -> Option<Publish> {
        let record = self
            .records
            .get(usize::try_from(tx).ok()?.checked_sub(1)?)?;
        node.history_message(tx, record)
    }
}

/// What one step of an output asks of the board's surroundings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outward {
    Publish(Publish),
    Event(Event),
}

/// Carries out one step of `node`'s output on its disk and its miner's
/// job; what must leave the board, if anything.
pub fn carry_out(
    node: &Node,
    disk: &mut Disk,
    job: &mut Option<Job>,
    step: Step,
) -> Option<Outward> {
    match step {
        Step::Write(p) => {
            disk.write(p);
            None
        }
        Step::Effect(Effect::Publish(p)) => Some(Outward::Publish(p)),
        Step::Effect(Effect::Mine(j)) => {
            *job = Some(j);
            None
        }
        Step::Effect(Effect::StopMining) => {
            *job = None;
            None
        }
        Step::Effect(Effect::ServeHistory { tx }) => disk.history(node, tx).map(Outward::Publish),
        Step::Event(e) => Some(Outward::Event(e)),
    }
}
