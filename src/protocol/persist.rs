//! The vote state a node must not forget across a crash.
//!
//! An honest node votes once per round and approves at most one solution per
//! transaction. Both promises must survive a restart, or a node that crashed
//! after voting could vote differently afterwards and look like a liar (or,
//! worse, help a second certificate). So the driver writes this small state
//! durably before any vote or approval is published, and hands it back at
//! start.

use minicbor::{Decode, Encode};
use tracing::warn;

use super::Node;
use crate::wire::{self, Body, Bytes, Envelope, Payload};

/// Our latest vote and approval for one transaction.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Default)]
#[cbor(array)]
pub struct VoteState {
    #[n(0)]
    pub tx: u64,
    #[n(1)]
    pub vote: Option<Bytes>,
    #[n(2)]
    pub approval: Option<Bytes>,
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
            vote: self.tx.my_vote.as_ref().map(|(_, e)| Bytes(e.clone())),
            approval: self.tx.my_approval.as_ref().map(|(_, e)| Bytes(e.clone())),
        }
        .encode()
    }

    /// Takes back our own promises for the transaction under way.
    pub(crate) fn restore_votes(&mut self, v: VoteState) {
        if v.tx != self.height + 1 {
            return;
        }
        let own = |b: &Bytes| -> Option<(Envelope, Body)> {
            let env = Envelope::decode(&b.0, wire::MAX_PHASE_MESSAGE).ok()?;
            let body = Body::decode(&env.body).ok()?;
            (body.sender == self.me && body.tx == v.tx).then_some((env, body))
        };
        if let Some(b) = &v.vote {
            match own(b) {
                Some((_, body)) => {
                    if let Payload::Vote(vote) = &body.payload {
                        self.tx.round = body.round;
                        self.tx.my_vote = Some((body.round, b.0.clone()));
                        self.tx
                            .votes
                            .entry(body.round)
                            .or_default()
                            .insert(self.me, (vote.candidate, b.0.clone()));
                    }
                }
                None => warn!("election: the saved vote is unreadable; ignoring it"),
            }
        }
        if let Some(b) = &v.approval {
            match own(b) {
                Some((_, body)) => {
                    if let Payload::Approval(a) = &body.payload {
                        self.tx.my_approval = Some((a.solution, b.0.clone()));
                        self.tx.approvals.insert(self.me, (a.solution, b.0.clone()));
                    }
                }
                None => warn!("voting: the saved approval is unreadable; ignoring it"),
            }
        }
    }
}
