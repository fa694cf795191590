//! Commit certificates: what a ledger record holds and how anyone checks it.
//!
//! A certificate is the challenge (with the election votes that made its
//! signer leader, and the roster change it commits, if any), the solution,
//! a quorum of confirmations of that solution from one voting round, and
//! the public keys of its signers. It is checked on its own, against
//! nothing but the previous commit and the roster in force at its height,
//! so a late node can take it from anyone without trusting the sender:
//! every signer must be a member of that roster, and a key the certificate
//! carries counts only for a member's id. This module is pure verification:
//! it changes no node state.

use std::collections::{BTreeMap, BTreeSet};

use p256::ecdsa::VerifyingKey;

use super::election::check_certificate;
use super::genesis::Genesis;
use super::roster::{check_change, Roster};
use super::{reference, Reject};
use crate::identity::NodeId;
use crate::pow;
use crate::wire::{
    self, Body, Change, ClusterId, Commit, Envelope, Key33, Payload, SigCache, Stance,
};

/// A verified commit: what the ledger table shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    pub tx: u64,
    /// Election round of the challenge.
    pub round: u32,
    pub difficulty: u8,
    pub leader: NodeId,
    pub winner: NodeId,
    pub seed: u64,
    pub salt: [u8; 12],
    /// Reference of the committed solution: the next challenge's `prev`.
    pub reference: [u8; 16],
    /// Distinct confirmations in the certificate.
    pub confirmations: usize,
    /// Voting round in which the quorum confirmed.
    pub vround: u32,
    /// The roster change this transaction commits (in force from the next).
    pub change: Option<Change>,
}

impl Committed {
    /// The exact string whose SHA-1 is the proof of work.
    pub fn preimage(&self) -> String {
        pow::Template::new(&self.salt, &self.winner.0).preimage(self.seed)
    }
}

/// A signed message inside a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Challenge,
    Solution,
    Confirmation,
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Part::Challenge => "challenge",
            Part::Solution => "solution",
            Part::Confirmation => "confirmation",
        })
    }
}

/// Why a commit certificate is invalid (a signer outside the roster, a wrong transaction or ledger
/// head, a bad proof of work have their own [`Reject`] reasons).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CertError {
    #[error("{part}: {err}")]
    Undecodable { part: Part, err: wire::WireError },
    #[error("{part}: no key for {signer}")]
    NoKey { part: Part, signer: NodeId },
    #[error("{part}: bad signature of {signer}")]
    BadSignature { part: Part, signer: NodeId },
    #[error("a commit for transaction 0")]
    TransactionZero,
    #[error("the challenge is not a challenge")]
    NotAChallenge,
    #[error("the solution is not a solution")]
    NotASolution,
    #[error("the solution answers another challenge")]
    OtherChallenge,
    #[error("confirmation {index} is a {kind}")]
    ConfirmationKind { index: usize, kind: wire::Kind },
    #[error("confirmation {0} is for something else")]
    ConfirmationMismatch(usize),
    #[error("the confirmations come from different voting rounds")]
    MixedRounds,
    #[error("{got} distinct confirmations, fewer than the quorum of {quorum}")]
    FewConfirmations { got: usize, quorum: usize },
}

pub(crate) fn decode_signed(
    raw: &[u8],
    limit: usize,
    part: Part,
) -> Result<(Envelope, Body), CertError> {
    let undecodable = |err| CertError::Undecodable { part, err };
    let env = Envelope::decode(raw, limit).map_err(undecodable)?;
    let body = Body::decode(&env.body).map_err(undecodable)?;
    Ok((env, body))
}

fn check_sig(
    cluster: &ClusterId,
    env: &Envelope,
    signer: NodeId,
    keys: &BTreeMap<NodeId, VerifyingKey>,
    part: Part,
    sigs: &SigCache,
) -> Result<(), CertError> {
    let key = keys.get(&signer).ok_or(CertError::NoKey { part, signer })?;
    if sigs.verify(cluster, env, key) {
        Ok(())
    } else {
        Err(CertError::BadSignature { part, signer })
    }
}

/// The member keys a certificate carries: each must hash to a member of
/// `roster` (a key of anyone else is refused, not skipped).
pub(crate) fn member_keys(
    roster: &Roster,
    keys: &[Key33],
    sigs: &SigCache,
) -> Result<BTreeMap<NodeId, VerifyingKey>, Reject> {
    let mut out = BTreeMap::new();
    for Key33(k) in keys {
        let id = NodeId::from_public_key(k);
        if !roster.contains(id) {
            return Err(Reject::NotAMember(id));
        }
        out.insert(id, sigs.key(k).ok_or(Reject::BadKey)?);
    }
    Ok(out)
}

