//! Membership changes in the in-memory cluster: the admin's request is
//! proposed by a leader, committed with a transaction and in force from the
//! next one; removed members stop, added boards catch up as learners and
//! then take part; requests nobody may make change nothing.

use super::*;
use crate::protocol::roster::sign_change;
use crate::wire::roster::{Change, Entry};

/// Publishes an admin change request (retained, as `edgeminer roster` does).
fn request(sim: &mut Sim, signer: &Identity, change: Change) {
    let raw = sign_change(&sim.cfg.genesis, &signer.key, change);
    let topic = sim.nodes[0].topics().own(Family::Roster, sim.admin.id);
    sim.broadcast(topic, raw, true);
}

/// The transaction that committed a roster change, as node `i` saw it.
fn change_tx(sim: &Sim, i: usize) -> Option<u64> {
    sim.ledgers[i]
        .iter()
        .find(|c| c.change.is_some())
        .map(|c| c.tx)
}

#[test]
fn removed_member_stops_and_the_rest_go_on() {
    for seed in 0..8 {
        let mut sim = Sim::new(4, seed);
        sim.connect_all();
        assert!(sim.run_until(2, 50_000), "seed {seed}: no start");
        let base = sim.nodes[0].roster().hash();
        let gone = sim.ids[3].id;
        let admin = sim.admin.clone();
        request(
            &mut sim,
            &admin,
            Change {
                base,
                quorum: 2,
                add: vec![],
                remove: vec![gone],
            },
        );
        assert!(
            sim.run_until(6, 200_000),
            "seed {seed}: stalled after the removal"
        );
        sim.check_agreement();
        assert!(!sim.up[3], "seed {seed}: the removed member still runs");
        assert!(matches!(sim.nodes[3].stopped(), Some(Stop::Removed { .. })));
        let at = change_tx(&sim, 0).expect("a committed change");
        for i in 0..3 {
            let r = sim.nodes[i].roster();
            assert_eq!((r.version(), r.len(), r.quorum()), (1, 3, 2), "seed {seed}");
            assert_eq!(r.since(), at + 1);
            // Nobody elects or backs the removed member after the change.
            for c in sim.ledgers[i].iter().filter(|c| c.tx > at) {
                assert_ne!(c.leader, gone, "seed {seed}: tx {}", c.tx);
                assert_ne!(c.winner, gone, "seed {seed}: tx {}", c.tx);
            }
        }
    }
}

#[test]
fn added_board_catches_up_then_takes_part() {
    for seed in 0..8 {
        let mut sim = Sim::with_members(4, 3, seed);
        sim.connect_all();
        assert!(sim.run_until(2, 50_000), "seed {seed}: no start");
        assert!(sim.up[3], "the learner waits while commits come");
        assert!(sim.nodes[3].learning());
        let base = sim.nodes[0].roster().hash();
        let admin = sim.admin.clone();
        let new = Entry {
            id: sim.ids[3].id,
            name: "n3".into(),
        };
        request(
            &mut sim,
            &admin,
            Change {
                base,
                quorum: 3,
                add: vec![new],
                remove: vec![],
            },
        );
        // Run until the new member has won or led a transaction.
        let mut took_part = false;
        for _ in 0..400_000 {
            if !sim.step() {
                break;
            }
            let me = sim.ids[3].id;
            took_part = sim.ledgers[0]
                .iter()
                .any(|c| c.winner == me || c.leader == me);
            if took_part {
                break;
            }
        }
        assert!(took_part, "seed {seed}: the added board never led or won");
        sim.check_agreement();
        assert!(sim.nodes[3].is_member() && sim.nodes[3].stopped().is_none());
        assert_eq!(sim.nodes[3].roster().version(), 1);
    }
}

#[test]
fn change_signed_by_a_member_or_for_another_roster_changes_nothing() {
    let mut sim = Sim::new(4, 3);
    sim.connect_all();
    assert!(sim.run_until(2, 50_000));
    let base = sim.nodes[0].roster().hash();
    let remove_one = |base| Change {
        base,
        quorum: 2,
        add: vec![],
        remove: vec![NodeId([0; 8])],
    };
    // A member's key is not the admin's.
    let member = sim.ids[1].clone();
    request(&mut sim, &member, remove_one(base));
    // The admin's, but for a roster nobody has.
    let admin = sim.admin.clone();
    request(&mut sim, &admin, remove_one([9; 16]));
    assert!(sim.run_until(6, 200_000));
    sim.check_agreement();
    for i in 0..4 {
        assert!(sim.up[i]);
        assert_eq!(sim.nodes[i].roster().version(), 0);
        assert!(change_tx(&sim, i).is_none());
    }
}

