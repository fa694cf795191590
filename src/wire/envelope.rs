//! The signed envelope: `[body bytes, signature]`, with domain separation.
//!
//! The signature covers `"edgeminer/2" 0x00 cluster-id body`, where the
//! cluster id is the 16-byte hash of the cluster's genesis, and the body
//! itself starts with its kind, sender, transaction and round. So the
//! signed bytes name the cluster, the message kind and the round, and a
//! signature is checked over the exact bytes that were signed, never over a
//! re-serialised structure.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use minicbor::{Decode, Encode};
use p256::ecdsa::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::{decode_exact, encode, ClusterId, WireError};

const DOMAIN: &[u8] = b"edgeminer/2\0";

/// A signed message as it travels: the exact body bytes and a P-256 signature.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cbor(array)]
pub struct Envelope {
    #[cbor(n(0), with = "minicbor::bytes")]
    pub body: Vec<u8>,
    #[cbor(n(1), with = "minicbor::bytes")]
    pub sig: [u8; 64],
}

fn signed_input(cluster: &ClusterId, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + cluster.0.len() + body.len());
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(&cluster.0);
    m.extend_from_slice(body);
    m
}

/// Signs `body` for `cluster` and returns the encoded envelope.
pub fn sign(cluster: &ClusterId, key: &SigningKey, body: Vec<u8>) -> Vec<u8> {
    let sig = scheme::sign(key, &signed_input(cluster, &body));
    encode(&Envelope { body, sig })
}

/// P-256 ECDSA over SHA-256 (RFC 6979 nonces), the only scheme a node
/// ever uses. Signing is the `p256` crate's; checking is ring's, whose
/// assembly (x86-64, aarch64, armv7) checks a signature several times
/// faster than the portable `p256` arithmetic, and a node checks every
/// member's messages while it signs only its own. Both take `r || s` and
/// accept the same signatures (`ring_and_p256_accept_the_same_signatures`).
#[cfg(not(feature = "sim-hash-signatures"))]
mod scheme {
    use super::*;
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::Signature;
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};

    pub fn sign(key: &SigningKey, input: &[u8]) -> [u8; 64] {
        let sig: Signature = key.sign(input);
        let mut bytes = [0u8; 64];
        bytes.copy_from_slice(&sig.to_bytes());
        bytes
    }

    pub fn verify(key: &VerifyingKey, input: &[u8], sig: &[u8; 64]) -> bool {
        let point = key.to_encoded_point(false);
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point.as_bytes())
            .verify(input, sig)
            .is_ok()
    }
}

/// For long simulation soaks only: a "signature" that is a digest of the
/// public key and the signed bytes. Anyone can forge it, so the binary
/// refuses to run when built with this feature; the simulation, whose nodes
/// are all honest, spends a tenth of the time it spends with ECDSA.
#[cfg(feature = "sim-hash-signatures")]
mod scheme {
    use super::*;

    fn tag(key: &VerifyingKey, input: &[u8]) -> [u8; 64] {
        let point = key.to_encoded_point(true);
        let first = Sha256::new()
            .chain_update(b"edgeminer/insecure-hash-signature\0")
            .chain_update(point.as_bytes())
            .chain_update(input)
            .finalize();
        let second = Sha256::digest(first);
        let mut bytes = [0u8; 64];
        bytes[..32].copy_from_slice(&first);
        bytes[32..].copy_from_slice(&second);
        bytes
    }

    pub fn sign(key: &SigningKey, input: &[u8]) -> [u8; 64] {
        tag(key.verifying_key(), input)
    }

    pub fn verify(key: &VerifyingKey, input: &[u8], sig: &[u8; 64]) -> bool {
        tag(key, input) == *sig
    }
}

impl Envelope {
    /// Decodes an envelope, refusing anything larger than `limit` before
    /// looking at a single byte of it.
    pub fn decode(bytes: &[u8], limit: usize) -> Result<Envelope, WireError> {
        if bytes.len() > limit {
            return Err(WireError::TooLarge {
                size: bytes.len(),
                limit,
            });
        }
        decode_exact(bytes)
    }

