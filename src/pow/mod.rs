//! The proof of work: the preimage layout, the difficulty rule and the
//! reference check.
//!
//! A preimage is one printable 53-byte string,
//! `em-<salt: 16 chars base64url>-<solver id: 16 hex>-<seed: 16 hex>`, so it
//! fits one SHA-1 block (padding and length are constant and precomputed) and
//! a person can check it with `printf '%s' PREIMAGE | sha1sum`. The salt is
//! fresh per challenge and the solver's id is inside, so a seed solves one
//! challenge for one node only. Difficulty D means at least D leading zero
//! bits of the digest.

#[cfg(target_arch = "aarch64")]
mod arm_neon;
#[cfg(target_arch = "aarch64")]
mod arm_sha1;
pub mod engine;
pub mod lanes;
pub mod portable;
pub mod words;
#[cfg(target_arch = "x86_64")]
mod x86_avx2;
#[cfg(target_arch = "x86_64")]
mod x86_avx512;
#[cfg(target_arch = "x86_64")]
mod x86_shani;
#[cfg(target_arch = "x86_64")]
mod x86_sse2;

use sha1::{Digest, Sha1};

pub const SALT_LEN: usize = 12;
pub const PREIMAGE_LEN: usize = 53;
pub const MAX_DIFFICULTY: u8 = 160;
/// Where the 16 seed characters sit in the preimage (and the block).
pub const SEED_AT: usize = 37;

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const HEX: &[u8; 16] = b"0123456789abcdef";

/// The 16-char base64url (no padding) form of a salt.
pub fn salt_text(salt: &[u8; SALT_LEN]) -> String {
    let mut s = String::with_capacity(16);
    for c in salt.chunks(3) {
        let n = (u32::from(c[0]) << 16) | (u32::from(c[1]) << 8) | u32::from(c[2]);
        for shift in [18, 12, 6, 0] {
            s.push(B64[((n >> shift) & 63) as usize] as char);
        }
    }
    s
}

fn salt_from_text(s: &[u8]) -> Option<[u8; SALT_LEN]> {
    if s.len() != 16 {
        return None;
    }
    let val = |c: u8| B64.iter().position(|&b| b == c).map(|p| p as u32);
    let mut out = [0u8; SALT_LEN];
    for (i, chunk) in s.chunks(4).enumerate() {
        let mut n = 0u32;
        for &c in chunk {
            n = (n << 6) | val(c)?;
        }
        out[3 * i] = (n >> 16) as u8;
        out[3 * i + 1] = (n >> 8) as u8;
        out[3 * i + 2] = n as u8;
    }
    Some(out)
}

/// Writes the 16 lowercase hex digits of `v` into `out`.
#[inline(always)]
pub fn write_hex64(v: u64, out: &mut [u8]) {
    for (i, o) in out.iter_mut().take(16).enumerate() {
        *o = HEX[((v >> (60 - 4 * i)) & 15) as usize];
    }
}

fn hex_to_bytes<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = nib(s[2 * i])? << 4 | nib(s[2 * i + 1])?;
    }
    Some(out)
}

/// 16 lowercase hex chars of a seed.
pub fn seed_hex(seed: u64) -> String {
    let mut b = [0u8; 16];
    write_hex64(seed, &mut b);
    b.iter().map(|&c| c as char).collect()
}

pub fn parse_seed(s: &str) -> Option<u64> {
    hex_to_bytes::<8>(s.as_bytes()).map(u64::from_be_bytes)
}

/// A mining task: find a seed for this salt and solver that meets the
/// difficulty. Plain data, shared by the protocol core and the pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub id: u64,
    pub salt: [u8; SALT_LEN],
    pub solver: [u8; 8],
    pub difficulty: u8,
}

/// The constant part of a preimage, with its padded SHA-1 block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    block: [u8; 64],
}

