//! Phase 3, election: signed votes for the leader of one round.
//!
//! Every (transaction, round) has its own election. Honest nodes all vote for
//! the same candidate: the online member with the highest rank, a hash of the
//! previous commit, the transaction, the round and the member's id, so the
//! leader rotates unpredictably and an election normally ends with a
//! unanimous quorum. The count follows the original's rule (most votes, ties
//! to the highest id) and finishes as soon as a quorum of votes is in. A
//! round that produces no valid challenge before its deadline is followed by
//! the next round; nodes also move forward when enough others already have.

use std::collections::BTreeMap;

use p256::ecdsa::VerifyingKey;
use tracing::{info, warn};

use super::electorate::{VoteCast, Winner};
use super::quorum;
use super::roster::Roster;
use super::timers::Timer;
use super::{Node, Output, Persist, Phase, Reject};
use crate::identity::NodeId;
use crate::wire::{self, Body, Bytes, ClusterId, Envelope, Family, Payload, SigCache, Vote};

/// Votes for rounds further ahead than this are refused.
pub const MAX_ROUNDS_AHEAD: u32 = 64;

/// The rank of `id` as leader candidate for (tx, round) after `prev`:
/// `SHA-256("edgeminer/rank" ‖ prev ‖ tx as 8 bytes big-endian ‖ round as
/// 4 bytes big-endian ‖ id)`, first 16 bytes; the highest rank wins.
pub fn rank(prev: &[u8; 16], tx: u64, round: u32, id: NodeId) -> [u8; 16] {
    let mut m = Vec::with_capacity(16 + 8 + 4 + 8);
    m.extend_from_slice(prev);
    m.extend_from_slice(&tx.to_be_bytes());
    m.extend_from_slice(&round.to_be_bytes());
    m.extend_from_slice(&id.0);
    wire::digest16(b"edgeminer/rank", &m)
}

/// Checks an election certificate: at least a quorum of distinct members'
/// correctly signed votes for (tx, round, prev), under which `leader` wins
/// by the count rule. Returns the leader's vote count and the votes.
#[allow(clippy::too_many_arguments)]
pub fn check_certificate(
    cluster: &ClusterId,
    roster: &Roster,
    tx: u64,
    round: u32,
    prev: &[u8; 16],
    leader: NodeId,
    votes: &[Bytes],
    keys: &BTreeMap<NodeId, VerifyingKey>,
    sigs: &SigCache,
) -> Result<(usize, usize), Reject> {
    let mut seen: BTreeMap<NodeId, NodeId> = BTreeMap::new();
    for (index, raw) in votes.iter().enumerate() {
        let undecodable = |err| ElectionError::Undecodable { index, err };
        let env = Envelope::decode(&raw.0, wire::MAX_PHASE_MESSAGE).map_err(undecodable)?;
        let body = Body::decode(&env.body).map_err(undecodable)?;
        let Payload::Vote(v) = &body.payload else {
            let kind = body.kind();
            return Err(ElectionError::NotAVote { index, kind }.into());
        };
        if body.tx != tx || body.round != round || v.prev != *prev {
            return Err(ElectionError::Elsewhere(index).into());
        }
        let voter = body.sender;
        if !roster.contains(voter) {
            return Err(Reject::NotAMember(voter));
        }
        let key = keys
            .get(&voter)
            .ok_or(ElectionError::UnknownVoter { index, voter })?;
        if !sigs.verify(cluster, &env, key) {
            return Err(ElectionError::BadSignature { index, voter }.into());
        }
        if seen.insert(voter, v.candidate).is_some() {
            return Err(ElectionError::TwoVotes(voter).into());
        }
    }
    let quorum = roster.quorum();
    match quorum::tally(seen.values().copied(), quorum) {
        Some((winner, n)) if winner == leader => Ok((n, seen.len())),
        Some((winner, _)) => Err(ElectionError::OtherWinner { winner, leader }.into()),
        None => Err(ElectionError::FewVotes {
            got: seen.len(),
            quorum,
        }
        .into()),
    }
}

/// Why the election votes a challenge carries do not make its signer
/// leader.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ElectionError {
    #[error("vote {index}: {err}")]
    Undecodable { index: usize, err: wire::WireError },
    #[error("vote {index} is a {kind}")]
    NotAVote { index: usize, kind: wire::Kind },
    #[error("vote {0} is for another transaction, round or ledger head")]
    Elsewhere(usize),
    #[error("vote {index}: unknown voter {voter}")]
    UnknownVoter { index: usize, voter: NodeId },
    #[error("vote {index}: bad signature of {voter}")]
    BadSignature { index: usize, voter: NodeId },
    #[error("two votes of {0}")]
    TwoVotes(NodeId),
    #[error("the votes elect {winner}, not {leader}")]
    OtherWinner { winner: NodeId, leader: NodeId },
    #[error("{got} votes, fewer than the quorum of {quorum}")]
    FewVotes { got: usize, quorum: usize },
}

impl Node {
    /// The candidate honest nodes vote for in `round`.
    fn candidate(&self, round: u32) -> NodeId {
        let tx = self.height + 1;
        self.online()
            .into_iter()
            .max_by_key(|id| rank(&self.prev, tx, round, *id))
            .unwrap_or(self.me)
    }

