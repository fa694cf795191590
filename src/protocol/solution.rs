//! Phase 5, solution: seeds found by the miners, and their check.
//!
//! A miner publishes its seed with a reference to the challenge it solves.
//! The preimage binds the challenge's salt and the solver's id, so a seed can
//! neither be reused in another transaction nor claimed by another node.
//! Every node checks the proof of work itself and approves the FIRST valid
//! solution it receives from the broker (its own included, so that all nodes
//! judge in the broker's order), at most one per transaction; an invalid one
//! gets one rejection per solver.

use tracing::{debug, info, warn};

use super::{reference, Action, Node, Phase, Reject};
use crate::identity::NodeId;
use crate::pow;
use crate::wire::{Approval, Body, Envelope, Family, Payload, Solution};

/// A valid solution of the current transaction.
#[derive(Clone, Debug)]
pub struct SolutionInfo {
    pub solver: NodeId,
    pub seed: u64,
    pub challenge: [u8; 16],
    pub envelope: Vec<u8>,
}

impl Node {
    pub(crate) fn mined(&mut self, job: u64, seed: u64, _now: u64, out: &mut Vec<Action>) {
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
            "solution: tx {tx} found seed {}; publishing",
            pow::seed_hex(seed)
        );
        self.tx.my_solution = Some(env.clone());
        self.publish(out, Family::Solution, env, false);
    }

    pub(crate) fn on_solution(
        &mut self,
        env: &Envelope,
        body: &Body,
        s: Solution,
        now: u64,
        out: &mut Vec<Action>,
    ) -> Result<(), Reject> {
        let r = reference(&env.body);
        if self.tx.solutions.contains_key(&r) {
            return Ok(());
        }
        let Some(ch) = self.tx.challenges.get(&s.challenge).cloned() else {
            // Its challenge may still be on its way (no ordering across
            // topics): keep it for when the challenge arrives.
            if self.tx.orphans.len() < 64 {
                self.tx
                    .orphans
                    .push((self.topics.own(Family::Solution, body.sender), env.encode()));
                return Ok(());
            }
            return Err(Reject::UnknownChallenge);
        };
        if !pow::verify(&ch.salt, &body.sender.0, s.seed, ch.difficulty) {
            if self.tx.refused.insert(body.sender) {
                let a = self.sign(
                    body.tx,
                    body.round,
                    Payload::Approval(Approval {
                        solution: r,
                        approve: false,
                    }),
                );
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
        if self.tx.my_approval.is_none() {
            let a = self.sign(
                body.tx,
                body.round,
                Payload::Approval(Approval {
                    solution: r,
                    approve: true,
                }),
            );
            self.tx.my_approval = Some((r, a.clone()));
            self.tx.approvals.insert(self.me, (r, a.clone()));
            out.push(Action::SaveVotes(self.vote_state()));
            if self.tx.mining.take().is_some() {
                out.push(Action::StopMining);
            }
            self.phase = Phase::Voting;
            info!(
                "voting: tx {} approving seed {} of {} (difficulty {})",
                body.tx,
                pow::seed_hex(s.seed),
                self.name_of(body.sender),
                ch.difficulty
            );
            self.publish(out, Family::Voting, a, false);
        } else if self
            .tx
            .my_approval
            .as_ref()
            .is_some_and(|(mine, _)| *mine != r)
        {
            debug!(
                "solution: tx {} seed of {} is valid but this node already approved another",
                body.tx,
                self.name_of(body.sender)
            );
        }
        self.try_commit(r, now, out);
        if self.tx.solutions.len() > 256 {
            warn!("solution: more than 256 valid solutions for one transaction");
        }
        Ok(())
    }
}
