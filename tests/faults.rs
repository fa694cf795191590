//! Faults on real processes: `edgeminer run` nodes on a private Mosquitto
//! (loopback only), hit by what a lab actually sees, and what must still
//! hold afterwards.
//!
//! - The leader of an open round dies with SIGKILL once its challenge is
//!   out: the three survivors (a quorum of four) commit that transaction
//!   without it, elect other leaders, and keep committing, with agreeing
//!   ledgers.
//! - A broker with persistence is stopped and restarted on the same port
//!   while a round is open: the nodes reconnect, commits resume, and no
//!   committed entry is lost.
//! - A node that joins after five commits fetches and verifies all five
//!   (its ledger passes `edgeminer verify`) and ends with the same ledger.
//! - A node frozen with SIGSTOP for longer than its MQTT keep-alive is
//!   declared gone; the others carry on; after SIGCONT it reconnects,
//!   catches up, takes part in commits again, and nobody panics.
//!
//! Restarting a killed non-leader and restarting a broker without
//! persistence are covered by `restart.rs` and `reconnect.rs`.
//!
//! The tests run one at a time (a lock): each starts four mining processes,
//! and the machines this runs on may have two cores, so in parallel their
//! timings would measure the scheduler. Every wait has a limit, and every
//! process is stopped on drop (`Node`, `Mosquitto`, [`Frozen`]), also when an
//! assertion fails.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use common::*;

/// The MQTT keep-alive of every node (`keep_alive_secs` in `src/node/start.rs`).
/// Mosquitto drops a client it has not heard from for 1.5 times this.
const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// How often the tight waits below look at the logs and ledger files.
const POLL: Duration = Duration::from_millis(10);

static SERIAL: Mutex<()> = Mutex::new(());

/// One test at a time (a failed test poisons the lock; the next still runs).
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Flags of a node of a four-member cluster (quorum 3; `lab` made its
/// genesis) with one mining thread.
fn cluster_args<'a>(genesis: &'a str, url: &'a str) -> Vec<&'a str> {
    vec!["--genesis", genesis, "--threads", "1", "--broker", url]
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are utf-8")
}

fn log_text(n: &Node) -> String {
    std::fs::read_to_string(&n.log).unwrap_or_default()
}

/// The size of a node's log, to read what it logs from now on.
fn log_mark(n: &Node) -> usize {
    std::fs::metadata(&n.log).map_or(0, |m| m.len() as usize)
}

/// What a node logged after `mark`.
fn log_since(n: &Node, mark: usize) -> String {
    let bytes = std::fs::read(&n.log).unwrap_or_default();
    String::from_utf8_lossy(&bytes[mark.min(bytes.len())..]).into_owned()
}

/// The node's id, from its start-up line `init: node NAME (ID) in cluster`.
fn node_id(n: &Node) -> String {
    let text = log_text(n);
    let prefix = format!("init: node {} (", n.name);
    let rest = text
        .split_once(&prefix)
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("{} logged no start-up line:\n{}", n.name, n.log_tail(20)));
    rest.split(')').next().unwrap_or_default().to_string()
}

/// (tx, round) of a `challenge: tx T round R, issuing difficulty D as leader`
/// line (see `src/protocol/challenge.rs`).
fn issued(line: &str) -> Option<(u64, u32)> {
    let (_, rest) = line.split_once("challenge: tx ")?;
    let (tx, rest) = rest.split_once(" round ")?;
    let (round, rest) = rest.split_once(", issuing difficulty ")?;
    if !rest.ends_with(" as leader") {
        return None;
    }
    Some((tx.parse().ok()?, round.parse().ok()?))
}

/// The tx of a `voting: tx T round R committed: ...` line, and of a
/// `voting: tx T round R, learned from the certificate of ...` line when
/// `learned` (see `src/protocol/commit.rs`).
fn commit_line(line: &str, learned: bool) -> Option<u64> {
    let (_, rest) = line.split_once("voting: tx ")?;
    let (tx, rest) = rest.split_once(" round ")?;
    let (round, _) = if learned {
        rest.split_once(", learned from the certificate of ")?
    } else {
        rest.split_once(" committed: ")?
    };
    round.parse::<u32>().ok()?;
    tx.parse().ok()
}

