//! The end of a transaction, part of the voting phase: applying a commit
//! certificate (built here or received from another node), the roster
//! change it may carry, and comparing late copies of commits this node
//! already holds.

use tracing::{error, info, warn};

use super::certificate::{verify_commit_with, CertError, Committed};
use super::head::{saved_rosters, RECENT};
use super::history::roster_at;
use super::timers::Timer;
use super::tx::TxState;
use super::{reference, Effect, Event, Node, Output, Persist, Phase, Publish, Reject, Stop};
use crate::pow;
use crate::wire::{self, Body, Change, Commit, Envelope, Payload};

impl Node {
    /// A commit certificate from another node (catch-up).
    pub(crate) fn on_commit_message(
        &mut self,
        body: &Body,
        c: Commit,
        now: u64,
        out: &mut Output,
    ) -> Result<(), Reject> {
        if body.tx == 0 {
            return Err(CertError::TransactionZero.into());
        }
        let want = self.height + 1;
        if body.tx < want {
            self.compare_old(body, &c);
            // It has that one at least: a good node to ask, should this
            // node fall behind.
            self.catchup.claim(body.sender, body.tx);
            return Ok(());
        }
        if body.tx > want {
            self.evidence(body.sender, body.tx, now, out);
            return Ok(());
        }
        let done = verify_commit_with(
            &self.cfg.genesis,
            &self.roster,
            want,
            &self.prev,
            &c,
            &self.sigs,
        )?;
        info!(
            "voting: tx {want} round {}, learned from the certificate of {}",
            done.vround,
            self.name_of(body.sender)
        );
        let answered = self.catchup.answers(want);
        if answered {
            self.catchup.answered(body.sender, want);
        }
        self.apply_commit(done, c, answered, now, out);
        Ok(())
    }

    /// Already committed here: a duplicate answer, or a late copy. Compare
    /// cheaply; verify fully only when it differs. (Its envelope's
    /// signature is not checked: the certificate is.)
    ///
    /// Only transactions among the last [`super::head::RECENT`] are
    /// compared: older references are on disk, not in memory.
    fn compare_old(&self, body: &Body, c: &Commit) {
        let ours = self.reference_at(body.tx);
        let theirs = Envelope::decode(&c.solution.0, wire::MAX_PHASE_MESSAGE)
            .ok()
            .map(|e| reference(&e.body));
        if ours.is_none() || theirs == ours {
            return;
        }
        let Some(prev) = self.reference_at(body.tx - 1) else {
            return;
        };
        let Some(roster) = roster_at(&self.rosters, body.tx) else {
            return;
        };
        let checked = verify_commit_with(&self.cfg.genesis, roster, body.tx, &prev, c, &self.sigs);
        if let Ok(t) = checked {
            if ours != Some(t.reference) {
                error!(
                    "voting: AGREEMENT VIOLATED: a valid certificate for tx {} (sent as from {}) differs from ours",
                    body.tx,
                    self.name_of(body.sender)
                );
            }
        }
    }

    /// The reference of committed transaction `tx` (the genesis's for 0),
    /// if it is among the recent ones.
    fn reference_at(&self, tx: u64) -> Option<[u8; 16]> {
        if tx == 0 {
            return Some(self.cfg.genesis.prev());
        }
        let back = usize::try_from(self.height.checked_sub(tx)?).ok()?;
        let i = self.recent.len().checked_sub(back + 1)?;
        self.recent.get(i).copied()
    }

