//! Phase 6, voting: approvals, commit certificates and the end of a
//! transaction.
//!
//! A solution is committed when a quorum of distinct nodes has approved it.
//! Each honest node approves at most one solution per transaction (and saves
//! that choice before publishing it), so two conflicting certificates would
//! need `2q - N` nodes that signed for both: with the default majority quorum
//! none can exist without a liar, and a node caught approving two solutions
//! is named and no longer counted. The approvals, the solution, the challenge
//! with its election votes and the signers' keys form the commit's
//! certificate: it is what the ledger stores, and any node can check it
//! without trusting whoever forwards it.

use std::collections::{BTreeMap, BTreeSet};

use p256::ecdsa::VerifyingKey;
use tracing::{debug, error, info};

use super::challenge::ChallengeInfo;
use super::election::check_certificate;
use super::solution::SolutionInfo;
use super::{reference, Action, Config, Node, Phase, Publish, Reject};
use crate::identity::NodeId;
use crate::pow;
use crate::wire::{self, Approval, Body, Bytes, Commit, Envelope, Family, Key33, Payload, Topics};

/// Everything about the transaction under way; reset at each commit.
#[derive(Default)]
pub struct TxState {
    pub round: u32,
    pub deadline: Option<u64>,
    /// round -> voter -> (candidate, vote envelope)
    pub votes: BTreeMap<u32, BTreeMap<NodeId, (NodeId, Vec<u8>)>>,
    pub my_vote: Option<(u32, Vec<u8>)>,
    pub announced: Option<u32>,
    pub issued: BTreeSet<u32>,
    pub my_challenge: Option<Vec<u8>>,
    pub challenges: BTreeMap<[u8; 16], ChallengeInfo>,
    pub mining: Option<(u64, [u8; 16])>,
    pub my_solution: Option<Vec<u8>>,
    pub solutions: BTreeMap<[u8; 16], SolutionInfo>,
    pub orphans: Vec<(String, Vec<u8>)>,
    pub refused: BTreeSet<NodeId>,
    pub my_approval: Option<([u8; 16], Vec<u8>)>,
    /// When the solution window closes (we approve then).
    pub window: Option<u64>,
    /// voter -> (approved solution, approval envelope)
    pub approvals: BTreeMap<NodeId, ([u8; 16], Vec<u8>)>,
}

impl TxState {
    /// Our own messages of this transaction, to publish again after a reconnect.
    pub fn republish(&self, topics: &Topics, me: NodeId) -> Vec<Publish> {
        let mut v = Vec::new();
        let mut push = |family, payload: &Vec<u8>, retain| {
            v.push(Publish {
                topic: topics.own(family, me),
                payload: payload.clone(),
                retain,
            })
        };
        if let Some((_, env)) = &self.my_vote {
            push(Family::Election, env, false);
        }
        if let Some(env) = &self.my_challenge {
            push(Family::Challenge, env, true);
        }
        if let Some(env) = &self.my_solution {
            push(Family::Solution, env, false);
        }
        if let Some((_, env)) = &self.my_approval {
            push(Family::Voting, env, false);
        }
        v
    }
}

/// A verified commit: what the ledger table shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    pub tx: u64,
    pub round: u32,
    pub difficulty: u8,
    pub leader: NodeId,
    pub winner: NodeId,
    pub seed: u64,
    pub salt: [u8; 12],
    /// Reference of the committed solution: the next challenge's `prev`.
    pub reference: [u8; 16],
    pub approvals: usize,
}

impl Committed {
    /// The exact string whose SHA-1 is the proof of work.
    pub fn preimage(&self) -> String {
        pow::Template::new(&self.salt, &self.winner.0).preimage(self.seed)
    }
}

pub(crate) fn decode_signed(
    raw: &[u8],
    limit: usize,
    what: &str,
) -> Result<(Envelope, Body), Reject> {
    let env =
        Envelope::decode(raw, limit).map_err(|e| Reject::Certificate(format!("{what}: {e}")))?;
    let body = Body::decode(&env.body).map_err(|e| Reject::Certificate(format!("{what}: {e}")))?;
    Ok((env, body))
}

