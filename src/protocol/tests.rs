//! Tests of the pure core: a small in-memory cluster with per-node message
//! queues, seeded reordering and synchronous mining, plus one test group per
//! phase. Everything is driven by seeds, so a failure replays exactly.

use std::collections::{BTreeMap, VecDeque};

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use super::memory::{self, Outward};
use super::*;
use crate::identity::Identity;
use crate::pow::{self, Job};
use crate::wire::{Approval, Body, Challenge, Payload, PubKey, SigCache, Solution, Stance, Vote};

/// The genesis of a test cluster of these members, with `admin` as its
/// admin key.
pub(crate) fn genesis_of(ids: &[Identity], quorum: usize, admin: &Identity) -> Genesis {
    let members = ids
        .iter()
        .enumerate()
        .map(|(i, id)| crate::wire::roster::Entry {
            id: id.id,
            name: format!("n{i}"),
        })
        .collect();
    Genesis::new(
        "test".into(),
        members,
        quorum,
        (4, 6),
        Some(admin.public),
        None,
    )
    .expect("a valid test cluster")
}

pub(crate) fn config(genesis: Genesis) -> Config {
    Config {
        genesis: std::sync::Arc::new(genesis),
        election_timeout_ms: 1_000,
        solution_window_ms: 100,
        init_timeout_ms: 2_000,
        name: String::new(),
        threads: 1,
    }
}

pub(crate) struct Sim {
    pub rng: ChaCha8Rng,
    pub cfg: Config,
    pub admin: Identity,
    pub ids: Vec<Identity>,
    pub nodes: Vec<Node>,
    pub queues: Vec<VecDeque<(String, Vec<u8>)>>,
    pub retained: BTreeMap<String, Vec<u8>>,
    pub jobs: Vec<Option<Job>>,
    pub ledgers: Vec<Vec<Committed>>,
    /// Each node's ledger records and vote state.
    pub disks: Vec<memory::Disk>,
    pub up: Vec<bool>,
    pub now: u64,
    /// Deliver a random queued message rather than the oldest.
    pub reorder: bool,
    /// Bytes delivered to each node so far.
    pub received: Vec<u64>,
}

impl Sim {
    pub fn new(n: usize, seed: u64) -> Sim {
        Sim::with_members(n, n, seed)
    }

