//! The vote state a node must not forget across a crash.
//!
//! An honest node votes once per election round, approves at most one
//! solution per voting round, and keeps its lock (its latest confirmation).
//! These promises must survive a restart, or a node that crashed after
//! voting could vote differently afterwards and look like a liar (or, worse,
//! help a second certificate). So the driver writes this small state
//! durably before any ballot is published, and hands it back at start.

use minicbor::{Decode, Encode};
use tracing::warn;

use super::{gate, Node};
use crate::wire::{self, Body, Bytes, Envelope, Kind, Payload, Stance};

/// Our latest election vote, approval and confirmation, and the challenge we
/// issued, for one transaction.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Default)]
#[cbor(array)]
pub struct VoteState {
    #[n(0)]
    pub tx: u64,
    #[n(1)]
    pub vote: Option<Bytes>,
    #[n(2)]
    pub approval: Option<Bytes>,
    #[n(3)]
    pub confirm: Option<Bytes>,
    /// The challenge we issued as leader, if any.
    #[n(4)]
    pub challenge: Option<Bytes>,
    /// What lets others check the solutions we approved or locked on: the
    /// keys of their miners and leaders, their challenges and the
    /// solutions themselves, then the approvals of the quorums that our
    /// lock and our latest unlock rest on. If every node that had them
    /// restarts, the lock would otherwise point at a solution nobody can
    /// show, or a quorum nobody can prove.
    #[n(5)]
    pub backing: Option<Vec<Bytes>>,
}

impl VoteState {
    pub fn encode(&self) -> Vec<u8> {
        wire::encode(self)
    }
    pub fn decode(bytes: &[u8]) -> Result<VoteState, wire::WireError> {
        wire::decode_exact(bytes)
    }
}

impl Node {
    pub(crate) fn vote_state(&self) -> Vec<u8> {
        VoteState {
            tx: self.height + 1,
            vote: self.tx.election.my_vote().map(|(_, e)| Bytes(e.clone())),
            approval: self
                .tx
                .rounds
                .approval()
                .map(|(_, (_, e))| Bytes(e.clone())),
            confirm: (self.tx.rounds.confirmation()).map(|(_, (_, e))| Bytes(e.clone())),
            challenge: self.tx.my_challenge.as_ref().map(|e| Bytes(e.clone())),
            backing: Some(self.backing()),
        }
        .encode()
    }

    /// Signed messages behind the solutions we back (see
    /// [`VoteState::backing`]), in the order they can be checked.
    fn backing(&self) -> Vec<Bytes> {
        let mut out: Vec<Bytes> = self
            .relayed_keys()
            .into_iter()
            .map(|p| Bytes(p.payload))
            .collect();
        for s in self.tx.rounds.backed() {
            if let Some(info) = self.tx.solutions.get(&s) {
                if let Some(c) = self.tx.challenges.get(&info.challenge) {
                    out.push(Bytes(c.envelope.clone()));
                }
                out.push(Bytes(info.envelope.clone()));
            }
        }
        let rounds = &self.tx.rounds;
        let lock = rounds.lock().and_then(|(v, _)| rounds.quorum_in(v));
        let latest = rounds.latest_quorum().filter(|q| Some(*q) != lock);
        out.extend(lock.into_iter().chain(latest).flat_map(|q| q.1.clone()));
        out
    }

    /// Checks a saved copy of a key, challenge, solution or approval as if
    /// it had just arrived from its signer.
    pub(crate) fn receive_own_copy(&mut self, raw: &[u8]) {
        let backs = |k| {
            matches!(
                k,
                Kind::PubKey | Kind::Challenge | Kind::Solution | Kind::Approval
            )
        };
        let family = gate::decode(raw, wire::MAX_CERT_MESSAGE)
            .ok()
            .filter(|(_, b)| backs(b.kind()))
            .and_then(|(_, b)| Some((b.kind().family()?, b.sender)));
        match family {
            Some((f, sender)) => {
                let topic = self.topics.own(f, sender);
                self.replay([(topic, raw.to_vec())]);
            }
            None => warn!("voting: a saved copy of a backed message is unreadable; ignoring it"),
        }
    }

    /// Takes back our own promises for the transaction under way.
    pub(crate) fn restore_votes(&mut self, v: VoteState) {
        if v.tx != self.height + 1 {
            return;
        }
        let own = |b: &Bytes| -> Option<(Envelope, Body)> {
            let (env, body) = gate::decode(&b.0, wire::MAX_CERT_MESSAGE).ok()?;
            (body.sender == self.me && body.tx == v.tx).then_some((env, body))
        };
        if let Some(b) = &v.vote {
            match own(b) {
                Some((_, body)) => {
                    if let Payload::Vote(vote) = &body.payload {
                        self.tx.election.enter(body.round);
                        (self.tx.election).vote(body.round, self.me, vote.candidate, b.0.clone());
                    }
                }
                None => warn!("election: the saved vote is unreadable; ignoring it"),
            }
        }
        self.held
            .restore(v.backing.iter().flatten().map(|b| b.0.clone()).collect());
        if let Some(b) = &v.challenge {
            match own(b) {
                Some((_, body)) if matches!(body.payload, Payload::Challenge(_)) => {
                    self.tx.election.issue(body.round);
                    self.tx.my_challenge = Some(b.0.clone());
                }
                _ => warn!("challenge: the saved challenge is unreadable; ignoring it"),
            }
        }
        for b in v.approval.iter().chain(&v.confirm) {
            let Some((_, body)) = own(b) else {
                warn!("voting: a saved ballot is unreadable; ignoring it");
                continue;
            };
            let Payload::Approval(a) = &body.payload else {
                continue;
            };
            let ballot = (a.solution, b.0.clone());
            if a.stance == Stance::Reject {
                continue;
            }
            self.tx.rounds.own(a.vround, a.stance, self.me, ballot);
            self.tx.rounds.enter(a.vround);
        }
    }
}
