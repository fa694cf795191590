//! The collector from signed messages of a made-up cluster of three.

use rand_core::OsRng;

use super::*;
use crate::identity::Identity;
use crate::wire::roster::Entry;
use crate::wire::{sign, Bytes, Challenge, PubKey, Solution, StatusPhase};

struct Fixture {
    /// Three members, then a fourth node no genesis lists.
    ids: Vec<Identity>,
    genesis: Genesis,
    topics: Topics,
}

impl Fixture {
    fn new() -> Fixture {
        let ids: Vec<Identity> = (0..4).map(|_| Identity::ephemeral(&mut OsRng)).collect();
        let members = ids[..3]
            .iter()
            .map(|i| Entry {
                id: i.id,
                name: String::new(),
            })
            .collect();
        let genesis = Genesis::new("lab".into(), members, 2, (8, 20), None, None).expect("valid");
        Fixture {
            ids,
            genesis,
            topics: Topics::new("lab"),
        }
    }

    fn collector(&self) -> Collector {
        Collector::new(&self.genesis)
    }

    /// Node `i`'s report that the roster in force is `members` (from the
    /// ids) with `version`.
    fn roster(&self, i: usize, members: &[usize], version: u32) -> (String, Vec<u8>) {
        let p = Payload::Roster(RosterView {
            version,
            quorum: members.len() as u32 / 2 + 1,
            members: members
                .iter()
                .map(|&m| Entry {
                    id: self.ids[m].id,
                    name: format!("pi-0{}", m + 1),
                })
                .collect(),
            since: 5,
        });
        (
            self.topics.own(wire::Family::Roster, self.ids[i].id),
            self.signed(i, 4, 0, p),
        )
    }

    fn signed(&self, i: usize, tx: u64, round: u32, payload: Payload) -> Vec<u8> {
        let body = Body {
            sender: self.ids[i].id,
            tx,
            round,
            payload,
        };
        sign(&self.genesis.id(), &self.ids[i].key, body.encode())
    }

    fn key(&self, i: usize) -> (String, Vec<u8>) {
        let p = Payload::PubKey(PubKey {
            key: self.ids[i].public,
            name: format!("pi-0{}", i + 1),
            cluster: self.genesis.id(),
        });
        (
            self.topics.own(wire::Family::PubKey, self.ids[i].id),
            self.signed(i, 0, 0, p),
        )
    }

    fn presence(&self, i: usize, online: bool) -> (String, Vec<u8>) {
        let p = Payload::Presence(Presence {
            online,
            incarnation: 7,
            name: format!("pi-0{}", i + 1),
            threads: 4,
            version: "0.1.0".into(),
        });
        (
            self.topics.own(wire::Family::Init, self.ids[i].id),
            self.signed(i, 0, 0, p),
        )
    }

    fn status(&self, i: usize, leader: usize, hashrate: u64) -> (String, Vec<u8>) {
        self.status_in(i, leader, hashrate, StatusPhase::Mining)
    }

    fn status_in(
        &self,
        i: usize,
        leader: usize,
        hashrate: u64,
        phase: StatusPhase,
    ) -> (String, Vec<u8>) {
        let p = Payload::Status(Status {
            incarnation: 7,
            name: format!("pi-0{}", i + 1),
            version: "0.1.0".into(),
            phase,
            leader: Some(self.ids[leader].id),
            difficulty: Some(20),
            open_ms: Some(1_500),
            hashrate,
            active: 4,
            threads: 4,
            cores: 4,
            temp_mc: Some(51_250),
        });
        (self.topics.status(self.ids[i].id), self.signed(i, 8, 1, p))
    }

    fn challenge(&self, leader: usize, tx: u64) -> Vec<u8> {
        self.signed(
            leader,
            tx,
            0,
            Payload::Challenge(Challenge {
                difficulty: 18,
                salt: [1; 12],
                prev: [2; 16],
                votes: Vec::new(),
                keys: Vec::new(),
                change: None,
            }),
        )
    }

