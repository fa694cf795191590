//! The mining pool: long-lived native threads, one per core by default.
//!
//! Mining never runs on the async runtime. Each job's seed space is split
//! into disjoint ranges, one per thread; threads share nothing in the inner
//! loop and check the job's stop flag every few thousand candidates, so a
//! found seed or a new challenge stops every thread within about a
//! millisecond. Idle threads block on a condition variable.
//!
//! Thermal care can lower how many threads mine ([`Pool::set_active`]):
//! threads numbered at or above the limit finish their current batch and
//! wait; raised again, they go on with the same job where they left off, so
//! no part of a thread's range is skipped. A limit of 0 pauses mining
//! without forgetting the job.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use tokio::sync::mpsc::UnboundedSender;

use crate::pow::engine::Engine;
pub use crate::pow::Job;
use crate::pow::Template;

/// Seeds handed to the engine per call, between counter updates.
const BATCH: u64 = 1 << 16;

/// A seed that solves job `job_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub job_id: u64,
    pub seed: u64,
}

struct Current {
    job: Job,
    template: Template,
    stop: AtomicBool,
}

#[derive(Default)]
struct Slot {
    current: Option<Arc<Current>>,
    generation: u64,
    shutdown: bool,
}

/// One thread's candidate count, alone on its cache lines (128 bytes
/// covers the adjacent-line prefetch of x86 and the 64-byte lines of the
/// Cortex-A cores), so no two threads ever write the same line.
#[repr(align(128))]
#[derive(Default)]
struct Counter(AtomicU64);

/// Reads a pool's candidate count from anywhere (see [`Pool::meter`]).
#[derive(Clone)]
pub struct Meter(Arc<Shared>);

impl Meter {
    /// Candidates tried since the pool was made.
    pub fn hashes(&self) -> u64 {
        self.0
            .hashes
            .iter()
            .map(|h| h.0.load(Ordering::Relaxed))
            .sum()
    }
}

struct Shared {
    slot: Mutex<Slot>,
    wake: Condvar,
    hashes: Vec<Counter>,
    /// Threads working on a job (taken under the slot's lock).
    busy: AtomicUsize,
    /// Threads allowed to mine: those numbered below it. Written before
    /// the slot's lock is taken to wake the others, read without it
    /// between batches and under it before waiting.
    active: AtomicUsize,
}

pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    engine: &'static dyn Engine,
}

/// Thread `i` of `n`'s share of the seed space.
fn range(i: usize, n: usize) -> (u64, u64) {
    let share = u64::MAX / n as u64;
    let start = share * i as u64;
    let end = if i + 1 == n { u64::MAX } else { start + share };
    (start, end)
}