/// The open round, as (leader index, tx, round): the latest challenge any
/// node issued, once another node has taken it (so the broker has it), and
/// as long as no node has logged the commit of its transaction. Committing
/// is logged before the ledger append, so "not logged" implies "not on
/// anyone's disk".
fn open_round(nodes: &[Node]) -> Option<(usize, u64, u32)> {
    let texts: Vec<String> = nodes.iter().map(log_text).collect();
    let mut latest: Option<(usize, u64, u32)> = None;
    for (i, text) in texts.iter().enumerate() {
        for (tx, round) in text.lines().filter_map(issued) {
            if latest.is_none_or(|(_, t, r)| (tx, round) > (t, r)) {
                latest = Some((i, tx, round));
            }
        }
    }
    let (i, tx, round) = latest?;
    let taken = format!(
        "challenge: tx {tx} round {round} from leader {} (",
        nodes[i].name
    );
    let taken = texts
        .iter()
        .enumerate()
        .any(|(j, t)| j != i && t.contains(&taken));
    let done = texts
        .iter()
        .flat_map(|t| t.lines())
        .any(|l| commit_line(l, false) == Some(tx));
    (taken && !done).then_some((i, tx, round))
}

/// Waits (at most `limit`) for an open round of a transaction >= `min_tx`.
fn wait_open_round(nodes: &[Node], min_tx: u64, limit: Duration) -> (usize, u64, u32) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(open) = open_round(nodes).filter(|(_, tx, _)| *tx >= min_tx) {
            return open;
        }
        std::thread::sleep(POLL);
    }
    panic!(
        "no open round of tx >= {min_tx} within {limit:?}:\n{}",
        logs(nodes)
    );
}

/// The size of a node's ledger file: it grows by one synced record per
/// commit, and is much cheaper to watch than `edgeminer ledger`.
fn ledger_bytes(n: &Node) -> u64 {
    std::fs::metadata(n.state.join("ledger.bin")).map_or(0, |m| m.len())
}

/// Waits (at most `limit`) until some node's ledger file outgrows `base`;
/// returns the time since `since`.
fn next_commit(nodes: &[Node], base: &[u64], since: Instant, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if nodes.iter().zip(base).any(|(n, b)| ledger_bytes(n) > *b) {
            return Some(since.elapsed());
        }
        std::thread::sleep(POLL);
    }
    None
}

fn min_len(nodes: &[Node]) -> usize {
    nodes.iter().map(ledger_len).min().unwrap_or(0)
}

fn max_len(nodes: &[Node]) -> usize {
    nodes.iter().map(ledger_len).max().unwrap_or(0)
}

fn assert_no_panic(nodes: &[Node]) {
    for n in nodes {
        assert!(
            !log_text(n).contains("panicked"),
            "{} panicked:\n{}",
            n.name,
            n.log_tail(40)
        );
    }
}