    fn commit(&self, i: usize, tx: u64, leader: usize, winner: usize) -> (String, Vec<u8>) {
        let challenge = self.challenge(leader, tx);
        let solution = self.signed(
            winner,
            tx,
            0,
            Payload::Solution(Solution {
                challenge: [3; 16],
                seed: 0xa41f3,
            }),
        );
        let c = Payload::Commit(Commit {
            challenge: Bytes(challenge),
            solution: Bytes(solution),
            confirmations: Vec::new(),
            keys: Vec::new(),
        });
        (self.topics.commit(self.ids[i].id), self.signed(i, tx, 0, c))
    }
}

/// The view of member `i`.
fn node<'a>(
    v: &'a super::super::view::ClusterView,
    f: &Fixture,
    i: usize,
) -> &'a super::super::view::NodeView {
    let id = f.ids[i].id.to_string();
    v.nodes
        .iter()
        .find(|n| n.id == id)
        .expect("a member is shown")
}

fn feed(c: &mut Collector, msgs: &[(String, Vec<u8>)], now: u64) {
    for (t, p) in msgs {
        c.handle(t, p, now).expect("a valid message counts");
    }
}

#[test]
fn a_cluster_of_three() {
    let f = Fixture::new();
    let mut c = f.collector();
    let mut msgs = Vec::new();
    for i in 0..3 {
        msgs.extend([f.key(i), f.presence(i, true)]);
    }
    // Two name pi-02 as leader, one (late) pi-01.
    msgs.extend([
        f.status(0, 1, 1_000_000),
        f.status(1, 1, 2_000_000),
        f.status(2, 0, 1_000_000),
    ]);
    msgs.extend([
        f.commit(0, 6, 1, 2),
        f.commit(1, 7, 1, 2),
        f.commit(2, 7, 1, 2),
    ]);
    feed(&mut c, &msgs, 1_000);
    let v = c.view(3_000);
    assert_eq!(v.nodes.len(), 3);
    assert_eq!(v.nodes[0].name, "pi-01");
    assert!(v.nodes.iter().all(|n| n.online && n.cores == Some(4)));
    assert_eq!(v.nodes[1].hashrate, 2_000_000);
    assert_eq!(v.nodes[0].temperature_c, Some(51.25));
    assert_eq!(v.hashrate, 4_000_000);
    let leader = v.leader.as_ref().expect("a leader");
    assert_eq!(
        (leader.name.as_str(), leader.id.clone()),
        ("pi-02", f.ids[1].id.to_string())
    );
    let open = v.open_transaction.as_ref().expect("an open transaction");
    assert_eq!((open.tx, open.round, open.difficulty), (8, 1, Some(20)));
    // 1.5 s open when reported, 2 s before the view.
    assert_eq!(open.elapsed_s, Some(3.5));
    let expected = open.expected_s.expect("expected time");
    assert!((expected - 2f64.powi(20) / 4e6).abs() < 1e-9, "{expected}");
    assert_eq!(v.committed, 7);
    assert_eq!(v.commits.len(), 2);
    assert_eq!(
        (
            v.commits[0].tx,
            v.commits[0].winner.as_str(),
            v.commits[0].seed.as_str()
        ),
        (7, "pi-03", "00000000000a41f3")
    );
    assert_eq!(v.commits[0].leader, "pi-02");

    let text = v.to_text();
    for want in [
        "pi-01",
        "pi-03",
        "leader: pi-02",
        "open: tx 8 round 1, difficulty 20",
        "51.2 °C",
        "2.0 MH/s",
        "00000000000a41f3",
    ] {
        assert!(text.contains(want), "no {want:?} in\n{text}");
    }
    let json: serde_json::Value = serde_json::from_str(&v.to_json()).expect("JSON");
    assert_eq!(json["nodes"].as_array().map(Vec::len), Some(3));
    assert_eq!(json["leader"]["name"], "pi-02");
    assert_eq!(json["open_transaction"]["tx"], 8);
}

#[test]
fn messages_wait_for_their_key() {
    let f = Fixture::new();
    let mut c = f.collector();
    feed(&mut c, &[f.presence(0, true), f.status(0, 0, 5)], 0);
    let v = c.view(0);
    assert!(
        v.nodes.iter().all(|n| !n.online && n.phase.is_none()),
        "nothing counts before the key"
    );
    feed(&mut c, &[f.key(0)], 10);
    let v = c.view(10);
    let n = node(&v, &f, 0);
    assert!(n.online);
    assert_eq!(n.hashrate, 5);
}