    /// Whether the signature over the body verifies with `key` for `cluster`.
    pub fn verify(&self, cluster: &ClusterId, key: &VerifyingKey) -> bool {
        scheme::verify(key, &signed_input(cluster, &self.body), &self.sig)
    }

    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
}

/// Signatures a node has already checked, so that the copies inside
/// certificates (votes in a challenge, approvals in a confirmation,
/// confirmations in a commit) and messages sent again are not checked
/// twice. A signature check costs milliseconds on a Pi Zero; a digest costs
/// microseconds. Bounded: the oldest entries are forgotten first.
///
/// Clones share one cache: a simulation of many nodes in one process checks
/// each signature once, which changes nothing but the time taken, since a
/// check's result depends only on what the cache is keyed by.
#[derive(Clone, Debug)]
pub struct SigCache {
    inner: Arc<Mutex<Seen>>,
}

#[derive(Debug)]
struct Seen {
    set: BTreeSet<[u8; 16]>,
    order: VecDeque<[u8; 16]>,
    capacity: usize,
    /// Public keys already decompressed (a square root in the field, as
    /// costly as a tenth of a signature check), same bound and order.
    keys: BTreeMap<[u8; 33], VerifyingKey>,
    key_order: VecDeque<[u8; 33]>,
    /// Signatures checked for real (not found here), since the start.
    checks: u64,
}

impl Default for SigCache {
    fn default() -> SigCache {
        SigCache::with_capacity(4096)
    }
}

