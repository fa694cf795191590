//! One SHA-1 search loop for every "N independent candidates side by side"
//! engine: the scalar portable engine (one lane of `u32`) and the SIMD ones
//! (SSE2 and NEON with 4 lanes, AVX2 with 8, AVX-512 with 16).
//!
//! Each engine only supplies the lane operations ([`Lanes`]); the rounds are
//! written once, fully unrolled, starting from the segment's midstate (round
//! 12) and stopping at the first digest word, which is all the difficulty
//! filter reads. Words that do not depend on the seed stay splatted, so the
//! compiler hoists what it can of the message schedule out of the loop.
//!
//! Everything here is `#[inline(always)]`: a SIMD engine calls [`scan`] from
//! a function compiled with its target features, and the whole loop is
//! compiled with them.

use super::words::{Prepared, IV, K, W15};

/// N lanes of 32-bit words and the few operations SHA-1 needs.
pub trait Lanes: Copy {
    /// Number of lanes (at most 32).
    const N: u32;
    fn splat(x: u32) -> Self;
    /// Lane i holds `i`.
    fn ids() -> Self;
    fn add(self, o: Self) -> Self;
    fn xor(self, o: Self) -> Self;
    fn and(self, o: Self) -> Self;
    fn or(self, o: Self) -> Self;
    fn shl<const S: i32>(self) -> Self;
    fn shr<const S: i32>(self) -> Self;
    /// Bit i set when lane i is zero.
    fn zero_mask(self) -> u32;

    #[inline(always)]
    fn rol1(self) -> Self {
        self.shl::<1>().or(self.shr::<31>())
    }
    #[inline(always)]
    fn rol5(self) -> Self {
        self.shl::<5>().or(self.shr::<27>())
    }
    #[inline(always)]
    fn rol30(self) -> Self {
        self.shl::<30>().or(self.shr::<2>())
    }
    /// Rounds 0..19: `(b & c) | (!b & d)`.
    #[inline(always)]
    fn ch(b: Self, c: Self, d: Self) -> Self {
        d.xor(b.and(c.xor(d)))
    }
    /// Rounds 40..59: majority.
    #[inline(always)]
    fn maj(b: Self, c: Self, d: Self) -> Self {
        b.and(c).or(d.and(b.or(c)))
    }
    /// Rounds 20..39 and 60..79.
    #[inline(always)]
    fn parity(b: Self, c: Self, d: Self) -> Self {
        b.xor(c).xor(d)
    }
    /// `a ^ b ^ c ^ d`, the message schedule's mix before the rotation.
    #[inline(always)]
    fn xor4(a: Self, b: Self, c: Self, d: Self) -> Self {
        a.xor(b).xor(c.xor(d))
    }
}

/// The scalar "lanes": one candidate at a time, in safe Rust.
impl Lanes for u32 {
    const N: u32 = 1;
    #[inline(always)]
    fn splat(x: u32) -> u32 {
        x
    }
    #[inline(always)]
    fn ids() -> u32 {
        0
    }
    #[inline(always)]
    fn add(self, o: u32) -> u32 {
        self.wrapping_add(o)
    }
    #[inline(always)]
    fn xor(self, o: u32) -> u32 {
        self ^ o
    }
    #[inline(always)]
    fn and(self, o: u32) -> u32 {
        self & o
    }
    #[inline(always)]
    fn or(self, o: u32) -> u32 {
        self | o
    }
    #[inline(always)]
    fn shl<const S: i32>(self) -> u32 {
        self << S
    }
    #[inline(always)]
    fn shr<const S: i32>(self) -> u32 {
        self >> S
    }
    #[inline(always)]
    fn zero_mask(self) -> u32 {
        u32::from(self == 0)
    }
    #[inline(always)]
    fn rol1(self) -> u32 {
        self.rotate_left(1)
    }
    #[inline(always)]
    fn rol5(self) -> u32 {
        self.rotate_left(5)
    }
    #[inline(always)]
    fn rol30(self) -> u32 {
        self.rotate_left(30)
    }
}

/// [`super::words::hex4`] lane-wise.
#[inline(always)]
fn hex4<V: Lanes>(x: V) -> V {
    let n = x
        .and(V::splat(0xf000))
        .shl::<12>()
        .or(x.and(V::splat(0x0f00)).shl::<8>())
        .or(x.and(V::splat(0x00f0)).shl::<4>())
        .or(x.and(V::splat(0x000f)));
    let letters = n
        .add(V::splat(0x0606_0606))
        .shr::<4>()
        .and(V::splat(0x0101_0101));
    let adjust = letters
        .shl::<5>()
        .or(letters.shl::<2>())
        .or(letters.shl::<1>())
        .or(letters);
    n.add(V::splat(0x3030_3030)).add(adjust)
}

/// One round; `$t` is a literal, so the round function and the schedule
/// indices are resolved at compile time.
macro_rules! round {
    ($V:ty, $s:ident, $w:ident, $k:ident, $t:literal) => {{
        if $t >= 16 {
            $w[$t & 15] = <$V>::xor4(
                $w[($t + 13) & 15],
                $w[($t + 8) & 15],
                $w[($t + 2) & 15],
                $w[$t & 15],
            )
            .rol1();
        }
        let [a, b, c, d, e] = $s;
        let f = match $t / 20 {
            0 => <$V>::ch(b, c, d),
            2 => <$V>::maj(b, c, d),
            _ => <$V>::parity(b, c, d),
        };
        let tmp = a.rol5().add(f).add(e).add($w[$t & 15].add($k[$t / 20]));
        $s = [tmp, a, b.rol30(), c, d];
    }};
}

macro_rules! rounds {
    ($V:ty, $s:ident, $w:ident, $k:ident; $($t:literal)*) => { $( round!($V, $s, $w, $k, $t); )* };
}

/// The first digest word (before the final addition of the IV) of each
/// lane's candidate, from the midstate and message words `w` (W12 and W13
/// per lane, the rest splatted).
#[inline(always)]
pub fn first_word<V: Lanes>(mid: [V; 5], mut w: [V; 16], k: [V; 4]) -> V {
    let mut s = mid;
    rounds!(V, s, w, k;
        12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35
        36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59
        60 61 62 63 64 65 66 67 68 69 70 71 72 73 74 75 76 77 78 79);
    s[0]
}

/// The first offset in `lo..hi` (inside one segment) whose first digest
/// word passes the difficulty mask, N candidates at a time.
#[inline(always)]
pub fn scan<V: Lanes>(p: &Prepared, lo: u32, hi: u32) -> Option<u32> {
    let mid = p.mid.map(V::splat);
    let mut w = p.w.map(V::splat);
    w[15] = V::splat(W15);
    let k = K.map(V::splat);
    let ids = V::ids();
    let mask = V::splat(p.mask);
    let iv0 = V::splat(IV[0]);
    let mut i = lo;
    while i < hi {
        let low = V::splat(i).add(ids);
        w[12] = hex4(low.shr::<4>());
        w[13] = hex4(low.and(V::splat(15)))
            .shl::<24>()
            .or(V::splat(0x0080_0000));
        let a = first_word(mid, w, k).add(iv0).and(mask);
        let mut hits = a.zero_mask();
        let left = hi - i;
        if left < V::N {
            hits &= (1u32 << left) - 1;
        }
        if hits != 0 {
            return Some(i + hits.trailing_zeros());
        }
        i += V::N;
    }
    None
}
