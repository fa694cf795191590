//! An attacker's workshop: every message of the six phases, and whole
//! commit certificates, signed with keys the attacker holds (keys it
//! minted itself, and possibly one it stole from a member).
//!
//! The certificates it makes are complete: votes electing its first key,
//! that key's challenge, a seed mined for it, and a quorum of approvals and
//! confirmations. They would verify against a roster that named its keys
//! (the tests check that they do), so when the cluster refuses them it is
//! for the only reason left: the signers are not its members. The
//! simulation's outsiders and the process tests' forgers both use it.

use std::sync::Arc;

use crate::identity::{Identity, NodeId};
use crate::pow;
use crate::protocol::{reference, Genesis, Publish};
use crate::wire::{
    self, Approval, Body, Bytes, Challenge, Commit, Family, Key33, Payload, Presence, PubKey,
    Solution, Sync, Topics, Vote,
};

/// Signs as any of its keys for one cluster (whose genesis it read: it is
/// public).
pub struct Forger {
    pub keys: Vec<Identity>,
    genesis: Arc<Genesis>,
    topics: Topics,
}

impl Forger {
    pub fn new(genesis: Arc<Genesis>, keys: Vec<Identity>) -> Forger {
        let topics = Topics::new(genesis.cluster());
        Forger {
            keys,
            genesis,
            topics,
        }
    }

    pub fn id(&self, k: usize) -> NodeId {
        self.keys[k].id
    }

    /// An envelope signed by key `k`.
    pub fn sign(&self, k: usize, tx: u64, round: u32, payload: Payload) -> Vec<u8> {
        let body = Body {
            sender: self.keys[k].id,
            tx,
            round,
            payload,
        };
        wire::sign(&self.genesis.id(), &self.keys[k].key, body.encode())
    }

    fn on(&self, k: usize, family: Family, payload: Vec<u8>, retain: bool) -> Publish {
        Publish {
            topic: self.topics.own(family, self.keys[k].id),
            payload,
            retain,
        }
    }

    /// Key `k`'s public key and an "online" presence, retained as members'
    /// are: a ghost member, if the cluster believed it.
    pub fn ghost(&self, k: usize, incarnation: u64) -> [Publish; 2] {
        let name = format!("ghost-{k}");
        let key = PubKey {
            key: self.keys[k].public,
            name: name.clone(),
            cluster: self.genesis.id(),
        };
        let presence = Presence {
            online: true,
            incarnation,
            name,
            threads: 1,
            version: env!("CARGO_PKG_VERSION").into(),
        };
        [
            self.on(
                k,
                Family::PubKey,
                self.sign(k, 0, 0, Payload::PubKey(key)),
                true,
            ),
            self.on(
                k,
                Family::Init,
                self.sign(k, 0, 0, Payload::Presence(presence)),
                true,
            ),
        ]
    }

    /// Key `k` votes for `candidate` in (tx, round) on top of `prev`.
    pub fn vote(
        &self,
        k: usize,
        tx: u64,
        round: u32,
        prev: [u8; 16],
        candidate: NodeId,
    ) -> Publish {
        let v = Payload::Vote(Vote { candidate, prev });
        self.on(k, Family::Election, self.sign(k, tx, round, v), false)
    }

    /// Key `k` asks `responder` for transaction `tx` (a claim to be far
    /// behind, or, with a huge `tx`, a claim that such a transaction exists).
    pub fn sync(&self, k: usize, tx: u64, responder: NodeId) -> Publish {
        Publish {
            topic: self.topics.sync(self.keys[k].id),
            payload: self.sign(k, tx, 0, Payload::Sync(Sync { responder })),
            retain: false,
        }
    }

