//! A verified ledger: its head (height, the reference the next
//! transaction builds on, every roster since the genesis) and, for the
//! tools that list it, its commits.
//!
//! Checking a ledger means checking each certificate against the roster in
//! force at its height, then applying the roster change it carries, if any,
//! for the transactions after it: a node that checks its whole ledger,
//! `edgeminer verify`, a node catching up and the simulation's checker all
//! go through [`Chain::verify_next`] and [`Chain::push`]. A [`Chain`] holds
//! nothing per transaction, so a node's memory does not grow with its
//! ledger; [`History`] keeps every commit, for `ledger` and the checker.

use super::certificate::{verify_commit_with, Committed};
use super::genesis::Genesis;
use super::roster::Roster;
use super::Reject;
use crate::wire::{Commit, SigCache};

/// The head of a verified ledger.
#[derive(Clone, Debug)]
pub struct Chain {
    height: u64,
    /// The genesis roster first, then one per committed change.
    rosters: Vec<Roster>,
    prev: [u8; 16],
}

impl Chain {
    /// A ledger with nothing committed yet.
    pub fn new(genesis: &Genesis) -> Chain {
        Chain {
            height: 0,
            rosters: vec![genesis.roster()],
            prev: genesis.prev(),
        }
    }

    /// A head taken on trust from what the node wrote itself: `rosters`
    /// (the genesis roster first) in force after `height`, whose last
    /// reference is `prev`. [`super::head::resume`] checks it against the
    /// ledger's last certificate.
    pub(crate) fn from_parts(height: u64, prev: [u8; 16], rosters: Vec<Roster>) -> Chain {
        Chain {
            height,
            rosters,
            prev,
        }
    }

    /// Committed transactions.
    pub fn height(&self) -> u64 {
        self.height
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
            self.height + 1,
            &self.prev,
            commit,
            sigs,
        )
    }

    /// Decodes and checks the record of the next transaction, and appends it.
    pub fn check(
        &mut self,
        genesis: &Genesis,
        record: &[u8],
        sigs: &SigCache,
    ) -> Result<Committed, Reject> {
        let commit = Commit::decode(record).map_err(Reject::Wire)?;
        let done = self.verify_next(genesis, &commit, sigs)?;
        self.push(&done)?;
        Ok(done)
    }

    /// Appends a verified commit of the next transaction, and the roster
    /// its change puts in force.
    pub fn push(&mut self, done: &Committed) -> Result<(), Reject> {
        if let Some(change) = &done.change {
            let next = self
                .roster()
                .apply(change, done.tx)
                .map_err(Reject::Change)?;
            self.rosters.push(next);
        }
        self.prev = done.reference;
        self.height = done.tx;
        Ok(())
    }
}

/// Commits (transaction 1 first, or the first after a pruned ledger's
/// base) and the head they make.
#[derive(Clone, Debug)]
pub struct History {
    pub commits: Vec<Committed>,
    chain: Chain,
    /// Transactions before the first commit held (pruned).
    pruned: u64,
}

impl History {
    /// A ledger with nothing committed yet.
    pub fn new(genesis: &Genesis) -> History {
        History::starting(Chain::new(genesis))
    }

    /// Nothing held after `start` (a pruned ledger's base).
    fn starting(start: Chain) -> History {
        History {
            commits: Vec::new(),
            pruned: start.height(),
            chain: start,
        }
    }

    /// Verifies commit records (transaction 1 first) and builds the
    /// history; on the first bad one, its transaction and why.
    pub fn verify(
        genesis: &Genesis,
        records: &[Vec<u8>],
        sigs: &SigCache,
    ) -> Result<History, (u64, Reject)> {
        History::verify_from(genesis, Chain::new(genesis), records, sigs)
    }

    /// [`History::verify`] of the records that follow `start`.
    pub fn verify_from(
        genesis: &Genesis,
        start: Chain,
        records: &[Vec<u8>],
        sigs: &SigCache,
    ) -> Result<History, (u64, Reject)> {
        let mut h = History::starting(start);
        for r in records {
            let tx = h.height() + 1;
            let done = h.chain.check(genesis, r, sigs).map_err(|e| (tx, e))?;
            h.commits.push(done);
        }
        Ok(h)
    }

    /// Transactions pruned from the ledger (before the first commit held).
    pub fn pruned(&self) -> u64 {
        self.pruned
    }
    /// The head these commits make.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }
    /// Committed transactions.
    pub fn height(&self) -> u64 {
        self.chain.height()
    }
    /// The reference the next transaction builds on.
    pub fn prev(&self) -> [u8; 16] {
        self.chain.prev()
    }
    /// The roster in force for the next transaction.
    pub fn roster(&self) -> &Roster {
        self.chain.roster()
    }
    /// Every roster so far, the genesis roster first.
    pub fn rosters(&self) -> &[Roster] {
        self.chain.rosters()
    }

    /// Checks the certificate of the next transaction on its own.
    pub fn verify_next(
        &self,
        genesis: &Genesis,
        commit: &Commit,
        sigs: &SigCache,
    ) -> Result<Committed, Reject> {
        self.chain.verify_next(genesis, commit, sigs)
    }

    /// Appends a verified commit of the next transaction.
    pub fn push(&mut self, done: Committed) -> Result<(), Reject> {
        self.chain.push(&done)?;
        self.commits.push(done);
        Ok(())
    }
}

/// The roster in force for transaction `tx`, among `rosters` (oldest first).
pub fn roster_at(rosters: &[Roster], tx: u64) -> Option<&Roster> {
    rosters.iter().rev().find(|r| r.since() <= tx)
}