fn worker(
    i: usize,
    n: usize,
    shared: Arc<Shared>,
    engine: &'static dyn Engine,
    found: UnboundedSender<Found>,
) {
    // The last job generation this thread finished (found, stopped or ran
    // out of range), and where a throttled one is to go on.
    let mut done = 0u64;
    let mut resume: Option<(u64, u64)> = None;
    loop {
        let (generation, current) = {
            // A poisoned lock means another worker panicked; stop this one too.
            let Ok(mut slot) = shared.slot.lock() else {
                return;
            };
            loop {
                if slot.shutdown {
                    return;
                }
                if slot.generation != done && i < shared.active.load(Ordering::Acquire) {
                    if let Some(c) = &slot.current {
                        shared.busy.fetch_add(1, Ordering::AcqRel);
                        break (slot.generation, c.clone());
                    }
                }
                slot = match shared.wake.wait(slot) {
                    Ok(s) => s,
                    Err(_) => return,
                };
            }
        };
        let (start, end) = range(i, n);
        let mut from = match resume.take() {
            Some((g, at)) if g == generation => at,
            _ => start,
        };
        let mut throttled = false;
        while from < end && !current.stop.load(Ordering::Relaxed) {
            if i >= shared.active.load(Ordering::Relaxed) {
                throttled = true;
                break;
            }
            let to = end.min(from.saturating_add(BATCH));
            let r = engine.search(
                &current.template,
                from,
                to,
                current.job.difficulty,
                &current.stop,
            );
            shared.hashes[i].0.fetch_add(r.tried, Ordering::Relaxed);
            if let Some(seed) = r.found {
                // The first thread to raise the flag reports; a job stopped
                // from outside reports nothing.
                if !current.stop.swap(true, Ordering::AcqRel) {
                    let _ = found.send(Found {
                        job_id: current.job.id,
                        seed,
                    });
                }
                break;
            }
            from = to;
        }
        if throttled {
            resume = Some((generation, from));
        } else {
            done = generation;
        }
        shared.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Pool {
    pub fn new(threads: usize, engine: &'static dyn Engine, found: UnboundedSender<Found>) -> Pool {
        let n = threads.max(1);
        let shared = Arc::new(Shared {
            slot: Mutex::new(Slot::default()),
            wake: Condvar::new(),
            hashes: (0..n).map(|_| Counter::default()).collect(),
            busy: AtomicUsize::new(0),
            active: AtomicUsize::new(n),
        });
        let workers = (0..n)
            .filter_map(|i| {
                let (s, f) = (shared.clone(), found.clone());
                std::thread::Builder::new()
                    .name(format!("miner-{i}"))
                    .spawn(move || worker(i, n, s, engine, f))
                    .ok()
            })
            .collect();
        Pool {
            shared,
            workers,
            engine,
        }
    }

    fn replace(&self, next: Option<Arc<Current>>) {
        if let Ok(mut slot) = self.shared.slot.lock() {
            if let Some(old) = slot.current.take() {
                old.stop.store(true, Ordering::Release);
            }
            slot.current = next;
            slot.generation += 1;
        }
        self.shared.wake.notify_all();
    }

    /// Mines `job`, replacing the current one.
    pub fn start(&self, job: Job) {
        let template = Template::new(&job.salt, &job.solver);
        self.replace(Some(Arc::new(Current {
            job,
            template,
            stop: AtomicBool::new(false),
        })));
    }

    /// Stops the current job; the threads go idle.
    pub fn stop(&self) {
        self.replace(None);
    }

    /// Lets only the first `threads` threads mine (0 pauses mining); the
    /// others finish their batch and wait. The job is kept: raising the
    /// limit again resumes it. Capped at the pool's size.
    pub fn set_active(&self, threads: usize) {
        let threads = threads.min(self.threads());
        self.shared.active.store(threads, Ordering::Release);
        // Taking the lock orders the store before any waiter's next check,
        // so a thread about to wait cannot miss the wake-up.
        drop(self.shared.slot.lock());
        self.shared.wake.notify_all();
    }

    /// Threads allowed to mine (see [`Pool::set_active`]).
    pub fn active(&self) -> usize {
        self.shared.active.load(Ordering::Acquire)
    }

    /// Threads in the pool.
    pub fn threads(&self) -> usize {
        self.shared.hashes.len()
    }
    pub fn engine_name(&self) -> &'static str {
        self.engine.name()
    }
    /// A read-only view of the candidate counters, for displays that read
    /// them on their own schedule.
    pub fn meter(&self) -> Meter {
        Meter(Arc::clone(&self.shared))
    }
    /// Candidates tried since the pool was made.
    pub fn hashes(&self) -> u64 {
        self.per_thread_hashes().iter().sum()
    }
    pub fn per_thread_hashes(&self) -> Vec<u64> {
        self.shared
            .hashes
            .iter()
            .map(|h| h.0.load(Ordering::Relaxed))
            .collect()
    }

    /// Waits until no thread works on a job any more (after [`Pool::stop`]
    /// or a find), up to `limit`; returns whether they all stopped.
    pub fn wait_idle(&self, limit: std::time::Duration) -> bool {
        let started = std::time::Instant::now();
        while self.shared.busy.load(Ordering::Acquire) != 0 {
            if started.elapsed() >= limit {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_micros(20));
        }
        true
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if let Ok(mut slot) = self.shared.slot.lock() {
            slot.shutdown = true;
            if let Some(c) = slot.current.take() {
                c.stop.store(true, Ordering::Release);
            }
        }
        self.shared.wake.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pow::{engine, verify};
    use std::time::Duration;

    fn job(id: u64, difficulty: u8) -> Job {
        Job {
            id,
            salt: [id as u8; 12],
            solver: [9; 8],
            difficulty,
        }
    }

    #[test]
    fn finds_a_valid_seed_with_two_threads() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let pool = Pool::new(2, engine::best(), tx);
        pool.start(job(1, 12));
        let f = rx.blocking_recv().expect("a seed");
        assert_eq!(f.job_id, 1);
        assert!(verify(&[1; 12], &[9; 8], f.seed, 12));
        assert!(pool.hashes() > 0);
    }

    #[test]
    fn stop_idles_and_replacement_wins() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let pool = Pool::new(2, engine::best(), tx);
        pool.start(job(1, 160));
        std::thread::sleep(Duration::from_millis(20));
        pool.stop();
        assert!(pool.wait_idle(Duration::from_secs(10)), "the threads stop");
        let a = pool.hashes();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(pool.hashes(), a, "idle threads do no work");
        pool.start(job(2, 160));
        pool.start(job(3, 8));
        let f = rx.blocking_recv().expect("a seed");
        assert_eq!(f.job_id, 3);
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_lower_limit_idles_threads_and_resumes_the_job() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let pool = Pool::new(2, engine::best(), tx);
        // Impossible difficulty: the job runs until stopped.
        pool.start(job(1, 160));
        std::thread::sleep(Duration::from_millis(20));
        pool.set_active(0);
        assert_eq!(pool.active(), 0);
        assert!(
            pool.wait_idle(Duration::from_secs(10)),
            "paused threads stop"
        );
        let paused = pool.per_thread_hashes();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            pool.per_thread_hashes(),
            paused,
            "a paused pool does no work"
        );

        pool.set_active(1);
        let started = std::time::Instant::now();
        while pool.per_thread_hashes()[0] == paused[0] {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "thread 0 resumes"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            pool.per_thread_hashes()[1],
            paused[1],
            "thread 1 stays idle"
        );

        // A job started while throttled is mined by the allowed threads,
        // and the limit is capped at the pool's size.
        pool.start(job(2, 8));
        assert_eq!(rx.blocking_recv().expect("a seed").job_id, 2);
        pool.set_active(9);
        assert_eq!(pool.active(), 2);
    }

    #[test]
    fn a_paused_job_is_found_after_resuming() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let pool = Pool::new(2, engine::best(), tx);
        pool.set_active(0);
        pool.start(job(4, 12));
        std::thread::sleep(Duration::from_millis(50));
        assert!(rx.try_recv().is_err(), "nothing is mined while paused");
        assert_eq!(pool.hashes(), 0);
        pool.set_active(2);
        let f = rx.blocking_recv().expect("a seed");
        assert_eq!(f.job_id, 4);
        assert!(verify(&[4; 12], &[9; 8], f.seed, 12));
    }

    #[test]
    fn ranges_are_disjoint_and_cover() {
        for n in 1..9 {
            let mut prev_end = 0;
            for i in 0..n {
                let (s, e) = range(i, n);
                assert_eq!(s, prev_end);
                assert!(e > s);
                prev_end = e;
            }
            assert_eq!(prev_end, u64::MAX);
        }
    }
}