    /// `n` nodes of which only the first `members` are in the genesis
    /// roster (the others are boards not yet added).
    pub fn with_members(n: usize, members: usize, seed: u64) -> Sim {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let ids: Vec<Identity> = (0..n)
            .map(|i| {
                let mut krng = rand_chacha::ChaCha20Rng::seed_from_u64(seed * 100 + i as u64);
                Identity::ephemeral(&mut krng)
            })
            .collect();
        let admin = Identity::ephemeral(&mut rand_chacha::ChaCha20Rng::seed_from_u64(seed + 7));
        let cfg = config(genesis_of(
            &ids[..members],
            quorum::majority(members),
            &admin,
        ));
        let mut nodes = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let mut s = [0u8; 32];
            rng.fill_bytes(&mut s);
            nodes.push(Node::builder(cfg.named(i), id).rng_seed(s).start(0));
        }
        let disks = vec![memory::Disk::new(&cfg.genesis); n];
        Sim {
            rng,
            cfg,
            admin,
            ids,
            nodes,
            queues: vec![VecDeque::new(); n],
            retained: BTreeMap::new(),
            jobs: vec![None; n],
            ledgers: vec![Vec::new(); n],
            disks,
            up: vec![true; n],
            now: 0,
            reorder: false,
            received: vec![0; n],
        }
    }

    /// Connects every node (announces keys and presence).
    pub fn connect_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.input(i, Input::Connected);
        }
    }

    pub fn input(&mut self, i: usize, input: Input<'_>) {
        let actions = self.nodes[i].handle(input, self.now);
        self.apply(i, actions);
    }

    /// Hands node `i` one message.
    pub fn deliver(&mut self, i: usize, topic: &str, payload: &[u8]) {
        self.received[i] += payload.len() as u64;
        self.input(
            i,
            Input::Message {
                topic,
                payload,
                retained: false,
            },
        );
    }

    /// Carries out node `i`'s output as the daemon does.
    pub fn apply(&mut self, i: usize, out: Output) {
        for step in out.into_steps() {
            let (node, disk, job) = (&self.nodes[i], &mut self.disks[i], &mut self.jobs[i]);
            match memory::carry_out(node, disk, job, step) {
                Some(Outward::Publish(p)) => self.broadcast(p.topic, p.payload, p.retain),
                Some(Outward::Event(Event::Committed(c))) => self.ledgers[i].push(c),
                Some(Outward::Event(Event::Stop(_))) => self.up[i] = false,
                None => {}
            }
        }
    }

    pub fn broadcast(&mut self, topic: String, payload: Vec<u8>, retain: bool) {
        if retain {
            self.retained.insert(topic.clone(), payload.clone());
        }
        for (q, up) in self.queues.iter_mut().zip(&self.up) {
            if *up {
                q.push_back((topic.clone(), payload.clone()));
            }
        }
    }

    /// One step: deliver a message, finish a mining job, or let time pass.
    /// Returns false when nothing at all can happen.
    pub fn step(&mut self) -> bool {
        let n = self.nodes.len();
        let busy: Vec<usize> = (0..n)
            .filter(|&i| self.up[i] && !self.queues[i].is_empty())
            .collect();
        let mining: Vec<usize> = (0..n)
            .filter(|&i| self.up[i] && self.jobs[i].is_some())
            .collect();
        if !busy.is_empty() && (mining.is_empty() || !self.rng.next_u32().is_multiple_of(4)) {
            let i = busy[(self.rng.next_u32() as usize) % busy.len()];
            let k = if self.reorder {
                (self.rng.next_u32() as usize) % self.queues[i].len()
            } else {
                0
            };
            let Some((topic, payload)) = self.queues[i].remove(k) else {
                return true;
            };
            self.deliver(i, &topic, &payload);
            return true;
        }
        if !mining.is_empty() {
            let i = mining[(self.rng.next_u32() as usize) % mining.len()];
            let Some(job) = self.jobs[i].take() else {
                return true;
            };
            let start = self.rng.next_u64() >> 8;
            let seed = (start..)
                .find(|&s| pow::verify(&job.salt, &job.solver, s, job.difficulty))
                .unwrap_or(start);
            self.input(i, Input::Mined { job: job.id, seed });
            return true;
        }
        let next = (0..n)
            .filter(|&i| self.up[i])
            .filter_map(|i| self.nodes[i].next_timeout())
            .min();
        match next {
            Some(t) => {
                self.now = self.now.max(t);
                for i in 0..n {
                    if self.up[i] && self.nodes[i].next_timeout().is_some_and(|d| d <= self.now) {
                        self.input(i, Input::Tick);
                    }
                }
                true
            }
            None => false,
        }
    }

    /// Runs until every live node has `height` commits (or `steps` pass).
    pub fn run_until(&mut self, height: u64, steps: usize) -> bool {
        for _ in 0..steps {
            if (0..self.nodes.len())
                .filter(|&i| self.up[i])
                .all(|i| self.nodes[i].height() >= height)
            {
                return true;
            }
            if !self.step() {
                return false;
            }
        }
        false
    }

    /// No two nodes committed different solutions for one transaction.
    pub fn check_agreement(&self) {
        let mut seen: BTreeMap<u64, [u8; 16]> = BTreeMap::new();
        for l in &self.ledgers {
            for c in l {
                let r = seen.entry(c.tx).or_insert(c.reference);
                assert_eq!(*r, c.reference, "two different commits for tx {}", c.tx);
            }
        }
    }

    /// A message signed by node `i`, as if it (or someone with its key) sent it.
    pub fn signed(&self, i: usize, tx: u64, round: u32, payload: Payload) -> Vec<u8> {
        let body = Body {
            sender: self.ids[i].id,
            tx,
            round,
            payload,
        };
        crate::wire::sign(&self.cfg.cluster_id(), &self.ids[i].key, body.encode())
    }

    /// The reference transaction 1 builds on.
    pub fn genesis_prev(&self) -> [u8; 16] {
        self.cfg.genesis.prev()
    }

    pub fn topic(&self, i: usize, family: Family) -> String {
        self.nodes[i].topics().own(family, self.ids[i].id)
    }
}

#[path = "tests/roster.rs"]
mod roster_changes;

#[path = "tests/catchup.rs"]
mod catchup;

#[path = "tests/sizes.rs"]
mod sizes;

#[test]
fn four_nodes_commit_and_agree() {
    let mut sim = Sim::new(4, 1);
    sim.connect_all();
    assert!(sim.run_until(5, 100_000), "five commits");
    sim.check_agreement();
    let first = &sim.ledgers[0];
    for l in &sim.ledgers {
        assert_eq!(&l[..5], &first[..5]);
    }
    for c in first {
        assert!(pow::verify(&c.salt, &c.winner.0, c.seed, c.difficulty));
        assert!((4..=6).contains(&c.difficulty));
    }
}

/// `EDGEMINER_SIM_SEEDS=N` runs N seeds instead of 40 (a soak).
#[test]
fn agreement_under_reordering_many_seeds() {
    let seeds: u64 = std::env::var("EDGEMINER_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    for seed in 0..seeds {
        let mut sim = Sim::new(3 + (seed as usize % 3), seed);
        sim.reorder = true;
        sim.connect_all();
        let progressed = sim.run_until(3, 50_000);
        sim.check_agreement();
        assert!(progressed, "seed {seed}: no progress under reordering");
    }
}

mod init_phase {
    use super::*;

    #[test]
    fn waits_for_all_members_then_elects() {
        let mut sim = Sim::new(3, 7);
        // Only node 0 and 1 announce: no election before the init timeout.
        sim.input(0, Input::Connected);
        sim.input(1, Input::Connected);
        for _ in 0..50 {
            if !sim.queues.iter().any(|q| !q.is_empty()) {
                break;
            }
            sim.step();
        }
        assert_eq!(sim.nodes[0].phase(), Phase::Init);
        // After the init timeout a quorum (2 of 3) is enough.
        sim.up[2] = false;
        assert!(sim.run_until(1, 10_000));
        assert!(sim.now >= 2_000);
    }

