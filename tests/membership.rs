//! Membership on a real Mosquitto: only the roster of the genesis counts,
//! and it changes only by commit.
//!
//! - a board too many, and a second cluster of the same name with its own
//!   roster, change nothing in a cluster (the fork that a shared name and a
//!   node count used to make);
//! - certificates forged with minted keys, retained before the cluster
//!   starts and raced while it runs, are refused, and a member's claim of
//!   a far-future transaction starts no endless catch-up;
//! - a dead board is removed and a new one added with `edgeminer roster`,
//!   the new one catches up from the genesis and takes part, and `verify`
//!   checks the ledger with its changes and names a doctored record.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use edgeminer::identity::Identity;
use edgeminer::protocol::Publish;
use edgeminer::sim::forge::Forger;

/// Publishes raw bytes with `mosquitto_pub` (an outsider needs no edgeminer).
fn publish(broker: &Mosquitto, p: &Publish) {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), &p.payload).expect("write payload");
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(["-h", "127.0.0.1", "-p", &broker.port.to_string(), "-q", "1"])
        .args(["-t", &p.topic, "-f"])
        .arg(file.path());
    if p.retain {
        cmd.arg("-r");
    }
    let out = cmd
        .output()
        .expect("mosquitto_pub (apt-get install mosquitto-clients)");
    assert!(out.status.success(), "mosquitto_pub: {out:?}");
}

/// Keys anyone can mint.
fn minted(n: usize) -> Vec<Identity> {
    (0..n)
        .map(|_| Identity::ephemeral(&mut rand_core::OsRng))
        .collect()
}

fn load_genesis(lab: &Lab) -> Arc<edgeminer::protocol::Genesis> {
    Arc::new(edgeminer::genesis_file::load(&lab.genesis).expect("the lab's genesis"))
}

/// The agreed head of a node's ledger: its height and the reference the
/// next transaction builds on.
fn head(state: &Path) -> (u64, [u8; 16]) {
    let (genesis, history) = edgeminer::store::ledger::read(state)
        .expect("a readable ledger")
        .expect("a ledger");
    let h = history.height();
    let prev = match h {
        0 => genesis.prev(),
        _ => history.commits[(h - 1) as usize].reference,
    };
    (h, prev)
}

/// `edgeminer_rejected_messages_total` of a node, by reason.
fn refusals(port: u16) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Ok(mut resp) = ureq::get(&format!("http://127.0.0.1:{port}/metrics")).call() else {
        return out;
    };
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("edgeminer_rejected_messages_total{") else {
            continue;
        };
        let reason = rest
            .split("reason=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("?");
        let n: f64 = rest
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        *out.entry(reason.to_string()).or_default() += n as u64;
    }
    out
}

fn wait_height(nodes: &[Node], height: usize, limit: Duration) {
    assert!(
        wait_until(limit, || nodes.iter().all(|n| ledger_len(n) >= height)),
        "not {height} commits in {limit:?}:\n{}",
        logs(nodes)
    );
}

#[test]
fn a_board_too_many_and_a_namesake_cluster_change_nothing() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let name = format!("fork-{}", std::process::id());
    // Cluster A: three members, a fixed roster (no admin key).
    let a = make_lab(
        &dir.path().join("a"),
        &name,
        &["a1", "a2", "a3"],
        "8..10",
        &[],
    );
    // Cluster B: the same name, another roster.
    let b = make_lab(
        &dir.path().join("b"),
        &name,
        &["b1", "b2", "b3"],
        "8..10",
        &[],
    );
    assert_ne!(a.cluster_id, b.cluster_id);
    let metrics = free_port();
    let maddr = format!("127.0.0.1:{metrics}");
    let mut nodes = Vec::new();
    for (lab, sub) in [(&a, "a"), (&b, "b")] {
        for i in 1..=3 {
            let n = format!("{sub}{i}");
            let mut args = vec![
                "--broker".to_string(),
                broker.url(),
                "--genesis".into(),
                lab.arg(),
            ];
            if n == "a1" {
                args.extend(["--metrics-addr".into(), maddr.clone()]);
            }
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            nodes.push(Node::start(&n, &dir.path().join(sub).join(&n), &argv));
        }
    }
    // A board too many: started with A's genesis, in no roster.
    let extra_state = dir.path().join("a").join("a4");
    let extra_id = keygen(&extra_state);
    let mut extra = Node::start(
        "a4",
        &extra_state,
        &["--broker", &broker.url(), "--genesis", &a.arg()],
    );
    let status = extra
        .wait_exit(Duration::from_secs(20))
        .expect("a board outside the roster stops by itself");
    assert_eq!(status.code(), Some(78), "{}", extra.log_text());
    let said = extra.log_text();
    assert!(
        said.contains(&extra_id) && said.contains(&a.cluster_id),
        "{said}"
    );

    wait_height(&nodes, 4, Duration::from_secs(90));
    let counts = refusals(metrics);
    let ledgers = {
        let log = logs(&nodes);
        for n in nodes.iter_mut() {
            assert!(n.stop(), "{} did not stop cleanly:\n{log}", n.name);
        }
        nodes.iter().map(|n| ledger(&n.state)).collect::<Vec<_>>()
    };
    // Each cluster agrees with itself, and they share no row.
    for (group, ids) in [(&ledgers[..3], &a.ids), (&ledgers[3..], &b.ids)] {
        let common = group.iter().map(Vec::len).min().unwrap_or(0);
        assert!(common >= 4);
        for l in group {
            assert_eq!(l[..common], group[0][..common]);
            assert!(
                l.iter().all(|r| ids.contains(&r.winner)),
                "a row of the other cluster"
            );
        }
    }
    eprintln!("refusals at a1 (cluster A) with cluster B on the broker: {counts:?}");
    assert!(
        counts.get("other_cluster").copied().unwrap_or(0)
            + counts.get("not_a_member").copied().unwrap_or(0)
            > 0,
        "cluster B's messages were not refused at a1: {counts:?}"
    );
}

