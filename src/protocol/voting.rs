//! Phase 6, voting: rounds of approvals and confirmations that end in a
//! commit certificate.
//!
//! Each voting round has two stages. A node *approves* one solution per round;
//! when it has seen a quorum approve the same solution in the round it is
//! in, it *confirms* that solution and locks on it. A quorum of
//! confirmations from one round commits. A confirmation carries no proof:
//! a node learns of a quorum of approvals only from the approvals
//! themselves, which their voters send and every node that saw a quorum
//! sends again with its resends. A node that approved
//! and saw no commit in time moves to the next round and approves again:
//! its locked solution, unless it has seen a quorum approve another solution
//! in a later round than its lock; unlocked nodes follow the latest such
//! quorum, else the solution rule of the solution phase.
//!
//! So split approvals, dead voters and lost messages cost a round, never the
//! transaction, while two quorums of confirmations for different solutions
//! would still need `2q - N` nodes that signed both (the argument is in
//! `docs/PROTOCOL.md`). Every ballot is saved to disk before it is published.

use tracing::{debug, error, info};

use super::ballots::Cast;
use super::certificate::verify_commit_with;
use super::election::MAX_ROUNDS_AHEAD;
use super::rounds::TwoQuorums;
use super::timers::Timer;
use super::{Node, Output, Persist, Phase, Publish, Reject};
use crate::pow;
use crate::wire::{self, Approval, Body, Bytes, Commit, Envelope, Family, Key33, Payload, Stance};

impl Node {
    pub(crate) fn on_approval(
        &mut self,
        env: &Envelope,
        body: &Body,
        a: Approval,
        now: u64,
        out: &mut Output,
    ) -> Result<(), Reject> {
        if a.stance == Stance::Reject {
            info!(
                "voting: tx {} round {}, {} rejects solution {}",
                body.tx,
                a.vround,
                self.name_of(body.sender),
                wire::hex(&a.solution[..4])
            );
            return Ok(());
        }
        let at = self.tx.rounds.current();
        if a.vround > at.saturating_add(MAX_ROUNDS_AHEAD) {
            return Err(Reject::RoundTooFar { got: a.vround, at });
        }
        let ballot = (a.solution, env.encode());
        match self.tx.rounds.cast(a.vround, a.stance, body.sender, ballot) {
            Cast::New => {}
            Cast::Again => return Ok(()),
            Cast::Conflict => {
                self.caught_lying(body.sender, "voting");
                return Ok(());
            }
        }
        if a.vround == 0 && a.stance == Stance::Approve {
            self.take_proposal(now, out);
        }
        if a.vround > self.tx.rounds.current() {
            self.maybe_follow(a.vround, now, out);
        }
        if a.stance == Stance::Approve {
            self.count_approvals(a.vround, a.solution);
        }
        self.maybe_confirm(now, out);
        self.try_commit(a.vround, a.solution, now, out);
        Ok(())
    }

    /// Checks whether a quorum approved `solution` in voting round `v`.
    fn count_approvals(&mut self, v: u32, solution: [u8; 16]) {
        let quorum = self.roster.quorum();
        let noted = self
            .tx
            .rounds
            .count_approvals(v, solution, &self.liars, quorum);
        self.two_quorums(noted);
    }

    fn two_quorums(&self, noted: Result<(), TwoQuorums>) {
        if let Err(TwoQuorums { round }) = noted {
            error!(
                "voting: tx {} round {round}: quorums approved two different solutions; \
                 more nodes lie than the quorum tolerates",
                self.height + 1
            );
        }
    }

    /// Whether this node holds `solution` and its challenge, both verified.
    fn holds(&self, solution: &[u8; 16]) -> bool {
        self.tx
            .solutions
            .get(solution)
            .is_some_and(|s| self.tx.challenges.contains_key(&s.challenge))
    }

    /// The solution to approve in voting round `v` (see [`super::rounds::Rounds::choose`]).
    fn choose(&self, v: u32) -> Option<[u8; 16]> {
        self.tx.rounds.choose(v, || self.best_solution(v))
    }

