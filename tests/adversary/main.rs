//! Attacks on a live cluster: three honest `edgeminer run` processes and one
//! misbehaving member ([`attacker::Attacker`]) on a private Mosquitto.
//!
//! The cluster is configured for four nodes, so the quorum is three and the
//! honest nodes carry every decision without the attacker. Each test runs
//! one attack (the original lab's three fraud tests and worse) and asserts
//! what the honest nodes must do: log a rejection that names the rule and
//! the claimed sender, keep committing, keep identical ledgers that never
//! credit the attacker with what it did not earn, and stay alive and small.
//! Tests run one at a time (a lock): each starts four processes' worth of
//! signature checks on a small machine.

mod attacker;
#[path = "../common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use attacker::Attacker;
use common::*;
use edgeminer::identity::NodeId;
use edgeminer::wire::{self, Challenge, Envelope, Family, Payload, Presence, PubKey, Solution};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Everything waits at most this long for the next step.
const STEP: Duration = Duration::from_secs(60);

struct Lab {
    nodes: Vec<Node>,
    atk: Attacker,
    dir: tempfile::TempDir,
    args: Vec<String>,
    // Last: the broker outlives the nodes when the lab is dropped.
    _broker: Mosquitto,
}

impl Lab {
    /// Three honest nodes and the attacker (already a member).
    fn start(tag: &str) -> Lab {
        let broker = Mosquitto::start();
        let dir = tempfile::tempdir().expect("temp dir");
        let cluster = format!("adv-{tag}-{}", std::process::id());
        // The attacker is a member: its id is in the genesis.
        let key = edgeminer::identity::Identity::ephemeral(&mut rand_core::OsRng);
        let mallory = format!("{}=mallory", key.id);
        let genesis = make_lab(
            dir.path(),
            &cluster,
            &["h1", "h2", "h3"],
            "8..10",
            &["--member", &mallory],
        );
        let config = dir.path().join("config.toml");
        // Short timeouts: rounds the attacker wins by election end sooner.
        std::fs::write(
            &config,
            "election_timeout_ms = 2000\ninit_timeout_ms = 4000\n",
        )
        .expect("write config");
        let id = genesis.cluster_id.parse().expect("a cluster id");
        let atk = Attacker::connect(broker.port, &cluster, id, key);
        atk.announce("mallory");
        let args: Vec<String> = [
            "--genesis",
            &genesis.arg(),
            "--threads",
            "1",
            "--broker",
            &broker.url(),
            "--config",
            config.to_str().expect("utf-8 temp path"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut lab = Lab {
            nodes: Vec::new(),
            atk,
            dir,
            args,
            _broker: broker,
        };
        for i in 1..=3 {
            let node = lab.node(&format!("h{i}"));
            lab.nodes.push(node);
        }
        lab
    }

    fn state(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// An honest node, logging at debug level (stale replays are debug).
    fn node(&self, name: &str) -> Node {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        Node::start_logging(name, &self.state(name), &args, "edgeminer=debug")
    }

    fn height(&self) -> usize {
        self.nodes.iter().map(ledger_len).min().unwrap_or(0)
    }

    /// Waits until every honest node has committed `n` transactions.
    fn commits(&self, n: usize) {
        let ok = wait_until(Duration::from_secs(120), || {
            self.nodes.iter().all(|x| ledger_len(x) >= n)
        });
        assert!(
            ok,
            "the cluster stopped short of {n} commits:\n{}",
            logs(&self.nodes)
        );
    }

    /// Every honest node's log without colour codes.
    fn log(&self) -> String {
        self.nodes
            .iter()
            .map(|n| plain(&std::fs::read_to_string(&n.log).unwrap_or_default()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits until some honest node logged a line holding every part.
    fn logged(&self, parts: &[&str]) {
        let found = wait_until(STEP, || {
            self.log()
                .lines()
                .any(|l| parts.iter().all(|p| l.contains(p)))
        });
        if !found {
            // The refusals that were logged, once each, without timestamps.
            let mut seen: Vec<String> = self
                .log()
                .lines()
                .filter(|l| l.contains("refused"))
                .map(|l| l.split_once(' ').map_or(l, |(_, rest)| rest).to_string())
                .collect();
            seen.sort();
            seen.dedup();
            seen.truncate(40);
            panic!(
                "no honest node logged a line with {parts:?}; refusals logged:\n{}\n{}",
                seen.join("\n"),
                logs(&self.nodes)
            );
        }
    }

    /// The honest nodes' names and ids.
    fn honest_ids(&self) -> Vec<NodeId> {
        let ids = self.atk.others();
        assert!(ids.len() >= 3, "the honest keys were seen: {ids:?}");
        ids
    }

    /// Stops everyone; the ledgers agree on at least `min` transactions,
    /// every proof of work checks, and the attacker led none of them.
    fn finish(mut self, min: usize) -> Vec<Row> {
        for n in &self.nodes {
            assert!(alive(n), "{} died:\n{}", n.name, logs(&self.nodes));
        }
        let ledgers = stop_and_compare(&mut self.nodes, min);
        let me = self.atk.me().to_string();
        for r in &ledgers[0] {
            check_row(r);
            assert_ne!(r.leader, me, "the attacker led tx {}", r.transaction);
        }
        ledgers[0].clone()
    }
}

/// Whether the process still runs (not a zombie).
fn alive(n: &Node) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", n.pid()))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

/// Resident memory of a node, in KiB.
fn rss_kib(n: &Node) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", n.pid())).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Drops ANSI colour sequences.
fn plain(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The original's first fraud test: election votes under other nodes' ids.
#[test]
fn forged_election_votes_are_refused() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::start("votes");
    lab.commits(1);
    let victims = lab.honest_ids();
    let mut mark = lab.atk.mark();
    for _ in 0..3 {
        let (tx, round, prev) = lab.atk.next_vote(STEP, mark).expect("an election");
        mark = lab.atk.mark();
        // Also for the next transactions: on a loaded machine those for
        // `tx` may arrive after its commit, stale and dropped unread.
        let rounds = (0..20).flat_map(|ahead| (round..round + 3).map(move |r| (tx + ahead, r)));
        for &v in &victims {
            for (tx, r) in rounds.clone() {
                let vote = Payload::Vote(wire::Vote {
                    candidate: lab.atk.me(),
                    prev,
                });
                let forged = lab.atk.signed_as(v, tx, r, vote.clone());
                lab.atk
                    .publish(&lab.atk.topics.own(Family::Election, v), forged, false);
                // The same, on the attacker's own topic.
                let forged = lab.atk.signed_as(v, tx, r, vote);
                lab.atk.publish(
                    &lab.atk.topics.own(Family::Election, lab.atk.me()),
                    forged,
                    false,
                );
            }
        }
    }
    lab.logged(&[
        "election: refused a message claiming to be from h",
        "bad signature",
    ]);
    lab.logged(&["election: refused", "the topic names sender"]);
    let h = lab.height();
    lab.commits(h + 2);
    lab.finish(h + 2);
}

/// The original's second fraud test: a challenge from a node nobody elected.
#[test]
fn challenges_from_unelected_nodes_are_refused() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::start("challenge");
    lab.commits(1);
    let mut mark = lab.atk.mark();
    for _ in 0..3 {
        let (tx, round, _, honest) = lab.atk.next_challenge(STEP, mark).expect("a challenge");
        mark = lab.atk.mark();
        let topic = lab.atk.topics.own(Family::Challenge, lab.atk.me());
        // No certificate at all, then the real leader's certificate.
        for votes in [Vec::new(), honest.votes.clone()] {
            let c = Challenge {
                difficulty: 8,
                salt: [0xAA; 12],
                votes,
                ..honest.clone()
            };
            for r in [round, round + 1] {
                lab.atk.publish(
                    &topic,
                    lab.atk.signed(tx, r, Payload::Challenge(c.clone())),
                    true,
                );
            }
        }
    }
    lab.logged(&[
        "challenge: refused a message claiming to be from mallory",
        "the election certificate is invalid",
    ]);
    let h = lab.height();
    lab.commits(h + 2);
    let rows = lab.finish(h + 2);
    // Nothing was mined on the attacker's salt (base64 of 0xAA bytes).
    assert!(rows
        .iter()
        .all(|r| !r.preimage.contains("qqqqqqqqqqqqqqqq")));
}

/// The original's third fraud test: approvals forged under other ids, for
/// the attacker's own solution only.
#[test]
fn forged_solution_votes_are_refused() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::start("approvals");
    lab.commits(1);
    let victims = lab.honest_ids();
    let mut mark = lab.atk.mark();
    for _ in 0..3 {
        let (tx, round, cref, c) = lab.atk.next_challenge(STEP, mark).expect("a challenge");
        mark = lab.atk.mark();
        let seed = lab.atk.mine(&c);
        let own = lab.atk.signed(
            tx,
            round,
            Payload::Solution(Solution {
                challenge: cref,
                seed,
            }),
        );
        let sref = edgeminer::protocol::reference(
            &Envelope::decode(&own, wire::MAX_PHASE_MESSAGE)
                .expect("our own envelope decodes")
                .body,
        );
        lab.atk.publish(
            &lab.atk.topics.own(Family::Solution, lab.atk.me()),
            own,
            false,
        );
        lab.atk.approvals_as(&victims, tx, sref, 4);
        // The cluster commits a transaction every few milliseconds: on a
        // loaded machine the forgeries for `tx` arrive after its commit and
        // are dropped as stale before their signature is looked at. Some
        // for the next transactions always arrive while theirs is open.
        for ahead in 1..20 {
            lab.atk.approvals_as(&victims, tx + ahead, sref, 1);
        }
    }
    lab.logged(&[
        "voting: refused a message claiming to be from h",
        "bad signature",
    ]);
    let h = lab.height();
    lab.commits(h + 2);
    lab.finish(h + 2);
}

/// A key announced under another node's id, and that node's retained key
/// and presence overwritten: refused, and repaired by the owner.
#[test]
fn keys_and_presence_under_other_ids_are_refused() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = Lab::start("keys");
    lab.commits(1);
    let victims = lab.honest_ids();
    for &v in &victims {
        let key = lab.atk.signed_as(
            v,
            0,
            0,
            Payload::PubKey(PubKey {
                cluster: lab.atk.cluster_id,
                key: lab.atk.id.public,
                name: "h1".into(),
            }),
        );
        lab.atk
            .publish(&lab.atk.topics.own(Family::PubKey, v), key, true);
        let gone = lab.atk.signed_as(
            v,
            0,
            0,
            Payload::Presence(Presence {
                online: false,
                incarnation: u64::MAX,
                name: "gone".into(),
                threads: 0,
                version: "0".into(),
            }),
        );
        lab.atk
            .publish(&lab.atk.topics.own(Family::Init, v), gone, true);
    }
    lab.logged(&[
        "pubkey: refused a message claiming to be from",
        "the key does not hash to the claimed id",
    ]);
    lab.logged(&[
        "init: refused a message claiming to be from h",
        "bad signature",
    ]);
    // A node that restarts now reads the forged retained messages first.
    let h = lab.height();
    lab.nodes[2].kill9();
    let restarted = lab.node("h3");
    lab.nodes[2] = restarted;
    lab.commits(h + 2);
    lab.finish(h + 2);
}

/// Messages of earlier rounds and transactions published again.
#[test]
fn replayed_messages_change_nothing() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::start("replay");
    lab.commits(2);
    let recorded = lab.atk.seen();
    lab.commits(3);
    for s in recorded.iter().filter(|s| s.body.is_some()) {
        lab.atk.publish(&s.topic, s.payload.clone(), false);
    }
    lab.logged(&["stale, transaction already committed"]);
    let h = lab.height();
    lab.commits(h + 2);
    let rows = lab.finish(h + 2);
    let mut txs: Vec<u64> = rows.iter().map(|r| r.transaction).collect();
    txs.dedup();
    assert_eq!(txs.len(), rows.len(), "one row per transaction");
}

/// Another node's seed claimed as the attacker's own.
#[test]
fn stolen_seeds_are_refused() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::start("steal");
    let mut mark = lab.atk.mark();
    for _ in 0..4 {
        let (body, sol) = lab.atk.next_solution(STEP, mark).expect("a solution");
        mark = lab.atk.mark();
        let stolen = lab.atk.signed(body.tx, body.round, Payload::Solution(sol));
        lab.atk.publish(
            &lab.atk.topics.own(Family::Solution, lab.atk.me()),
            stolen,
            false,
        );
    }
    lab.logged(&[
        "solution: refused a message claiming to be from mallory",
        "the seed does not meet the difficulty",
    ]);
    let h = lab.height();
    lab.commits(h + 2);
    let me = lab.atk.me().to_string();
    let rows = lab.finish(h + 2);
    assert!(rows.iter().all(|r| r.winner != me), "a stolen seed won");
}

/// Two different signed votes for one round: the attacker is named and
/// ignored from then on.
#[test]
fn equivocators_are_named_and_ignored() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::start("equivocate");
    lab.commits(1);
    let ids = lab.honest_ids();
    let mark = lab.atk.mark();
    let (tx, round, prev) = lab.atk.next_vote(STEP, mark).expect("an election");
    lab.atk.equivocate(tx, round, prev, ids[0], ids[1]);
    lab.logged(&[
        "mallory",
        "signed two conflicting messages; ignoring it from now on",
    ]);
    // Anything it signs later is dropped unread. The cluster commits a
    // transaction every few milliseconds: votes for this and the next
    // transactions, so that some arrive before their transaction is
    // committed (a stale one is dropped before anyone looks at its signer).
    let mark = lab.atk.mark();
    let (tx, round, prev) = lab.atk.next_vote(STEP, mark).expect("an election");
    for ahead in 0..50 {
        let vote = lab.atk.signed(
            tx + ahead,
            round,
            Payload::Vote(wire::Vote {
                candidate: ids[0],
                prev,
            }),
        );
        lab.atk.publish(
            &lab.atk.topics.own(Family::Election, lab.atk.me()),
            vote,
            false,
        );
    }
    lab.logged(&["ignored a known liar"]);
    let h = lab.height();
    lab.commits(h + 2);
    lab.finish(h + 2);
}