fn check_sig(
    cluster: &str,
    env: &Envelope,
    signer: NodeId,
    keys: &BTreeMap<NodeId, VerifyingKey>,
    what: &str,
) -> Result<(), Reject> {
    let key = keys
        .get(&signer)
        .ok_or_else(|| Reject::Certificate(format!("{what}: no key for {signer}")))?;
    if env.verify(cluster, key) {
        Ok(())
    } else {
        Err(Reject::Certificate(format!(
            "{what}: bad signature of {signer}"
        )))
    }
}

/// Checks a commit certificate on its own: keys hash to their ids, the
/// challenge builds on `prev` for transaction `tx` and was issued by the
/// winner of a valid election, the seed meets the difficulty, and a quorum of
/// distinct members approved exactly this solution.
pub fn verify_commit(
    cfg: &Config,
    tx: u64,
    prev: &[u8; 16],
    c: &Commit,
) -> Result<Committed, Reject> {
    let mut keys = BTreeMap::new();
    for Key33(k) in &c.keys {
        let vk = VerifyingKey::from_sec1_bytes(k).map_err(|_| Reject::BadKey)?;
        keys.insert(NodeId::from_public_key(k), vk);
    }
    let cluster = cfg.cluster.as_str();
    let (cenv, cbody) = decode_signed(&c.challenge.0, wire::MAX_CERT_MESSAGE, "challenge")?;
    let Payload::Challenge(ch) = &cbody.payload else {
        return Err(Reject::Certificate(
            "the challenge is not a challenge".into(),
        ));
    };
    if cbody.tx != tx {
        return Err(Reject::WrongTransaction {
            got: cbody.tx,
            want: tx,
        });
    }
    if ch.prev != *prev {
        return Err(Reject::WrongPrev);
    }
    let (lo, hi) = cfg.difficulty;
    if ch.difficulty < lo || ch.difficulty > hi {
        return Err(Reject::Difficulty {
            got: ch.difficulty,
            lo,
            hi,
        });
    }
    check_sig(cluster, &cenv, cbody.sender, &keys, "challenge")?;
    check_certificate(
        cluster,
        cfg.quorum,
        tx,
        cbody.round,
        prev,
        cbody.sender,
        &ch.votes,
        &keys,
    )
    .map_err(Reject::Election)?;

    let (senv, sbody) = decode_signed(&c.solution.0, wire::MAX_PHASE_MESSAGE, "solution")?;
    let Payload::Solution(sol) = &sbody.payload else {
        return Err(Reject::Certificate("the solution is not a solution".into()));
    };
    if sbody.tx != tx || sol.challenge != reference(&cenv.body) {
        return Err(Reject::Certificate(
            "the solution answers another challenge".into(),
        ));
    }
    check_sig(cluster, &senv, sbody.sender, &keys, "solution")?;
    if !pow::verify(&ch.salt, &sbody.sender.0, sol.seed, ch.difficulty) {
        return Err(Reject::BadProofOfWork);
    }
    let sref = reference(&senv.body);
    let mut approvers = BTreeSet::new();
    for (i, raw) in c.approvals.iter().enumerate() {
        let (aenv, abody) = decode_signed(&raw.0, wire::MAX_PHASE_MESSAGE, "approval")?;
        let Payload::Approval(a) = &abody.payload else {
            return Err(Reject::Certificate(format!(
                "approval {i} is a {}",
                abody.kind()
            )));
        };
        if abody.tx != tx || !a.approve || a.solution != sref {
            return Err(Reject::Certificate(format!(
                "approval {i} is for something else"
            )));
        }
        check_sig(cluster, &aenv, abody.sender, &keys, "approval")?;
        approvers.insert(abody.sender);
    }
    if approvers.len() < cfg.quorum {
        return Err(Reject::Certificate(format!(
            "{} distinct approvals, fewer than the quorum of {}",
            approvers.len(),
            cfg.quorum
        )));
    }
    Ok(Committed {
        tx,
        round: cbody.round,
        difficulty: ch.difficulty,
        leader: cbody.sender,
        winner: sbody.sender,
        seed: sol.seed,
        salt: ch.salt,
        reference: sref,
        approvals: approvers.len(),
    })
}

