//! A restart storm on real processes: five `edgeminer run` nodes on a
//! private Mosquitto (loopback only); every 2 to 4 s one of them, chosen at
//! random, is killed with SIGKILL, and started again on its state
//! directory 0.5 to 5 s later, for two minutes. At most two are down at any
//! instant (a kill waits until fewer are), so a quorum of three is always
//! up; but a node that starts again often finds another member gone, and
//! would sit out its init wait while the others, who see it online, elect
//! it. Commits must go on throughout, no gap between two of them longer
//! than three election timeouts, and the ledgers must agree (and verify)
//! at the end.
//!
//! The victims are drawn from `EDGEMINER_STORM_SEED` (printed, the clock's
//! nanoseconds when unset), so a failing schedule can be run again. Every
//! wait has a limit and every process is stopped on drop, also when an
//! assertion fails.

mod common;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;

/// The election timeout the nodes run with: the default
/// (`election_timeout_ms` in `src/config.rs`), as no configuration file is
/// given.
const ELECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the storm lasts.
const STORM: Duration = Duration::from_secs(120);
/// At most this many members down at once: N - q of five with a quorum
/// of three.
const MAX_DOWN: usize = 2;
/// How often the test reads the new lines of the logs.
const POLL: Duration = Duration::from_millis(50);

/// The tx of a `voting: tx T round R committed: ...` line (see
/// `src/protocol/commit.rs`; a commit learned from a certificate is
/// logged so too).
fn committed(line: &str) -> Option<u64> {
    let (_, rest) = line.split_once("voting: tx ")?;
    let (tx, rest) = rest.split_once(" round ")?;
    let (round, _) = rest.split_once(" committed: ")?;
    round.parse::<u32>().ok()?;
    tx.parse().ok()
}

/// The highest transaction any node has logged as committed, read from
/// the logs as they grow (a restarted node appends to its log).
struct Commits {
    read: Vec<u64>,
    partial: Vec<Vec<u8>>,
    highest: u64,
}

impl Commits {
    fn new(n: usize) -> Commits {
        Commits {
            read: vec![0; n],
            partial: vec![Vec::new(); n],
            highest: 0,
        }
    }

    fn poll(&mut self, nodes: &[Node]) -> u64 {
        for (i, n) in nodes.iter().enumerate() {
            let Ok(mut f) = File::open(&n.log) else {
                continue;
            };
            let mut fresh = Vec::new();
            if f.seek(SeekFrom::Start(self.read[i])).is_err() || f.read_to_end(&mut fresh).is_err()
            {
                continue;
            }
            self.read[i] += fresh.len() as u64;
            let buf = &mut self.partial[i];
            buf.extend_from_slice(&fresh);
            let Some(end) = buf.iter().rposition(|b| *b == b'\n') else {
                continue;
            };
            let lines: Vec<u8> = buf.drain(..=end).collect();
            for line in String::from_utf8_lossy(&lines).lines() {
                if let Some(tx) = committed(line) {
                    self.highest = self.highest.max(tx);
                }
            }
        }
        self.highest
    }
}

/// xorshift64*: the victims and the pauses of the storm.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn commits_go_on_through_a_restart_storm() {
    let seed = std::env::var("EDGEMINER_STORM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("storm seed {seed} (EDGEMINER_STORM_SEED={seed} runs this schedule again)");
    let mut draw = Draw(seed | 1);
    let bound = 3 * ELECTION_TIMEOUT;

    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let url = broker.url();
    let lab = lab("s", 5, dir.path(), "12..14");
    let genesis = lab.arg();
    let args = ["--genesis", &genesis, "--threads", "1", "--broker", &url];
    let mut nodes = start_cluster("s", 5, dir.path(), &args);
    let mut commits = Commits::new(nodes.len());
    assert!(
        wait_until(Duration::from_secs(60), || commits.poll(&nodes) >= 1),
        "no first commit:\n{}",
        logs(&nodes)
    );

    let start = Instant::now();
    let (mut height, mut since) = (commits.poll(&nodes), Instant::now());
    let mut longest = Duration::ZERO;
    // Gaps longer than an election timeout: a round was lost.
    let mut lost = 0;
    let mut next_kill = start + Duration::from_millis(2_000 + draw.below(2_001));
    let mut kills = 0;
    // When each member that is down starts again.
    let mut back: Vec<Option<Instant>> = vec![None; nodes.len()];
    while start.elapsed() < STORM {
        let now = Instant::now();
        let h = commits.poll(&nodes);
        if h > height {
            longest = longest.max(now - since);
            lost += usize::from(now - since > ELECTION_TIMEOUT);
            (height, since) = (h, now);
        }
        assert!(
            now - since <= bound,
            "no commit for {:?} after tx {height} ({kills} kills so far, seed {seed}):\n{}",
            now - since,
            logs(&nodes)
        );
        for (i, at) in back.iter_mut().enumerate() {
            if at.is_some_and(|t| now >= t) {
                *at = None;
                let (name, state) = (nodes[i].name.clone(), nodes[i].state.clone());
                nodes[i] = Node::start(&name, &state, &args);
            }
        }
        let up: Vec<usize> = (0..nodes.len()).filter(|&i| back[i].is_none()).collect();
        if now >= next_kill && nodes.len() - up.len() < MAX_DOWN {
            let i = up[draw.below(up.len() as u64) as usize];
            nodes[i].kill9();
            back[i] = Some(now + Duration::from_millis(500 + draw.below(4_501)));
            kills += 1;
            next_kill = now + Duration::from_millis(2_000 + draw.below(2_001));
        }
        std::thread::sleep(POLL);
    }
    // The storm is over: the members still down start again.
    for (i, at) in back.iter_mut().enumerate() {
        if at.take().is_some() {
            let (name, state) = (nodes[i].name.clone(), nodes[i].state.clone());
            nodes[i] = Node::start(&name, &state, &args);
        }
    }
    let end = Instant::now();
    longest = longest.max(end - since);
    eprintln!(
        "{kills} kills in {:?}: {height} transactions committed, longest gap between commits {longest:?} (bound {bound:?}), {lost} gaps longer than an election timeout",
        end - start
    );
    assert!(kills >= 30, "a storm of {kills} kills only");
    assert!(
        longest <= bound,
        "a gap of {longest:?} between commits (seed {seed}):\n{}",
        logs(&nodes)
    );

    // After the storm every node reaches the height seen, and all agree.
    assert!(
        wait_until(Duration::from_secs(60), || nodes
            .iter()
            .all(|n| ledger_len(n) as u64 >= height)),
        "the nodes did not all reach tx {height} after the storm:\n{}",
        logs(&nodes)
    );
    let ledgers = stop_and_compare(&mut nodes, height as usize);
    for row in &ledgers[0] {
        check_row(row);
    }
    for n in &nodes {
        let out = edgeminer(&["verify", "--state-dir", n.state.to_str().expect("utf-8")]);
        assert!(
            out.status.success(),
            "{}: verify: {}",
            n.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