impl SigCache {
    pub fn with_capacity(capacity: usize) -> SigCache {
        SigCache {
            inner: Arc::new(Mutex::new(Seen {
                set: BTreeSet::new(),
                order: VecDeque::new(),
                capacity: capacity.max(1),
                keys: BTreeMap::new(),
                key_order: VecDeque::new(),
                checks: 0,
            })),
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        // A panic while holding the lock leaves a valid set behind.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The public key in SEC1 form `k`, or `None` if it is not a point of
    /// the curve. Keys that parse are remembered.
    pub fn key(&self, k: &[u8; 33]) -> Option<VerifyingKey> {
        if let Some(key) = self.seen().keys.get(k) {
            return Some(*key);
        }
        let key = VerifyingKey::from_sec1_bytes(k).ok()?;
        let mut seen = self.seen();
        if seen.key_order.len() >= seen.capacity {
            if let Some(old) = seen.key_order.pop_front() {
                seen.keys.remove(&old);
            }
        }
        if seen.keys.insert(*k, key).is_none() {
            seen.key_order.push_back(*k);
        }
        Some(key)
    }

    /// How many signatures were checked for real (each a P-256
    /// verification), by this cache and its clones.
    pub fn checks(&self) -> u64 {
        self.seen().checks
    }

    /// [`Envelope::verify`], remembering the envelopes that passed.
    pub fn verify(&self, cluster: &ClusterId, env: &Envelope, key: &VerifyingKey) -> bool {
        let point = key.to_encoded_point(true);
        let mut h = Sha256::new();
        h.update(b"edgeminer/verified\0");
        h.update(cluster.0);
        h.update(point.as_bytes());
        h.update(env.sig);
        h.update(&env.body);
        let mut id = [0u8; 16];
        id.copy_from_slice(&h.finalize()[..16]);
        if self.seen().set.contains(&id) {
            return true;
        }
        self.seen().checks += 1;
        if !env.verify(cluster, key) {
            return false;
        }
        let mut seen = self.seen();
        if seen.order.len() >= seen.capacity {
            if let Some(old) = seen.order.pop_front() {
                seen.set.remove(&old);
            }
        }
        if seen.set.insert(id) {
            seen.order.push_back(id);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    /// ring checks what `p256` signs, and refuses what `p256` refuses: a
    /// changed byte, another key, a zero or out-of-range scalar. Both
    /// accept `s` and `n - s` alike (ECDSA's malleability; the protocol
    /// keys messages by their body, never by their signature bytes).
    #[cfg(not(feature = "sim-hash-signatures"))]
    #[test]
    fn ring_and_p256_accept_the_same_signatures() {
        use p256::ecdsa::signature::Verifier;
        use p256::ecdsa::Signature;
        let by_p256 = |k: &VerifyingKey, m: &[u8], s: &[u8; 64]| {
            Signature::from_slice(s).is_ok_and(|s| k.verify(m, &s).is_ok())
        };
        for i in 0..32u8 {
            let key = SigningKey::random(&mut OsRng);
            let vk = *key.verifying_key();
            let other = *SigningKey::random(&mut OsRng).verifying_key();
            let msg = vec![i; 1 + i as usize * 7];
            let sig = scheme::sign(&key, &msg);
            let high_s = Signature::from_slice(&sig)
                .map(|s| {
                    let (r, s) = s.split_scalars();
                    Signature::from_scalars(r, -*s).expect("n - s is in range")
                })
                .expect("own signature parses");
            let mut flipped = sig;
            flipped[i as usize % 64] ^= 1 << (i % 8);
            let mut zero_r = sig;
            zero_r[..32].fill(0);
            let mut huge_s = sig;
            huge_s[32..].fill(0xff);
            let mut other_msg = msg.clone();
            other_msg[0] ^= 0x80;
            let cases: [(&VerifyingKey, &[u8], [u8; 64], bool); 7] = [
                (&vk, &msg, sig, true),
                (&vk, &msg, high_s.to_bytes().into(), true),
                (&vk, &msg, flipped, false),
                (&vk, &msg, zero_r, false),
                (&vk, &msg, huge_s, false),
                (&vk, &other_msg, sig, false),
                (&other, &msg, sig, false),
            ];
            for (n, (k, m, s, valid)) in cases.iter().enumerate() {
                assert_eq!(scheme::verify(k, m, s), *valid, "case {n}, key {i}");
                assert_eq!(by_p256(k, m, s), *valid, "case {n}, key {i}");
            }
        }
    }

    #[test]
    fn signature_is_bound_to_cluster_and_bytes() {
        let key = SigningKey::random(&mut OsRng);
        let vk = *key.verifying_key();
        let (lab, lab2) = (ClusterId([1; 16]), ClusterId([2; 16]));
        let bytes = sign(&lab, &key, b"hello".to_vec());
        let env = Envelope::decode(&bytes, 1024).expect("own envelope decodes");
        assert!(env.verify(&lab, &vk));
        assert!(!env.verify(&lab2, &vk));
        let mut tampered = env.clone();
        tampered.body[0] ^= 1;
        assert!(!tampered.verify(&lab, &vk));
        let other = SigningKey::random(&mut OsRng);
        assert!(!env.verify(&lab, other.verifying_key()));

        let cache = SigCache::with_capacity(2);
        assert!(cache.verify(&lab, &env, &vk));
        assert!(
            cache.verify(&lab, &env, &vk),
            "a cached signature still passes"
        );
        assert!(!cache.verify(&lab2, &env, &vk), "the cache is per cluster");
        assert!(
            !cache.verify(&lab, &tampered, &vk),
            "a tampered body is checked afresh"
        );
        assert!(
            !cache.verify(&lab, &env, other.verifying_key()),
            "and so is another key"
        );
    }

    #[test]
    fn size_limit_comes_first() {
        let big = vec![0u8; 100];
        assert_eq!(
            Envelope::decode(&big, 10),
            Err(WireError::TooLarge {
                size: 100,
                limit: 10
            })
        );
        assert!(Envelope::decode(&[0xff, 0x00], 10).is_err());
        assert!(Envelope::decode(&[], 10).is_err());
    }
}
