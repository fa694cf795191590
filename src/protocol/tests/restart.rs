//! A member that starts again while the others are at work: it takes part
//! in the round they are in instead of waiting out the init timeout, and a
//! round that elects it gets its challenge.

use super::*;

/// Five members that committed tx 1; then node `r` is killed and started
/// again from its disk.
fn restarted(seed: u64, r: usize, families: &[Family]) -> Sim {
    let mut sim = Sim::new(5, seed);
    sim.connect_all();
    assert!(sim.run_until(1, 50_000), "tx 1 commits");
    restart(&mut sim, r, families);
    sim
}

/// Starts node `r` again from its disk, as a process that was killed:
/// what was on its way to it is lost, and when it connects the broker
/// hands it the retained messages of `families` only (the others lost, or
/// presences overwritten by the wills of earlier starts).
fn restart(sim: &mut Sim, r: usize, families: &[Family]) {
    let disk = &sim.disks[r];
    let g = &sim.cfg.genesis;
    let head = crate::protocol::head::resume(
        g,
        &Chain::new(g),
        disk.rosters.as_deref(),
        disk,
        &SigCache::default(),
    )
    .expect("its own ledger");
    let votes = (disk.votes.as_ref()).map(|b| VoteState::decode(b).expect("a vote state"));
    sim.nodes[r] = Node::builder(sim.cfg.named(r), &sim.ids[r])
        .incarnation(2)
        .rng_seed([9; 32])
        .durable(Durable { head, votes })
        .start(sim.now);
    sim.queues[r].clear();
    sim.jobs[r] = None;
    sim.input(r, Input::Connected);
    let topics = sim.nodes[r].topics().clone();
    let kept: Vec<(String, Vec<u8>)> = (sim.retained.iter())
        .filter(|(t, _)| {
            topics
                .parse(t)
                .is_some_and(|x| families.contains(&x.family))
        })
        .map(|(t, p)| (t.clone(), p.clone()))
        .collect();
    for (t, p) in kept {
        sim.deliver(r, &t, &p);
    }
}

/// Node `from`'s vote for `candidate` in `round` of the transaction node
/// `r` is on, handed to `r` alone; what `r` does.
fn vote_to(sim: &mut Sim, r: usize, from: usize, round: u32, candidate: usize) -> Output {
    let node = &sim.nodes[r];
    let (tx, prev) = (node.height() + 1, node.prev);
    let vote = Payload::Vote(Vote {
        candidate: sim.ids[candidate].id,
        prev,
    });
    let payload = sim.signed(from, tx, round, vote);
    let topic = sim.topic(from, Family::Election);
    let now = sim.now;
    sim.nodes[r].handle(
        Input::Message {
            topic: &topic,
            payload: &payload,
            retained: false,
        },
        now,
    )
}

/// The rounds of the messages of `family` that node `r` publishes in `out`.
fn rounds_sent(sim: &Sim, out: &Output, r: usize, family: Family) -> Vec<u32> {
    let topic = sim.topic(r, family);
    out.publishes()
        .filter(|p| p.topic == topic)
        .map(|p| {
            let env = crate::wire::Envelope::decode(&p.payload, crate::wire::MAX_CERT_MESSAGE)
                .expect("an envelope");
            Body::decode(&env.body).expect("a body").round
        })
        .collect()
}

/// Seen online by nobody but itself (the others' presences were
/// overwritten by the wills of their earlier starts), a restarted member
/// waits in init; the others, who see it online, elect it in round 3. It
/// issues the challenge of that round instead of letting it time out.
#[test]
fn a_restarted_member_that_is_elected_issues_its_challenge() {
    let mut sim = restarted(41, 4, &[Family::PubKey]);
    assert_eq!(sim.nodes[4].phase(), Phase::Init);
    let mut challenges = Vec::new();
    for voter in 0..3 {
        let out = vote_to(&mut sim, 4, voter, 3, 4);
        challenges.extend(rounds_sent(&sim, &out, 4, Family::Challenge));
    }
    assert_eq!(challenges, [3], "one challenge, of the round it won");
    assert_eq!(sim.nodes[4].round(), 3);
    assert_ne!(sim.nodes[4].phase(), Phase::Init);
}