#[test]
fn board_outside_a_fixed_roster_refuses_to_start() {
    // A genesis without an admin key: the roster never changes.
    let ids: Vec<Identity> = (0..3u64)
        .map(|i| Identity::ephemeral(&mut rand_chacha::ChaCha20Rng::seed_from_u64(i)))
        .collect();
    let members = ids[..2]
        .iter()
        .map(|id| Entry {
            id: id.id,
            name: String::new(),
        })
        .collect();
    let g = Genesis::new("fixed".into(), members, 2, (4, 6), None, None).expect("valid");
    let cfg = config(g);
    let outsider = Node::builder(cfg.clone(), &ids[2]).start(0);
    assert!(matches!(
        outsider.refusal(),
        Some(Stop::NotAMember { fixed: true, .. })
    ));
    let member = Node::builder(cfg.clone(), &ids[0]).start(0);
    assert!(member.refusal().is_none());
}

/// A node resumes its ledger from its rosters file and the last
/// certificate, and gets the head that checking every certificate gives:
/// after a change, with the file one change behind (a crash between the
/// append and the file), without the file, and not with another cluster's.
#[test]
fn a_resumed_head_is_the_whole_ledgers_head() {
    use crate::protocol::head::{resume, saved_rosters, Checked};
    let mut sim = Sim::new(4, 3);
    sim.connect_all();
    assert!(sim.run_until(2, 50_000));
    let base = sim.nodes[0].roster().hash();
    let admin = sim.admin.clone();
    let gone = sim.ids[3].id;
    let change = Change {
        base,
        quorum: 2,
        add: vec![],
        remove: vec![gone],
    };
    request(&mut sim, &admin, change);
    assert!(sim.run_until(5, 200_000));
    let at = change_tx(&sim, 0).expect("a committed change");
    let g = sim.cfg.genesis.clone();
    let sigs = SigCache::default();
    let disk = sim.disks[0].clone();
    let whole = History::verify(&g, &disk.records, &sigs).expect("the ledger checks");
    let same = |r: &crate::protocol::Resumed, w: &crate::protocol::Chain| {
        (r.chain.height(), r.chain.prev(), r.chain.rosters()) == (w.height(), w.prev(), w.rosters())
    };
    let quick =
        resume(&g, &Chain::new(&g), disk.rosters.as_deref(), &disk, &sigs).expect("resumes");
    assert_eq!(quick.checked, Checked::Tail);
    assert!(same(&quick, whole.chain()));
    assert_eq!(quick.chain.roster().len(), 3);
    let (done, _) = quick.last.as_ref().expect("a last commit");
    assert_eq!(done.tx, whole.height());

    // Cut just after the change, with the file written before it.
    let mut cut = disk.clone();
    cut.records.truncate(at as usize);
    let before = saved_rosters(&g, at - 1, &whole.rosters()[..1]);
    let upto = History::verify(&g, &cut.records, &sigs).expect("checks");
    let r = resume(&g, &Chain::new(&g), Some(&before), &cut, &sigs).expect("resumes");
    assert_eq!(r.checked, Checked::Tail);
    assert!(same(&r, upto.chain()));
    assert_eq!(
        r.chain.roster().len(),
        3,
        "the last record's change applied"
    );

    let r = resume(&g, &Chain::new(&g), None, &disk, &sigs).expect("resumes");
    assert!(matches!(r.checked, Checked::Whole(_)));
    assert!(same(&r, whole.chain()));

    let other = Sim::new(4, 4).cfg.genesis;
    let theirs = saved_rosters(&other, whole.height(), &[other.roster()]);
    let r = resume(&g, &Chain::new(&g), Some(&theirs), &disk, &sigs).expect("resumes");
    assert!(matches!(&r.checked, Checked::Whole(why) if why.contains("another cluster")));
    assert!(same(&r, whole.chain()));
}