impl Template {
    pub fn new(salt: &[u8; SALT_LEN], solver: &[u8; 8]) -> Template {
        let mut block = [0u8; 64];
        block[..3].copy_from_slice(b"em-");
        block[3..19].copy_from_slice(salt_text(salt).as_bytes());
        block[19] = b'-';
        for (i, b) in solver.iter().enumerate() {
            block[20 + 2 * i] = HEX[(b >> 4) as usize];
            block[21 + 2 * i] = HEX[(b & 15) as usize];
        }
        block[36] = b'-';
        write_hex64(0, &mut block[SEED_AT..PREIMAGE_LEN]);
        block[PREIMAGE_LEN] = 0x80;
        block[56..].copy_from_slice(&((PREIMAGE_LEN as u64) * 8).to_be_bytes());
        Template { block }
    }

    /// The padded block, with seed 0 in place (bytes 37..53 hold the seed).
    pub fn block(&self) -> &[u8; 64] {
        &self.block
    }

    pub fn preimage(&self, seed: u64) -> String {
        let mut b = self.block;
        write_hex64(seed, &mut b[SEED_AT..PREIMAGE_LEN]);
        b[..PREIMAGE_LEN].iter().map(|&c| c as char).collect()
    }

    /// The digest through the `sha1` crate's ordinary hasher (reference path).
    pub fn digest(&self, seed: u64) -> [u8; 20] {
        Sha1::digest(self.preimage(seed).as_bytes()).into()
    }
}

pub fn leading_zero_bits(digest: &[u8; 20]) -> u32 {
    let mut n = 0;
    for &b in digest {
        if b == 0 {
            n += 8;
        } else {
            return n + b.leading_zeros();
        }
    }
    n
}

pub fn meets(digest: &[u8; 20], difficulty: u8) -> bool {
    leading_zero_bits(digest) >= u32::from(difficulty)
}

/// The reference check used when verifying: independent of any engine.
pub fn verify(salt: &[u8; SALT_LEN], solver: &[u8; 8], seed: u64, difficulty: u8) -> bool {
    meets(&Template::new(salt, solver).digest(seed), difficulty)
}

/// Splits a preimage string back into salt, solver and seed.
pub fn parse_preimage(s: &str) -> Option<([u8; SALT_LEN], [u8; 8], u64)> {
    let b = s.as_bytes();
    if b.len() != PREIMAGE_LEN || &b[..3] != b"em-" || b[19] != b'-' || b[36] != b'-' {
        return None;
    }
    let salt = salt_from_text(&b[3..19])?;
    let solver = hex_to_bytes::<8>(&b[20..36])?;
    let seed = u64::from_be_bytes(hex_to_bytes::<8>(&b[37..53])?);
    Some((salt, solver, seed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn layout_is_printable_and_one_block() {
        let t = Template::new(
            &[0xff; 12],
            &[0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef],
        );
        let p = t.preimage(0x1ff);
        assert_eq!(p.len(), PREIMAGE_LEN);
        assert_eq!(p, "em-________________-0123456789abcdef-00000000000001ff");
        assert!(p
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }

    #[test]
    fn leading_zeros() {
        let mut d = [0u8; 20];
        assert_eq!(leading_zero_bits(&d), 160);
        d[0] = 0x80;
        assert_eq!(leading_zero_bits(&d), 0);
        d[0] = 0;
        d[2] = 0x01;
        assert_eq!(leading_zero_bits(&d), 23);
        assert!(meets(&d, 23) && !meets(&d, 24));
    }

    proptest! {
        #[test]
        fn parse_round_trips(salt in any::<[u8; 12]>(), solver in any::<[u8; 8]>(), seed in any::<u64>()) {
            let t = Template::new(&salt, &solver);
            let p = t.preimage(seed);
            prop_assert_eq!(parse_preimage(&p), Some((salt, solver, seed)));
            prop_assert_eq!(parse_seed(&seed_hex(seed)), Some(seed));
            let d: [u8; 20] = Sha1::digest(p.as_bytes()).into();
            prop_assert_eq!(t.digest(seed), d);
        }
    }
}