/// Bytes that are not messages, on every topic, under real and made-up ids.
#[test]
fn garbage_on_every_topic_is_refused_without_harm() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::start("garbage");
    lab.commits(1);
    let before: Vec<u64> = lab.nodes.iter().map(rss_kib).collect();
    let mut ids = lab.honest_ids();
    ids.push(NodeId([0x66; 8]));
    ids.push(lab.atk.me());
    let vote = lab.atk.signed(
        1,
        0,
        Payload::Vote(wire::Vote {
            candidate: ids[0],
            prev: [0; 16],
        }),
    );
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng as u8
            })
            .collect()
    };
    let mut payloads: Vec<Vec<u8>> = vec![
        Vec::new(),
        vec![0xff],
        vote[..vote.len() / 2].to_vec(),
        vote.iter().copied().chain([0u8; 3]).collect(),
        // An envelope whose body claims a gigabyte, then a huge array.
        vec![0x82, 0x5a, 0x40, 0, 0, 0, 0x58, 0x40],
        vec![0x82, 0x5b, 0, 0, 0, 0x10, 0, 0, 0, 0],
        vec![0x9b, 0x0f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        // Arrays nested sixty thousand deep (within an MQTT packet a node
        // takes; larger ones are the next test's matter).
        std::iter::repeat_n(0x81u8, 60_000).collect(),
        // Oversized for every phase and for certificates.
        noise(600),
        noise(40 * 1024),
    ];
    for n in [1, 7, 64, 200, 511] {
        payloads.push(noise(n));
    }
    let families = Family::ALL;
    for &id in &ids {
        for f in families {
            let topic = lab.atk.topics.own(f, id);
            for p in &payloads {
                lab.atk.publish(&topic, p.clone(), false);
            }
            // A valid vote where it does not belong.
            lab.atk.publish(&topic, vote.clone(), false);
        }
        lab.atk
            .publish(&lab.atk.topics.commit(id), payloads[9].clone(), false);
        lab.atk
            .publish(&lab.atk.topics.sync(id), payloads[8].clone(), false);
    }
    lab.logged(&["refused a message claiming to be from", "undecodable"]);
    lab.logged(&["refused a message claiming to be from", "exceeds the"]);
    lab.logged(&[
        "refused a message claiming to be from",
        "on the wrong topic family",
    ]);
    let h = lab.height();
    lab.commits(h + 2);
    for (n, b) in lab.nodes.iter().zip(&before) {
        let after = rss_kib(n);
        assert!(
            after < b + 16 * 1024,
            "{} grew from {b} KiB to {after} KiB",
            n.name
        );
    }
    lab.finish(h + 2);
}

/// A retained message larger than a node accepts, on the cluster's topics:
/// the nodes must not lose the broker over it.
#[test]
fn an_oversized_retained_message_does_not_cut_nodes_off() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::start("oversized");
    lab.commits(1);
    let topic = lab.atk.topics.own(Family::Init, NodeId([0x77; 8]));
    lab.atk.publish(&topic, vec![0x5a; 1 << 20], true);
    let h = lab.height();
    lab.commits(h + 2);
    lab.finish(h + 2);
}
