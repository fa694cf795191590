//! The state of the transaction under way, reset at every commit.
//!
//! Everything a node knows about the open transaction lives here: election
//! votes per round, the valid challenges and solutions, the ballots of the
//! voting rounds, and this node's own messages (kept so that it can send
//! them again after a reconnect or when a round times out).

use std::collections::{BTreeMap, BTreeSet};

pub use super::ballots::Ballot;
use super::challenge::ChallengeInfo;
use super::electorate::Electorate;
use super::rounds::Rounds;
use super::solution::SolutionInfo;
use super::Publish;
use crate::identity::NodeId;
use crate::wire::{Family, Topics};

/// Everything about the transaction under way.
#[derive(Default)]
pub struct TxState {
    /// The election: rounds, votes, our vote, the challenges we issued.
    pub election: Electorate,
    pub my_challenge: Option<Vec<u8>>,
    pub challenges: BTreeMap<[u8; 16], ChallengeInfo>,
    pub mining: Option<(u64, [u8; 16])>,
    pub my_solution: Option<Vec<u8>>,
    pub solutions: BTreeMap<[u8; 16], SolutionInfo>,
    pub orphans: Vec<(String, Vec<u8>)>,
    pub refused: BTreeSet<NodeId>,
    /// The voting rounds: ballots, our own ballots and lock, quorums.
    pub rounds: Rounds,
    /// How many times the resend timer fired in this transaction.
    pub resends: u32,
}

impl TxState {
    /// Our own messages of this transaction, to publish again after a
    /// reconnect or a timeout.
    pub fn republish(&self, topics: &Topics, me: NodeId) -> Vec<Publish> {
        let mut v = Vec::new();
        let mut push = |family, payload: &Vec<u8>, retain| {
            v.push(Publish {
                topic: topics.own(family, me),
                payload: payload.clone(),
                retain,
            })
        };
        if let Some((_, env)) = self.election.my_vote() {
            push(Family::Election, env, false);
        }
        if let Some(env) = &self.my_challenge {
            push(Family::Challenge, env, true);
        }
        if let Some(env) = &self.my_solution {
            push(Family::Solution, env, false);
        }
        // The solution we approve or hold locked may be one others never
        // received (its miner or leader may be gone): pass it on.
        for s in self.rounds.backed() {
            if let Some(info) = self.solutions.get(&s) {
                // Its challenge too: a node that missed it holds the
                // solution as an orphan and cannot vote.
                if let Some(c) = self.challenges.get(&info.challenge) {
                    if self.my_challenge.as_ref() != Some(&c.envelope) {
                        push(Family::Challenge, &c.envelope, false);
                    }
                }
                if self.my_solution.as_ref() != Some(&info.envelope) {
                    push(Family::Solution, &info.envelope, false);
                }
            }
        }
        // The approvals of the latest quorum we know of: a node that missed
        // one of them (a lost approval is not sent again by its voter until
        // its next resend, which may be in another round) would keep
        // approving something else, and with exactly q nodes alive the
        // rounds would split for ever.
        if let Some((_, proof)) = self.rounds.latest_quorum() {
            for b in proof {
                push(Family::Voting, &b.0, false);
            }
        }
        let own = [self.rounds.approval(), self.rounds.confirmation()];
        for (_, (_, env)) in own.into_iter().flatten() {
            push(Family::Voting, env, false);
        }
        v
    }

    /// Who signed the solutions we back and their challenges: the keys a
    /// node needs to check what [`TxState::republish`] passes on.
    pub fn relayed_signers(&self) -> BTreeSet<NodeId> {
        self.rounds
            .backed()
            .into_iter()
            .filter_map(|s| self.solutions.get(&s))
            .flat_map(|info| {
                let leader = self.challenges.get(&info.challenge).map(|c| c.leader);
                std::iter::once(info.solver).chain(leader)
            })
            .collect()
    }
}
