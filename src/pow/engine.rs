//! Mining engines: the search loop over seeds, behind one trait.
//!
//! Every engine must return the same first solution and the same candidate
//! count as the portable one for the same inputs, so faster engines (SHA
//! extensions, SIMD lanes) can slot in and be cross-checked against it.

use std::sync::atomic::{AtomicBool, Ordering};

// sha1 0.10 takes blocks as generic-array 0.14 arrays, which that crate now
// marks deprecated; the type is only named here, at the call boundary.
#[allow(deprecated)]
use sha1::digest::generic_array::GenericArray;

use super::{write_hex64, Template, PREIMAGE_LEN, SEED_AT};

/// How often the stop flag is read.
pub const CHECK_EVERY: u64 = 4096;

/// The outcome of one search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Search {
    pub found: Option<u64>,
    pub tried: u64,
}

pub trait Engine: Send + Sync {
    fn name(&self) -> &'static str;
    /// Tries seeds `start..end` in order and returns the first one that
    /// meets `difficulty`, or none when the range is exhausted or `stop` was
    /// seen set (checked at least every [`CHECK_EVERY`] candidates).
    fn search(
        &self,
        t: &Template,
        start: u64,
        end: u64,
        difficulty: u8,
        stop: &AtomicBool,
    ) -> Search;
}

const IV: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];

/// Whether the state words (big-endian digest) have `d` leading zero bits.
#[inline(always)]
fn state_meets(s: &[u32; 5], d: u32) -> bool {
    let mut left = d;
    for &w in s {
        if left == 0 {
            return true;
        }
        if left < 32 {
            return w.leading_zeros() >= left;
        }
        if w != 0 {
            return false;
        }
        left -= 32;
    }
    left == 0
}

/// The `sha1` crate's block function on a precomputed block; only the seed
/// characters change per candidate.
pub struct Portable;

impl Engine for Portable {
    fn name(&self) -> &'static str {
        "portable"
    }

    #[allow(deprecated)]
    fn search(
        &self,
        t: &Template,
        start: u64,
        end: u64,
        difficulty: u8,
        stop: &AtomicBool,
    ) -> Search {
        let mut block = *t.block();
        let d = u32::from(difficulty);
        let mut seed = start;
        let mut tried = 0u64;
        while seed < end {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let batch_end = end.min(seed.saturating_add(CHECK_EVERY));
            while seed < batch_end {
                write_hex64(seed, &mut block[SEED_AT..PREIMAGE_LEN]);
                let mut st = IV;
                sha1::compress(
                    &mut st,
                    std::slice::from_ref(GenericArray::from_slice(&block)),
                );
                tried += 1;
                if state_meets(&st, d) {
                    return Search {
                        found: Some(seed),
                        tried,
                    };
                }
                seed += 1;
            }
        }
        Search { found: None, tried }
    }
}

static PORTABLE: Portable = Portable;

pub fn all() -> Vec<&'static dyn Engine> {
    vec![&PORTABLE]
}

/// The fastest engine this CPU can run.
pub fn best() -> &'static dyn Engine {
    &PORTABLE
}

pub fn by_name(name: &str) -> Option<&'static dyn Engine> {
    all().into_iter().find(|e| e.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pow::verify;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn first_solution_matches_a_naive_loop(salt in any::<[u8; 12]>(), solver in any::<[u8; 8]>(), start in 0u64..1 << 40, d in 1u8..10) {
            let t = Template::new(&salt, &solver);
            let stop = AtomicBool::new(false);
            let got = Portable.search(&t, start, start + 5000, d, &stop);
            let want = (start..start + 5000).find(|&s| verify(&salt, &solver, s, d));
            prop_assert_eq!(got.found, want);
            prop_assert_eq!(got.tried, want.map_or(5000, |s| s - start + 1));
        }
    }

    #[test]
    fn stop_flag_is_honoured() {
        let t = Template::new(&[1; 12], &[2; 8]);
        let stop = AtomicBool::new(true);
        assert_eq!(
            Portable.search(&t, 0, u64::MAX, 160, &stop),
            Search {
                found: None,
                tried: 0
            }
        );
    }

    #[test]
    fn state_check_matches_digest_check() {
        let mut s = [0u32; 5];
        assert!(state_meets(&s, 160));
        s[1] = 1;
        assert!(state_meets(&s, 63) && !state_meets(&s, 64));
        s[0] = 0x0000_ffff;
        assert!(state_meets(&s, 16) && !state_meets(&s, 17));
    }
}