#[test]
fn forged_certificates_and_far_future_claims_are_refused() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().expect("temp dir");
    // Four members, quorum 3; m4's board never runs, and its key is stolen.
    let lab = make_lab(
        dir.path(),
        &format!("forge-{}", std::process::id()),
        &["m1", "m2", "m3", "m4"],
        "8..10",
        &[],
    );
    let genesis = load_genesis(&lab);
    let outsider = Forger::new(genesis.clone(), minted(3));
    let (_, cert) = outsider.transaction(1, genesis.prev());
    // Retained before anyone starts: it would be row 1 if keys counted.
    publish(&broker, &outsider.certificate(0, 1, cert, true));

    let metrics = free_port();
    let maddr = format!("127.0.0.1:{metrics}");
    let mut nodes: Vec<Node> = (1..=3)
        .map(|i| {
            let n = format!("m{i}");
            let mut args = vec![
                "--broker".to_string(),
                broker.url(),
                "--genesis".into(),
                lab.arg(),
            ];
            if i == 1 {
                args.extend(["--metrics-addr".into(), maddr.clone()]);
            }
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            Node::start(&n, &dir.path().join(&n), &argv)
        })
        .collect();
    wait_height(&nodes, 3, Duration::from_secs(90));

    // While it runs: every message of the next transaction, then its
    // certificate, from the minted keys; and from the stolen member key, a
    // certificate with minted keys beside it and far-future claims.
    let stolen = Identity::load_existing(&dir.path().join("m4")).expect("m4's key");
    let mut keys = vec![stolen];
    keys.extend(minted(2));
    let insider = Forger::new(genesis.clone(), keys);
    let far = 1u64 << 62;
    for _ in 0..5 {
        let (h, prev) = head(&nodes[0].state);
        let (msgs, cert) = outsider.transaction(h + 1, prev);
        for p in &msgs {
            publish(&broker, p);
        }
        publish(&broker, &outsider.certificate(0, h + 1, cert, true));
        let (_, mixed) = insider.transaction(h + 1, prev);
        publish(&broker, &insider.certificate(0, h + 1, mixed.clone(), true));
        let responder = edgeminer::identity::Identity::load_existing(&nodes[1].state)
            .expect("m2's key")
            .id;
        publish(&broker, &insider.sync(0, far, responder));
        publish(&broker, &insider.vote(0, far, 0, prev, insider.id(0)));
        publish(&broker, &insider.certificate(0, far, mixed, false));
        std::thread::sleep(Duration::from_millis(500));
    }
    // Count the catch-up requests members publish from now on.
    let topic = format!("edgeminer/{}/voting/+/sync", lab.cluster);
    let sub = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string()])
        .args(["-t", &topic, "-W", "15", "-v"])
        .output()
        .expect("mosquitto_sub");
    let requests = String::from_utf8_lossy(&sub.stdout).lines().count();
    let before = nodes.iter().map(ledger_len).min().unwrap_or(0);
    wait_height(&nodes, before + 2, Duration::from_secs(60));
    let counts = refusals(metrics);
    let forged: Vec<String> = outsider
        .keys
        .iter()
        .chain(&insider.keys[1..])
        .map(|k| k.id.to_string())
        .collect();
    let ledgers = stop_and_compare(&mut nodes, before + 2);
    for r in &ledgers[0] {
        assert!(
            !forged.contains(&r.winner) && !forged.contains(&r.leader),
            "forged row {r:?}"
        );
        assert_ne!(
            r.winner,
            insider.id(0).to_string(),
            "the stolen key's board never ran"
        );
    }
    eprintln!("refusals at m1: {counts:?}; catch-up requests in 15 s after the far-future claims: {requests}");
    assert!(
        counts.get("not_a_member").copied().unwrap_or(0) >= 5,
        "{counts:?}"
    );
    // One lying member is below the roster's follow threshold (2 of 4):
    // no node may start asking. (Before, every node asked every second.)
    assert!(
        requests <= 3,
        "{requests} catch-up requests:\n{}",
        String::from_utf8_lossy(&sub.stdout)
    );
}