    #[test]
    fn replayed_old_presence_changes_nothing() {
        let mut sim = Sim::new(3, 8);
        sim.connect_all();
        let old = sim.signed(
            1,
            0,
            0,
            Payload::Presence(crate::wire::Presence {
                online: false,
                incarnation: 0,
                name: "n1".into(),
                threads: 1,
                version: "0".into(),
            }),
        );
        sim.run_until(1, 10_000);
        let t = sim.topic(1, Family::Init);
        sim.deliver(0, &t, &old);
        assert!(sim.nodes[0].online().contains(&sim.ids[1].id));
    }
}

mod pubkey_phase {
    use super::*;

    #[test]
    fn key_under_another_id_is_refused() {
        let mut sim = Sim::new(3, 9);
        // Node 2 announces its key on node 1's topic with node 1's id.
        let body = Body {
            sender: sim.ids[1].id,
            tx: 0,
            round: 0,
            payload: Payload::PubKey(PubKey {
                key: sim.ids[2].public,
                name: "evil".into(),
                cluster: sim.cfg.cluster_id(),
            }),
        };
        let msg = crate::wire::sign(&sim.cfg.cluster_id(), &sim.ids[2].key, body.encode());
        let t = sim.topic(1, Family::PubKey);
        sim.deliver(0, &t, &msg);
        assert_eq!(sim.nodes[0].rejected, 1);
        assert!(sim.nodes[0].members.key(sim.ids[1].id).is_none());
    }

    /// Keys prove themselves (the id is their digest, the message is
    /// signed by them), so one passed on by another node is learned, and
    /// what its owner signed earlier is then used.
    #[test]
    fn relayed_key_is_learned_and_releases_held_messages() {
        let mut sim = Sim::new(3, 27);
        sim.input(2, Input::Connected);
        let q: Vec<_> = sim.queues[0].drain(..).collect();
        let key_topic = sim.topic(2, Family::PubKey);
        let (_, key) = q
            .iter()
            .find(|(t, _)| *t == key_topic)
            .cloned()
            .expect("node 2 announced its key");
        for (t, p) in q.iter().filter(|(t, _)| *t != key_topic) {
            sim.deliver(0, t, p);
        }
        assert!(!sim.nodes[0].online().contains(&sim.ids[2].id));
        let relay_topic = sim.topic(1, Family::PubKey);
        sim.deliver(0, &relay_topic, &key);
        assert_eq!(sim.nodes[0].rejected, 0);
        assert!(sim.nodes[0].members.key(sim.ids[2].id).is_some());
        assert!(sim.nodes[0].online().contains(&sim.ids[2].id));
    }

    #[test]
    fn messages_before_the_key_are_held_then_used() {
        let mut sim = Sim::new(3, 10);
        sim.input(1, Input::Connected);
        // Deliver node 1's presence to node 0 before its key.
        let q: Vec<_> = sim.queues[0].drain(..).collect();
        for (t, p) in q.iter().rev() {
            sim.deliver(0, t, p);
        }
        assert!(sim.nodes[0].online().contains(&sim.ids[1].id));
        assert_eq!(sim.nodes[0].rejected, 0);
    }
}

mod election_phase {
    use super::*;

    #[test]
    fn forged_vote_is_refused() {
        let mut sim = Sim::new(3, 11);
        sim.connect_all();
        for _ in 0..200 {
            sim.step();
            if sim.nodes[0].phase() != Phase::Init {
                break;
            }
        }
        // Node 2 signs a vote with its own key but claims node 1's id.
        let body = Body {
            sender: sim.ids[1].id,
            tx: 1,
            round: 0,
            payload: Payload::Vote(Vote {
                candidate: sim.ids[2].id,
                prev: sim.genesis_prev(),
            }),
        };
        let msg = crate::wire::sign(&sim.cfg.cluster_id(), &sim.ids[2].key, body.encode());
        let t = sim.topic(1, Family::Election);
        let before = sim.nodes[0].rejected;
        sim.deliver(0, &t, &msg);
        assert_eq!(sim.nodes[0].rejected, before + 1);
    }

    #[test]
    fn equivocating_voter_is_named_and_ignored() {
        let mut sim = Sim::new(4, 12);
        sim.connect_all();
        while sim.nodes[0].members.len() < 4 {
            sim.step();
        }
        let prev = sim.genesis_prev();
        let t = sim.topic(3, Family::Election);
        for cand in [0, 1] {
            let v = sim.signed(
                3,
                1,
                5,
                Payload::Vote(Vote {
                    candidate: sim.ids[cand].id,
                    prev,
                }),
            );
            sim.deliver(0, &t, &v);
        }
        assert!(sim.nodes[0].liars.contains(&sim.ids[3].id));
    }

    #[test]
    fn votes_far_ahead_are_refused() {
        let mut sim = Sim::new(3, 25);
        sim.connect_all();
        while sim.nodes[0].members.len() < 3 {
            sim.step();
        }
        let prev = sim.nodes[0].prev;
        let tx = sim.nodes[0].height() + 1;
        let v = sim.signed(
            2,
            tx,
            1_000_000,
            Payload::Vote(Vote {
                candidate: sim.ids[2].id,
                prev,
            }),
        );
        let t = sim.topic(2, Family::Election);
        let before = sim.nodes[0].rejected;
        sim.deliver(0, &t, &v);
        assert_eq!(sim.nodes[0].rejected, before + 1);
        assert!(!sim.nodes[0].tx.election.has_votes(1_000_000));
    }