    /// The solution window closed, or the leader proposed: cast our first
    /// approval.
    pub(crate) fn approve_best(&mut self, now: u64, out: &mut Output) {
        self.timers.stop(Timer::Window);
        self.vote_in_round(self.tx.rounds.current(), now, out);
    }

    /// Approves a solution in voting round `v`, once.
    fn vote_in_round(&mut self, v: u32, now: u64, out: &mut Output) {
        if self.tx.rounds.approved_since(v) {
            return;
        }
        let Some(solution) = self.choose(v) else {
            return;
        };
        let tx = self.height + 1;
        let env = self.sign(tx, v, Payload::Approval(Approval::approve(solution, v)));
        let ballot = (solution, env.clone());
        self.tx.rounds.own(v, Stance::Approve, self.me, ballot);
        out.persist(Persist::SaveVotes(self.vote_state()));
        self.stop_mining(out);
        self.phase = Phase::Voting;
        match self.tx.solutions.get(&solution) {
            Some(sol) => info!(
                "voting: tx {tx} round {v}, approving seed {} of {} ({} valid solutions seen)",
                pow::seed_hex(sol.seed),
                self.name_of(sol.solver),
                self.tx.solutions.len()
            ),
            None => info!(
                "voting: tx {tx} round {v}, approving solution {} (locked or approved by a quorum)",
                wire::hex(&solution[..4])
            ),
        }
        self.publish(out, Family::Voting, env, false);
        self.timers.arm(Timer::Resend, now + self.resend_interval());
        self.count_approvals(v, solution);
        self.maybe_confirm(now, out);
        self.try_commit(v, solution, now, out);
    }

    /// Moves to a later voting round when enough nodes are there that at
    /// least one is honest ([`Config::follow_threshold`]).
    fn maybe_follow(&mut self, v: u32, now: u64, out: &mut Output) {
        let voters = self.tx.rounds.ballots().voters(v, &self.liars);
        if voters.len() >= self.roster.follow_threshold() {
            info!(
                "voting: tx {} moving from round {} to round {v} with {} others",
                self.height + 1,
                self.tx.rounds.current(),
                voters.len()
            );
            self.enter_vround(v, now, out);
        }
    }

    fn enter_vround(&mut self, v: u32, now: u64, out: &mut Output) {
        self.tx.rounds.enter(v);
        // Vote now unless the solution window is still open: then the
        // window's end casts the vote in whatever round we are in by then.
        if !self.timers.runs(Timer::Window) {
            self.vote_in_round(v, now, out);
        }
        self.maybe_confirm(now, out);
    }

    /// Confirms the solution a quorum approved in our current round, once,
    /// if we hold it: this is also our new lock.
    fn maybe_confirm(&mut self, now: u64, out: &mut Output) {
        let v = self.tx.rounds.current();
        let Some(solution) = self.tx.rounds.quorum_in(v).map(|q| q.0) else {
            return;
        };
        if self.tx.rounds.confirmed_since(v) || !self.holds(&solution) {
            return;
        }
        let tx = self.height + 1;
        let confirm = Approval::confirm(solution, v);
        let env = self.sign(tx, v, Payload::Approval(confirm));
        let ballot = (solution, env.clone());
        self.tx.rounds.own(v, Stance::Confirm, self.me, ballot);
        out.persist(Persist::SaveVotes(self.vote_state()));
        self.stop_mining(out);
        self.phase = Phase::Voting;
        info!(
            "voting: tx {tx} round {v}, a quorum approved solution {}; confirming",
            wire::hex(&solution[..4])
        );
        self.publish(out, Family::Voting, env, false);
        self.timers.arm(Timer::Resend, now + self.resend_interval());
        self.try_commit(v, solution, now, out);
    }

    /// A solution arrived: it may complete a confirmation or a commit.
    pub(crate) fn solution_arrived(&mut self, solution: [u8; 16], now: u64, out: &mut Output) {
        self.take_proposal(now, out);
        // A round we entered holding nothing to approve can be voted now.
        let v = self.tx.rounds.current();
        if self.tx.rounds.approval_behind() && !self.timers.runs(Timer::Window) {
            self.vote_in_round(v, now, out);
        }
        self.maybe_confirm(now, out);
        for v in self.tx.rounds.ballots().confirmed_rounds() {
            let before = self.height;
            self.try_commit(v, solution, now, out);
            if self.height != before {
                break;
            }
        }
    }

