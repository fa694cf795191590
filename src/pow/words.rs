//! The SHA-1 message words of a candidate block, and what every engine can
//! compute once instead of once per candidate.
//!
//! The block is `em-<salt>-<solver>-<seed hex>`, padding and length (see
//! [`super::Template`]). Its 16 big-endian words split like this:
//!
//! | words | bytes | content | changes |
//! |---|---|---|---|
//! | W0..W8 | 0..36 | `em-`, salt, `-`, solver | never (per job) |
//! | W9 | 36..40 | `-`, seed hex digits 0..3 | seed bits 52..63 |
//! | W10 | 40..44 | seed hex digits 3..7 | seed bits 36..51 |
//! | W11 | 44..48 | seed hex digits 7..11 | seed bits 20..35 |
//! | W12 | 48..52 | seed hex digits 11..15 | seed bits 4..19 |
//! | W13 | 52..56 | last seed hex digit, `0x80`, 0, 0 | seed bits 0..3 |
//! | W14, W15 | 56..64 | zero, bit length 424 | never |
//!
//! So for a *segment* of 2^20 consecutive seeds (equal bits 20..63) only W12
//! and W13 change, and the first 12 rounds are the same for every seed in
//! it: engines start each candidate from that midstate. A search is a walk
//! over segments; inside one, a seed is its 20-bit offset (`low`).

use super::Template;

/// log2 of the number of seeds in a segment.
pub const SEGMENT_BITS: u32 = 20;
pub const SEGMENT: u64 = 1 << SEGMENT_BITS;
/// Rounds done once per segment (those that read only W0..W11).
pub const MID_ROUNDS: usize = 12;

pub const IV: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
pub const K: [u32; 4] = [0x5A827999, 0x6ED9EBA1, 0x8F1BBCDC, 0xCA62C1D6];
/// W15: the message length in bits (53 bytes).
pub const W15: u32 = 53 * 8;

/// Four lowercase hex digits of the low 16 bits of `x`, as a big-endian
/// word (the first digit in the top byte), without a table or a branch.
#[inline(always)]
pub fn hex4(x: u32) -> u32 {
    // One nibble per byte, the most significant nibble in the top byte.
    let n = ((x & 0xf000) << 12) | ((x & 0x0f00) << 8) | ((x & 0x00f0) << 4) | (x & 0x000f);
    // 1 in each byte whose nibble is 10..15 (nibble + 6 carries into bit 4).
    let letters = ((n + 0x0606_0606) >> 4) & 0x0101_0101;
    // '0' + nibble, plus 'a' - '0' - 10 = 39 for letters (39 = 32+4+2+1,
    // and the shifted ones never overlap within a byte).
    n + 0x3030_3030 + ((letters << 5) | (letters << 2) | (letters << 1) | letters)
}

/// W12 for a seed whose 20-bit segment offset is `low`.
#[inline(always)]
pub fn w12(low: u32) -> u32 {
    hex4(low >> 4)
}

/// W13 for a seed whose 20-bit segment offset is `low`: its last hex digit,
/// then the padding byte 0x80.
#[inline(always)]
pub fn w13(low: u32) -> u32 {
    (hex4(low & 15) << 24) | 0x0080_0000
}

/// The template's 16 message words with W9..W11 set for the segment that
/// holds `seed`, and W12, W13 left zero (they are set per candidate).
pub fn segment_words(t: &Template, seed: u64) -> [u32; 16] {
    let mut w = [0u32; 16];
    for (i, c) in t.block().chunks_exact(4).enumerate() {
        w[i] = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
    }
    w[9] = (u32::from(b'-') << 24) | (hex4((seed >> 52) as u32) & 0x00ff_ffff);
    w[10] = hex4((seed >> 36) as u32);
    w[11] = hex4((seed >> 20) as u32);
    w[12] = 0;
    w[13] = 0;
    w
}

