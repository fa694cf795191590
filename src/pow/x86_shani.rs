//! x86-64 SHA extensions (`sha1rnds4`, `sha1nexte`, `sha1msg1/2`), several
//! candidates interleaved.
//!
//! One `sha1rnds4` does four rounds, but each depends on the one before, so
//! a single stream waits on the instruction's latency most of the time (that
//! is what bounds OpenSSL's one-stream figure). Here [`WAYS`] independent
//! candidates (consecutive seeds) go through the rounds side by side and
//! fill the gaps. Per candidate: 17 of the 20 four-round groups (the first
//! three only read W0..W11 and are the segment's midstate), 16 schedule
//! steps, and one extracted word for the difficulty filter.
//!
//! The whole scan is one function compiled with `sha,sse2,ssse3,sse4.1`
//! and no AVX, so no 256-bit state is live next to the legacy-encoded SHA
//! instructions (mixing them without `vzeroupper` is very slow).

use std::arch::x86_64::*;
use std::sync::atomic::AtomicBool;

use super::engine::{drive, Engine, Search};
use super::words::{w12, w13, Prepared, IV, W15};
use super::Template;

pub const NAME: &str = "x86-sha-ni";

/// Candidates interleaved per step. Where `sha1rnds4` is bound by its
/// latency this fills the gaps; where it is bound by its throughput (the
/// development machine's Xeon: 25.5, 26.2 and 26.5 M/s with 1, 2 and 4
/// ways) the extra ways cost nothing.
const WAYS: usize = 4;

/// 8192 candidates: under 0.5 ms on any CPU with SHA-NI.
const CHUNK: u32 = 8192;

struct ShaNi;

static ENGINE: ShaNi = ShaNi;

fn detected() -> bool {
    is_x86_feature_detected!("sha")
        && is_x86_feature_detected!("sse2")
        && is_x86_feature_detected!("ssse3")
        && is_x86_feature_detected!("sse4.1")
}

/// The engine, when this CPU has the SHA extensions. This is the only way
/// to reach it, so its `search` may assume them.
pub fn get() -> Option<&'static dyn Engine> {
    detected().then_some(&ENGINE as &'static dyn Engine)
}

impl Engine for ShaNi {
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
        drive(t, start, end, difficulty, stop, CHUNK, |p, lo, hi| {
            // SAFETY: a `ShaNi` is only reachable through `get()`, which
            // checked that the CPU has every feature `scan` is compiled for.
            unsafe { scan(p, lo, hi) }
        })
    }
}

/// Four message words, W(4g) in the top lane as the SHA instructions want.
#[inline]
#[target_feature(enable = "sse2")]
fn msg(w: &[u32; 16], g: usize) -> __m128i {
    let w = |i: usize| w[4 * g + i] as i32;
    _mm_set_epi32(w(0), w(1), w(2), w(3))
}

/// One four-round group `$g` (a literal, 3..=19) for every way: the next
/// message words when `$g >= 4`, then `sha1nexte` and `sha1rnds4`.
macro_rules! group {
    ($m:ident, $abcd:ident, $prev:ident, $g:literal) => {
        for j in 0..WAYS {
            if $g >= 4 {
                let x = _mm_xor_si128(
                    _mm_sha1msg1_epu32($m[($g + 0) & 3][j], $m[($g + 1) & 3][j]),
                    $m[($g + 2) & 3][j],
                );
                $m[$g & 3][j] = _mm_sha1msg2_epu32(x, $m[($g + 3) & 3][j]);
            }
            let e = _mm_sha1nexte_epu32($prev[j], $m[$g & 3][j]);
            $prev[j] = $abcd[j];
            $abcd[j] = _mm_sha1rnds4_epu32::<{ $g / 5 }>($abcd[j], e);
        }
    };
}

macro_rules! groups {
    ($m:ident, $abcd:ident, $prev:ident; $($g:literal)*) => { $( group!($m, $abcd, $prev, $g); )* };
}

/// First offset in `lo..hi` whose first digest word passes the mask.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn scan(p: &Prepared, lo: u32, hi: u32) -> Option<u32> {
    let [a, b, c, d, e] = p.mid;
    // The state after round 12 in the instructions' layout, and the vector
    // `sha1nexte` takes E from: its top lane rotated by 30 is E, so a8.
    let abcd12 = _mm_set_epi32(a as i32, b as i32, c as i32, d as i32);
    let e_src = _mm_set_epi32(e.rotate_left(2) as i32, 0, 0, 0);
    let m0 = msg(&p.w, 0);
    let m1 = msg(&p.w, 1);
    let m2 = msg(&p.w, 2);
    let mut i = lo;
    while i < hi {
        let mut m = [[m0; WAYS], [m1; WAYS], [m2; WAYS], [m0; WAYS]];
        for (j, m3) in m[3].iter_mut().enumerate() {
            let low = i + j as u32;
            *m3 = _mm_set_epi32(w12(low) as i32, w13(low) as i32, 0, W15 as i32);
        }
        let mut abcd = [abcd12; WAYS];
        let mut prev = [e_src; WAYS];
        groups!(m, abcd, prev; 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19);
        let left = (hi - i) as usize;
        for (j, v) in abcd.iter().enumerate().take(left) {
            let a = (_mm_extract_epi32::<3>(*v) as u32).wrapping_add(IV[0]);
            if a & p.mask == 0 {
                return Some(i + j as u32);
            }
        }
        i += WAYS as u32;
    }
    None
}
