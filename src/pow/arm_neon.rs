//! aarch64 NEON: four candidates per step in the lanes of a 128-bit vector.
//!
//! This is the fast path of the boards without SHA-1 instructions: the
//! Cortex-A72 of a Raspberry Pi 4 and the Cortex-A53 of a Pi 3 or a Pi Zero
//! 2 W (their SoCs leave out the Armv8 cryptographic extension). NEON is part of aarch64 itself, so
//! the engine is always there. The rounds are the shared lane loop
//! ([`super::lanes`]); this file maps its operations onto NEON and overrides
//! the ones NEON does in fewer instructions than the generic form:
//!
//! - a rotation is two instructions, a shift left and a shift right
//!   inserted into it (`shl` + `sri`; the compiler may pick the equivalent
//!   shift right and accumulate, `usra`), instead of two shifts and an OR;
//! - the choice function of rounds 0..19 is one bitwise select (`bsl`), and
//!   the majority of rounds 40..59 an exclusive OR and a select;
//! - the zero test is a compare with zero, an AND with the lane bits and an
//!   add across the vector.
//!
//! Per block, for four candidates at once: 68 rounds from the segment's
//! midstate, each two rotations, the round function (one to three
//! operations) and four additions, plus 64 schedule steps of three XORs and
//! a rotation (fewer where the words do not depend on the seed: the compiler
//! hoists those out of the loop).

use std::arch::aarch64::*;
use std::sync::atomic::AtomicBool;

use super::engine::{drive, Engine, Search};
use super::lanes::{self, Lanes};
use super::Template;

pub const NAME: &str = "arm-neon";

/// 1024 candidates: about half a millisecond on the slowest aarch64 board,
/// a Pi Zero 2 W (Cortex-A53 at 1 GHz, whose NEON does half a 128-bit
/// operation per cycle).
const CHUNK: u32 = 1024;

#[derive(Clone, Copy)]
struct V(uint32x4_t);

/// A lane operation as NEON intrinsics.
macro_rules! neon {
    ($e:expr) => {
        // SAFETY: NEON (Advanced SIMD) is part of aarch64 itself: every
        // aarch64 target Rust supports has it on, and this module is only
        // built for aarch64, so every CPU that runs this code has it.
        unsafe { $e }
    };
}

/// `x` rotated left by `L` bits (`R` = 32 - `L`): a shift left, then the
/// top bits shifted right and inserted below it.
#[inline(always)]
fn rol<const L: i32, const R: i32>(x: uint32x4_t) -> uint32x4_t {
    neon!(vsriq_n_u32::<R>(vshlq_n_u32::<L>(x), x))
}

impl Lanes for V {
    const N: u32 = 4;
    #[inline(always)]
    fn splat(x: u32) -> V {
        V(neon!(vdupq_n_u32(x)))
    }
    #[inline(always)]
    fn ids() -> V {
        // Lane 0 is the low half of the low 64 bits.
        V(neon!(vcombine_u32(
            vcreate_u32(1 << 32),
            vcreate_u32(3 << 32 | 2)
        )))
    }
    #[inline(always)]
    fn add(self, o: V) -> V {
        V(neon!(vaddq_u32(self.0, o.0)))
    }
    #[inline(always)]
    fn xor(self, o: V) -> V {
        V(neon!(veorq_u32(self.0, o.0)))
    }
    #[inline(always)]
    fn and(self, o: V) -> V {
        V(neon!(vandq_u32(self.0, o.0)))
    }
    #[inline(always)]
    fn or(self, o: V) -> V {
        V(neon!(vorrq_u32(self.0, o.0)))
    }
    #[inline(always)]
    fn shl<const S: i32>(self) -> V {
        V(neon!(vshlq_n_u32::<S>(self.0)))
    }
    #[inline(always)]
    fn shr<const S: i32>(self) -> V {
        V(neon!(vshrq_n_u32::<S>(self.0)))
    }
    #[inline(always)]
    fn zero_mask(self) -> u32 {
        // All ones in each zero lane; keep bit i of lane i and add across.
        neon!({
            let bits = vcombine_u32(vcreate_u32(2 << 32 | 1), vcreate_u32(8 << 32 | 4));
            vaddvq_u32(vandq_u32(vceqzq_u32(self.0), bits))
        })
    }
    #[inline(always)]
    fn rol1(self) -> V {
        V(rol::<1, 31>(self.0))
    }
    #[inline(always)]
    fn rol5(self) -> V {
        V(rol::<5, 27>(self.0))
    }
    #[inline(always)]
    fn rol30(self) -> V {
        V(rol::<30, 2>(self.0))
    }
    /// `b ? c : d` bit by bit: one select.
    #[inline(always)]
    fn ch(b: V, c: V, d: V) -> V {
        V(neon!(vbslq_u32(b.0, c.0, d.0)))
    }
    /// Where `b` and `c` differ the majority is `d`, elsewhere it is `c`.
    #[inline(always)]
    fn maj(b: V, c: V, d: V) -> V {
        V(neon!(vbslq_u32(veorq_u32(b.0, c.0), d.0, c.0)))
    }
}