    #[test]
    fn dead_leader_is_replaced_after_the_timeout() {
        for seed in 20..30 {
            let mut sim = Sim::new(4, seed);
            sim.connect_all();
            // Let the first election finish, then kill whoever leads round 0
            // before it can publish, by cutting it off from the start.
            let leader = (0..4)
                .max_by_key(|&i| election::rank(&sim.genesis_prev(), 1, 0, sim.ids[i].id))
                .expect("four nodes");
            sim.up[leader] = false;
            assert!(
                sim.run_until(2, 100_000),
                "seed {seed}: commits without the leader"
            );
            sim.check_agreement();
            let c = &sim.ledgers[(leader + 1) % 4][0];
            assert_ne!(c.leader, sim.ids[leader].id);
            assert!(c.round >= 1, "a later round took over");
        }
    }

    #[test]
    fn certificate_rules() {
        let sim = Sim::new(4, 13);
        let keys: BTreeMap<_, _> = sim
            .ids
            .iter()
            .map(|i| (i.id, *i.key.verifying_key()))
            .collect();
        let prev = sim.genesis_prev();
        let roster = sim.cfg.genesis.roster();
        let vote = |i: usize, c: usize| {
            crate::wire::Bytes(sim.signed(
                i,
                1,
                0,
                Payload::Vote(Vote {
                    candidate: sim.ids[c].id,
                    prev,
                }),
            ))
        };
        let ok = [vote(0, 2), vote(1, 2), vote(3, 1)];
        assert!(election::check_certificate(
            &sim.cfg.cluster_id(),
            &roster,
            1,
            0,
            &prev,
            sim.ids[2].id,
            &ok,
            &keys,
            &SigCache::default()
        )
        .is_ok());
        assert!(election::check_certificate(
            &sim.cfg.cluster_id(),
            &roster,
            1,
            0,
            &prev,
            sim.ids[1].id,
            &ok,
            &keys,
            &SigCache::default()
        )
        .is_err());
        let dup = [vote(0, 2), vote(0, 2), vote(1, 2)];
        assert!(election::check_certificate(
            &sim.cfg.cluster_id(),
            &roster,
            1,
            0,
            &prev,
            sim.ids[2].id,
            &dup,
            &keys,
            &SigCache::default()
        )
        .is_err());
        assert!(election::check_certificate(
            &sim.cfg.cluster_id(),
            &roster,
            1,
            1,
            &prev,
            sim.ids[2].id,
            &ok,
            &keys,
            &SigCache::default()
        )
        .is_err());
        assert!(election::check_certificate(
            &crate::wire::ClusterId([9; 16]),
            &roster,
            1,
            0,
            &prev,
            sim.ids[2].id,
            &ok,
            &keys,
            &SigCache::default()
        )
        .is_err());
    }
}

mod challenge_phase {
    use super::*;

    #[test]
    fn challenge_from_a_node_that_was_not_elected_is_refused() {
        let mut sim = Sim::new(3, 14);
        sim.connect_all();
        for _ in 0..100 {
            sim.step();
        }
        let before = sim.nodes[0].rejected;
        // Node 1 issues a challenge with no election behind it.
        let (tx, prev) = (sim.nodes[0].height() + 1, sim.nodes[0].prev);
        let c = sim.signed(
            1,
            tx,
            0,
            Payload::Challenge(Challenge {
                difficulty: 4,
                salt: [7; 12],
                prev,
                votes: vec![],
                keys: vec![],
                change: None,
            }),
        );
        let t = sim.topic(1, Family::Challenge);
        sim.deliver(0, &t, &c);
        assert_eq!(sim.nodes[0].rejected, before + 1);
    }

    #[test]
    fn difficulty_outside_the_range_is_refused() {
        let mut sim = Sim::new(3, 15);
        let prev = sim.genesis_prev();
        let votes: Vec<_> = (0..3)
            .map(|i| {
                crate::wire::Bytes(sim.signed(
                    i,
                    1,
                    0,
                    Payload::Vote(Vote {
                        candidate: sim.ids[1].id,
                        prev,
                    }),
                ))
            })
            .collect();
        sim.connect_all();
        let c = sim.signed(
            1,
            1,
            0,
            Payload::Challenge(Challenge {
                difficulty: 40,
                salt: [7; 12],
                prev,
                votes,
                keys: vec![],
                change: None,
            }),
        );
        let t = sim.topic(1, Family::Challenge);
        // Deliver keys first.
        while sim.nodes[0].members.len() < 3 {
            sim.step();
        }
        let before = sim.nodes[0].rejected;
        sim.deliver(0, &t, &c);
        assert_eq!(sim.nodes[0].rejected, before + 1);
    }
}

mod solution_phase {
    use super::*;

