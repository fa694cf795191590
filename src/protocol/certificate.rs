//! Commit certificates: what a ledger record holds and how anyone checks it.
//!
//! A certificate is the challenge (with the election votes that made its
//! signer leader), the solution, a quorum of confirmations of that solution
//! from one voting round, and the public keys of every signer. It is checked
//! on its own, against nothing but the previous commit, so a late node can
//! take it from anyone without trusting the sender. This module is pure
//! verification: it changes no node state.

use std::collections::{BTreeMap, BTreeSet};

use p256::ecdsa::VerifyingKey;

use super::election::check_certificate;
use super::{reference, Config, Reject};
use crate::identity::NodeId;
use crate::pow;
use crate::wire::{self, Body, Commit, Envelope, Key33, Payload, SigCache};

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
    sigs: &SigCache,
) -> Result<(), Reject> {
    let key = keys
        .get(&signer)
        .ok_or_else(|| Reject::Certificate(format!("{what}: no key for {signer}")))?;
    if sigs.verify(cluster, env, key) {
        Ok(())
    } else {
        Err(Reject::Certificate(format!(
            "{what}: bad signature of {signer}"
        )))
    }
}

/// Checks a set of signed approvals (`confirm == false`) of `solution` in
/// voting round `vround` of `tx`: returns the distinct signers. Used for the
/// proof a confirmation carries.
pub(crate) fn check_approvals(
    cluster: &str,
    tx: u64,
    vround: u32,
    solution: &[u8; 16],
    approvals: &[wire::Bytes],
    keys: &BTreeMap<NodeId, VerifyingKey>,
    sigs: &SigCache,
) -> Result<BTreeSet<NodeId>, Reject> {
    let mut signers = BTreeSet::new();
    for (i, raw) in approvals.iter().enumerate() {
        let (env, body) = decode_signed(&raw.0, wire::MAX_PHASE_MESSAGE, "approval")?;
        let Payload::Approval(a) = &body.payload else {
            return Err(Reject::Certificate(format!(
                "proof {i} is a {}",
                body.kind()
            )));
        };
        if body.tx != tx || !a.approve || a.confirm || a.vround != vround || a.solution != *solution
        {
            return Err(Reject::Certificate(format!(
                "proof {i} approves something else"
            )));
        }
        check_sig(cluster, &env, body.sender, keys, "approval", sigs)?;
        signers.insert(body.sender);
    }
    Ok(signers)
}

/// Checks a commit certificate on its own: keys hash to their ids, the
/// challenge builds on `prev` for transaction `tx` and was issued by the
/// winner of a valid election, the seed meets the difficulty, and a quorum of
/// distinct members confirmed exactly this solution in one voting round.
///
/// The proofs inside the confirmations are not checked again: a quorum of
/// signed confirmations is what makes the commit safe (see
/// `docs/PROTOCOL.md`); the proofs only let other nodes unlock.
pub fn verify_commit(
    cfg: &Config,
    tx: u64,
    prev: &[u8; 16],
    c: &Commit,
) -> Result<Committed, Reject> {
    verify_commit_with(cfg, tx, prev, c, &SigCache::with_capacity(64))
}

/// [`verify_commit`] that skips signatures already in `sigs`.
pub(crate) fn verify_commit_with(
    cfg: &Config,
    tx: u64,
    prev: &[u8; 16],
    c: &Commit,
    sigs: &SigCache,
) -> Result<Committed, Reject> {
    let mut keys = BTreeMap::new();
    for Key33(k) in &c.keys {
        let vk = sigs.key(k).ok_or(Reject::BadKey)?;
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
    check_sig(cluster, &cenv, cbody.sender, &keys, "challenge", sigs)?;
    check_certificate(
        cluster,
        cfg.quorum,
        tx,
        cbody.round,
        prev,
        cbody.sender,
        &ch.votes,
        &keys,
        sigs,
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
    check_sig(cluster, &senv, sbody.sender, &keys, "solution", sigs)?;
    if !pow::verify(&ch.salt, &sbody.sender.0, sol.seed, ch.difficulty) {
        return Err(Reject::BadProofOfWork);
    }
    let sref = reference(&senv.body);
    let mut confirmers = BTreeSet::new();
    let mut vround = None;
    for (i, raw) in c.confirmations.iter().enumerate() {
        let (aenv, abody) = decode_signed(&raw.0, wire::MAX_CERT_MESSAGE, "confirmation")?;
        let Payload::Approval(a) = &abody.payload else {
            return Err(Reject::Certificate(format!(
                "confirmation {i} is a {}",
                abody.kind()
            )));
        };
        if abody.tx != tx || !a.approve || !a.confirm || a.solution != sref {
            return Err(Reject::Certificate(format!(
                "confirmation {i} is for something else"
            )));
        }
        if *vround.get_or_insert(a.vround) != a.vround {
            return Err(Reject::Certificate(
                "the confirmations come from different voting rounds".into(),
            ));
        }
        check_sig(cluster, &aenv, abody.sender, &keys, "confirmation", sigs)?;
        confirmers.insert(abody.sender);
    }
    if confirmers.len() < cfg.quorum {
        return Err(Reject::Certificate(format!(
            "{} distinct confirmations, fewer than the quorum of {}",
            confirmers.len(),
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
        confirmations: confirmers.len(),
        vround: vround.unwrap_or(0),
    })
}
