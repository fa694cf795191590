//! x86-64 AVX-512: sixteen candidates per step in a 512-bit vector.
//!
//! Same shared lane loop as SSE2 and AVX2 ([`super::lanes`]), with what
//! AVX-512F adds for SHA-1: a rotate instruction (`vprold`, one instead of
//! two shifts and an OR) and three-input logic (`vpternlogd`), which makes
//! each round function and the schedule's three XORs one instruction. The
//! vector type is private to this module and only used inside [`scan`],
//! which runs only after AVX-512F was detected.

use std::arch::x86_64::*;
use std::sync::atomic::AtomicBool;

use super::engine::{drive, Engine, Search};
use super::lanes::{self, Lanes};
use super::words::Prepared;
use super::Template;

pub const NAME: &str = "x86-avx512";

/// 8192 candidates: about 0.1 ms on any AVX-512 core.
const CHUNK: u32 = 8192;

#[derive(Clone, Copy)]
struct V(__m512i);

/// A lane operation as AVX-512F intrinsics.
macro_rules! avx512 {
    ($e:expr) => {
        // SAFETY: `V` is private to this module and only built inside
        // `scan`, which is reached only through `get()` after AVX-512F was
        // detected; these methods are inlined into it.
        unsafe { $e }
    };
}

/// `vpternlogd` truth tables for (a, b, c).
const CH: i32 = 0xca; // a ? b : c
const MAJ: i32 = 0xe8;
const XOR3: i32 = 0x96;

impl Lanes for V {
    const N: u32 = 16;
    #[inline(always)]
    fn splat(x: u32) -> V {
        V(avx512!(_mm512_set1_epi32(x as i32)))
    }
    #[inline(always)]
    fn ids() -> V {
        V(avx512!(_mm512_set_epi32(
            15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0
        )))
    }
    #[inline(always)]
    fn add(self, o: V) -> V {
        V(avx512!(_mm512_add_epi32(self.0, o.0)))
    }
    #[inline(always)]
    fn xor(self, o: V) -> V {
        V(avx512!(_mm512_xor_si512(self.0, o.0)))
    }
    #[inline(always)]
    fn and(self, o: V) -> V {
        V(avx512!(_mm512_and_si512(self.0, o.0)))
    }
    #[inline(always)]
    fn or(self, o: V) -> V {
        V(avx512!(_mm512_or_si512(self.0, o.0)))
    }
    #[inline(always)]
    fn shl<const S: i32>(self) -> V {
        V(avx512!(_mm512_sll_epi32(self.0, _mm_cvtsi32_si128(S))))
    }
    #[inline(always)]
    fn shr<const S: i32>(self) -> V {
        V(avx512!(_mm512_srl_epi32(self.0, _mm_cvtsi32_si128(S))))
    }
    #[inline(always)]
    fn zero_mask(self) -> u32 {
        u32::from(avx512!(_mm512_testn_epi32_mask(self.0, self.0)))
    }
    #[inline(always)]
    fn rol1(self) -> V {
        V(avx512!(_mm512_rol_epi32::<1>(self.0)))
    }
    #[inline(always)]
    fn rol5(self) -> V {
        V(avx512!(_mm512_rol_epi32::<5>(self.0)))
    }
    #[inline(always)]
    fn rol30(self) -> V {
        V(avx512!(_mm512_rol_epi32::<30>(self.0)))
    }
    #[inline(always)]
    fn ch(b: V, c: V, d: V) -> V {
        V(avx512!(_mm512_ternarylogic_epi32::<CH>(b.0, c.0, d.0)))
    }
    #[inline(always)]
    fn maj(b: V, c: V, d: V) -> V {
        V(avx512!(_mm512_ternarylogic_epi32::<MAJ>(b.0, c.0, d.0)))
    }
    #[inline(always)]
    fn parity(b: V, c: V, d: V) -> V {
        V(avx512!(_mm512_ternarylogic_epi32::<XOR3>(b.0, c.0, d.0)))
    }
    #[inline(always)]
    fn xor4(a: V, b: V, c: V, d: V) -> V {
        Self::parity(a, b, c).xor(d)
    }
}

#[target_feature(enable = "avx512f")]
fn scan(p: &Prepared, lo: u32, hi: u32) -> Option<u32> {
    lanes::scan::<V>(p, lo, hi)
}

struct Avx512;

static ENGINE: Avx512 = Avx512;

/// The engine, when this CPU has AVX-512F. This is the only way to reach it.
pub fn get() -> Option<&'static dyn Engine> {
    is_x86_feature_detected!("avx512f").then_some(&ENGINE as &'static dyn Engine)
}

impl Engine for Avx512 {
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
            // SAFETY: an `Avx512` is only reachable through `get()`, which
            // checked that the CPU has AVX-512F.
            unsafe { scan(p, lo, hi) }
        })
    }
}
