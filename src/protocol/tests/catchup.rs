//! Whom a node behind asks: a member heard from just now before one whose
//! only sign is a message the broker kept, and the member that answered
//! the last request before any other.

use super::*;

/// A cluster of four whose node 0 knows everyone's key and has heard
/// nobody for a minute.
fn cluster() -> Sim {
    let mut sim = Sim::new(4, 31);
    sim.connect_all();
    for _ in 0..1_000 {
        if (1..4).all(|i| sim.nodes[0].members.key(sim.ids[i].id).is_some()) {
            break;
        }
        sim.step();
    }
    // Long after: what node 0 heard while starting is old news.
    sim.now += 60_000;
    sim
}

/// A vote of tx 3 by node `i` (evidence that `i` committed tx 2).
fn later_vote(sim: &Sim, i: usize) -> (String, Vec<u8>) {
    let vote = sim.signed(
        i,
        3,
        0,
        Payload::Vote(Vote {
            candidate: sim.ids[i].id,
            prev: [7; 16],
        }),
    );
    (sim.topic(i, Family::Election), vote)
}

fn hand(sim: &mut Sim, i: usize, retained: bool) {
    let (topic, payload) = later_vote(sim, i);
    let now = sim.now;
    sim.nodes[0].handle(
        Input::Message {
            topic: &topic,
            payload: &payload,
            retained,
        },
        now,
    );
}

/// Members 1 and 2 both show tx 2; only one of them is heard live. The
/// request goes to that one, whichever it is (so not by the rotation).
#[test]
fn a_retained_message_is_no_sign_of_life() {
    for (live, kept) in [(1, 2), (2, 1)] {
        let mut sim = cluster();
        hand(&mut sim, kept, true);
        hand(&mut sim, live, false);
        let node = &sim.nodes[0];
        assert_eq!(node.catchup.claim_of(sim.ids[kept].id), 2);
        assert_eq!(
            node.responder(1, sim.now),
            Some(sim.ids[live].id),
            "a live member is asked before one known only from the broker's store"
        );
    }
}

/// After a certificate from member `x` answered a request, `x` is asked
/// for the next transaction, whichever of the live members it is; once a
/// request goes unanswered, the choice rotates again.
#[test]
fn the_member_that_answered_is_asked_next() {
    for x in 1..4 {
        let mut sim = cluster();
        for i in 1..4 {
            hand(&mut sim, i, false);
        }
        let id = sim.ids[x].id;
        // As applying the answer does: the back-off starts afresh.
        sim.nodes[0].catchup.answered(id, 1);
        sim.nodes[0].catchup.unanswered = 0;
        assert_eq!(sim.nodes[0].responder(2, sim.now), Some(id));
        // Once a request goes unanswered, every live member takes its turn.
        let picks: std::collections::BTreeSet<_> = (1..4u32)
            .filter_map(|k| {
                sim.nodes[0].catchup.unanswered = k;
                sim.nodes[0].responder(2, sim.now)
            })
            .collect();
        assert_eq!(picks.len(), 3, "the rotation goes on: {picks:?}");
    }
}

/// A board of a 64-member cluster whose state directory was lost (a new
/// SD card) starts again with its key only: from the messages the broker
/// kept and those of the transactions going on, it fetches every
/// transaction it lacks, checks each certificate, and takes part again.
#[test]
fn a_member_of_64_restarted_with_an_empty_state_catches_up() {
    let mut sim = Sim::new(64, 12);
    // One cache for all: each signature is checked once in the process,
    // which changes nothing but the time the test takes.
    let shared = SigCache::default();
    let start = |sim: &Sim, i: usize| {
        Node::builder(sim.cfg.named(i), &sim.ids[i])
            .rng_seed([i as u8; 32])
            .sig_cache(shared.clone())
            .start(sim.now)
    };
    sim.nodes = (0..64).map(|i| start(&sim, i)).collect();
    sim.connect_all();
    assert!(sim.run_until(3, 4_000_000), "64 members commit 3");
    let k = 17;
    sim.up[k] = false;
    sim.queues[k].clear();
    sim.jobs[k] = None;
    sim.disks[k] = memory::Disk::default();
    sim.ledgers[k].clear();
    sim.nodes[k] = start(&sim, k);
    sim.up[k] = true;
    let retained: Vec<_> = (sim.retained.iter())
        .map(|(t, p)| (t.clone(), p.clone()))
        .collect();
    sim.queues[k].extend(retained);
    sim.input(k, Input::Connected);
    assert!(sim.run_until(5, 6_000_000), "every member reaches tx 5");
    sim.check_agreement();
    assert_eq!(sim.disks[k].records.len(), sim.disks[0].records.len());
    assert_eq!(sim.ledgers[k][..3], sim.ledgers[0][..3], "fetched 1 to 3");
}