/// A restarted member in its init wait that sees the others vote in round
/// 6 of its next transaction joins round 6 (and votes there) rather than
/// staying at round 0 until the wait ends.
#[test]
fn a_restarted_member_joins_the_round_the_others_are_in() {
    let mut sim = restarted(42, 2, &[Family::PubKey]);
    assert_eq!(sim.nodes[2].phase(), Phase::Init);
    assert_eq!(sim.nodes[2].round(), 0);
    // One is enough with five members and a quorum of three (no liar
    // tolerated: f + 1 = 1).
    let out = vote_to(&mut sim, 2, 0, 6, 1);
    assert_eq!(sim.nodes[2].phase(), Phase::Election);
    assert_eq!(sim.nodes[2].round(), 6);
    assert_eq!(rounds_sent(&sim, &out, 2, Family::Election), [6]);
}

/// With four members and a quorum of three, one liar is tolerated: a
/// single member's vote in a later round does not take a node out of its
/// init wait, two do (the same threshold as following a later round).
#[test]
fn joining_from_init_takes_as_many_members_as_following() {
    let mut sim = Sim::new(4, 43);
    for i in 0..4 {
        let key = sim.nodes[i].pubkey_message();
        sim.deliver(3, &key.topic, &key.payload);
    }
    assert_eq!(sim.nodes[3].roster().follow_threshold(), 2);
    vote_to(&mut sim, 3, 0, 5, 1);
    assert_eq!(sim.nodes[3].phase(), Phase::Init, "one voter may lie");
    let out = vote_to(&mut sim, 3, 1, 5, 1);
    assert_eq!(sim.nodes[3].phase(), Phase::Election);
    assert_eq!(rounds_sent(&sim, &out, 3, Family::Election), [5]);
}

/// A member with a ledger starts again into a cluster that has already
/// run: once a quorum is online it votes at once, whoever else is still
/// gone, instead of waiting out the init timeout (which stays for a
/// cluster's first start: `waits_for_all_members_then_elects`).
#[test]
fn a_restarted_member_with_a_quorum_online_does_not_wait() {
    let mut sim = Sim::new(5, 44);
    sim.connect_all();
    assert!(sim.run_until(1, 50_000), "tx 1 commits");
    // Member 0 dies; the broker publishes its will.
    sim.up[0] = false;
    let will = sim.nodes[0].last_will();
    sim.broadcast(will.topic, will.payload, true);
    let before = sim.now;
    restart(&mut sim, 3, &[Family::PubKey, Family::Init]);
    assert_eq!(sim.now, before, "no time passed");
    assert_eq!(sim.nodes[3].members_online(), 4);
    assert_eq!(sim.nodes[3].phase(), Phase::Election);
    assert_eq!(sim.nodes[3].height(), 1);
    // And the cluster carries on with it.
    assert!(sim.run_until(3, 50_000));
    sim.check_agreement();
}

/// The will of a member's earlier start may reach the broker after the
/// member is back (the broker takes a while to notice a dead client), and
/// would leave its retained presence saying "gone" for every node that
/// connects later. The member says it is online again.
#[test]
fn a_will_of_an_earlier_start_is_answered_with_presence() {
    let mut sim = restarted(45, 1, &[Family::PubKey, Family::Init]);
    let old = Node::builder(sim.cfg.named(1), &sim.ids[1])
        .incarnation(1)
        .start(0)
        .last_will();
    let now = sim.now;
    let out = sim.nodes[1].handle(
        Input::Message {
            topic: &old.topic,
            payload: &old.payload,
            retained: false,
        },
        now,
    );
    let online = sim.nodes[1].presence_message(true);
    assert!(
        out.publishes().any(|p| *p == online),
        "the presence of this start, online, retained"
    );
}

/// A member that died and started again before its will reached the
/// broker was online all along for the others, yet missed what they sent
/// meanwhile: its newer presence makes them send their messages of the
/// open transaction again, as when a member comes back from "gone". (In
/// the restart storm of the simulation, the restarted member was a
/// transaction behind and elected; without the votes of the next
/// transaction, the evidence that it is behind, it caught up only a round
/// later.)
#[test]
fn a_member_back_before_its_will_gets_the_open_transaction_again() {
    let mut sim = Sim::new(5, 46);
    sim.connect_all();
    assert!(sim.run_until(1, 50_000), "tx 1 commits");
    let (_, vote) = sim.nodes[0]
        .tx
        .election
        .my_vote()
        .expect("a vote of tx 2")
        .clone();
    let again = Node::builder(sim.cfg.named(1), &sim.ids[1])
        .incarnation(2)
        .start(sim.now)
        .presence_message(true);
    let now = sim.now;
    let out = sim.nodes[0].handle(
        Input::Message {
            topic: &again.topic,
            payload: &again.payload,
            retained: false,
        },
        now,
    );
    assert!(
        out.publishes().any(|p| p.payload == vote),
        "node 0 sends its vote again"
    );
}