/// Runs `edgeminer roster ...` as the operator would; its stdout.
fn roster(lab: &Lab, broker: &Mosquitto, admin: &Path, args: &[&str]) -> String {
    let mut argv = vec!["roster"];
    argv.extend_from_slice(&args[..1]);
    let (genesis, url) = (lab.arg(), broker.url());
    argv.extend(["--genesis", &genesis, "--broker", &url]);
    argv.extend(["--admin-key", admin.to_str().expect("utf-8 path")]);
    argv.extend_from_slice(&args[1..]);
    let out = edgeminer(&argv);
    assert!(
        out.status.success(),
        "roster {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A copy of `from`'s ledger in `to` with transaction `tx` replaced by a
/// certificate of minted keys, built on the right previous transaction.
fn doctor(from: &Path, to: &Path, tx: u64) {
    let records = edgeminer::store::records::read_records(from).expect("the records");
    let (genesis, history) = edgeminer::store::ledger::read(from)
        .expect("a readable ledger")
        .expect("a ledger");
    let prev = match tx {
        1 => genesis.prev(),
        _ => history.commits[(tx - 2) as usize].reference,
    };
    let forger = Forger::new(Arc::new(genesis), minted(3));
    let (_, forged) = forger.transaction(tx, prev);
    let mut file = edgeminer::store::records::RecordFile::open(to).expect("a new ledger");
    for (i, r) in records.iter().enumerate() {
        let record = if i as u64 == tx {
            forged.encode()
        } else {
            r.clone()
        };
        file.append(&record).expect("append");
    }
}

#[test]
fn a_dead_board_is_removed_and_a_new_one_added_by_commit() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let admin = dir.path().join("admin.key");
    let names = ["p1", "p2", "p3", "p4", "p5"];
    let lab = make_lab(
        dir.path(),
        &format!("reconf-{}", std::process::id()),
        &names,
        "8..10",
        &["--admin-key", admin.to_str().expect("utf-8 path")],
    );
    let args = [
        "--broker".to_string(),
        broker.url(),
        "--genesis".into(),
        lab.arg(),
    ];
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut nodes: Vec<Node> = names
        .iter()
        .map(|n| Node::start(n, &dir.path().join(n), &argv))
        .collect();
    wait_height(&nodes, 3, Duration::from_secs(90));

    // p5 dies for good; the operator removes it.
    nodes[4].kill9();
    let dead = nodes.pop().expect("p5");
    let said = roster(&lab, &broker, &admin, &["remove", &lab.ids[4]]);
    eprintln!("roster remove: {said}");
    let h = nodes.iter().map(ledger_len).max().unwrap_or(0);
    wait_height(&nodes, h + 3, Duration::from_secs(60));

    // A new board: its id, the change, then the board.
    let p6_state = dir.path().join("p6");
    let p6 = keygen(&p6_state);
    let asked = Instant::now();
    let said = roster(&lab, &broker, &admin, &["add", &format!("{p6}=p6")]);
    let committed = asked.elapsed();
    // "committed: roster version 2 is in force from tx N"
    let from: usize = said
        .split("in force from tx ")
        .last()
        .and_then(|t| t.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .expect("the transaction the new roster decides first");
    let change_at = from - 1;
    wait_height(&nodes[..1], from, Duration::from_secs(30));
    let decided = asked.elapsed();
    eprintln!(
        "roster add: {said}\nrequest to commit of the change: {committed:?}; to the first transaction decided by the new roster: {decided:?}"
    );
    nodes.push(Node::start("p6", &p6_state, &argv));
    let took_part = wait_until(Duration::from_secs(120), || {
        ledger(&nodes[0].state)
            .iter()
            .any(|r| r.winner == p6 || r.leader == p6)
    });
    assert!(took_part, "p6 never led or won:\n{}", logs(&nodes));
    let ledgers = stop_and_compare(&mut nodes, change_at + 1);
    assert!(
        ledgers[4].len() >= change_at,
        "p6 caught up from the genesis"
    );
    assert!(
        ledgers[0]
            .iter()
            .skip(h + 3)
            .all(|r| r.winner != lab.ids[4]),
        "the removed board won after its removal"
    );
    drop(dead);

    // verify re-checks the chain with its two changes ...
    let out = edgeminer(&["verify", "--state-dir", p6_state.to_str().expect("utf-8")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("roster version 1: 4 members")
            && text.contains("roster version 2: 5 members"),
        "{text}"
    );
    // ... and names the record a non-member's certificate was swapped into.
    let doctored = dir.path().join("doctored");
    doctor(&nodes[0].state, &doctored, 2);
    let out = edgeminer(&["verify", "--state-dir", doctored.to_str().expect("utf-8")]);
    let err = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "a doctored ledger verified: {err}");
    assert!(
        err.contains("transaction 2") && err.contains("not a member"),
        "{err}"
    );
}