    /// Runs until node 0 mines, and returns the open challenge's salt,
    /// difficulty and reference.
    fn open_challenge(sim: &mut Sim) -> ([u8; 12], u8, [u8; 16]) {
        sim.connect_all();
        for _ in 0..10_000 {
            if let Some(job) = sim.jobs[0].clone() {
                let (_, r) = sim.nodes[0].tx.mining.expect("mining");
                return (job.salt, job.difficulty, r);
            }
            // Deliver messages only: do not let anyone mine.
            let busy: Vec<usize> = (0..3).filter(|&i| !sim.queues[i].is_empty()).collect();
            let Some(&i) = busy.first() else { break };
            let (t, p) = sim.queues[i].pop_front().expect("non-empty");
            sim.deliver(i, &t, &p);
        }
        panic!("no challenge opened");
    }

    /// The leader approves the first valid solution it holds at once, and
    /// a node that holds a solution the leader approved in voting round 0
    /// approves it at once too: no one waits out the solution window.
    #[test]
    fn the_leaders_approval_is_a_proposal_taken_at_once() {
        let mut sim = Sim::new(4, 17);
        sim.connect_all();
        let waiting = |sim: &Sim, i: usize| {
            let n = &sim.nodes[i];
            n.leader().is_some_and(|l| l != sim.ids[i].id)
                && !n.tx.solutions.is_empty()
                && n.timers.runs(Timer::Window)
                && n.tx.rounds.approval().is_none()
        };
        let mut follower = None;
        for _ in 0..100_000 {
            for i in 0..4 {
                let n = &sim.nodes[i];
                if n.leader() == Some(sim.ids[i].id) && !n.tx.solutions.is_empty() {
                    assert!(n.tx.rounds.approval().is_some(), "the leader waited");
                }
            }
            follower = (0..4).find(|&i| waiting(&sim, i));
            if follower.is_some() {
                break;
            }
            sim.step();
        }
        let f = follower.expect("a node holding a solution, in its window");
        let leader = sim.nodes[f].leader().expect("a leader");
        let l = sim
            .ids
            .iter()
            .position(|x| x.id == leader)
            .expect("a member");
        let s = *sim.nodes[f].tx.solutions.keys().next().expect("held");
        let proposal = sim.signed(l, 1, 0, Payload::Approval(Approval::approve(s, 0)));
        let at = sim.now;
        sim.deliver(f, &sim.topic(l, Family::Voting), &proposal);
        let approved = sim.nodes[f]
            .tx
            .rounds
            .approval()
            .map(|(v, (a, _))| (*v, *a));
        assert_eq!(approved, Some((0, s)), "approved the proposal");
        assert_eq!(sim.now, at, "at once");
    }

    #[test]
    fn the_leader_is_known_once_its_challenge_is() {
        let mut sim = Sim::new(3, 16);
        assert_eq!(sim.nodes[0].leader(), None);
        open_challenge(&mut sim);
        let issuer = (0..3)
            .find(|&i| sim.nodes[i].tx.election.issued_any())
            .expect("a node issued the challenge");
        assert_eq!(sim.nodes[0].leader(), Some(sim.ids[issuer].id));
    }

    #[test]
    fn bad_seed_is_rejected_with_a_vote() {
        let mut sim = Sim::new(3, 16);
        let (salt, d, r) = open_challenge(&mut sim);
        let bad = (0u64..)
            .find(|&s| !pow::verify(&salt, &sim.ids[2].id.0, s, d))
            .expect("some seed fails");
        let msg = sim.signed(
            2,
            1,
            0,
            Payload::Solution(Solution {
                challenge: r,
                seed: bad,
            }),
        );
        let t = sim.topic(2, Family::Solution);
        let before = sim.nodes[0].rejected;
        sim.queues[0].clear();
        sim.deliver(0, &t, &msg);
        assert_eq!(sim.nodes[0].rejected, before + 1);
        assert!(sim.nodes[0].tx.rounds.approval().is_none());
        let rejection = sim.queues[0].iter().any(|(topic, p)| {
            topic.contains("/voting/")
                && crate::wire::Envelope::decode(p, 512)
                    .ok()
                    .and_then(|e| Body::decode(&e.body).ok())
                    .is_some_and(|b| {
                        matches!(
                            b.payload,
                            Payload::Approval(Approval {
                                stance: Stance::Reject,
                                ..
                            })
                        )
                    })
        });
        assert!(rejection, "a rejection vote was published");
    }

    #[test]
    fn stolen_seed_does_not_verify_for_the_thief() {
        let mut sim = Sim::new(3, 17);
        let (salt, d, r) = open_challenge(&mut sim);
        let honest = (0u64..)
            .find(|&s| pow::verify(&salt, &sim.ids[1].id.0, s, d))
            .expect("findable");
        // Node 2 claims node 1's seed as its own.
        if pow::verify(&salt, &sim.ids[2].id.0, honest, d) {
            return; // astronomically unlikely at these difficulties
        }
        let msg = sim.signed(
            2,
            1,
            0,
            Payload::Solution(Solution {
                challenge: r,
                seed: honest,
            }),
        );
        let t = sim.topic(2, Family::Solution);
        let before = sim.nodes[0].rejected;
        sim.deliver(0, &t, &msg);
        assert_eq!(sim.nodes[0].rejected, before + 1);
    }

