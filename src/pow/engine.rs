//! Mining engines: the search loop over seeds, behind one trait, and the
//! choice of the fastest one this CPU can run.
//!
//! Every engine walks seeds in order through [`drive`], which splits the
//! range into segments (see [`super::words`]) and chunks, checks the stop
//! flag between chunks and confirms every hit of an engine's first-word
//! filter with the full scalar check. An engine only supplies the scan of a
//! chunk, so every engine returns the same first solution and the same
//! candidate count as the portable one for the same inputs (cross-checked
//! in `pow::tests`).
//!
//! Engines that need CPU features are reachable only through their `get()`
//! functions, which detect the features at run time: one binary runs
//! everywhere and picks its fastest path once.

use std::sync::atomic::{AtomicBool, Ordering};

use super::words::{compress, Prepared, SEGMENT};
use super::Template;

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
    /// seen set (checked between chunks of [`Engine::chunk`] candidates).
    /// `tried` counts the seeds from `start` up to and including the one
    /// found, or all the seeds looked at.
    fn search(
        &self,
        t: &Template,
        start: u64,
        end: u64,
        difficulty: u8,
        stop: &AtomicBool,
    ) -> Search;
    /// Candidates between two looks at the stop flag: small enough that a
    /// chunk takes well under a millisecond on the slowest board that can
    /// run this engine.
    fn chunk(&self) -> u32;
}

/// Whether the state words (big-endian digest) have `d` leading zero bits.
#[inline(always)]
pub fn state_meets(s: &[u32; 5], d: u32) -> bool {
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

/// The shared search loop. `scan(p, lo, hi)` returns the first offset in
/// `lo..hi` of the segment described by `p` whose first digest word passes
/// `p.mask` (it may not meet the difficulty when that is above 32 bits:
/// every hit is confirmed here).
#[inline(always)]
pub fn drive(
    t: &Template,
    start: u64,
    end: u64,
    difficulty: u8,
    stop: &AtomicBool,
    chunk: u32,
    mut scan: impl FnMut(&Prepared, u32, u32) -> Option<u32>,
) -> Search {
    let d = u32::from(difficulty);
    let mut seed = start;
    let mut tried = 0u64;
    let mut prepared: Option<(u64, Prepared)> = None;
    while seed < end {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let base = seed & !(SEGMENT - 1);
        if !matches!(&prepared, Some((b, _)) if *b == base) {
            prepared = None;
        }
        let (_, p) = prepared.get_or_insert_with(|| (base, Prepared::new(t, seed, difficulty)));
        let p = &*p;
        // Offsets fit in u32: a segment is 2^20 seeds.
        let segment_end = end.min(base.saturating_add(SEGMENT));
        let lo = (seed - base) as u32;
        let hi = ((segment_end - base) as u32).min(lo.saturating_add(chunk.max(1)));
        match scan(p, lo, hi) {
            Some(i) => {
                let s = base + u64::from(i);
                tried += s - seed + 1;
                if state_meets(&compress(&p.candidate(i)), d) {
                    return Search {
                        found: Some(s),
                        tried,
                    };
                }
                seed = s + 1;
            }
            None => {
                tried += u64::from(hi - lo);
                seed = base + u64::from(hi);
            }
        }
    }
    Search { found: None, tried }
}

/// Every engine compiled into this binary for this architecture, fastest
/// first, with the engine when this CPU can run it.
pub fn compiled() -> Vec<(&'static str, Option<&'static dyn Engine>)> {
    #[allow(unused_mut)]
    let mut v: Vec<(&'static str, Option<&'static dyn Engine>)> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        use super::{x86_avx2, x86_avx512, x86_shani, x86_sse2};
        v.push((x86_shani::NAME, x86_shani::get()));
        v.push((x86_avx512::NAME, x86_avx512::get()));
        v.push((x86_avx2::NAME, x86_avx2::get()));
        v.push((x86_sse2::NAME, x86_sse2::get()));
    }
    #[cfg(target_arch = "aarch64")]
    {
        use super::{arm_neon, arm_sha1};
        v.push((arm_sha1::NAME, arm_sha1::get()));
        v.push((arm_neon::NAME, arm_neon::get()));
    }
    v.push((super::portable::NAME, Some(super::portable::get())));
    v.push((
        super::portable::CRATE_NAME,
        Some(super::portable::get_crate()),
    ));
    v
}

/// The engines this CPU can run, fastest first.
pub fn all() -> Vec<&'static dyn Engine> {
    compiled().into_iter().filter_map(|(_, e)| e).collect()
}

/// The fastest engine this CPU can run, chosen once per process.
///
/// Which of the fast paths wins depends on the core, not only on its
/// features: SHA extensions beat AVX-512 lanes on some cores and lose to
/// them by five times on others. So when the CPU has more than one fast
/// engine, each runs a few milliseconds on the same inputs and the
/// quickest is kept. Every engine gives the same answers, so the choice
/// only changes the speed.
pub fn best() -> &'static dyn Engine {
    static BEST: std::sync::OnceLock<&'static dyn Engine> = std::sync::OnceLock::new();
    *BEST.get_or_init(|| {
        let fast: Vec<_> = all()
            .into_iter()
            .filter(|e| e.name() != super::portable::CRATE_NAME)
            .collect();
        let Some(first) = fast.first().copied() else {
            return super::portable::get();
        };
        if fast.len() == 1 {
            return first;
        }
        // Three short turns each, interleaved, best turn kept: a turn that
        // lost its core to another process for a tick does not decide.
        let mut rates = vec![0f64; fast.len()];
        for _ in 0..3 {
            for (rate, e) in rates.iter_mut().zip(&fast) {
                *rate = rate.max(calibrate(*e, std::time::Duration::from_millis(3)));
            }
        }
        fast.iter()
            .zip(&rates)
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(first, |(e, _)| *e)
    })
}