impl Node {
    pub(crate) fn on_approval(
        &mut self,
        env: &Envelope,
        body: &Body,
        a: Approval,
        now: u64,
        out: &mut Vec<Action>,
    ) -> Result<(), Reject> {
        if !a.approve {
            info!(
                "voting: tx {} {} rejects solution {}",
                body.tx,
                self.name_of(body.sender),
                wire::hex(&a.solution[..4])
            );
            return Ok(());
        }
        match self.tx.approvals.get(&body.sender) {
            Some((r, _)) if *r == a.solution => return Ok(()),
            Some(_) => {
                self.caught_lying(body.sender, "voting");
                return Ok(());
            }
            None => {}
        }
        self.tx
            .approvals
            .insert(body.sender, (a.solution, env.encode()));
        self.try_commit(a.solution, now, out);
        Ok(())
    }

    /// Commits `solution` if a quorum approved it and we hold its proof.
    pub(crate) fn try_commit(&mut self, solution: [u8; 16], now: u64, out: &mut Vec<Action>) {
        let approvals: Vec<Bytes> = self
            .tx
            .approvals
            .iter()
            .filter(|(voter, (r, _))| *r == solution && !self.liars.contains(voter))
            .map(|(_, (_, env))| Bytes(env.clone()))
            .collect();
        if approvals.len() < self.cfg.quorum {
            return;
        }
        let Some(sol) = self.tx.solutions.get(&solution) else {
            debug!("voting: a quorum approved a solution this node has not seen yet");
            return;
        };
        let Some(ch) = self.tx.challenges.get(&sol.challenge) else {
            return;
        };
        let keys = self.members.iter().map(|(_, m)| Key33(m.public)).collect();
        let commit = Commit {
            challenge: Bytes(ch.envelope.clone()),
            solution: Bytes(sol.envelope.clone()),
            approvals,
            keys,
        };
        let tx = self.height + 1;
        match verify_commit(&self.cfg, tx, &self.prev, &commit) {
            Ok(done) => self.apply_commit(done, commit, now, out),
            Err(e) => {
                error!("voting: tx {tx} the certificate this node built does not verify: {e}")
            }
        }
    }

    /// A commit certificate from another node (catch-up).
    pub(crate) fn on_commit_message(
        &mut self,
        body: &Body,
        c: Commit,
        now: u64,
        out: &mut Vec<Action>,
    ) -> Result<(), Reject> {
        let want = self.height + 1;
        if body.tx < want {
            // Already committed here: a duplicate answer, or a late copy.
            // Compare cheaply; verify fully only when it differs.
            let ours = self.history.get((body.tx - 1) as usize).copied();
            let theirs = Envelope::decode(&c.solution.0, wire::MAX_PHASE_MESSAGE)
                .ok()
                .map(|e| reference(&e.body));
            if ours.is_some() && theirs != ours {
                if let Ok(t) = verify_commit(&self.cfg, body.tx, &self.prev_of(body.tx), &c) {
                    if ours != Some(t.reference) {
                        error!(
                            "voting: AGREEMENT VIOLATED: {} holds a different commit for tx {}",
                            self.name_of(body.sender),
                            body.tx
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
        let done = verify_commit(&self.cfg, want, &self.prev, &c)?;
        info!(
            "voting: tx {want} learned from the certificate of {}",
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
    fn apply_commit(&mut self, done: Committed, commit: Commit, now: u64, out: &mut Vec<Action>) {
        if self.tx.mining.take().is_some() {
            out.push(Action::StopMining);
        }
        let record = commit.encode();
        out.push(Action::AppendLedger(record));
        info!(
            "voting: tx {} committed: seed {} of {} (difficulty {}, leader {}, {} approvals)",
            done.tx,
            pow::seed_hex(done.seed),
            self.name_of(done.winner),
            done.difficulty,
            self.name_of(done.leader),
            done.approvals
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