    #[test]
    fn approves_one_solution_the_lowest_digest_after_the_window() {
        let mut sim = Sim::new(3, 18);
        let (salt, d, r) = open_challenge(&mut sim);
        let mut sols = Vec::new();
        for i in [1, 2] {
            let seed = (0u64..)
                .find(|&s| pow::verify(&salt, &sim.ids[i].id.0, s, d))
                .expect("findable");
            let msg = sim.signed(i, 1, 0, Payload::Solution(Solution { challenge: r, seed }));
            let t = sim.topic(i, Family::Solution);
            sim.deliver(0, &t, &msg);
            let env = crate::wire::Envelope::decode(&msg, 512).expect("decodes");
            let digest = pow::Template::new(&salt, &sim.ids[i].id.0).digest(seed);
            sols.push((digest, reference(&env.body)));
        }
        assert!(
            sim.nodes[0].tx.rounds.approval().is_none(),
            "no approval inside the window"
        );
        let close = sim.nodes[0].next_timeout().expect("window deadline");
        sim.now = close;
        sim.input(0, Input::Tick);
        let approved = sim.nodes[0].tx.rounds.approval().map(|(_, (r, _))| *r);
        let want = sols.iter().min().map(|(_, r)| *r);
        assert_eq!(approved, want, "the lower digest wins");
        // A later solution changes nothing.
        let seed = (1u64 << 40..)
            .find(|&s| pow::verify(&salt, &sim.ids[1].id.0, s, d))
            .expect("findable");
        let msg = sim.signed(1, 1, 0, Payload::Solution(Solution { challenge: r, seed }));
        let t = sim.topic(1, Family::Solution);
        sim.deliver(0, &t, &msg);
        sim.now += 1_000;
        sim.input(0, Input::Tick);
        assert_eq!(
            sim.nodes[0].tx.rounds.approval().map(|(_, (r, _))| *r),
            want
        );
    }
}

mod voting_phase {
    use super::*;

    #[test]
    fn equivocating_approver_is_caught() {
        let mut sim = Sim::new(4, 19);
        sim.connect_all();
        for _ in 0..50 {
            sim.step();
        }
        let t = sim.topic(3, Family::Voting);
        for s in [[1u8; 16], [2u8; 16]] {
            let a = sim.signed(3, 1, 0, Payload::Approval(Approval::approve(s, 0)));
            sim.deliver(0, &t, &a);
        }
        assert!(sim.nodes[0].liars.contains(&sim.ids[3].id));
    }

    /// A confirmation carries no proof: it is its signer's ballot and
    /// nothing more. Two members that confirm a solution nobody approved
    /// (more liars than a roster of four tolerates) make no honest node
    /// lock on it, and fewer than q confirmations commit nothing.
    #[test]
    fn confirmations_without_a_quorum_behind_them_move_nobody() {
        let mut sim = Sim::new(4, 19);
        sim.connect_all();
        for _ in 0..100_000 {
            if !sim.nodes[0].tx.solutions.is_empty() {
                break;
            }
            sim.step();
        }
        let s = *sim.nodes[0].tx.solutions.keys().next().expect("a solution");
        assert!(sim.nodes[0].tx.rounds.quorum_in(0).is_none(), "too late");
        for liar in [2, 3] {
            let c = sim.signed(liar, 1, 0, Payload::Approval(Approval::confirm(s, 0)));
            let t = sim.topic(liar, Family::Voting);
            sim.deliver(0, &t, &c);
        }
        assert_eq!(
            sim.nodes[0].tx.rounds.lock(),
            None,
            "locked on a bare claim"
        );
        assert_eq!(sim.nodes[0].height(), 0, "committed on a bare claim");
    }

    #[test]
    fn commit_certificates_verify_and_tampering_fails() {
        let mut sim = Sim::new(3, 21);
        sim.connect_all();
        assert!(sim.run_until(1, 50_000));
        let g = sim.cfg.genesis.clone();
        let r = g.roster();
        // Rebuild the certificate from the leader's retained commit
        // message (only the leader publishes it).
        let leader = sim.ledgers[0][0].leader;
        let topic = sim.nodes[0].topics().commit(leader);
        let msg = sim.retained.get(&topic).expect("commit retained").clone();
        for id in sim.ids.iter().map(|i| i.id).filter(|id| *id != leader) {
            let other = sim.nodes[0].topics().commit(id);
            assert!(!sim.retained.contains_key(&other), "{id} published too");
        }
        let env =
            crate::wire::Envelope::decode(&msg, crate::wire::MAX_CERT_MESSAGE).expect("decodes");
        let Payload::Commit(c) = Body::decode(&env.body).expect("body").payload else {
            panic!("not a commit");
        };
        let prev = sim.genesis_prev();
        let done = verify_commit(&g, &r, 1, &prev, &c).expect("valid certificate");
        assert_eq!(done, sim.ledgers[0][0]);
        assert!(verify_commit(&g, &r, 2, &prev, &c).is_err());
        let mut fewer = c.clone();
        fewer.confirmations.truncate(1);
        assert!(verify_commit(&g, &r, 1, &prev, &fewer).is_err());
        // The same members in another cluster (a genesis of another name).
        let other = Genesis::new(
            "other".into(),
            g.members().to_vec(),
            g.quorum(),
            g.difficulty(),
            None,
            None,
        )
        .expect("valid");
        assert!(verify_commit(&other, &other.roster(), 1, &other.prev(), &c).is_err());
        assert!(verify_commit(&other, &other.roster(), 1, &prev, &c).is_err());
    }

