//! A verified ledger: the commits since the genesis and the rosters they
//! put in force.
//!
//! Checking a ledger means checking each certificate against the roster in
//! force at its height, then applying the roster change it carries, if any,
//! for the transactions after it: a node at start, `edgeminer verify`, a
//! node catching up and the simulation's checker all go through
//! [`History::verify_next`] and [`History::push`].

use super::certificate::{verify_commit_with, Committed};
use super::genesis::Genesis;
use super::roster::Roster;
use super::Reject;
use crate::wire::{Commit, SigCache};

/// Commits (transaction 1 first) and every roster since the genesis.
#[derive(Clone, Debug)]
pub struct History {
    pub commits: Vec<Committed>,
    /// The genesis roster first, then one per committed change.
    rosters: Vec<Roster>,
    prev: [u8; 16],
}

impl History {
    /// A ledger with nothing committed yet.
    pub fn new(genesis: &Genesis) -> History {
        History {
            commits: Vec::new(),
            rosters: vec![genesis.roster()],
            prev: genesis.prev(),
        }
    }

    /// Verifies commit records (transaction 1 first) and builds the
    /// history; on the first bad one, its transaction and why.
    pub fn verify(
        genesis: &Genesis,
        records: &[Vec<u8>],
        sigs: &SigCache,
    ) -> Result<History, (u64, Reject)> {
        let mut h = History::new(genesis);
        for r in records {
            let tx = h.height() + 1;
            let commit = Commit::decode(r).map_err(|e| (tx, Reject::Wire(e)))?;
            let done = h.verify_next(genesis, &commit, sigs).map_err(|e| (tx, e))?;
            h.push(done).map_err(|e| (tx, e))?;
        }
        Ok(h)
    }

    /// Committed transactions.
    pub fn height(&self) -> u64 {
        self.commits.len() as u64
    }
    /// The reference the next transaction builds on.
    pub fn prev(&self) -> [u8; 16] {
        self.prev
    }
    /// The roster in force for the next transaction.
    pub fn roster(&self) -> &Roster {
        // Never empty: `new` starts it with the genesis roster.
        &self.rosters[self.rosters.len() - 1]
    }
    /// Every roster so far, the genesis roster first.
    pub fn rosters(&self) -> &[Roster] {
        &self.rosters
    }

    /// Checks the certificate of the next transaction on its own, against
    /// the roster in force for it.
    pub fn verify_next(
        &self,
        genesis: &Genesis,
        commit: &Commit,
        sigs: &SigCache,
    ) -> Result<Committed, Reject> {
        verify_commit_with(
            genesis,
            self.roster(),
            self.height() + 1,
            &self.prev,
            commit,
            sigs,
        )
    }

    /// Appends a verified commit of the next transaction, and the roster
    /// its change puts in force.
    pub fn push(&mut self, done: Committed) -> Result<(), Reject> {
        if let Some(change) = &done.change {
            let next = self
                .roster()
                .apply(change, done.tx)
                .map_err(Reject::Change)?;
            self.rosters.push(next);
        }
        self.prev = done.reference;
        self.commits.push(done);
        Ok(())
    }
}

/// The roster in force for transaction `tx`, among `rosters` (oldest first).
pub fn roster_at(rosters: &[Roster], tx: u64) -> Option<&Roster> {
    rosters.iter().rev().find(|r| r.since() <= tx)
}
