//! The engines that run on any CPU, in safe Rust.
//!
//! - `portable`: the shared lane loop ([`super::lanes`]) with one scalar
//!   lane. Per candidate it runs rounds 12..79 from the segment's midstate,
//!   with W12 and W13 (the only words that change inside a segment) made
//!   from the seed's bits without formatting, and stops at the first digest
//!   word. It is the fallback where no SIMD or SHA path exists (32-bit ARM)
//!   and the reference the other engines are compared with.
//! - `sha1-crate`: the `sha1` crate's block function on the padded block,
//!   with only the seed's hex digits rewritten per candidate. Deliberately
//!   independent of the layout code in `words` and of [`super::engine::drive`],
//!   so the tests compare two separate implementations. The crate picks its
//!   own backend at run time (SHA-NI or ARMv8 SHA when present), but cannot
//!   inline it into this loop.

use std::sync::atomic::{AtomicBool, Ordering};

// sha1 0.10 takes blocks as generic-array 0.14 arrays, which that crate now
// marks deprecated; the type is only named here, at the call boundary.
#[allow(deprecated)]
use sha1::digest::generic_array::GenericArray;

use super::engine::{drive, state_meets, Engine, Search};
use super::words::IV;
use super::{lanes, write_hex64, Template, PREIMAGE_LEN, SEED_AT};

pub const NAME: &str = "portable";
pub const CRATE_NAME: &str = "sha1-crate";

/// One candidate per step in safe Rust: about 1–2 M/s on a Pi Zero, so
/// 1024 candidates are about a millisecond there.
const CHUNK: u32 = 1024;

pub struct Portable;

impl Engine for Portable {
    fn name(&self) -> &'static str {
        NAME
    }

    fn chunk(&self) -> u32 {
        CHUNK
    }

    fn search(
        &self,
        t: &Template,
        start: u64,
        end: u64,
        difficulty: u8,
        stop: &AtomicBool,
    ) -> Search {
        drive(t, start, end, difficulty, stop, CHUNK, lanes::scan::<u32>)
    }
}

/// The `sha1` crate's block function; see the module doc.
pub struct Sha1Crate;

impl Engine for Sha1Crate {
    fn name(&self) -> &'static str {
        CRATE_NAME
    }

    fn chunk(&self) -> u32 {
        CHUNK
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
            let batch_end = end.min(seed.saturating_add(u64::from(CHUNK)));
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
static SHA1_CRATE: Sha1Crate = Sha1Crate;

pub fn get() -> &'static dyn Engine {
    &PORTABLE
}

pub fn get_crate() -> &'static dyn Engine {
    &SHA1_CRATE
}