#[test]
fn leaving_and_forgeries() {
    let f = Fixture::new();
    let mut c = f.collector();
    feed(
        &mut c,
        &[f.key(0), f.key(1), f.presence(0, true), f.presence(1, true)],
        0,
    );
    feed(&mut c, &[f.status(0, 0, 10), f.status(1, 0, 20)], 0);

    // Node 1 writes a status on node 0's topic: the body names node 1.
    let (_, forged) = f.status(1, 1, 999);
    assert!(matches!(
        c.handle(&f.topics.status(f.ids[0].id), &forged, 0),
        Err(Refused::Gate(Reject::TopicMismatch { .. }))
    ));
    // A body that names node 0 but is signed by node 1.
    let body = Body::decode(
        &Envelope::decode(&f.status(0, 1, 999).1, 512)
            .expect("env")
            .body,
    )
    .expect("body");
    let bad = sign(&f.genesis.id(), &f.ids[1].key, body.encode());
    assert_eq!(
        c.handle(&f.topics.status(f.ids[0].id), &bad, 0),
        Err(Refused::Gate(Reject::BadSignature))
    );
    // A key under someone else's id.
    let stolen = f.signed(
        1,
        0,
        0,
        Payload::PubKey(PubKey {
            key: f.ids[0].public,
            name: "evil".into(),
            cluster: f.genesis.id(),
        }),
    );
    assert_eq!(
        c.handle(&f.topics.own(wire::Family::PubKey, f.ids[1].id), &stolen, 0),
        Err(Refused::Gate(Reject::KeyIdMismatch))
    );
    // A presence on the status topic, garbage, and another cluster.
    assert_eq!(
        c.handle(&f.topics.status(f.ids[0].id), &f.presence(0, true).1, 0),
        Err(Refused::Gate(Reject::WrongFamily(Kind::Presence)))
    );
    assert!(matches!(
        c.handle(&f.topics.status(f.ids[0].id), &[0xff, 0, 1], 0),
        Err(Refused::Gate(Reject::Wire(_)))
    ));
    assert_eq!(
        c.handle("edgeminer/other/status/0102030405060708", &[1], 0),
        Err(Refused::Topic)
    );
    assert_eq!(c.view(0).hashrate, 30, "refusals changed nothing");

    // Node 1 dies (its will says gone): offline, out of the total.
    feed(&mut c, &[f.presence(1, false)], 0);
    let v = c.view(0);
    assert_eq!(v.hashrate, 10);
    assert!(!node(&v, &f, 1).online && node(&v, &f, 1).hashrate == 0);
    // Node 0 leaves cleanly: its last status says "left".
    let left = f.status_in(0, 0, 0, StatusPhase::Left);
    feed(&mut c, &[left, f.presence(0, false)], 0);
    let v = c.view(0);
    assert_eq!(node(&v, &f, 0).phase, Some("left"));
    assert_eq!(
        (v.hashrate, v.leader.clone(), v.open_transaction.clone()),
        (0, None, None)
    );
    assert!(v.to_text().contains("0 of 3 members online"));
    // A retained status cleared by hand removes it.
    c.handle(&f.topics.status(f.ids[0].id), &[], 0)
        .expect("clear");
    assert_eq!(node(&c.view(0), &f, 0).phase, None);
}

#[test]
fn a_commit_newer_than_every_status_closes_its_transaction() {
    let f = Fixture::new();
    let mut c = f.collector();
    feed(
        &mut c,
        &[f.key(0), f.key(1), f.presence(0, true), f.presence(1, true)],
        0,
    );
    // The statuses speak of tx 8; a commit of tx 8 arrives after them.
    feed(&mut c, &[f.status(0, 1, 10), f.commit(1, 8, 1, 0)], 0);
    let v = c.view(0);
    let open = v.open_transaction.as_ref().expect("an open transaction");
    assert_eq!((open.tx, open.round, open.difficulty), (9, 0, None));
    assert_eq!((v.committed, v.leader.clone()), (8, None));
    assert!(v.to_text().contains("leader: none yet"));
}

