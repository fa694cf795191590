//! `edgeminer bench`: the pool's candidate rate on this machine (and, in
//! [`signatures`], the cost of the protocol's signatures).
//!
//! Runs the real pool (the same threads, ranges and engine the node uses)
//! with a difficulty no seed can meet, for a fixed time, and reads the
//! per-thread counters. Then it stops the pool and times how long the
//! last thread takes to notice: that is how late a found seed or a new
//! challenge reaches every core.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::miner::{Job, Pool};
use crate::pow::engine::{self, Engine};

pub mod signatures;

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub engine: String,
    pub threads: usize,
    pub seconds: f64,
    pub hashes: u64,
    pub hashes_per_second: f64,
    pub per_thread: Vec<f64>,
    /// Milliseconds from a stop to the last thread idle: the median and
    /// the worst of [`STOPS`] stops.
    pub stop_ms: f64,
    pub stop_ms_max: f64,
    /// The engines this CPU runs, fastest first by this process's choice.
    pub available: Vec<String>,
}

/// Stops timed per run.
pub const STOPS: u64 = 21;

/// Stops the pool's job and returns the milliseconds until every thread
/// is idle.
fn stop_time(pool: &Pool) -> f64 {
    let stopping = Instant::now();
    pool.stop();
    pool.wait_idle(Duration::from_secs(5));
    stopping.elapsed().as_secs_f64() * 1e3
}

pub fn run(threads: usize, seconds: f64, engine: &'static dyn Engine) -> BenchReport {
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let pool = Pool::new(threads, engine, tx);
    let started = Instant::now();
    pool.start(Job {
        id: 1,
        salt: *b"edgeminer-bn",
        solver: [0x5a; 8],
        difficulty: crate::pow::MAX_DIFFICULTY,
    });
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let per = pool.per_thread_hashes();
    let elapsed = started.elapsed().as_secs_f64();
    let mut stops = vec![stop_time(&pool)];
    // More stops, each after a few milliseconds of mining, for a median
    // that one unlucky scheduling tick cannot move.
    for id in 2..=STOPS {
        pool.start(Job {
            id,
            salt: *b"edgeminer-st",
            solver: [0x5a; 8],
            difficulty: crate::pow::MAX_DIFFICULTY,
        });
        std::thread::sleep(Duration::from_millis(3));
        stops.push(stop_time(&pool));
    }
    stops.sort_by(f64::total_cmp);
    let hashes: u64 = per.iter().sum();
    BenchReport {
        engine: engine.name().to_string(),
        threads: pool.threads(),
        seconds: elapsed,
        hashes,
        hashes_per_second: hashes as f64 / elapsed,
        per_thread: per.iter().map(|&h| h as f64 / elapsed).collect(),
        stop_ms: stops[stops.len() / 2],
        stop_ms_max: stops[stops.len() - 1],
        available: available(),
    }
}

/// The names of the engines this CPU runs, the chosen one first.
pub fn available() -> Vec<String> {
    let best = engine::best().name();
    let mut v = vec![best.to_string()];
    v.extend(
        engine::all()
            .into_iter()
            .map(|e| e.name().to_string())
            .filter(|n| n != best),
    );
    v
}

/// Every engine compiled into this binary, each with whether this CPU runs
/// it and which one a node would choose.
pub fn list() -> String {
    let best = engine::best().name();
    let mut s = String::new();
    for (name, e) in engine::compiled() {
        let note = match e {
            Some(e) if e.name() == best => "available, chosen",
            Some(_) => "available",
            None => "not on this CPU",
        };
        s.push_str(&format!("{name:<12} {note}\n"));
    }
    s
}

impl BenchReport {
    pub fn to_text(&self) -> String {
        let per: Vec<String> = self
            .per_thread
            .iter()
            .map(|h| format!("{:.2}", h / 1e6))
            .collect();
        format!(
            "engine:  {}\nthreads: {}\ntotal:   {:.2} M candidates/s over {:.1} s\nper thread (M/s): {}\nstop:    all threads idle {:.2} ms after a stop (median of {STOPS}; worst {:.2} ms)\n",
            self.engine,
            self.threads,
            self.hashes_per_second / 1e6,
            self.seconds,
            per.join(" "),
            self.stop_ms,
            self.stop_ms_max
        )
    }
}