    /// Enters (tx, round): votes unless a challenge is already open.
    pub(crate) fn enter_round(&mut self, round: u32, now: u64, out: &mut Output) {
        let tx = self.height + 1;
        self.tx.election.enter(round);
        self.timers
            .set(Timer::Round, now + self.cfg.election_timeout_ms);
        if !self.tx.challenges.is_empty() {
            return;
        }
        self.phase = Phase::Election;
        if self.tx.election.voted_since(round) {
            // Already voted here (before a restart): never vote twice.
            if let Some((r, env)) = self.tx.election.my_vote() {
                if *r == round {
                    self.publish(out, Family::Election, env.clone(), false);
                }
            }
        } else {
            let candidate = self.candidate(round);
            let env = self.sign(
                tx,
                round,
                Payload::Vote(Vote {
                    candidate,
                    prev: self.prev,
                }),
            );
            self.tx
                .election
                .vote(round, self.me, candidate, env.clone());
            out.persist(Persist::SaveVotes(self.vote_state()));
            info!(
                "election: tx {tx} round {round}, voting for {}",
                self.name_of(candidate)
            );
            self.publish(out, Family::Election, env, false);
        }
        self.try_tally(out);
    }

    pub(crate) fn on_vote(
        &mut self,
        env: &Envelope,
        body: &Body,
        v: Vote,
        now: u64,
        out: &mut Output,
    ) -> Result<(), Reject> {
        if v.prev != self.prev {
            return Err(Reject::WrongPrev);
        }
        // Honest nodes move one round per election timeout; a vote far
        // ahead would only grow the vote table.
        let at = self.tx.election.round();
        if body.round > at.saturating_add(MAX_ROUNDS_AHEAD) {
            return Err(Reject::RoundTooFar {
                got: body.round,
                at,
            });
        }
        let cast = (self.tx.election).cast(body.round, body.sender, v.candidate, env.encode());
        let voters = match cast {
            VoteCast::New { voters } => voters,
            VoteCast::Again => return Ok(()),
            VoteCast::Conflict => {
                self.caught_lying(body.sender, "election");
                return Ok(());
            }
        };
        let enough = voters >= self.roster.follow_threshold() && self.tx.challenges.is_empty();
        if enough && self.phase == Phase::Init && body.round >= at {
            // Enough others (at least one of them honest) already vote in
            // this transaction: the cluster runs, and this node (restarted,
            // or slower to see every member online) joins the round they
            // are in instead of waiting out its init wait, so that a round
            // that elects it gets its challenge.
            info!(
                "init: tx {} round {}, joining the election under way with {voters} others",
                body.tx, body.round
            );
            self.enter_round(body.round, now, out);
            return Ok(());
        }
        if enough && body.round > at && self.phase != Phase::Init {
            // Enough others have moved on (at least one of them honest):
            // follow them.
            info!(
                "election: tx {} moving from round {} to round {} with {voters} others",
                body.tx, at, body.round
            );
            self.enter_round(body.round, now, out);
            return Ok(());
        }
        if body.round == at {
            self.try_tally(out);
        }
        Ok(())
    }

    /// Counts the current round; the winner issues the challenge.
    fn try_tally(&mut self, out: &mut Output) {
        let round = self.tx.election.round();
        let quorum = self.roster.quorum();
        let Some(won) = self.tx.election.tally(round, &self.liars, quorum) else {
            return;
        };
        let Winner {
            leader,
            votes: count,
            received: total,
        } = won;
        if self.tx.election.announce(round) {
            self.counters.elections += 1;
            info!(
                "election: tx {} round {round}, leader {} with {}",
                self.height + 1,
                self.name_of(leader),
                self.vote_count(count, total)
            );
        }
        // Whatever phase it is in: a round whose leader stays silent costs
        // every node an election timeout.
        if leader == self.me && !self.tx.election.issued(round) {
            if self.phase == Phase::Init {
                info!(
                    "init: tx {} round {round}, elected leader; leaving init",
                    self.height + 1
                );
                self.phase = Phase::Election;
            }
            self.issue_challenge(round, out);
        }
    }

    /// "3 of 5 votes": the leader's votes out of the N configured nodes,
    /// with the number received when some went to another candidate.
    pub(crate) fn vote_count(&self, for_leader: usize, received: usize) -> String {
        let n = self.roster.len();
        if received > for_leader {
            format!("{for_leader} of {n} votes, {received} received")
        } else {
            format!("{for_leader} of {n} votes")
        }
    }

    /// No valid challenge in time: the leader is dead, silent or cut off.
    pub(crate) fn round_timeout(&mut self, now: u64, out: &mut Output) {
        if !self.tx.challenges.is_empty() {
            // A challenge is open: mining takes as long as it takes.
            self.timers.stop(Timer::Round);
            return;
        }
        let round = self.tx.election.round();
        let next = round + 1;
        warn!(
            "election: tx {} round {round} ended without a challenge; starting round {next}",
            self.height + 1,
        );
        self.enter_round(next, now, out);
    }

    /// The votes of `round` as a certificate.
    pub(crate) fn certificate(&self, round: u32) -> Vec<Bytes> {
        self.tx.election.certificate(round, &self.liars)
    }
}