#[test]
fn a_challenge_names_the_leader_before_the_statuses_do() {
    let f = Fixture::new();
    let mut c = f.collector();
    feed(
        &mut c,
        &[f.key(0), f.key(1), f.presence(0, true), f.presence(1, true)],
        0,
    );
    feed(&mut c, &[f.status(0, 0, 10), f.commit(1, 8, 1, 0)], 0);
    // Passed on by node 0: what counts is the leader's signature.
    let relayed = (
        f.topics.own(wire::Family::Challenge, f.ids[0].id),
        f.challenge(1, 9),
    );
    feed(&mut c, &[relayed], 100);
    let v = c.view(600);
    let open = v.open_transaction.as_ref().expect("an open transaction");
    assert_eq!(
        (open.tx, open.difficulty, open.elapsed_s),
        (9, Some(18), Some(0.5))
    );
    assert_eq!(v.leader.as_ref().map(|l| l.name.as_str()), Some("pi-02"));
    // A challenge whose signature is not its leader's does not count.
    let body = Body::decode(
        &Envelope::decode(&f.challenge(0, 10), 1024)
            .expect("env")
            .body,
    )
    .expect("body");
    let forged = sign(&f.genesis.id(), &f.ids[1].key, body.encode());
    assert_eq!(
        c.handle(
            &f.topics.own(wire::Family::Challenge, f.ids[1].id),
            &forged,
            700
        ),
        Err(Refused::Gate(Reject::BadSignature))
    );
}

#[test]
fn only_members_count_and_the_members_report_the_roster() {
    let f = Fixture::new();
    let mut c = f.collector();
    // A node no roster lists: its key is refused and counted, its status
    // never shows.
    assert!(matches!(
        c.handle(&f.key(3).0, &f.key(3).1, 0),
        Err(Refused::Gate(Reject::NotAMember(_)))
    ));
    let v = c.view(0);
    assert_eq!((v.nodes.len(), v.not_members), (3, 1));
    assert!(v.nodes.iter().all(|n| !n.online && n.phase.is_none()));
    assert!(v.to_text().contains("not members: 1"), "{}", v.to_text());
    // Two members report a roster that adds it: it counts from then on
    // (its key, which came too early, is taken from the queue).
    feed(&mut c, &[f.key(0), f.key(1), f.presence(3, true)], 0);
    assert_eq!(c.view(0).roster.version, 0);
    feed(&mut c, &[f.roster(0, &[0, 1, 2, 3], 1)], 0);
    feed(&mut c, &[f.roster(1, &[0, 1, 2, 3], 1)], 0);
    let v = c.view(0);
    assert_eq!(
        (v.roster.version, v.roster.members, v.roster.since),
        (1, 4, 5)
    );
    assert_eq!(v.not_members, 0);
    let fourth = v.nodes.iter().find(|n| n.id == f.ids[3].id.to_string());
    assert!(fourth.is_some_and(|n| n.online && n.name == "pi-04"));
    // One member reporting something else is outvoted; a report by a node
    // its own roster does not list counts for nothing.
    feed(&mut c, &[f.key(2), f.roster(2, &[0, 1, 2], 2)], 0);
    assert_eq!(c.view(0).roster.version, 1);
    let lonely = f.roster(3, &[0, 1, 2], 7);
    feed(&mut c, &[lonely], 0);
    assert_eq!(c.roster_reports().1, 2);
}

#[test]
fn another_clusters_key_is_named() {
    let f = Fixture::new();
    let mut c = f.collector();
    let other = f.signed(
        0,
        0,
        0,
        Payload::PubKey(PubKey {
            key: f.ids[0].public,
            name: "pi-01".into(),
            cluster: ClusterId([3; 16]),
        }),
    );
    assert_eq!(
        c.handle(&f.key(0).0, &other, 0),
        Err(Refused::Gate(Reject::OtherCluster(ClusterId([3; 16]))))
    );
}