    /// Commits `solution` if a quorum confirmed it in voting round `v` and we
    /// hold its proof.
    pub(crate) fn try_commit(&mut self, v: u32, solution: [u8; 16], now: u64, out: &mut Output) {
        let quorum = self.roster.quorum();
        let mut confirmations =
            self.tx
                .rounds
                .ballots()
                .tally(v, Stance::Confirm, &solution, &self.liars);
        if confirmations.len() < quorum {
            return;
        }
        // Exactly a quorum: more would only make the certificate larger.
        confirmations.truncate(quorum);
        let Some(sol) = self.tx.solutions.get(&solution) else {
            debug!("voting: a quorum confirmed a solution this node has not seen yet");
            return;
        };
        let Some(ch) = self.tx.challenges.get(&sol.challenge) else {
            return;
        };
        // The keys of its signers: the leader, the miner and the
        // confirmers (whose messages this node checked), and the election's
        // voters, which the challenge carries (they may be gone, and their
        // retained keys with a broker restart).
        let mut keys: Vec<Key33> = ch.keys.clone();
        let confirmers =
            self.tx
                .rounds
                .ballots()
                .backers(v, Stance::Confirm, &solution, &self.liars);
        let signers = [ch.leader, sol.solver]
            .into_iter()
            .chain(confirmers.into_iter().take(quorum));
        for id in signers {
            if let Some(m) = self.members.get(id) {
                if !keys.contains(&Key33(m.public)) {
                    keys.push(Key33(m.public));
                }
            }
        }
        let commit = Commit {
            challenge: Bytes(ch.envelope.clone()),
            solution: Bytes(sol.envelope.clone()),
            confirmations,
            keys,
        };
        let tx = self.height + 1;
        let genesis = &self.cfg.genesis;
        match verify_commit_with(genesis, &self.roster, tx, &self.prev, &commit, &self.sigs) {
            Ok(done) => self.apply_commit(done, commit, false, now, out),
            Err(e) => {
                error!("voting: tx {tx} the certificate this node built does not verify: {e}")
            }
        }
    }

    /// Time between two sends of our messages: the election timeout,
    /// doubling with every send without a commit, up to eight times.
    fn resend_interval(&self) -> u64 {
        self.cfg.election_timeout_ms << self.tx.resends.min(3)
    }

    /// The keys of the miners and leaders whose messages we pass on: a
    /// node that missed a key (its owner may be gone, and its retained key
    /// with a broker restart) could not check them.
    pub(crate) fn relayed_keys(&self) -> Vec<Publish> {
        self.tx
            .relayed_signers()
            .into_iter()
            .filter(|id| *id != self.me)
            .filter_map(|id| self.members.get(id))
            .map(|m| Publish {
                topic: self.topics.own(Family::PubKey, self.me),
                payload: m.announcement.clone(),
                retain: false,
            })
            .collect()
    }

    /// No commit in time: publish our messages of this transaction again
    /// (some may have been lost), and if we voted in the current voting
    /// round, move to the next one.
    pub(crate) fn resend_timeout(&mut self, now: u64, out: &mut Output) {
        self.tx.resends += 1;
        debug!(
            vround = self.tx.rounds.current(),
            approved = ?self.tx.rounds.approval().map(|(r, _)| *r),
            "voting: sending our messages of tx {} again",
            self.height + 1
        );
        self.timers.set(Timer::Resend, now + self.resend_interval());
        // Keys and presence too: a node that missed them cannot check us.
        self.publish_own_state(out);
        let quorum = self.roster.quorum();
        let Some((next, here)) = self.tx.rounds.next_round(&self.liars, quorum) else {
            return;
        };
        info!(
            "voting: tx {} round {} ended without a commit ({here} voted); starting round {next}",
            self.height + 1,
            self.tx.rounds.current(),
        );
        self.enter_vround(next, now, out);
    }
}