    /// Every message of one transaction, as the attacker's keys alone
    /// would make it: votes, the challenge of key 0, its solution, the
    /// approvals and the confirmations. Then the certificate they make.
    pub fn transaction(&self, tx: u64, prev: [u8; 16]) -> (Vec<Publish>, Commit) {
        let leader = self.id(0);
        let round = 0;
        let mut out = Vec::new();
        let mut votes = Vec::new();
        for k in 0..self.keys.len() {
            let v = self.vote(k, tx, round, prev, leader);
            votes.push(Bytes(v.payload.clone()));
            out.push(v);
        }
        let difficulty = self.genesis.difficulty().0;
        let salt = wire::digest16(b"forged salt", &tx.to_be_bytes())[..12]
            .try_into()
            .expect("12 bytes");
        let challenge = Challenge {
            difficulty,
            salt,
            prev,
            votes,
            keys: self.keys.iter().map(|k| Key33(k.public)).collect(),
            change: None,
        };
        let challenge = self.sign(0, tx, round, Payload::Challenge(challenge));
        let cref = reference(
            &wire::Envelope::decode(&challenge, usize::MAX)
                .expect("ours")
                .body,
        );
        out.push(self.on(0, Family::Challenge, challenge.clone(), false));
        let seed = (0u64..)
            .find(|&s| pow::verify(&salt, &leader.0, s, difficulty))
            .expect("a seed below 2^64");
        let solution = self.sign(
            0,
            tx,
            round,
            Payload::Solution(Solution {
                challenge: cref,
                seed,
            }),
        );
        let sref = reference(
            &wire::Envelope::decode(&solution, usize::MAX)
                .expect("ours")
                .body,
        );
        out.push(self.on(0, Family::Solution, solution.clone(), false));
        let mut confirmations = Vec::new();
        for k in 0..self.keys.len() {
            let approval = self.sign(k, tx, round, Payload::Approval(Approval::approve(sref, 0)));
            out.push(self.on(k, Family::Voting, approval, false));
            let confirm = Approval::confirm(sref, 0);
            let c = self.sign(k, tx, round, Payload::Approval(confirm));
            confirmations.push(Bytes(c.clone()));
            out.push(self.on(k, Family::Voting, c, false));
        }
        let commit = Commit {
            challenge: Bytes(challenge),
            solution: Bytes(solution),
            confirmations,
            keys: self.keys.iter().map(|k| Key33(k.public)).collect(),
        };
        (out, commit)
    }

    /// Key `k` publishes `commit` as its certificate of `tx` (retained, as
    /// a member's latest commit is).
    pub fn certificate(&self, k: usize, tx: u64, commit: Commit, retain: bool) -> Publish {
        Publish {
            topic: self.topics.commit(self.keys[k].id),
            payload: self.sign(k, tx, 0, Payload::Commit(commit)),
            retain,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::certificate::verify_commit;
    use crate::protocol::Reject;
    use crate::wire::roster::Entry;
    use rand_core::SeedableRng;

    fn keys(from: u64, n: u64) -> Vec<Identity> {
        (from..from + n)
            .map(|s| Identity::ephemeral(&mut rand_chacha::ChaCha20Rng::seed_from_u64(s)))
            .collect()
    }

    fn genesis_of(ids: &[Identity]) -> Arc<Genesis> {
        let members = ids
            .iter()
            .map(|i| Entry {
                id: i.id,
                name: String::new(),
            })
            .collect();
        Arc::new(Genesis::new("lab".into(), members, 3, (4, 6), None, None).expect("valid"))
    }

    #[test]
    fn forged_certificate_is_complete_but_not_from_members() {
        let outsiders = keys(100, 3);
        let members = keys(0, 4);
        // Against a roster that names the forger's keys, it holds.
        let theirs = genesis_of(&outsiders);
        let forger = Forger::new(theirs.clone(), outsiders.clone());
        let (msgs, cert) = forger.transaction(1, theirs.prev());
        assert_eq!(msgs.len(), 3 + 1 + 1 + 3 * 2);
        let done = verify_commit(&theirs, &theirs.roster(), 1, &theirs.prev(), &cert)
            .expect("a complete certificate");
        assert_eq!(done.confirmations, 3);
        // Against the cluster's roster, the signers are no members.
        let ours = genesis_of(&members);
        let forger = Forger::new(ours.clone(), outsiders);
        let (_, cert) = forger.transaction(1, ours.prev());
        let err = verify_commit(&ours, &ours.roster(), 1, &ours.prev(), &cert)
            .expect_err("signed by no member");
        assert!(matches!(err, Reject::NotAMember(_)), "{err}");
        // A member who signs with fresh keys beside its own gains nothing.
        let mut mixed = vec![members[0].clone()];
        mixed.extend(keys(200, 2));
        let forger = Forger::new(ours.clone(), mixed);
        let (_, cert) = forger.transaction(1, ours.prev());
        let err = verify_commit(&ours, &ours.roster(), 1, &ours.prev(), &cert)
            .expect_err("signed by no member");
        assert!(matches!(err, Reject::NotAMember(_)), "{err}");
    }
}
