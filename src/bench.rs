//! `edgeminer bench`: the pool's candidate rate on this machine.
//!
//! Runs the real pool (the same threads, ranges and engine the node uses)
//! with a difficulty no seed can meet, for a fixed time, and reads the
//! per-thread counters.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::miner::{Job, Pool};
use crate::pow::engine::Engine;

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub engine: String,
    pub threads: usize,
    pub seconds: f64,
    pub hashes: u64,
    pub hashes_per_second: f64,
    pub per_thread: Vec<f64>,
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
    pool.stop();
    let hashes: u64 = per.iter().sum();
    BenchReport {
        engine: engine.name().to_string(),
        threads: pool.threads(),
        seconds: elapsed,
        hashes,
        hashes_per_second: hashes as f64 / elapsed,
        per_thread: per.iter().map(|&h| h as f64 / elapsed).collect(),
    }
}

impl BenchReport {
    pub fn to_text(&self) -> String {
        let per: Vec<String> = self
            .per_thread
            .iter()
            .map(|h| format!("{:.2}", h / 1e6))
            .collect();
        format!(
            "engine:  {}\nthreads: {}\ntotal:   {:.2} M candidates/s over {:.1} s\nper thread (M/s): {}\n",
            self.engine,
            self.threads,
            self.hashes_per_second / 1e6,
            self.seconds,
            per.join(" ")
        )
    }
}
