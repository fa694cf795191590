//! x86-64 SSE2: four candidates per step in the lanes of a 128-bit vector.
//!
//! SSE2 is part of x86-64 itself, so this engine runs on every x86-64 CPU;
//! it matters on the ones without AVX2 or SHA extensions. The rounds are the
//! shared lane loop ([`super::lanes`]); this file only maps its operations
//! onto SSE2 instructions. Rotations are two shifts and an OR (no rotate
//! instruction before AVX-512).

use std::arch::x86_64::*;
use std::sync::atomic::AtomicBool;

use super::engine::{drive, Engine, Search};
use super::lanes::{self, Lanes};
use super::Template;

pub const NAME: &str = "x86-sse2";

/// 4096 candidates: about 0.2 ms even on an old x86-64 core.
const CHUNK: u32 = 4096;

#[derive(Clone, Copy)]
struct V(__m128i);

/// A lane operation as SSE2 intrinsics.
macro_rules! sse2 {
    ($e:expr) => {
        // SAFETY: SSE2 is part of x86-64 itself (this module is only built
        // for x86_64), so every CPU that runs this code has it.
        unsafe { $e }
    };
}

impl Lanes for V {
    const N: u32 = 4;
    #[inline(always)]
    fn splat(x: u32) -> V {
        V(sse2!(_mm_set1_epi32(x as i32)))
    }
    #[inline(always)]
    fn ids() -> V {
        V(sse2!(_mm_set_epi32(3, 2, 1, 0)))
    }
    #[inline(always)]
    fn add(self, o: V) -> V {
        V(sse2!(_mm_add_epi32(self.0, o.0)))
    }
    #[inline(always)]
    fn xor(self, o: V) -> V {
        V(sse2!(_mm_xor_si128(self.0, o.0)))
    }
    #[inline(always)]
    fn and(self, o: V) -> V {
        V(sse2!(_mm_and_si128(self.0, o.0)))
    }
    #[inline(always)]
    fn or(self, o: V) -> V {
        V(sse2!(_mm_or_si128(self.0, o.0)))
    }
    #[inline(always)]
    fn shl<const S: i32>(self) -> V {
        V(sse2!(_mm_slli_epi32::<S>(self.0)))
    }
    #[inline(always)]
    fn shr<const S: i32>(self) -> V {
        V(sse2!(_mm_srli_epi32::<S>(self.0)))
    }
    #[inline(always)]
    fn zero_mask(self) -> u32 {
        sse2!({
            let eq = _mm_cmpeq_epi32(self.0, _mm_setzero_si128());
            _mm_movemask_ps(_mm_castsi128_ps(eq)) as u32
        })
    }
}

struct Sse2;

static ENGINE: Sse2 = Sse2;

/// The engine; SSE2 is in every x86-64 CPU, so it is always there.
pub fn get() -> Option<&'static dyn Engine> {
    Some(&ENGINE)
}

impl Engine for Sse2 {
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
        drive(t, start, end, difficulty, stop, CHUNK, lanes::scan::<V>)
    }
}