    #[test]
    fn late_node_catches_up_from_a_commit_certificate() {
        let mut sim = Sim::new(3, 22);
        sim.up[2] = false;
        sim.input(0, Input::Connected);
        sim.input(1, Input::Connected);
        assert!(sim.run_until(1, 50_000));
        // Node 2 arrives and receives the retained messages.
        sim.up[2] = true;
        let retained: Vec<_> = sim
            .retained
            .iter()
            .map(|(t, p)| (t.clone(), p.clone()))
            .collect();
        sim.queues[2].extend(retained);
        sim.input(2, Input::Connected);
        assert!(sim.run_until(2, 50_000));
        sim.check_agreement();
        assert_eq!(sim.ledgers[2][0], sim.ledgers[0][0]);
    }

    #[test]
    fn node_far_behind_catches_up_commit_by_commit() {
        let mut sim = Sim::new(4, 24);
        sim.up[3] = false;
        for i in 0..3 {
            sim.input(i, Input::Connected);
        }
        assert!(sim.run_until(8, 200_000));
        // Node 3 starts with an empty ledger and gets the retained messages.
        sim.up[3] = true;
        let retained: Vec<_> = sim
            .retained
            .iter()
            .map(|(t, p)| (t.clone(), p.clone()))
            .collect();
        sim.queues[3].extend(retained);
        sim.input(3, Input::Connected);
        let target = sim.nodes[0].height() + 2;
        assert!(
            sim.run_until(target, 400_000),
            "caught up to {}",
            sim.nodes[3].height()
        );
        sim.check_agreement();
        assert_eq!(sim.ledgers[3][..8], sim.ledgers[0][..8]);
    }

    /// Runs `sim` until node 0 has approved: its saved vote state, and the
    /// solution it approved.
    fn run_until_node_0_approves(sim: &mut Sim) -> (VoteState, [u8; 16]) {
        sim.connect_all();
        for _ in 0..100_000 {
            if sim.nodes[0].tx.rounds.approval().is_some() {
                break;
            }
            sim.step();
        }
        let saved = sim.disks[0].votes.as_ref().expect("saved");
        let (_, (approved, _)) = sim.nodes[0].tx.rounds.approval().expect("approved");
        (VoteState::decode(saved).expect("decodes"), *approved)
    }

    #[test]
    fn restored_vote_state_prevents_a_second_approval() {
        let mut sim = Sim::new(3, 23);
        let (saved, approved) = run_until_node_0_approves(&mut sim);
        let durable = Durable {
            votes: Some(saved),
            ..Durable::fresh(&sim.cfg)
        };
        let again = Node::builder(sim.cfg.named(0), &sim.ids[0])
            .incarnation(2)
            .durable(durable)
            .start(0);
        assert_eq!(
            again.tx.rounds.approval().map(|(_, (r, _))| *r),
            Some(approved)
        );
    }

    /// A node that restarts knowing only its own key still holds (and
    /// sends again) the solution it approved, with its challenge: if every
    /// node that had them restarted, the lock would otherwise name a
    /// solution nobody can show, and the transaction would never commit.
    #[test]
    fn restored_vote_state_brings_back_the_backed_solution() {
        let mut sim = Sim::new(3, 25);
        let (saved, approved) = run_until_node_0_approves(&mut sim);
        assert!(saved.backing.as_ref().is_some_and(|b| b.len() >= 2));
        let envelope = sim.nodes[0].tx.solutions[&approved].envelope.clone();
        let durable = Durable {
            votes: Some(saved),
            ..Durable::fresh(&sim.cfg)
        };
        let mut again = Node::builder(sim.cfg.named(0), &sim.ids[0])
            .incarnation(2)
            .durable(durable)
            .start(0);
        assert!(again.tx.solutions.is_empty());
        let actions = again.handle(Input::Connected, 0);
        assert!(again.tx.solutions.contains_key(&approved));
        assert!(actions.publishes().any(|p| p.payload == envelope));
    }

    /// A node that wrote a commit and crashed before publishing it
    /// publishes its certificate at its next connect: the others may wait
    /// for its confirmation, which it never sends again once it has moved
    /// on (simulation seed 4565).
    #[test]
    fn a_restarted_node_publishes_its_last_certificate_again() {
        let mut sim = Sim::new(3, 27);
        sim.connect_all();
        assert!(sim.run_until(1, 50_000));
        let disk = &sim.disks[0];
        let head = super::head::resume(
            &sim.cfg.genesis,
            &Chain::new(&sim.cfg.genesis),
            None,
            disk,
            &Default::default(),
        )
        .expect("the ledger resumes");
        let durable = Durable { head, votes: None };
        let mut again = Node::builder(sim.cfg.named(0), &sim.ids[0])
            .incarnation(2)
            .durable(durable)
            .start(0);
        let topic = again.topics().commit(sim.ids[0].id);
        let actions = again.handle(Input::Connected, 0);
        let sent: Vec<_> = actions.publishes().filter(|p| p.topic == topic).collect();
        assert_eq!(sent.len(), 1, "the certificate, once");
        let env = crate::wire::Envelope::decode(&sent[0].payload, crate::wire::MAX_CERT_MESSAGE)
            .expect("an envelope");
        let Payload::Commit(c) = Body::decode(&env.body).expect("a body").payload else {
            panic!("not a commit");
        };
        assert_eq!(c.encode(), disk.records[0]);
        assert!(sent[0].retain);
    }

