//! What the messages weigh: every kind seen in a real run, the commit
//! certificate as the cluster grows (one confirmation per member of the
//! quorum, no approvals inside: linear in the roster), and what one
//! transaction costs each node in signature checks and bytes.

use super::*;
use crate::wire::{Envelope, CERT_PER_MEMBER, MAX_SIGNED};

/// The kind of a published message, with confirmations apart.
fn kind_of(payload: &[u8]) -> Option<String> {
    let env = Envelope::decode(payload, crate::wire::MAX_CERT_MESSAGE).ok()?;
    let body = Body::decode(&env.body).ok()?;
    Some(match body.payload {
        Payload::Approval(Approval {
            stance: Stance::Confirm,
            ..
        }) => "confirmation".into(),
        other => other.kind().to_string(),
    })
}

/// Runs `sim` until every node committed `height`, recording the smallest
/// and largest message of each kind on the way.
fn sizes_until(sim: &mut Sim, height: u64, steps: usize) -> BTreeMap<String, (usize, usize)> {
    let mut sizes: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for _ in 0..steps {
        if sim.nodes.iter().all(|n| n.height() >= height) {
            return sizes;
        }
        for (_, p) in sim.queues.iter().flatten() {
            if let Some(kind) = kind_of(p) {
                let e = sizes.entry(kind).or_insert((usize::MAX, 0));
                e.0 = e.0.min(p.len());
                e.1 = e.1.max(p.len());
            }
        }
        sim.step();
    }
    panic!("no commit of {height} at every node within {steps} steps");
}

/// Sizes of every message kind seen in a real run (printed with
/// `cargo test message_sizes -- --nocapture`); single-signature messages,
/// confirmations included, stay within [`MAX_SIGNED`] bytes.
#[test]
fn message_sizes() {
    let mut sim = Sim::new(4, 31);
    sim.connect_all();
    let sizes = sizes_until(&mut sim, 3, 200_000);
    for (kind, (lo, hi)) in &sizes {
        println!("{kind:>12}: {lo}..{hi} bytes");
        if !matches!(kind.as_str(), "challenge" | "commit" | "roster view") {
            assert!(*hi <= MAX_SIGNED, "{kind} is {hi} bytes");
        }
    }
    assert_eq!(sizes.len(), 9, "every kind was seen: {sizes:?}");
}

/// A commit certificate holds per member at most a vote, a confirmation
/// and two keys ([`CERT_PER_MEMBER`]), so it grows linearly: at 64 members
/// with a majority quorum it fits in 16 KiB (a certificate whose
/// confirmations carried their quorum's approvals grew as q², to over
/// 100 KiB at 64). Printed with `cargo test certificates_grow_linearly --
/// --nocapture`.
#[test]
fn certificates_grow_linearly() {
    for n in [16, 32, 64] {
        let mut sim = Sim::new(n, 5);
        sim.connect_all();
        assert!(sim.run_until(1, 2_000_000), "{n} members commit");
        let commit = (sim.disks.iter())
            .filter_map(|d| d.records.first().map(Vec::len))
            .max()
            .expect("a record");
        println!("{n} members: commit certificate of {commit} bytes");
        assert!(
            commit <= 2048 + n * CERT_PER_MEMBER,
            "{n} members: {commit} bytes"
        );
        if n == 64 {
            assert!(commit <= 16 * 1024, "{commit} bytes at 64 members");
        }
        let first: Vec<_> = sim.ledgers.iter().map(|l| l.first()).collect();
        assert!(first.windows(2).all(|w| w[0] == w[1]), "{n} members agree");
    }
}

/// What one transaction costs each node as the cluster grows, between
/// its first and its fourth commit: signatures checked (P-256
/// verifications, each signature once) and bytes received. Checks grow
/// linearly (a vote, a solution, an approval, a confirmation and a commit
/// from each member, at most), and so do bytes: messages of constant size
/// from each member, and one certificate of O(N) bytes, the leader's
/// (when every member published its certificate, bytes grew as N²: 784 kB
/// per node and transaction at 64 members). Printed with `cargo test
/// per_node_cost -- --nocapture`.
#[test]
fn per_node_cost_per_transaction() {
    for n in [8, 16, 32, 64] {
        let mut sim = Sim::new(n, 9);
        sim.connect_all();
        assert!(sim.run_until(1, 2_000_000), "{n} members commit");
        let checks = |sim: &Sim| {
            sim.nodes
                .iter()
                .map(|x| x.sigs.checks())
                .collect::<Vec<_>>()
        };
        let (c0, b0) = (checks(&sim), sim.received.clone());
        assert!(
            sim.run_until(4, 6_000_000),
            "{n} members commit thrice more"
        );
        let c1 = checks(&sim);
        let per_tx = |a: u64, b: u64| (b - a) as f64 / 3.0;
        let most_checks = (0..n).map(|i| per_tx(c0[i], c1[i])).fold(0.0, f64::max);
        let most_bytes = (0..n)
            .map(|i| per_tx(b0[i], sim.received[i]))
            .fold(0.0, f64::max);
        println!(
            "{n} members: per transaction and node, at most {most_checks:.0} signatures checked, {most_bytes:.0} bytes received"
        );
        assert!(
            most_checks <= (6 * n + 10) as f64,
            "{n}: {most_checks} checks"
        );
        // About 740 bytes per member and 1.4 kB more: a bound with room,
        // which a second certificate per transaction at 64 would break.
        assert!(
            most_bytes <= (1_000 * n + 4_096) as f64,
            "{n}: {most_bytes} bytes"
        );
    }
}
