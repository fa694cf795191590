//! The voting rounds of the open transaction: the round this node is in,
//! the ballot box, this node's own ballots (its latest confirmation is its
//! lock), and the quorums of approvals seen, with the rules that read them.
//!
//! The handlers in [`super::voting`] decide *when* to act (a ballot
//! arrived, a timer fired); what a node may approve, which quorum it
//! follows and when a round is over are decided here, on this state alone,
//! so each rule can be read and tested by itself.

use std::collections::{BTreeMap, BTreeSet};

use super::ballots::{Ballot, BallotBox, Cast};
use crate::identity::NodeId;
use crate::wire::{Bytes, Stance};

/// A quorum of approvals: the solution and the approvals' envelopes.
pub type Quorum = ([u8; 16], Vec<Bytes>);

/// Two quorums approved different solutions in one round: more members lie
/// than the quorum tolerates.
#[derive(Debug, PartialEq, Eq)]
pub struct TwoQuorums {
    pub round: u32,
}

/// The open transaction's voting rounds.
#[derive(Default)]
pub struct Rounds {
    current: u32,
    ballots: BallotBox,
    approval: Option<(u32, Ballot)>,
    confirmation: Option<(u32, Ballot)>,
    quorums: BTreeMap<u32, Quorum>,
}

impl Rounds {
    /// The voting round this node is in.
    pub fn current(&self) -> u32 {
        self.current
    }

    /// Moves to round `v` (never back).
    pub fn enter(&mut self, v: u32) {
        self.current = self.current.max(v);
    }

    pub fn ballots(&self) -> &BallotBox {
        &self.ballots
    }

    /// Takes another member's ballot (see [`BallotBox::cast`]).
    pub fn cast(&mut self, v: u32, stage: Stance, voter: NodeId, ballot: Ballot) -> Cast {
        self.ballots.cast(v, stage, voter, ballot)
    }

    /// Our latest approval: (round, ballot).
    pub fn approval(&self) -> Option<&(u32, Ballot)> {
        self.approval.as_ref()
    }

    /// Our latest confirmation, which is also our lock: (round, ballot).
    pub fn confirmation(&self) -> Option<&(u32, Ballot)> {
        self.confirmation.as_ref()
    }

    /// Whether we approved in round `v` or later.
    pub fn approved_since(&self, v: u32) -> bool {
        self.approval.as_ref().is_some_and(|(r, _)| *r >= v)
    }

    /// Whether we confirmed in round `v` or later.
    pub fn confirmed_since(&self, v: u32) -> bool {
        self.confirmation.as_ref().is_some_and(|(r, _)| *r >= v)
    }

    /// Whether our latest approval is of a round before the current one.
    pub fn approval_behind(&self) -> bool {
        self.approval
            .as_ref()
            .is_some_and(|(r, _)| *r < self.current)
    }

    /// Records our own ballot at `stage` of round `v`: an approval, or a
    /// confirmation (our new lock). It replaces any we cast there before.
    pub fn own(&mut self, v: u32, stage: Stance, me: NodeId, ballot: Ballot) {
        self.ballots.put_own(v, stage, me, ballot.clone());
        match stage {
            Stance::Approve => self.approval = Some((v, ballot)),
            Stance::Confirm => self.confirmation = Some((v, ballot)),
            Stance::Reject => {}
        }
    }

    /// Our lock: the round and solution we last confirmed.
    pub fn lock(&self) -> Option<(u32, [u8; 16])> {
        self.confirmation.as_ref().map(|(v, (s, _))| (*v, *s))
    }

    /// The solutions we back (approved or locked on).
    pub fn backed(&self) -> BTreeSet<[u8; 16]> {
        [&self.approval, &self.confirmation]
            .into_iter()
            .flatten()
            .map(|(_, (s, _))| *s)
            .collect()
    }

    /// Records a quorum of approvals for `solution` in round `v`; the first
    /// one seen for a round stays.
    fn note_quorum(
        &mut self,
        v: u32,
        solution: [u8; 16],
        proof: Vec<Bytes>,
    ) -> Result<(), TwoQuorums> {
        match self.quorums.get(&v) {
            Some((s, _)) if *s != solution => Err(TwoQuorums { round: v }),
            Some(_) => Ok(()),
            None => {
                self.quorums.insert(v, (solution, proof));
                Ok(())
            }
        }
    }