/// Checks a commit certificate on its own, for transaction `tx` on top of
/// `prev` with `roster` in force: its keys are members', the challenge
/// was issued by the winner of a valid election among members (and any
/// roster change in it is the admin's, for this roster), the seed of a
/// member meets the difficulty, and a quorum of distinct members confirmed
/// exactly this solution in one voting round: a quorum of signed
/// confirmations is what makes the commit safe (see `docs/PROTOCOL.md`).
/// Each confirmation is one signed message of a few dozen bytes, so the
/// certificate grows linearly with the quorum.
pub fn verify_commit(
    genesis: &Genesis,
    roster: &Roster,
    tx: u64,
    prev: &[u8; 16],
    c: &Commit,
) -> Result<Committed, Reject> {
    verify_commit_with(genesis, roster, tx, prev, c, &SigCache::with_capacity(64))
}

/// [`verify_commit`] that skips signatures already in `sigs`.
pub(crate) fn verify_commit_with(
    genesis: &Genesis,
    roster: &Roster,
    tx: u64,
    prev: &[u8; 16],
    c: &Commit,
    sigs: &SigCache,
) -> Result<Committed, Reject> {
    let keys = member_keys(roster, &c.keys, sigs)?;
    let cluster = &genesis.id();
    let (cenv, cbody) = decode_signed(&c.challenge.0, wire::MAX_CERT_MESSAGE, Part::Challenge)?;
    let Payload::Challenge(ch) = &cbody.payload else {
        return Err(CertError::NotAChallenge.into());
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
    let (lo, hi) = genesis.difficulty();
    if ch.difficulty < lo || ch.difficulty > hi {
        return Err(Reject::Difficulty {
            got: ch.difficulty,
            lo,
            hi,
        });
    }
    if !roster.contains(cbody.sender) {
        return Err(Reject::NotAMember(cbody.sender));
    }
    check_sig(cluster, &cenv, cbody.sender, &keys, Part::Challenge, sigs)?;
    check_certificate(
        cluster,
        roster,
        tx,
        cbody.round,
        prev,
        cbody.sender,
        &ch.votes,
        &keys,
        sigs,
    )?;
    let change = match &ch.change {
        Some(raw) => Some(
            check_change(genesis, roster, &raw.0, tx, sigs)
                .map_err(Reject::Change)?
                .0,
        ),
        None => None,
    };

    let (senv, sbody) = decode_signed(&c.solution.0, wire::MAX_PHASE_MESSAGE, Part::Solution)?;
    let Payload::Solution(sol) = &sbody.payload else {
        return Err(CertError::NotASolution.into());
    };
    if sbody.tx != tx || sol.challenge != reference(&cenv.body) {
        return Err(CertError::OtherChallenge.into());
    }
    if !roster.contains(sbody.sender) {
        return Err(Reject::NotAMember(sbody.sender));
    }
    check_sig(cluster, &senv, sbody.sender, &keys, Part::Solution, sigs)?;
    if !pow::verify(&ch.salt, &sbody.sender.0, sol.seed, ch.difficulty) {
        return Err(Reject::BadProofOfWork);
    }
    let sref = reference(&senv.body);
    let mut confirmers = BTreeSet::new();
    let mut vround = None;
    for (i, raw) in c.confirmations.iter().enumerate() {
        let (aenv, abody) = decode_signed(&raw.0, wire::MAX_CERT_MESSAGE, Part::Confirmation)?;
        let Payload::Approval(a) = &abody.payload else {
            return Err(CertError::ConfirmationKind {
                index: i,
                kind: abody.kind(),
            }
            .into());
        };
        if abody.tx != tx || a.stance != Stance::Confirm || a.solution != sref {
            return Err(CertError::ConfirmationMismatch(i).into());
        }
        if *vround.get_or_insert(a.vround) != a.vround {
            return Err(CertError::MixedRounds.into());
        }
        if !roster.contains(abody.sender) {
            return Err(Reject::NotAMember(abody.sender));
        }
        check_sig(
            cluster,
            &aenv,
            abody.sender,
            &keys,
            Part::Confirmation,
            sigs,
        )?;
        confirmers.insert(abody.sender);
    }
    if confirmers.len() < roster.quorum() {
        return Err(CertError::FewConfirmations {
            got: confirmers.len(),
            quorum: roster.quorum(),
        }
        .into());
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
        confirmations: confirmers.len(),
        vround: vround.unwrap_or(0),
        change,
    })
}
