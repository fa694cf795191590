//! The end of a transaction, part of the voting phase: applying a commit
//! certificate (built here or received from another node), and comparing
//! late copies of commits this node already holds.

use tracing::{error, info};

use super::certificate::{verify_commit_with, Committed};
use super::tx::TxState;
use super::{reference, Action, Node, Phase, Publish, Reject};
use crate::pow;
use crate::wire::{self, Body, Commit, Envelope, Payload};

impl Node {
    /// A commit certificate from another node (catch-up).
    pub(crate) fn on_commit_message(
        &mut self,
        body: &Body,
        c: Commit,
        now: u64,
        out: &mut Vec<Action>,
    ) -> Result<(), Reject> {
        if body.tx == 0 {
            return Err(Reject::Certificate("a commit for transaction 0".into()));
        }
        let want = self.height + 1;
        if body.tx < want {
            // Already committed here: a duplicate answer, or a late copy.
            // Compare cheaply; verify fully only when it differs. (Its
            // envelope's signature is not checked: the certificate is.)
            let ours = self.history.get((body.tx - 1) as usize).copied();
            let theirs = Envelope::decode(&c.solution.0, wire::MAX_PHASE_MESSAGE)
                .ok()
                .map(|e| reference(&e.body));
            if ours.is_some() && theirs != ours {
                let prev = self.prev_of(body.tx);
                if let Ok(t) = verify_commit_with(&self.cfg, body.tx, &prev, &c, &self.sigs) {
                    if ours != Some(t.reference) {
                        error!(
                            "voting: AGREEMENT VIOLATED: a valid certificate for tx {} (sent as from {}) differs from ours",
                            body.tx,
                            self.name_of(body.sender)
                        );
                    }
                }
            }
            return Ok(());
        }
        if body.tx > want {
            if body.tx > self.behind {
                self.behind = body.tx;
                info!(
                    "voting: {} has committed up to tx {} and this node's ledger ends at tx {}; catching up",
                    self.name_of(body.sender),
                    body.tx,
                    self.height
                );
                self.request_sync(now, out);
            }
            return Ok(());
        }
        let done = verify_commit_with(&self.cfg, want, &self.prev, &c, &self.sigs)?;
        info!(
            "voting: tx {want} round {}, learned from the certificate of {}",
            done.vround,
            self.name_of(body.sender)
        );
        self.apply_commit(done, c, now, out);
        Ok(())
    }

    fn prev_of(&self, tx: u64) -> [u8; 16] {
        if tx <= 1 {
            super::genesis(&self.cfg.cluster)
        } else {
            self.history
                .get((tx - 2) as usize)
                .copied()
                .unwrap_or([0; 16])
        }
    }

    /// Durably records a commit, tells the others, and starts the next
    /// transaction.
    pub(crate) fn apply_commit(
        &mut self,
        done: Committed,
        commit: Commit,
        now: u64,
        out: &mut Vec<Action>,
    ) {
        if self.tx.mining.take().is_some() {
            out.push(Action::StopMining);
        }
        let record = commit.encode();
        out.push(Action::AppendLedger(record));
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
        let msg = self.sign(done.tx, done.round, Payload::Commit(commit));
        out.push(Action::Publish(Publish {
            topic: self.topics.commit(self.me),
            payload: msg.clone(),
            retain: true,
        }));
        self.last_commit = Some(msg);
        self.height = done.tx;
        self.prev = done.reference;
        self.history.push(done.reference);
        out.push(Action::Committed(done));
        self.tx = TxState::default();
        self.tx.resend_at = Some(now + self.cfg.election_timeout_ms);
        out.push(Action::SaveVotes(self.vote_state()));
        if self.behind > self.height {
            self.request_sync(now, out);
        } else {
            self.last_sync = None;
        }
        if self.phase != Phase::Init {
            self.enter_round(0, now, out);
        }
        let held = std::mem::take(&mut self.future);
        self.replay(held, now, out);
    }
}
