//! The election of the open transaction: the round this node is in, every
//! member's vote by round, this node's own vote, and which rounds it has
//! announced a leader for or issued a challenge in.
//!
//! One vote per member per round: a second, different vote is the proof
//! that its signer lies, and the first is dropped with it. Counting leaves
//! out every known liar. The handlers in [`super::election`] decide when to
//! vote, follow, tally and time out.

use std::collections::{BTreeMap, BTreeSet};

use super::quorum;
use crate::identity::NodeId;
use crate::wire::Bytes;

/// What a vote added.
#[derive(Debug, PartialEq, Eq)]
pub enum VoteCast {
    /// The voter's first vote in that round; how many have voted there.
    New { voters: usize },
    /// The same vote again: nothing changes.
    Again,
    /// The voter already voted for another candidate there: it lies.
    Conflict,
}

/// The winner of a round: the leader, its votes and the votes received.
#[derive(Debug, PartialEq, Eq)]
pub struct Winner {
    pub leader: NodeId,
    pub votes: usize,
    pub received: usize,
}

/// The open transaction's election.
#[derive(Default)]
pub struct Electorate {
    round: u32,
    /// round -> voter -> (candidate, vote envelope)
    votes: BTreeMap<u32, BTreeMap<NodeId, (NodeId, Vec<u8>)>>,
    mine: Option<(u32, Vec<u8>)>,
    announced: Option<u32>,
    issued: BTreeSet<u32>,
}

impl Electorate {
    /// The election round this node is in.
    pub fn round(&self) -> u32 {
        self.round
    }

    pub fn enter(&mut self, round: u32) {
        self.round = round;
    }

    /// Our latest vote: (round, envelope).
    pub fn my_vote(&self) -> Option<&(u32, Vec<u8>)> {
        self.mine.as_ref()
    }

    /// Whether we voted in `round` or later.
    pub fn voted_since(&self, round: u32) -> bool {
        self.mine.as_ref().is_some_and(|(r, _)| *r >= round)
    }

    /// Records our own vote for `candidate` in `round`.
    pub fn vote(&mut self, round: u32, me: NodeId, candidate: NodeId, env: Vec<u8>) {
        self.mine = Some((round, env.clone()));
        self.votes
            .entry(round)
            .or_default()
            .insert(me, (candidate, env));
    }

    /// Takes `voter`'s vote for `candidate` in `round`.
    pub fn cast(&mut self, round: u32, voter: NodeId, candidate: NodeId, env: Vec<u8>) -> VoteCast {
        let votes = self.votes.entry(round).or_default();
        match votes.get(&voter) {
            Some((c, _)) if *c == candidate => VoteCast::Again,
            Some(_) => {
                votes.remove(&voter);
                VoteCast::Conflict
            }
            None => {
                votes.insert(voter, (candidate, env));
                VoteCast::New {
                    voters: votes.len(),
                }
            }
        }
    }

    /// The candidate a quorum of honest votes elects in `round`, if any.
    pub fn tally(&self, round: u32, liars: &BTreeSet<NodeId>, q: usize) -> Option<Winner> {
        let votes = self.votes.get(&round)?;
        let honest = votes.iter().filter(|(voter, _)| !liars.contains(voter));
        let (leader, count) = quorum::tally(honest.map(|(_, (c, _))| *c), q)?;
        Some(Winner {
            leader,
            votes: count,
            received: votes.len(),
        })
    }

    /// Whether `round`'s leader is announced for the first time (then it
    /// is logged and counted once).
    pub fn announce(&mut self, round: u32) -> bool {
        let first = self.announced != Some(round);
        self.announced = Some(round);
        first
    }

    /// Records that we issued the challenge of `round`.
    pub fn issue(&mut self, round: u32) {
        self.issued.insert(round);
    }

    /// Whether we issued the challenge of `round`.
    pub fn issued(&self, round: u32) -> bool {
        self.issued.contains(&round)
    }

    /// Whether we issued a challenge in any round.
    pub fn issued_any(&self) -> bool {
        !self.issued.is_empty()
    }

    /// Whether anyone's vote of `round` is kept.
    pub fn has_votes(&self, round: u32) -> bool {
        self.votes.contains_key(&round)
    }

    /// The honest votes of `round` as a certificate.
    pub fn certificate(&self, round: u32, liars: &BTreeSet<NodeId>) -> Vec<Bytes> {
        self.honest(round, liars)
            .map(|(_, (_, env))| Bytes(env.clone()))
            .collect()
    }

    /// The honest voters of `round`, in the order of
    /// [`Electorate::certificate`].
    pub fn voters<'a>(
        &'a self,
        round: u32,
        liars: &'a BTreeSet<NodeId>,
    ) -> impl Iterator<Item = NodeId> + 'a {
        self.honest(round, liars).map(|(voter, _)| *voter)
    }

    fn honest<'a>(
        &'a self,
        round: u32,
        liars: &'a BTreeSet<NodeId>,
    ) -> impl Iterator<Item = (&'a NodeId, &'a (NodeId, Vec<u8>))> + 'a {
        self.votes
            .get(&round)
            .into_iter()
            .flatten()
            .filter(move |(voter, _)| !liars.contains(voter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> NodeId {
        NodeId([b; 8])
    }

    #[test]
    fn a_second_vote_convicts_and_liars_elect_nobody() {
        let mut e = Electorate::default();
        assert_eq!(
            e.cast(0, id(1), id(9), vec![1]),
            VoteCast::New { voters: 1 }
        );
        assert_eq!(e.cast(0, id(1), id(9), vec![7]), VoteCast::Again);
        assert_eq!(
            e.cast(0, id(2), id(9), vec![2]),
            VoteCast::New { voters: 2 }
        );
        let none = BTreeSet::new();
        let won = e.tally(0, &none, 2).expect("a quorum");
        assert_eq!((won.leader, won.votes, won.received), (id(9), 2, 2));
        assert_eq!(e.cast(0, id(2), id(8), vec![3]), VoteCast::Conflict);
        assert_eq!(e.tally(0, &none, 2), None, "the liar's first vote is gone");
        e.cast(0, id(3), id(9), vec![4]);
        let liars: BTreeSet<NodeId> = [id(3)].into();
        assert_eq!(e.tally(0, &liars, 2), None);
        assert_eq!(e.certificate(0, &liars), [Bytes(vec![1])]);
        assert_eq!(e.voters(0, &liars).collect::<Vec<_>>(), [id(1)]);
    }

    #[test]
    fn own_vote_announcements_and_challenges_are_remembered() {
        let mut e = Electorate::default();
        e.enter(2);
        e.vote(2, id(0), id(5), vec![1]);
        assert!(e.voted_since(2) && !e.voted_since(3));
        assert_eq!(e.my_vote(), Some(&(2, vec![1])));
        assert!(e.has_votes(2) && !e.has_votes(1));
        assert!(e.announce(2) && !e.announce(2) && e.announce(3));
        assert!(!e.issued_any());
        e.issue(2);
        assert!(e.issued(2) && !e.issued(3) && e.issued_any());
        assert_eq!(e.round(), 2);
    }
}