/// Sends `sig` (a name such as `STOP`) to `pid`.
fn signal(pid: u32, sig: &str) -> bool {
    Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

/// A process frozen with SIGSTOP; SIGCONT on drop, so a failed assertion
/// never leaves a stopped process behind.
struct Frozen {
    pid: u32,
    frozen: bool,
}

impl Frozen {
    fn freeze(pid: u32) -> Frozen {
        assert!(pid != 0, "no process to freeze");
        assert!(signal(pid, "STOP"), "SIGSTOP {pid} failed");
        Frozen { pid, frozen: true }
    }

    fn thaw(&mut self) {
        if std::mem::take(&mut self.frozen) {
            assert!(signal(self.pid, "CONT"), "SIGCONT {} failed", self.pid);
        }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if self.frozen {
            signal(self.pid, "CONT");
        }
    }
}

/// The leader named by an `election: tx T round R, leader NAME with ...`
/// line (see `src/protocol/election.rs`).
fn elected(line: &str) -> Option<&str> {
    let (_, rest) = line.split_once("election: tx ")?;
    let (_, rest) = rest.split_once(", leader ")?;
    rest.split_once(" with ").map(|(name, _)| name)
}

#[test]
fn survivors_replace_a_leader_killed_mid_round() {
    let _serial = serial();
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let url = broker.url();
    // About a second of mining per transaction for the four processes on
    // two cores: time to kill the leader between challenge and commit.
    let lab = lab("l", 4, dir.path(), "24..25");
    let genesis = lab.arg();
    let args = cluster_args(&genesis, &url);
    let started = Instant::now();
    let mut nodes = start_cluster("l", 4, dir.path(), &args);
    assert!(
        wait_until(Duration::from_secs(60), || min_len(&nodes) >= 1),
        "no first commit:\n{}",
        logs(&nodes)
    );

    let (k, tx, round) = wait_open_round(&nodes, 2, Duration::from_secs(30));
    let dead_id = node_id(&nodes[k]);
    let mut marks: Vec<usize> = nodes.iter().map(log_mark).collect();
    let mut base: Vec<u64> = nodes.iter().map(ledger_bytes).collect();
    let killed = Instant::now();
    nodes[k].kill9();
    // From here on `nodes` are the three survivors.
    let dead = nodes.remove(k);
    marks.remove(k);
    base.remove(k);
    assert!(
        ledger_len(&dead) < tx as usize,
        "{} had committed tx {tx} before it was killed: not mid-round",
        dead.name
    );
    eprintln!(
        "killed leader {} ({dead_id}) of tx {tx} round {round} before its commit",
        dead.name
    );

    let first = next_commit(&nodes, &base, killed, Duration::from_secs(60));
    let Some(first) = first else {
        panic!("no commit after the leader died:\n{}", logs(&nodes));
    };
    eprintln!("leader kill -> next commit: {} ms", first.as_millis());

    let target = tx as usize + 1;
    assert!(
        wait_until(Duration::from_secs(60), || min_len(&nodes) >= target),
        "the survivors did not commit tx {tx} and tx {target}:\n{}",
        logs(&nodes)
    );
    let new_leader = nodes
        .iter()
        .zip(&marks)
        .flat_map(|(n, m)| {
            log_since(n, *m)
                .lines()
                .filter_map(|l| elected(l).map(str::to_string))
                .collect::<Vec<_>>()
        })
        .find(|name| *name != dead.name);
    let Some(new_leader) = new_leader else {
        panic!(
            "no survivor logged the election of a new leader:\n{}",
            logs(&nodes)
        );
    };
    eprintln!("survivors elected {new_leader}");
    assert_no_panic(&nodes);

    let ledgers = stop_and_compare(&mut nodes, target);
    for r in &ledgers[0][tx as usize..] {
        assert_ne!(
            r.leader, dead_id,
            "tx {} credits the dead leader {}",
            r.transaction, dead.name
        );
    }
    // The challenge was out when its leader died, and an open challenge
    // no longer needs its leader (`src/protocol/challenge.rs`).
    let open = &ledgers[0][tx as usize - 1];
    assert_eq!(
        (open.round, &open.leader),
        (round, &dead_id),
        "tx {tx} was not committed under the dead leader's challenge"
    );
    eprintln!("test took {} ms", started.elapsed().as_millis());
    drop(broker);
}

#[test]
fn commits_resume_after_a_persistent_broker_restart_mid_round() {
    let _serial = serial();
    let mut broker = Mosquitto::start_persistent();
    let dir = tempfile::tempdir().expect("temp dir");
    let url = broker.url();
    let lab = lab("b", 4, dir.path(), "24..25");
    let genesis = lab.arg();
    let args = cluster_args(&genesis, &url);
    let started = Instant::now();
    let mut nodes = start_cluster("b", 4, dir.path(), &args);
    assert!(
        wait_until(Duration::from_secs(60), || min_len(&nodes) >= 1),
        "no first commit:\n{}",
        logs(&nodes)
    );

    let (k, tx, round) = wait_open_round(&nodes, 2, Duration::from_secs(30));
    let marks: Vec<usize> = nodes.iter().map(log_mark).collect();
    let base: Vec<u64> = nodes.iter().map(ledger_bytes).collect();
    let stopped = Instant::now();
    broker = broker.restart();
    let up = Instant::now();
    // While the broker was down nobody could commit; anything committed
    // since it is back counts as "before" too, which only makes the check
    // stricter.
    let before = max_len(&nodes);
    assert!(
        broker.dir.path().join(MOSQUITTO_DB).exists(),
        "the broker saved no database"
    );
    eprintln!(
        "broker stopped during tx {tx} round {round} (leader {}), down {} ms; max ledger {before}",
        nodes[k].name,
        (up - stopped).as_millis()
    );

    let Some(first) = next_commit(&nodes, &base, up, Duration::from_secs(60)) else {
        panic!("no commit after the broker restart:\n{}", logs(&nodes));
    };
    eprintln!("broker restart -> next commit: {} ms", first.as_millis());
    assert!(
        wait_until(Duration::from_secs(60), || min_len(&nodes) >= before + 2),
        "fewer than 2 commits after the broker restart:\n{}",
        logs(&nodes)
    );
    for (n, m) in nodes.iter().zip(&marks) {
        assert!(
            log_since(n, *m).contains("lost the broker"),
            "{} did not notice the outage:\n{}",
            n.name,
            n.log_tail(30)
        );
    }
    assert_no_panic(&nodes);
    // Every ledger holds every entry seen before the restart, and they agree.
    let ledgers = stop_and_compare(&mut nodes, before + 2);
    for (n, l) in nodes.iter().zip(&ledgers) {
        assert!(l.len() >= before, "{} lost entries", n.name);
    }
    eprintln!("test took {} ms", started.elapsed().as_millis());
}

#[test]
fn a_late_node_fetches_and_verifies_five_commits() {
    let _serial = serial();
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let url = broker.url();
    // Three of four nodes start; they begin with a quorum after the init
    // timeout, shortened here from 15 s.
    let config = dir.path().join("edgeminer.toml");
    std::fs::write(&config, "init_timeout_ms = 2000\n").expect("write the config file");
    let lab = lab("j", 4, dir.path(), "21..22");
    let genesis = lab.arg();
    let mut args = cluster_args(&genesis, &url);
    args.extend(["--config", path_str(&config)]);
    let started = Instant::now();
    let mut nodes = start_cluster("j", 3, dir.path(), &args);
    assert!(
        wait_until(Duration::from_secs(60), || min_len(&nodes) >= 5),
        "three of four nodes did not commit 5 transactions:\n{}",
        logs(&nodes)
    );

    let late_state = dir.path().join("j4");
    assert!(
        !late_state.join("ledger.bin").exists(),
        "the late node starts with its key and no ledger"
    );
    let joined = Instant::now();
    nodes.push(Node::start("j4", &late_state, &args));
    // The others' ledgers are read first: the cluster goes on committing
    // while a ledger is read, so the late node read afterwards has had
    // every chance to be as far as they were.
    let caught_up = wait_until(Duration::from_secs(60), || {
        let others = min_len(&nodes[..3]);
        let late = ledger_len(&nodes[3]);
        late >= 5 && late >= others
    });
    assert!(caught_up, "j4 did not catch up:\n{}", logs(&nodes));
    eprintln!(
        "late node caught up {} transactions in {} ms",
        ledger_len(&nodes[3]),
        joined.elapsed().as_millis()
    );

    let log = log_text(&nodes[3]);
    assert!(
        log.contains("catching up"),
        "j4 never noticed it was behind:\n{}",
        nodes[3].log_tail(40)
    );
    for tx in 1..=5 {
        // Logged only once the certificate checked (`src/protocol/commit.rs`).
        assert!(
            log.lines().any(|l| commit_line(l, true) == Some(tx)),
            "j4 did not fetch and verify tx {tx}:\n{}",
            nodes[3].log_tail(40)
        );
    }
    assert_no_panic(&nodes);

    let ledgers = stop_and_compare(&mut nodes, 5);
    for r in &ledgers[3][..5] {
        check_row(r);
    }
    let out = edgeminer(&["verify", "--state-dir", path_str(&late_state)]);
    assert!(
        out.status.success(),
        "verify j4: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "{}test took {} ms",
        String::from_utf8_lossy(&out.stdout),
        started.elapsed().as_millis()
    );
    drop(broker);
}

#[test]
fn a_node_frozen_past_its_keep_alive_rejoins() {
    let _serial = serial();
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let url = broker.url();
    let lab = lab("s", 4, dir.path(), "22..23");
    let genesis = lab.arg();
    let args = cluster_args(&genesis, &url);
    let started = Instant::now();
    let mut nodes = start_cluster("s", 4, dir.path(), &args);
    assert!(
        wait_until(Duration::from_secs(60), || min_len(&nodes) >= 1),
        "no first commit:\n{}",
        logs(&nodes)
    );

    // Freeze a node that does not lead the open round.
    let (leader, _, _) = wait_open_round(&nodes, 2, Duration::from_secs(30));
    let v = (leader + 1) % nodes.len();
    let (name, id) = (nodes[v].name.clone(), node_id(&nodes[v]));
    let others: Vec<usize> = (0..nodes.len()).filter(|i| *i != v).collect();
    let height = |nodes: &[Node]| others.iter().map(|i| ledger_len(&nodes[*i])).min();
    let at_stop = height(&nodes).unwrap_or(0);
    let marks: Vec<usize> = nodes.iter().map(log_mark).collect();
    // Mosquitto drops a silent client once it has not heard from it for
    // 1.5 keep-alives, but (2.0) checks that only every 5 to 6 seconds, in
    // whole seconds: the node is declared gone 8 to 14 s after its last
    // packet. So it stays frozen at least 1.5 keep-alives + 2 s, and then
    // until the others have seen it gone and committed twice without it.
    // Until then it still looks online, and a round that elects it costs
    // the others an election timeout (5 s).
    let pause = KEEP_ALIVE * 3 / 2 + Duration::from_secs(2);
    let limit = pause + Duration::from_secs(20);
    let gone = format!("init: {name} ({id}) is gone");
    let mut frozen = Frozen::freeze(nodes[v].pid());
    let froze = Instant::now();
    let (mut gone_after, mut during) = (None, 0);
    while froze.elapsed() < limit {
        if gone_after.is_none()
            && others
                .iter()
                .all(|i| log_since(&nodes[*i], marks[*i]).contains(&gone))
        {
            gone_after = Some(froze.elapsed());
        }
        if froze.elapsed() >= pause && gone_after.is_some() {
            during = height(&nodes).unwrap_or(0).saturating_sub(at_stop);
            if during >= 2 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let Some(gone_after) = gone_after else {
        panic!(
            "the others never saw {name} gone in {limit:?} (keep-alive not enforced?):\n{}",
            logs(&nodes)
        );
    };
    eprintln!(
        "SIGSTOP -> {name} declared gone: {} ms; frozen for {} ms, the other three committed {during} transactions meanwhile",
        gone_after.as_millis(),
        froze.elapsed().as_millis()
    );
    assert!(
        during >= 2,
        "the others stalled while {name} was frozen:\n{}",
        logs(&nodes)
    );

    let at_cont = others
        .iter()
        .map(|i| ledger_len(&nodes[*i]))
        .max()
        .unwrap_or(0);
    let mark = log_mark(&nodes[v]);
    let thawed = Instant::now();
    frozen.thaw();
    assert!(
        wait_until(Duration::from_secs(30), || ledger_len(&nodes[v]) >= at_cont),
        "{name} did not catch up after SIGCONT:\n{}",
        logs(&nodes)
    );
    eprintln!(
        "SIGCONT -> {name} caught up to tx {at_cont}: {} ms",
        thawed.elapsed().as_millis()
    );

    // Taking part again: it commits a transaction from the confirmations it
    // receives itself, not only from others' certificates.
    let own_commit = |text: &str| {
        let learned: Vec<u64> = text.lines().filter_map(|l| commit_line(l, true)).collect();
        text.lines()
            .filter_map(|l| commit_line(l, false))
            .any(|tx| !learned.contains(&tx))
    };
    let rejoined = wait_until(Duration::from_secs(60), || {
        min_len(&nodes) >= at_cont + 2 && own_commit(&log_since(&nodes[v], mark))
    });
    assert!(
        rejoined,
        "{name} did not take part in 2 more commits:\n{}",
        logs(&nodes)
    );
    eprintln!(
        "SIGCONT -> 2 more commits with {name}: {} ms",
        thawed.elapsed().as_millis()
    );
    assert_no_panic(&nodes);
    stop_and_compare(&mut nodes, at_cont + 2);
    eprintln!("test took {} ms", started.elapsed().as_millis());
    drop(frozen);
    drop(broker);
}