    /// A member still sending messages of a transaction this node committed
    /// a while ago missed that commit: it gets the certificate without
    /// asking, at most once per election timeout; a message that merely
    /// crossed the commit gets nothing (simulation seed 27605).
    #[test]
    fn a_member_still_on_a_committed_transaction_gets_its_certificate() {
        let mut sim = Sim::new(3, 28);
        sim.connect_all();
        assert!(sim.run_until(1, 50_000));
        let h = sim.nodes[0].height();
        let serves = |sim: &mut Sim, at: u64| {
            let a = sim.signed(1, h, 0, Payload::Approval(Approval::approve([3; 16], 0)));
            let topic = sim.topic(1, Family::Voting);
            let input = Input::Message {
                topic: &topic,
                payload: &a,
                retained: false,
            };
            let out = sim.nodes[0].handle(input, at);
            out.into_steps()
                .filter(|s| matches!(s, Step::Effect(Effect::ServeHistory { tx }) if *tx == h))
                .count()
        };
        let now = sim.now;
        assert_eq!(serves(&mut sim, now), 0, "it crossed the commit");
        let later = now + 2 * sim.cfg.election_timeout_ms;
        assert_eq!(serves(&mut sim, later), 1, "still on it a while later");
        assert_eq!(serves(&mut sim, later + 1), 0, "not again at once");
        let again = later + sim.cfg.election_timeout_ms;
        assert_eq!(serves(&mut sim, again), 1, "again after a timeout");
    }

    /// A signed message of a later transaction means its signer committed
    /// the one before: a node whose copy of that commit was lost asks for it.
    #[test]
    fn message_of_a_later_transaction_starts_catch_up() {
        let mut sim = Sim::new(3, 26);
        sim.connect_all();
        // Keys and presence only.
        for _ in 0..100 {
            if sim.nodes[0].members.key(sim.ids[1].id).is_some() {
                break;
            }
            sim.step();
        }
        let vote = sim.signed(
            1,
            3,
            0,
            Payload::Vote(Vote {
                candidate: sim.ids[1].id,
                prev: [7; 16],
            }),
        );
        let t = sim.topic(1, Family::Election);
        let actions = sim.nodes[0].handle(
            Input::Message {
                topic: &t,
                payload: &vote,
                retained: false,
            },
            sim.now,
        );
        assert_eq!(sim.nodes[0].catchup.claim_of(sim.ids[1].id), 2);
        let sync = sim.nodes[0].topics().sync(sim.ids[0].id);
        assert!(actions.publishes().any(|p| p.topic == sync));
    }

    /// Approvals are signed by their voter, so a node may pass on those of
    /// a quorum that others missed; a relayed approval counts for its voter.
    #[test]
    fn relayed_approval_counts_for_its_voter() {
        let mut sim = Sim::new(3, 28);
        sim.connect_all();
        for _ in 0..100 {
            if sim.nodes[0].members.key(sim.ids[1].id).is_some() {
                break;
            }
            sim.step();
        }
        let approval = sim.signed(1, 1, 0, Payload::Approval(Approval::approve([9; 16], 0)));
        let t = sim.topic(2, Family::Voting);
        let before = sim.nodes[0].rejected;
        sim.deliver(0, &t, &approval);
        assert_eq!(sim.nodes[0].rejected, before);
        let ballot = sim.nodes[0]
            .tx
            .rounds
            .ballots()
            .get(0, Stance::Approve, sim.ids[1].id)
            .expect("counted");
        assert_eq!(ballot.0, [9; 16]);
        // Votes still may not be relayed: their topic names the voter.
        let vote = sim.signed(
            1,
            1,
            0,
            Payload::Vote(Vote {
                candidate: sim.ids[1].id,
                prev: sim.genesis_prev(),
            }),
        );
        let t = sim.topic(2, Family::Election);
        sim.deliver(0, &t, &vote);
        assert_eq!(sim.nodes[0].rejected, before + 1);
    }

    #[test]
    fn follow_threshold_is_one_more_than_the_liars_tolerated() {
        let with = |n: usize, q: usize| {
            let ids: Vec<Identity> = (0..n)
                .map(|_| Identity::ephemeral(&mut rand_core::OsRng))
                .collect();
            genesis_of(&ids, q, &Identity::ephemeral(&mut rand_core::OsRng)).roster()
        };
        // f = 2q - N - 1 liars tolerated; at least one node to follow.
        assert_eq!(with(3, 2).follow_threshold(), 1);
        assert_eq!(with(4, 3).follow_threshold(), 2);
        assert_eq!(with(5, 3).follow_threshold(), 1);
        assert_eq!(with(13, 7).follow_threshold(), 1);
        // Never more than the others: q = N would leave a laggard alone.
        assert_eq!(with(4, 4).follow_threshold(), 3);
        assert_eq!(with(2, 2).follow_threshold(), 1);
        assert_eq!(with(7, 6).follow_threshold(), 5);
    }
}

#[path = "tests/restart.rs"]
mod restarts;