    /// Durably records a commit, tells the others, and starts the next
    /// transaction. `answered`: it is a certificate of the transaction this
    /// node asked for (catch-up), not a commit of its own voting.
    ///
    /// Only the transaction's leader publishes the certificate at once:
    /// every member that saw the quorum's confirmations commits without
    /// it, and one certificate of O(N) bytes per transaction keeps what
    /// each node receives linear in the roster (a certificate from every
    /// member was O(N²)). A member that missed the commit gets it from the
    /// leader's, from [`Node::remind`] when its own messages of that
    /// transaction show it is still there, or by asking (catch-up); every
    /// member keeps its last certificate to publish, retained, whenever it
    /// connects.
    pub(crate) fn apply_commit(
        &mut self,
        done: Committed,
        commit: Commit,
        answered: bool,
        now: u64,
        out: &mut Output,
    ) {
        self.stop_mining(out);
        let record = commit.encode();
        out.persist(Persist::AppendLedger(record));
        info!(
            "voting: tx {} round {} committed: seed {} of {} (difficulty {}, leader {} elected in round {}, {} confirmations)",
            done.tx,
            done.vround,
            pow::seed_hex(done.seed),
            self.name_of(done.winner),
            done.difficulty,
            self.name_of(done.leader),
            done.round,
            done.confirmations
        );
        if self.is_member() {
            let msg = self.sign(done.tx, done.round, Payload::Commit(commit));
            if done.leader == self.me {
                out.effect(Effect::Publish(Publish {
                    topic: self.topics.commit(self.me),
                    payload: msg.clone(),
                    retain: true,
                }));
            }
            self.last_commit = Some(msg);
        }
        self.height = done.tx;
        self.prev = done.reference;
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(done.reference);
        let change = done.change.clone();
        out.event(Event::Committed(done));
        // The open transaction's state and its timers start afresh.
        self.tx = TxState::default();
        self.timers.stop(Timer::Round);
        self.timers.stop(Timer::Window);
        self.timers
            .set(Timer::Resend, now + self.cfg.election_timeout_ms);
        out.persist(Persist::SaveVotes(self.vote_state()));
        if let Some(change) = change {
            self.change_roster(&change, now, out);
        }
        if self.stopped.is_some() {
            return;
        }
        if self.learning() {
            self.timers
                .set(Timer::Learner, now + self.cfg.init_timeout_ms);
        }
        self.progressed(answered, now, out);
        if !matches!(self.phase, Phase::Init | Phase::Learner) {
            self.enter_round(0, now, out);
        }
        self.held.committed();
    }

    /// Puts the roster that a committed change makes in force for the next
    /// transaction, and what that means for this node.
    fn change_roster(&mut self, change: &Change, now: u64, out: &mut Output) {
        let tx = self.height;
        let next = match self.roster.apply(change, tx) {
            Ok(r) => r,
            Err(e) => {
                // The certificate was checked with this very roster.
                error!("roster: tx {tx} committed a change that does not apply here: {e}");
                return;
            }
        };
        let was_member = self.is_member();
        let added: Vec<String> = change.add.iter().map(|e| describe(&e.name, e.id)).collect();
        let removed: Vec<String> = change
            .remove
            .iter()
            .map(|id| describe(self.roster.name(*id).unwrap_or(""), *id))
            .collect();
        info!(
            "roster: tx {tx} committed version {}: {}; {} members, quorum {}; in force from tx {}",
            next.version(),
            summary(&added, &removed, self.roster.quorum(), next.quorum()),
            next.len(),
            next.quorum(),
            tx + 1
        );
        let me = self.me;
        self.members.retain(|id| next.contains(id) || id == me);
        self.catchup.forget(|id| next.contains(id));
        self.roster = next.clone();
        self.rosters.push(next);
        // Before anything else is appended: see `head`.
        out.persist(Persist::SaveRosters(saved_rosters(
            &self.cfg.genesis,
            tx,
            &self.rosters,
        )));
        out.effect(Effect::Publish(self.roster_message()));
        match (was_member, self.is_member()) {
            (true, false) => {
                warn!(
                    "roster: this node ({}) was removed from cluster '{}' in tx {tx}; it takes no further part",
                    self.me,
                    self.cfg.genesis.cluster()
                );
                self.stop_mining(out);
                self.phase = Phase::Learner;
                self.removed_at = Some(tx);
                self.stop(Stop::Removed { tx }, out);
            }
            (false, true) => {
                info!(
                    "roster: this node ({}) is a member from tx {} on; taking part",
                    self.me,
                    tx + 1
                );
                self.timers.stop(Timer::Learner);
                self.take_roster_name();
                self.phase = Phase::Init;
                self.started_at = now;
                self.timers
                    .set(Timer::Round, now + self.cfg.init_timeout_ms);
                out.effect(Effect::Publish(self.pubkey_message()));
                out.effect(Effect::Publish(self.presence_message(true)));
            }
            _ => {}
        }
    }
}

fn describe(name: &str, id: crate::identity::NodeId) -> String {
    if name.is_empty() {
        id.to_string()
    } else {
        format!("{name} ({id})")
    }
}

/// "added pi-06 (…), removed pi-05 (…), quorum 3 → 4".
fn summary(added: &[String], removed: &[String], before: usize, after: usize) -> String {
    let mut parts = Vec::new();
    if !added.is_empty() {
        parts.push(format!("added {}", added.join(", ")));
    }
    if !removed.is_empty() {
        parts.push(format!("removed {}", removed.join(", ")));
    }
    if before != after {
        parts.push(format!("quorum {before} → {after}"));
    }
    parts.join(", ")
}
