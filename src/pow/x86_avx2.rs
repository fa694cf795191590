//! x86-64 AVX2: eight candidates per step in the lanes of a 256-bit vector.
//!
//! The rounds are the shared lane loop ([`super::lanes`]); this file maps its
//! operations onto AVX2 instructions and compiles the whole scan with
//! `avx2`. The vector type is private to this module and only used inside
//! [`scan`], which runs only after AVX2 was detected.

use std::arch::x86_64::*;
use std::sync::atomic::AtomicBool;

use super::engine::{drive, Engine, Search};
use super::lanes::{self, Lanes};
use super::words::Prepared;
use super::Template;

pub const NAME: &str = "x86-avx2";

/// 4096 candidates: about 0.1 ms on any AVX2 core.
const CHUNK: u32 = 4096;

#[derive(Clone, Copy)]
struct V(__m256i);

/// A lane operation as one AVX2 intrinsic.
macro_rules! avx2 {
    ($e:expr) => {
        // SAFETY: `V` is private to this module and only built inside
        // `scan`, which is reached only through `get()` after AVX2 was
        // detected; these methods are inlined into it.
        unsafe { $e }
    };
}

impl Lanes for V {
    const N: u32 = 8;
    #[inline(always)]
    fn splat(x: u32) -> V {
        V(avx2!(_mm256_set1_epi32(x as i32)))
    }
    #[inline(always)]
    fn ids() -> V {
        V(avx2!(_mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0)))
    }
    #[inline(always)]
    fn add(self, o: V) -> V {
        V(avx2!(_mm256_add_epi32(self.0, o.0)))
    }
    #[inline(always)]
    fn xor(self, o: V) -> V {
        V(avx2!(_mm256_xor_si256(self.0, o.0)))
    }
    #[inline(always)]
    fn and(self, o: V) -> V {
        V(avx2!(_mm256_and_si256(self.0, o.0)))
    }
    #[inline(always)]
    fn or(self, o: V) -> V {
        V(avx2!(_mm256_or_si256(self.0, o.0)))
    }
    #[inline(always)]
    fn shl<const S: i32>(self) -> V {
        V(avx2!(_mm256_slli_epi32::<S>(self.0)))
    }
    #[inline(always)]
    fn shr<const S: i32>(self) -> V {
        V(avx2!(_mm256_srli_epi32::<S>(self.0)))
    }
    #[inline(always)]
    fn zero_mask(self) -> u32 {
        avx2!({
            let eq = _mm256_cmpeq_epi32(self.0, _mm256_setzero_si256());
            _mm256_movemask_ps(_mm256_castsi256_ps(eq)) as u32
        })
    }
}

#[target_feature(enable = "avx2")]
fn scan(p: &Prepared, lo: u32, hi: u32) -> Option<u32> {
    lanes::scan::<V>(p, lo, hi)
}

struct Avx2;

static ENGINE: Avx2 = Avx2;

/// The engine, when this CPU has AVX2. This is the only way to reach it.
pub fn get() -> Option<&'static dyn Engine> {
    is_x86_feature_detected!("avx2").then_some(&ENGINE as &'static dyn Engine)
}

impl Engine for Avx2 {
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
            // SAFETY: an `Avx2` is only reachable through `get()`, which
            // checked that the CPU has AVX2.
            unsafe { scan(p, lo, hi) }
        })
    }
}
