//! The ballot box of the voting phase: every member's approval and
//! confirmation of the open transaction, by voting round, and the one way
//! they are counted.
//!
//! Every rule of the voting phase asks the same question: how many
//! members, not caught signing two different ballots, backed this solution
//! at this stage of this round? It is answered here and nowhere else, so
//! that a known liar is left out of every count alike.

use std::collections::{BTreeMap, BTreeSet};

use crate::identity::NodeId;
use crate::wire::{Bytes, Stance};

/// One signed ballot: the solution it backs and its envelope.
pub type Ballot = ([u8; 16], Vec<u8>);

/// What a ballot added to the box.
#[derive(Debug, PartialEq, Eq)]
pub enum Cast {
    /// The voter's first ballot at this stage of this round.
    New,
    /// The same ballot again: nothing changes.
    Again,
    /// The voter already backed another solution here: it lies.
    Conflict,
}

/// Approvals and confirmations of one transaction.
#[derive(Default)]
pub struct BallotBox {
    /// (voting round, stage) -> voter -> ballot; the stage is
    /// [`Stance::Approve`] or [`Stance::Confirm`] (rejections are not
    /// ballots of a round).
    rounds: BTreeMap<(u32, Stance), BTreeMap<NodeId, Ballot>>,
}

impl BallotBox {
    /// Takes `voter`'s ballot at `stage` of round `v`, unless it already
    /// cast one there.
    pub fn cast(&mut self, v: u32, stage: Stance, voter: NodeId, ballot: Ballot) -> Cast {
        let slot = self.rounds.entry((v, stage)).or_default();
        match slot.get(&voter) {
            Some((s, _)) if *s == ballot.0 => Cast::Again,
            Some(_) => Cast::Conflict,
            None => {
                slot.insert(voter, ballot);
                Cast::New
            }
        }
    }

    /// This node's own ballot, which replaces any it cast there before.
    pub fn put_own(&mut self, v: u32, stage: Stance, me: NodeId, ballot: Ballot) {
        self.rounds
            .entry((v, stage))
            .or_default()
            .insert(me, ballot);
    }

    /// The envelopes of the honest ballots for `solution` at `stage` of
    /// round `v` (the proof of a quorum, when there are enough).
    pub fn tally(
        &self,
        v: u32,
        stage: Stance,
        solution: &[u8; 16],
        liars: &BTreeSet<NodeId>,
    ) -> Vec<Bytes> {
        self.backing(v, stage, solution, liars)
            .map(|(_, (_, env))| Bytes(env.clone()))
            .collect()
    }

    /// The honest members whose ballots back `solution` at `stage` of
    /// round `v`, in the order of [`BallotBox::tally`].
    pub fn backers(
        &self,
        v: u32,
        stage: Stance,
        solution: &[u8; 16],
        liars: &BTreeSet<NodeId>,
    ) -> Vec<NodeId> {
        self.backing(v, stage, solution, liars)
            .map(|(id, _)| *id)
            .collect()
    }

    /// How many honest ballots back `solution` at `stage` of round `v`.
    pub fn count(
        &self,
        v: u32,
        stage: Stance,
        solution: &[u8; 16],
        liars: &BTreeSet<NodeId>,
    ) -> usize {
        self.backing(v, stage, solution, liars).count()
    }

    /// How many honest members cast a ballot at `stage` of round `v`.
    pub fn voted(&self, v: u32, stage: Stance, liars: &BTreeSet<NodeId>) -> usize {
        self.honest(v, stage, liars).count()
    }

    /// The honest members with a ballot of any stage in round `v`.
    pub fn voters(&self, v: u32, liars: &BTreeSet<NodeId>) -> BTreeSet<NodeId> {
        [Stance::Approve, Stance::Confirm]
            .into_iter()
            .flat_map(|stage| self.honest(v, stage, liars).map(|(id, _)| *id))
            .collect()
    }

    /// The latest round in which an honest member cast a ballot.
    pub fn latest_round(&self, liars: &BTreeSet<NodeId>) -> u32 {
        self.rounds
            .iter()
            .filter(|(_, slot)| slot.keys().any(|k| !liars.contains(k)))
            .map(|((v, _), _)| *v)
            .max()
            .unwrap_or(0)
    }

    /// The rounds with confirmations, oldest first.
    pub fn confirmed_rounds(&self) -> Vec<u32> {
        self.rounds
            .keys()
            .filter(|(_, stage)| *stage == Stance::Confirm)
            .map(|(v, _)| *v)
            .collect()
    }

    /// `voter`'s ballot at `stage` of round `v`, if it cast one.
    pub fn get(&self, v: u32, stage: Stance, voter: NodeId) -> Option<&Ballot> {
        self.rounds.get(&(v, stage))?.get(&voter)
    }

    fn backing<'a>(
        &'a self,
        v: u32,
        stage: Stance,
        solution: &'a [u8; 16],
        liars: &'a BTreeSet<NodeId>,
    ) -> impl Iterator<Item = (&'a NodeId, &'a Ballot)> + 'a {
        self.honest(v, stage, liars)
            .filter(move |(_, (s, _))| s == solution)
    }

    fn honest<'a>(
        &'a self,
        v: u32,
        stage: Stance,
        liars: &'a BTreeSet<NodeId>,
    ) -> impl Iterator<Item = (&'a NodeId, &'a Ballot)> + 'a {
        self.rounds
            .get(&(v, stage))
            .into_iter()
            .flatten()
            .filter(move |(id, _)| !liars.contains(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> NodeId {
        NodeId([b; 8])
    }

    #[test]
    fn liars_count_nowhere_and_a_second_ballot_is_a_conflict() {
        let mut b = BallotBox::default();
        let (s, t) = ([1; 16], [2; 16]);
        assert_eq!(b.cast(0, Stance::Approve, id(1), (s, vec![1])), Cast::New);
        assert_eq!(b.cast(0, Stance::Approve, id(1), (s, vec![9])), Cast::Again);
        assert_eq!(
            b.cast(0, Stance::Approve, id(1), (t, vec![1])),
            Cast::Conflict
        );
        b.cast(0, Stance::Approve, id(2), (s, vec![2]));
        b.cast(0, Stance::Approve, id(3), (t, vec![3]));
        b.cast(2, Stance::Confirm, id(3), (t, vec![4]));
        let none = BTreeSet::new();
        let liars: BTreeSet<NodeId> = [id(3)].into();
        assert_eq!(b.count(0, Stance::Approve, &s, &none), 2);
        assert_eq!(
            b.tally(0, Stance::Approve, &s, &none),
            [Bytes(vec![1]), Bytes(vec![2])]
        );
        assert_eq!(b.count(0, Stance::Approve, &t, &liars), 0);
        assert_eq!(b.voted(0, Stance::Approve, &liars), 2);
        assert_eq!(b.voters(0, &none).len(), 3);
        assert_eq!(b.latest_round(&none), 2);
        assert_eq!(b.latest_round(&liars), 0, "a round only a liar voted in");
        assert_eq!(b.confirmed_rounds(), [2]);
        assert_eq!(b.count(0, Stance::Confirm, &s, &none), 0, "stages apart");
    }

    #[test]
    fn own_ballot_replaces() {
        let mut b = BallotBox::default();
        b.put_own(1, Stance::Approve, id(0), ([1; 16], vec![1]));
        b.put_own(1, Stance::Approve, id(0), ([2; 16], vec![2]));
        assert_eq!(b.get(1, Stance::Approve, id(0)), Some(&([2; 16], vec![2])));
    }
}