/// Candidates per second of `e` over about `time` (after a short warm-up),
/// on one thread.
pub fn calibrate(e: &dyn Engine, time: std::time::Duration) -> f64 {
    let t = Template::new(&[7; 12], &[9; 8]);
    let stop = AtomicBool::new(false);
    let chunk = u64::from(e.chunk());
    // Warm-up: caches, branch predictors and the CPU's clock.
    e.search(&t, 0, chunk, 160, &stop);
    let started = std::time::Instant::now();
    let mut tried = 0u64;
    while started.elapsed() < time {
        tried += e.search(&t, tried, tried + chunk, 160, &stop).tried;
    }
    tried as f64 / started.elapsed().as_secs_f64()
}

pub fn by_name(name: &str) -> Option<&'static dyn Engine> {
    all().into_iter().find(|e| e.name() == name)
}

/// An engine asked for by name that this process cannot mine with. Both
/// messages list the engines it can use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PickError {
    #[error(
        "engine '{name}' is built in but this CPU lacks its instructions; available: {available}"
    )]
    Unsupported { name: String, available: String },
    #[error("unknown engine '{name}'; available: {available}")]
    Unknown { name: String, available: String },
}

/// The engine to mine with: by name, or the fastest available.
pub fn pick(name: Option<&str>) -> Result<&'static dyn Engine, PickError> {
    let Some(n) = name else {
        return Ok(best());
    };
    by_name(n).ok_or_else(|| {
        let names: Vec<_> = all().iter().map(|e| e.name()).collect();
        let (name, available) = (n.to_string(), names.join(", "));
        if compiled().iter().any(|(built, _)| *built == n) {
            PickError::Unsupported { name, available }
        } else {
            PickError::Unknown { name, available }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stop_flag_is_honoured() {
        let t = Template::new(&[1; 12], &[2; 8]);
        let stop = AtomicBool::new(true);
        for e in all() {
            assert_eq!(
                e.search(&t, 0, u64::MAX, 160, &stop),
                Search {
                    found: None,
                    tried: 0
                },
                "{}",
                e.name()
            );
        }
    }

    #[test]
    fn engines_are_picked_by_name_or_speed() {
        assert_eq!(pick(None).map(|e| e.name()), Ok(best().name()));
        let portable = super::super::portable::NAME;
        assert_eq!(pick(Some(portable)).map(|e| e.name()), Ok(portable));
        let unknown = pick(Some("abacus"))
            .map(|e| e.name())
            .expect_err("no engine is called abacus");
        assert!(unknown
            .to_string()
            .starts_with("unknown engine 'abacus'; available: "));
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

    /// Every engine against the `sha1` crate's block function: the same
    /// first seed and the same count, across segment boundaries and at the
    /// top of the seed space.
    fn same_answers(salt: [u8; 12], solver: [u8; 8], start: u64, len: u64, d: u8) {
        let t = Template::new(&salt, &solver);
        let stop = AtomicBool::new(false);
        let end = start.saturating_add(len);
        let want = super::super::portable::get_crate().search(&t, start, end, d, &stop);
        for e in all() {
            assert_eq!(
                e.search(&t, start, end, d, &stop),
                want,
                "engine {} on salt {salt:?} solver {solver:?} seeds {start}..{end} difficulty {d}",
                e.name()
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn every_engine_finds_what_the_sha1_crate_finds(
            salt in any::<[u8; 12]>(),
            solver in any::<[u8; 8]>(),
            start in prop_oneof![
                any::<u64>(),
                (0u64..1 << 44).prop_map(|s| s | ((1 << 20) - 100)),
                (0u64..20_000).prop_map(|s| u64::MAX - s),
            ],
            len in 0u64..20_000,
            d in 0u8..16,
        ) {
            same_answers(salt, solver, start, len, d);
        }
    }

    #[test]
    fn a_naive_loop_over_the_sha1_hasher_agrees() {
        // Known answers from the `sha1` crate's ordinary hasher.
        let (salt, solver) = ([0x5a; 12], [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]);
        let t = Template::new(&salt, &solver);
        let stop = AtomicBool::new(false);
        for d in [1u8, 4, 8, 12, 16] {
            let want = (0u64..)
                .find(|&s| crate::pow::verify(&salt, &solver, s, d))
                .expect("a seed with 16 leading zero bits comes within a few million");
            for e in all() {
                let got = e.search(&t, 0, u64::MAX, d, &stop);
                assert_eq!(got.found, Some(want), "{} at difficulty {d}", e.name());
                assert_eq!(got.tried, want + 1, "{} at difficulty {d}", e.name());
            }
        }
    }

    #[test]
    fn difficulties_above_one_word_are_confirmed_in_full() {
        // A first-word filter at 32 bits passes candidates that fail at 33
        // or more: the driver must confirm them and go on.
        same_answers([3; 12], [4; 8], 1 << 30, 3 << 20, 40);
        same_answers([3; 12], [4; 8], 0, 1 << 16, 160);
    }

    #[test]
    fn the_best_engine_is_one_this_cpu_runs() {
        let names: Vec<_> = all().iter().map(|e| e.name()).collect();
        assert!(
            names.contains(&best().name()),
            "{} not in {names:?}",
            best().name()
        );
        assert!(calibrate(best(), std::time::Duration::from_millis(1)) > 0.0);
    }

    #[test]
    fn the_portable_engine_is_always_there() {
        let names: Vec<_> = all().iter().map(|e| e.name()).collect();
        assert!(names.contains(&"portable"), "{names:?}");
        assert!(by_name("no-such-engine").is_none());
    }
}