/// The scan, compiled as one function with NEON (already on for every
/// aarch64 target; stated so the whole loop is sure to get it).
#[target_feature(enable = "neon")]
fn scan(p: &super::words::Prepared, lo: u32, hi: u32) -> Option<u32> {
    lanes::scan::<V>(p, lo, hi)
}

struct Neon;

static ENGINE: Neon = Neon;

/// The engine; NEON is in every aarch64 CPU, so it is always there.
pub fn get() -> Option<&'static dyn Engine> {
    Some(&ENGINE)
}

impl Engine for Neon {
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
            // SAFETY: `scan` needs only NEON, which every aarch64 CPU has.
            unsafe { scan(p, lo, hi) }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lanes(v: V) -> [u32; 4] {
        neon!([
            vgetq_lane_u32::<0>(v.0),
            vgetq_lane_u32::<1>(v.0),
            vgetq_lane_u32::<2>(v.0),
            vgetq_lane_u32::<3>(v.0),
        ])
    }

    fn of(x: [u32; 4]) -> V {
        let lo = u64::from(x[0]) | u64::from(x[1]) << 32;
        let hi = u64::from(x[2]) | u64::from(x[3]) << 32;
        V(neon!(vcombine_u32(vcreate_u32(lo), vcreate_u32(hi))))
    }

    #[test]
    fn lane_operations_match_the_scalar_ones() {
        let (b, c, d) = (
            [0x0123_4567, 0xffff_0000, 0, 0x8000_0001],
            [0x89ab_cdef, 0x00ff_00ff, u32::MAX, 0x7fff_fffe],
            [0xdead_beef, 0x0f0f_0f0f, 0x1234_5678, 0x8000_0001],
        );
        assert_eq!(lanes(V::ids()), [0, 1, 2, 3]);
        for i in 0..4 {
            let one = |v: V| lanes(v)[i];
            assert_eq!(one(of(b).rol1()), b[i].rotate_left(1));
            assert_eq!(one(of(b).rol5()), b[i].rotate_left(5));
            assert_eq!(one(of(b).rol30()), b[i].rotate_left(30));
            assert_eq!(one(V::ch(of(b), of(c), of(d))), u32::ch(b[i], c[i], d[i]));
            assert_eq!(one(V::maj(of(b), of(c), of(d))), u32::maj(b[i], c[i], d[i]));
        }
        assert_eq!(of([0, 1, 0, 0]).zero_mask(), 0b1101);
        assert_eq!(of([5, 0, 7, 0]).zero_mask(), 0b1010);
        assert_eq!(of([0; 4]).zero_mask(), 0b1111);
        assert_eq!(of(d).zero_mask(), 0);
    }
}
