//! Phase 4, challenge: the elected leader's proof-of-work task.
//!
//! The leader of (tx, round) draws a difficulty from the genesis's range and
//! a fresh 12-byte salt, and publishes them, retained, with the election votes
//! that made it leader, and with the admin's pending roster change if there
//! is one (the transaction then commits it). Every node checks the
//! signature, that the challenge builds on its own ledger head, that the
//! difficulty is in range, that the votes are members' and really elect the
//! sender, and that a change in it is the admin's for the roster in force;
//! then its pool mines it. A challenge of a later round replaces the one
//! being mined. Once any valid challenge is open the transaction no longer
//! needs its leader.

use rand_core::RngCore;
use tracing::{info, warn};

use super::election::check_certificate;
use super::roster::check_change;
use super::timers::Timer;
use super::{reference, Node, Output, Persist, Phase, Reject};
use crate::identity::NodeId;
use crate::wire::{Body, Bytes, Challenge, Envelope, Family, Key33, Payload};

/// A valid challenge of the current transaction.
#[derive(Clone, Debug)]
pub struct ChallengeInfo {
    pub round: u32,
    pub leader: NodeId,
    pub difficulty: u8,
    pub salt: [u8; 12],
    /// The election voters' keys the challenge carries.
    pub keys: Vec<Key33>,
    pub envelope: Vec<u8>,
    /// When this node accepted it (the core's time, in ms), for status.
    pub since: u64,
}

impl Node {
    pub(crate) fn issue_challenge(&mut self, round: u32, out: &mut Output) {
        let (lo, hi) = self.cfg.genesis.difficulty();
        let span = u32::from(hi - lo) + 1;
        let difficulty = lo + (self.rng.next_u32() % span) as u8;
        let mut salt = [0u8; 12];
        self.rng.fill_bytes(&mut salt);
        let votes = self.certificate(round);
        let keys = (self.tx.election)
            .voters(round, &self.liars)
            .filter_map(|v| self.members.get(v).map(|m| Key33(m.public)))
            .collect();
        let tx = self.height + 1;
        let change = self.pending_change(tx);
        let env = self.sign(
            tx,
            round,
            Payload::Challenge(Challenge {
                difficulty,
                salt,
                prev: self.prev,
                votes,
                keys,
                change: change.clone().map(Bytes),
            }),
        );
        self.tx.election.issue(round);
        self.tx.my_challenge = Some(env.clone());
        // A leader that restarts must not issue a second, different
        // challenge for this round: that would look like equivocation.
        out.persist(Persist::SaveVotes(self.vote_state()));
        info!("challenge: tx {tx} round {round}, issuing difficulty {difficulty} as leader");
        if change.is_some() {
            info!("roster: tx {tx} round {round}, proposing the admin's roster change with this challenge");
        }
        self.publish(out, Family::Challenge, env.clone(), true);
        // Take our own challenge now rather than waiting for the echo.
        let topic = self.topics.own(Family::Challenge, self.me);
        self.replay([(topic, env)]);
    }

    pub(crate) fn on_challenge(
        &mut self,
        env: &Envelope,
        body: &Body,
        c: Challenge,
        now: u64,
        out: &mut Output,
    ) -> Result<(), Reject> {
        let r = reference(&env.body);
        if self.tx.challenges.contains_key(&r) {
            return Ok(());
        }
        if c.prev != self.prev {
            return Err(Reject::WrongPrev);
        }
        let (lo, hi) = self.cfg.genesis.difficulty();
        if c.difficulty < lo || c.difficulty > hi {
            return Err(Reject::Difficulty {
                got: c.difficulty,
                lo,
                hi,
            });
        }
        // Voters' keys we lack come with the challenge (checked against
        // ids: members' keys only).
        let mut keys = self.key_map();
        for Key33(k) in &c.keys {
            let id = NodeId::from_public_key(k);
            if !self.roster.contains(id) {
                return Err(Reject::NotAMember(id));
            }
            if let std::collections::btree_map::Entry::Vacant(slot) = keys.entry(id) {
                if let Some(vk) = self.sigs.key(k) {
                    slot.insert(vk);
                }
            }
        }
        let (count, total) = check_certificate(
            &self.cfg.genesis.id(),
            &self.roster,
            body.tx,
            body.round,
            &self.prev,
            body.sender,
            &c.votes,
            &keys,
            &self.sigs,
        )?;
        if let Some(raw) = &c.change {
            check_change(&self.cfg.genesis, &self.roster, &raw.0, body.tx, &self.sigs)
                .map_err(Reject::Change)?;
        }
        // One challenge per leader and round: a second, different one is
        // equivocation (both stay valid to mine; agreement rests on votes).
        let twin = self
            .tx
            .challenges
            .values()
            .any(|i| i.leader == body.sender && i.round == body.round);
        if twin {
            self.caught_lying(body.sender, "challenge");
        }
        let info = ChallengeInfo {
            round: body.round,
            leader: body.sender,
            difficulty: c.difficulty,
            salt: c.salt,
            keys: c.keys.clone(),
            envelope: env.encode(),
            since: now,
        };
        self.tx.challenges.insert(r, info);
        self.timers.stop(Timer::Round);
        self.timers
            .arm(Timer::Resend, now + self.cfg.election_timeout_ms);
        if self.phase == Phase::Init {
            info!(
                "init: tx {} round {}, joining a transaction already under way",
                body.tx, body.round
            );
        }
        let mining_round = self
            .tx
            .mining
            .and_then(|(_, cr)| self.tx.challenges.get(&cr))
            .map(|i| i.round);
        let better = mining_round.is_none_or(|mr| body.round > mr);
        if self.tx.rounds.approval().is_none() && self.tx.my_solution.is_none() && better {
            let job = self.mine(c.salt, c.difficulty, out);
            self.tx.mining = Some((job, r));
            self.phase = Phase::Challenge;
            info!(
                "challenge: tx {} round {} from leader {} ({}), difficulty {}; mining",
                body.tx,
                body.round,
                self.name_of(body.sender),
                self.vote_count(count, total),
                c.difficulty
            );
        } else if self.phase == Phase::Init || self.phase == Phase::Election {
            self.phase = Phase::Challenge;
        }
        // Solutions that arrived before this challenge.
        let orphans = std::mem::take(&mut self.tx.orphans);
        self.replay(orphans);
        if self.tx.challenges.len() > 64 {
            warn!("challenge: more than 64 challenges for one transaction");
        }
        Ok(())
    }
}