    /// Counts the honest approvals of `solution` in round `v`, and records
    /// them when they make a quorum.
    pub fn count_approvals(
        &mut self,
        v: u32,
        solution: [u8; 16],
        liars: &BTreeSet<NodeId>,
        quorum: usize,
    ) -> Result<(), TwoQuorums> {
        let proof = self.ballots.tally(v, Stance::Approve, &solution, liars);
        if proof.len() >= quorum {
            self.note_quorum(v, solution, proof)?;
        }
        Ok(())
    }

    /// The quorum of approvals seen in round `v`.
    pub fn quorum_in(&self, v: u32) -> Option<&Quorum> {
        self.quorums.get(&v)
    }

    /// The quorum of the latest round that had one.
    pub fn latest_quorum(&self) -> Option<&Quorum> {
        self.quorums.values().next_back()
    }

    /// The solution to approve in round `v`: the newest quorum's before `v`
    /// if it is newer than our lock, else our lock, else the newest
    /// quorum's, else what `preferred` picks among the solutions seen.
    pub fn choose(&self, v: u32, preferred: impl FnOnce() -> Option<[u8; 16]>) -> Option<[u8; 16]> {
        let polka = self
            .quorums
            .range(..v)
            .next_back()
            .map(|(r, (s, _))| (*r, *s));
        match (self.lock(), polka) {
            (Some((lr, _)), Some((pr, ps))) if pr > lr => Some(ps),
            (Some((_, ls)), _) => Some(ls),
            (None, Some((_, ps))) => Some(ps),
            (None, None) => preferred(),
        }
    }

    /// At a resend, having approved in the current round: the round to
    /// move to, with how many approved in the current one. A round is over
    /// when a quorum voted in it without a commit (a split or a slow
    /// quorum); a round where fewer voted waits for the rest, unless others
    /// are already further: then join them. Moving on a timer alone would
    /// let nodes drift apart and never share a round.
    pub fn next_round(&self, liars: &BTreeSet<NodeId>, quorum: usize) -> Option<(u32, usize)> {
        let v = self.current;
        if self.approval.as_ref().is_none_or(|(r, _)| *r != v) {
            return None;
        }
        let latest = self.ballots.latest_round(liars);
        let here = self.ballots.voted(v, Stance::Approve, liars);
        if here >= quorum {
            Some((latest.max(v + 1), here))
        } else if latest > v {
            Some((latest, here))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> NodeId {
        NodeId([b; 8])
    }

    const S: [u8; 16] = [1; 16];
    const T: [u8; 16] = [2; 16];

    #[test]
    fn a_lock_holds_until_a_newer_quorum() {
        let mut r = Rounds::default();
        assert_eq!(r.choose(0, || Some(T)), Some(T), "free: the preferred");
        r.note_quorum(1, S, vec![]).expect("a first quorum");
        r.own(1, Stance::Confirm, id(0), (S, vec![1]));
        assert_eq!(r.lock(), Some((1, S)));
        assert_eq!(r.choose(2, || Some(T)), Some(S), "locked");
        r.note_quorum(1, S, vec![]).expect("the same quorum again");
        assert_eq!(r.note_quorum(1, T, vec![]), Err(TwoQuorums { round: 1 }));
        r.note_quorum(2, T, vec![]).expect("a later quorum");
        assert_eq!(r.choose(2, || None), Some(S), "only quorums before v count");
        assert_eq!(r.choose(3, || None), Some(T), "a newer quorum unlocks");
        assert_eq!(r.backed(), [S].into());
    }

    #[test]
    fn a_round_ends_with_a_quorum_or_when_others_are_ahead() {
        let none = BTreeSet::new();
        let mut r = Rounds::default();
        assert_eq!(r.next_round(&none, 2), None, "not voted: stay");
        r.own(0, Stance::Approve, id(0), (S, vec![0]));
        assert_eq!(r.next_round(&none, 2), None, "alone: wait for the rest");
        r.cast(0, Stance::Approve, id(1), (T, vec![1]));
        assert_eq!(r.next_round(&none, 2), Some((1, 2)), "a split quorum");
        r.cast(4, Stance::Approve, id(2), (T, vec![2]));
        assert_eq!(r.next_round(&none, 2), Some((4, 2)), "join the latest");
        let liars: BTreeSet<NodeId> = [id(1), id(2)].into();
        assert_eq!(r.next_round(&liars, 2), None, "liars move nobody");
        r.enter(3);
        r.enter(1);
        assert_eq!(r.current(), 3, "never back");
        assert!(r.approval_behind() && r.approved_since(0) && !r.approved_since(1));
    }
}