/// The round function and constant of round `t`, scalar.
#[inline(always)]
pub fn round(s: &mut [u32; 5], t: usize, w: u32) {
    let [a, b, c, d, e] = *s;
    let f = match t / 20 {
        0 => d ^ (b & (c ^ d)),
        2 => (b & c) | (d & (b | c)),
        _ => b ^ c ^ d,
    };
    let tmp = a
        .rotate_left(5)
        .wrapping_add(f)
        .wrapping_add(e)
        .wrapping_add(K[t / 20])
        .wrapping_add(w);
    *s = [tmp, a, b.rotate_left(30), c, d];
}

/// The working state after the first [`MID_ROUNDS`] rounds.
pub fn midstate(w: &[u32; 16]) -> [u32; 5] {
    let mut s = IV;
    for (t, &wt) in w.iter().enumerate().take(MID_ROUNDS) {
        round(&mut s, t, wt);
    }
    s
}

/// The whole compression (all 80 rounds and the final additions), scalar:
/// used to confirm a candidate that passed an engine's first-word filter.
pub fn compress(w: &[u32; 16]) -> [u32; 5] {
    let mut ring = *w;
    let mut s = IV;
    for t in 0..80 {
        if t >= 16 {
            ring[t & 15] =
                (ring[(t - 3) & 15] ^ ring[(t - 8) & 15] ^ ring[(t - 14) & 15] ^ ring[t & 15])
                    .rotate_left(1);
        }
        round(&mut s, t, ring[t & 15]);
    }
    for (x, iv) in s.iter_mut().zip(IV) {
        *x = x.wrapping_add(iv);
    }
    s
}

/// The bits of the first digest word that must be zero for difficulty `d`.
/// For `d` > 32 all of them (the rest is checked in full on a hit).
pub fn first_word_mask(d: u8) -> u32 {
    match d {
        0 => 0,
        1..=31 => !(u32::MAX >> d),
        _ => u32::MAX,
    }
}

/// What an engine needs to scan one segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    /// Message words, W12 and W13 zero.
    pub w: [u32; 16],
    /// State after [`MID_ROUNDS`] rounds.
    pub mid: [u32; 5],
    /// [`first_word_mask`] of the difficulty.
    pub mask: u32,
}

impl Prepared {
    pub fn new(t: &Template, seed: u64, difficulty: u8) -> Prepared {
        let w = segment_words(t, seed);
        Prepared {
            mid: midstate(&w),
            w,
            mask: first_word_mask(difficulty),
        }
    }

    /// The full message words of the candidate at offset `low`.
    pub fn candidate(&self, low: u32) -> [u32; 16] {
        let mut w = self.w;
        w[12] = w12(low);
        w[13] = w13(low);
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pow::{seed_hex, PREIMAGE_LEN, SEED_AT};
    use proptest::prelude::*;

    #[test]
    fn hex4_matches_formatting() {
        for x in [0u32, 9, 10, 15, 0xabcd, 0x9a0f, 0xffff, 0x1_2345] {
            let want = format!("{:04x}", x & 0xffff);
            assert_eq!(hex4(x).to_be_bytes(), want.as_bytes(), "{x:#x}");
        }
    }

    #[test]
    fn masks() {
        assert_eq!(first_word_mask(0), 0);
        assert_eq!(first_word_mask(1), 0x8000_0000);
        assert_eq!(first_word_mask(31), 0xffff_fffe);
        assert_eq!(first_word_mask(32), u32::MAX);
        assert_eq!(first_word_mask(160), u32::MAX);
    }

    proptest! {
        #[test]
        fn words_are_the_block(salt in any::<[u8; 12]>(), solver in any::<[u8; 8]>(), seed in any::<u64>()) {
            let t = Template::new(&salt, &solver);
            let p = Prepared::new(&t, seed, 1);
            let w = p.candidate((seed & (SEGMENT - 1)) as u32);
            let mut block = *t.block();
            block[SEED_AT..PREIMAGE_LEN].copy_from_slice(seed_hex(seed).as_bytes());
            let bytes: Vec<u8> = w.iter().flat_map(|x| x.to_be_bytes()).collect();
            prop_assert_eq!(&bytes[..], &block[..]);
            let digest: Vec<u8> = compress(&w).iter().flat_map(|x| x.to_be_bytes()).collect();
            prop_assert_eq!(&digest[..], &t.digest(seed)[..]);
        }
    }
}
