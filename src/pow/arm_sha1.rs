//! aarch64 SHA-1 instructions (`sha1c`, `sha1p`, `sha1m`, `sha1h`,
//! `sha1su0`, `sha1su1`), several candidates interleaved.
//!
//! This is the fast path of the boards whose cores have the Armv8
//! cryptographic extension: the Cortex-A76 of a Raspberry Pi 5, and most
//! aarch64 cores after it. (The Pi 3 and Pi 4 SoCs leave the extension out;
//! they run `arm-neon`.)
//!
//! One `sha1c`/`sha1p`/`sha1m` does four rounds, but each depends on the one
//! before, so a single stream waits on the instruction's latency most of the
//! time. Here [`WAYS`] independent candidates (consecutive seeds) go through
//! the rounds side by side and fill the gaps. Per candidate: 17 of the 20
//! four-round groups (the first three only read W0..W11 and are the
//! segment's midstate), 16 schedule steps of `sha1su0` + `sha1su1` (the
//! first `sha1su0` only reads W0..W11 and is done once per segment), 17
//! additions of the round constant, 16 `sha1h` for the next group's E, and
//! one extracted word for the difficulty filter.
//!
//! The whole scan is one function compiled with `sha2` (the name Rust gives
//! the Armv8 SHA-1 and SHA-256 instructions together).

use std::arch::aarch64::*;
use std::sync::atomic::AtomicBool;

use super::engine::{drive, Engine, Search};
use super::words::{w12, w13, Prepared, IV, K, W15};
use super::Template;

pub const NAME: &str = "arm-sha1";

/// Candidates interleaved per step. A four-round instruction has a latency
/// of 4 cycles on a Cortex-A76 and one can start every cycle, so four
/// streams cover its latency; four ways' message rings (16 vectors) and
/// states still fit the 32 vector registers.
const WAYS: usize = 4;

/// 4096 candidates: under 1 ms on any core with the SHA-1 instructions.
const CHUNK: u32 = 4096;

struct ArmSha1;

static ENGINE: ArmSha1 = ArmSha1;

/// The engine, when this CPU has the SHA-1 instructions. This is the only
/// way to reach it, so its `search` may assume them.
pub fn get() -> Option<&'static dyn Engine> {
    std::arch::is_aarch64_feature_detected!("sha2").then_some(&ENGINE as &'static dyn Engine)
}

impl Engine for ArmSha1 {
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
            // SAFETY: an `ArmSha1` is only reachable through `get()`, which
            // checked that the CPU has the features `scan` is compiled for.
            unsafe { scan(p, lo, hi) }
        })
    }
}

/// Four words as a vector, `a` in lane 0 (the instructions' order: A and
/// W(4g) in lane 0).
#[inline]
#[target_feature(enable = "neon")]
fn quad(a: u32, b: u32, c: u32, d: u32) -> uint32x4_t {
    let lo = u64::from(a) | u64::from(b) << 32;
    let hi = u64::from(c) | u64::from(d) << 32;
    vcombine_u32(vcreate_u32(lo), vcreate_u32(hi))
}

/// Message words W(4g)..W(4g+3).
#[inline]
#[target_feature(enable = "neon")]
fn msg(w: &[u32; 16], g: usize) -> uint32x4_t {
    quad(w[4 * g], w[4 * g + 1], w[4 * g + 2], w[4 * g + 3])
}

/// One four-round group `$g` (a literal, 3..=19) for every way: the next
/// message words when `$g >= 4`, then W + K, the E of the next group
/// (`sha1h`: A rotated by 30) and the four rounds.
macro_rules! group {
    ($m:ident, $abcd:ident, $e:ident, $k:ident, $su0_4:ident, $g:literal) => {
        for j in 0..WAYS {
            if $g >= 4 {
                let x = if $g == 4 {
                    $su0_4
                } else {
                    vsha1su0q_u32($m[$g & 3][j], $m[($g + 1) & 3][j], $m[($g + 2) & 3][j])
                };
                $m[$g & 3][j] = vsha1su1q_u32(x, $m[($g + 3) & 3][j]);
            }
            let wk = vaddq_u32($m[$g & 3][j], $k[$g / 5]);
            let e_next = vsha1h_u32(vgetq_lane_u32::<0>($abcd[j]));
            $abcd[j] = match $g / 5 {
                0 => vsha1cq_u32($abcd[j], $e[j], wk),
                2 => vsha1mq_u32($abcd[j], $e[j], wk),
                _ => vsha1pq_u32($abcd[j], $e[j], wk),
            };
            $e[j] = e_next;
        }
    };
}

macro_rules! groups {
    ($m:ident, $abcd:ident, $e:ident, $k:ident, $su0_4:ident; $($g:literal)*) => {
        $( group!($m, $abcd, $e, $k, $su0_4, $g); )*
    };
}

/// First offset in `lo..hi` whose first digest word passes the mask.
#[target_feature(enable = "sha2")]
fn scan(p: &Prepared, lo: u32, hi: u32) -> Option<u32> {
    let [a, b, c, d, e12] = p.mid;
    let abcd12 = quad(a, b, c, d);
    let k = K.map(|k| vdupq_n_u32(k));
    let m0 = msg(&p.w, 0);
    let m1 = msg(&p.w, 1);
    let m2 = msg(&p.w, 2);
    // The first half of W16..W19 reads only W0..W11.
    let su0_4 = vsha1su0q_u32(m0, m1, m2);
    let mut i = lo;
    while i < hi {
        let mut m = [[m0; WAYS], [m1; WAYS], [m2; WAYS], [m0; WAYS]];
        for (j, m3) in m[3].iter_mut().enumerate() {
            let low = i + j as u32;
            *m3 = quad(w12(low), w13(low), 0, W15);
        }
        let mut abcd = [abcd12; WAYS];
        let mut e = [e12; WAYS];
        groups!(m, abcd, e, k, su0_4; 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19);
        let left = (hi - i) as usize;
        for (j, v) in abcd.iter().enumerate().take(left) {
            let a = vgetq_lane_u32::<0>(*v).wrapping_add(IV[0]);
            if a & p.mask == 0 {
                return Some(i + j as u32);
            }
        }
        i += WAYS as u32;
    }
    None
}
