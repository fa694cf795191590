//! Phase 5, solution: seeds found by the miners, and their check.
//!
//! A miner publishes its seed with a reference to the challenge it solves.
//! The preimage binds the challenge's salt and the solver's id, so a seed can
//! neither be reused in another transaction nor claimed by another node.
//! Every node checks the proof of work itself. The leader approves the
//! first valid solution it sees at once: its approval in voting round 0 is
//! a proposal, and every node that holds that solution approves it as soon
//! as it sees it, as Tendermint's proposer does. Only when the leader is
//! silent does a node wait a short window after its first valid solution,
//! then cast its first approval (phase 6) for the solution this phase
//! prefers: the one with the most approvals already, ties to the lowest
//! digest, so nodes that saw the same candidates agree whatever their
//! order of arrival. An invalid solution gets one rejection per solver.

use tracing::{debug, info, warn};

use super::timers::Timer;
use super::{reference, Node, Output, Reject};
use crate::identity::NodeId;
use crate::pow;
use crate::wire::{Approval, Body, Envelope, Family, Payload, Solution, Stance};

/// The choice among valid solutions: the most approvals from others first
/// (join a forming quorum), then the lowest SHA-1 digest, so that nodes that
/// saw the same candidates choose the same one whatever their order.
fn preference(approvals: usize, digest: [u8; 20]) -> (std::cmp::Reverse<usize>, [u8; 20]) {
    (std::cmp::Reverse(approvals), digest)
}

/// Solutions held until their challenge arrives, per transaction: two
/// per member a roster may hold (every member may find a seed before the
/// challenge reaches a slow node, and a second election round may bring
/// a second challenge).
const MAX_ORPHANS: usize = 2 * crate::wire::MAX_MEMBERS;

/// A valid solution of the current transaction.
#[derive(Clone, Debug)]
pub struct SolutionInfo {
    pub solver: NodeId,
    pub seed: u64,
    pub challenge: [u8; 16],
    pub envelope: Vec<u8>,
}

impl Node {
    pub(crate) fn mined(&mut self, job: u64, seed: u64, _now: u64, out: &mut Output) {
        let Some((current, challenge)) = self.tx.mining else {
            debug!(job, "solution: seed for a job no longer wanted");
            return;
        };
        if current != job {
            debug!(job, "solution: seed for a replaced job");
            return;
        }
        self.tx.mining = None;
        let tx = self.height + 1;
        let round = self.tx.challenges.get(&challenge).map_or(0, |c| c.round);
        let env = self.sign(tx, round, Payload::Solution(Solution { challenge, seed }));
        info!(
            "solution: tx {tx} round {round}, found seed {}; publishing",
            pow::seed_hex(seed)
        );
        self.tx.my_solution = Some(env.clone());
        self.publish(out, Family::Solution, env, false);
    }

    /// The preferred valid solution for voting round `v`: the most
    /// approvals in that round already, then the lowest digest.
    pub(crate) fn best_solution(&self, v: u32) -> Option<[u8; 16]> {
        self.tx
            .solutions
            .iter()
            .filter_map(|(r, sol)| {
                let ch = self.tx.challenges.get(&sol.challenge)?;
                let votes = self
                    .tx
                    .rounds
                    .ballots()
                    .count(v, Stance::Approve, r, &self.liars);
                let digest = pow::Template::new(&ch.salt, &sol.solver.0).digest(sol.seed);
                Some((preference(votes, digest), *r))
            })
            .min()
            .map(|(_, r)| r)
    }

    /// Whether a valid solution this node holds is proposed: this node
    /// leads its challenge, or the challenge's leader (no known liar)
    /// approved it in voting round 0.
    fn proposed(&self) -> bool {
        let ballots = self.tx.rounds.ballots();
        self.tx.solutions.iter().any(|(r, sol)| {
            self.tx.challenges.get(&sol.challenge).is_some_and(|ch| {
                ch.leader == self.me
                    || (!self.liars.contains(&ch.leader)
                        && ballots
                            .get(0, Stance::Approve, ch.leader)
                            .is_some_and(|(s, _)| s == r))
            })
        })
    }

    /// Casts the first approval now, without waiting out the solution
    /// window, if a solution this node holds is proposed.
    pub(crate) fn take_proposal(&mut self, now: u64, out: &mut Output) {
        if self.timers.runs(Timer::Window) && self.tx.rounds.approval().is_none() && self.proposed()
        {
            debug!(
                "solution: tx {} approving the proposal at once",
                self.height + 1
            );
            self.approve_best(now, out);
        }
    }

    pub(crate) fn on_solution(
        &mut self,
        env: &Envelope,
        body: &Body,
        s: Solution,
        now: u64,
        out: &mut Output,
    ) -> Result<(), Reject> {
        let r = reference(&env.body);
        if self.tx.solutions.contains_key(&r) {
            return Ok(());
        }
        let Some(ch) = self.tx.challenges.get(&s.challenge).cloned() else {
            // Its challenge may still be on its way (no ordering across
            // topics): keep it for when the challenge arrives.
            if self.tx.orphans.len() < MAX_ORPHANS {
                self.tx
                    .orphans
                    .push((self.topics.own(Family::Solution, body.sender), env.encode()));
                return Ok(());
            }
            return Err(Reject::UnknownChallenge);
        };
        if !pow::verify(&ch.salt, &body.sender.0, s.seed, ch.difficulty) {
            if self.tx.refused.insert(body.sender) {
                let a = self.sign(body.tx, 0, Payload::Approval(Approval::reject(r)));
                self.publish(out, Family::Voting, a, false);
            }
            return Err(Reject::BadProofOfWork);
        }
        self.tx.solutions.insert(
            r,
            SolutionInfo {
                solver: body.sender,
                seed: s.seed,
                challenge: s.challenge,
                envelope: env.encode(),
            },
        );
        if self.tx.rounds.approval().is_none() && !self.timers.runs(Timer::Window) {
            self.timers
                .set(Timer::Window, now + self.cfg.solution_window_ms);
            debug!(
                "solution: tx {} first valid seed (of {}); choosing in {} ms",
                body.tx,
                self.name_of(body.sender),
                self.cfg.solution_window_ms
            );
        }
        self.solution_arrived(r, now, out);
        if self.tx.solutions.len() > 256 {
            warn!("solution: more than 256 valid solutions for one transaction");
        }
        Ok(())
    }
}
