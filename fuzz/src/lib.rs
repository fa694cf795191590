//! The checks of both fuzz targets, also run on the kept corpora by
//! `tests/corpus.rs`: the decoder's (`decode`), and a cluster of pure
//! protocol nodes run by fuzz bytes, for the `cluster` target and for
//! making seed corpora.
//!
//! Three honest nodes and one rogue member (a genesis of four, quorum
//! three, so one liar is tolerated) exchange messages through an in-memory
//! broker whose every choice comes from the input: which message goes to
//! whom and when, which is dropped, duplicated, cut, bit-flipped or
//! replaced by raw bytes. The rogue member has a real key and no code of its
//! own: it re-signs, as its own, altered copies of whatever it sees (other
//! transactions, rounds, candidates, solutions, change requests), so its
//! signatures are valid and its content is anything. The genesis names an
//! admin key, and the input also has the admin ask for roster changes
//! (removals, additions, a new quorum, or a stale base), never one that
//! would let the rogue split two quorums. Time passes and mining finishes
//! when the input says so; a node that stops (removed) gets nothing more.
//!
//! After every step the cluster checks what no input may break: no panic,
//! no two different commits for one transaction among the honest nodes, and
//! every commit a valid proof of work, in the genesis's difficulty range,
//! led and won by members of the roster in force for it.

mod decode;
pub use decode::decode;

use std::collections::BTreeMap;
use std::sync::Arc;

use edgeminer::identity::{Identity, NodeId};
use edgeminer::pow::{self, engine};
use edgeminer::protocol::memory::{self, Disk, Outward};
use edgeminer::protocol::roster::sign_change;
use edgeminer::protocol::{Committed, Config, Event, Genesis, History, Input, Node, Publish};
use edgeminer::wire::roster::Entry;
use edgeminer::wire::{self, Body, Change, Envelope, Family, Payload, Presence, PubKey, Topics};
use rand_core::SeedableRng;

/// Honest nodes; the rogue member's key is `ids[NODES]`.
pub const NODES: usize = 3;
/// An id nobody has the key of.
const STRANGER: NodeId = NodeId([0xee; 8]);
/// In-flight messages kept (oldest dropped first) and steps per input.
const QUEUE: usize = 512;
const STEPS: usize = 4096;

/// Reads the input one choice at a time; zeros once it runs out.
pub struct Choices<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Choices<'a> {
    pub fn new(data: &'a [u8]) -> Choices<'a> {
        Choices { data, pos: 0 }
    }
    pub fn done(&self) -> bool {
        self.pos >= self.data.len()
    }
    pub fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (usize::from(self.byte()) << 8 | usize::from(self.byte())) % n
        }
    }
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = (start + n).min(self.data.len());
        self.pos = start + n;
        &self.data[start..end]
    }
}

pub struct Cluster {
    pub cfg: Config,
    pub topics: Topics,
    /// The members: honest nodes first, the rogue last.
    pub ids: Vec<Identity>,
    /// The genesis's admin key, which signs roster changes.
    pub admin: Identity,
    pub nodes: Vec<Node>,
    /// Nodes still running (a removed node stops for good).
    pub up: Vec<bool>,
    pub queue: Vec<Publish>,
    pub retained: BTreeMap<String, Vec<u8>>,
    /// Each node's disk, for answering catch-up requests.
    pub disks: Vec<Disk>,
    /// The job each node mines, if any.
    pub jobs: Vec<Option<pow::Job>>,
    /// Every commit seen: transaction → solution reference.
    pub commits: BTreeMap<u64, [u8; 16]>,
    /// The first commit of each transaction, and the rosters they put in
    /// force.
    pub ledger: History,
    /// Every payload published, for seed corpora.
    pub published: Vec<Vec<u8>>,
    pub now: u64,
}

impl Cluster {
    pub fn new() -> Cluster {
        let key = |b: u8| Identity::ephemeral(&mut rand_chacha::ChaCha20Rng::from_seed([b; 32]));
        let ids: Vec<Identity> = (0..=NODES as u8).map(|i| key(i + 1)).collect();
        let admin = key(0xad);
        let members = ids
            .iter()
            .enumerate()
            .map(|(i, id)| Entry {
                id: id.id,
                name: if i < NODES {
                    format!("f{i}")
                } else {
                    "rogue".into()
                },
            })
            .collect();
        let genesis = Genesis::new("fuzz".into(), members, 3, (1, 3), Some(admin.public), None)
            .expect("a valid genesis");
        let cfg = Config {
            genesis: Arc::new(genesis),
            election_timeout_ms: 1000,
            solution_window_ms: 50,
            init_timeout_ms: 2000,
            name: String::new(),
            threads: 1,
        };
        let nodes = ids[..NODES]
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let mine = Config {
                    name: format!("f{i}"),
                    ..cfg.clone()
                };
                Node::builder(mine, id).rng_seed([i as u8; 32]).start(0)
            })
            .collect();
        let mut c = Cluster {
            topics: Topics::new(cfg.genesis.cluster()),
            ledger: History::new(&cfg.genesis),
            cfg,
            ids,
            admin,
            nodes,
            up: vec![true; NODES],
            queue: Vec::new(),
            retained: BTreeMap::new(),
            disks: vec![Disk::default(); NODES],
            jobs: vec![None; NODES],
            commits: BTreeMap::new(),
            published: Vec::new(),
            now: 0,
        };
        // The rogue member joins like anyone: key and presence, retained.
        let rogue = c.ids[NODES].id;
        let key = c.rogue_signs(Body {
            sender: rogue,
            tx: 0,
            round: 0,
            payload: Payload::PubKey(PubKey {
                key: c.ids[NODES].public,
                name: "rogue".into(),
                cluster: c.cfg.cluster_id(),
            }),
        });
        let presence = c.rogue_signs(Body {
            sender: rogue,
            tx: 0,
            round: 0,
            payload: Payload::Presence(Presence {
                online: true,
                incarnation: 1,
                name: "rogue".into(),
                threads: 1,
                version: "0".into(),
            }),
        });
        for (f, payload) in [(Family::PubKey, key), (Family::Init, presence)] {
            let topic = c.topics.own(f, rogue);
            c.retained.insert(topic.clone(), payload.clone());
            c.queue.push(Publish {
                topic,
                payload,
                retain: true,
            });
        }
        for i in 0..NODES {
            c.input(i, Input::Connected);
        }
        c
    }

    fn rogue_signs(&self, body: Body) -> Vec<u8> {
        wire::sign(&self.cfg.cluster_id(), &self.ids[NODES].key, body.encode())
    }

    /// Runs the whole input.
    pub fn run(&mut self, data: &[u8]) {
        let mut ch = Choices::new(data);
        for _ in 0..STEPS {
            if ch.done() {
                break;
            }
            self.step(&mut ch);
        }
    }

    fn step(&mut self, ch: &mut Choices) {
        let to = ch.below(NODES);
        match ch.byte() % 9 {
            // Deliver one message to everyone, as the broker does.
            0 | 1 if !self.queue.is_empty() => {
                let m = self.queue.remove(ch.below(self.queue.len()));
                for n in 0..NODES {
                    self.deliver(n, &m.topic, &m.payload);
                }
            }
            // Deliver one to one node only, and keep it (a duplicate later).
            2 if !self.queue.is_empty() => {
                let m = self.queue[ch.below(self.queue.len())].clone();
                self.deliver(to, &m.topic, &m.payload);
            }
            // A damaged copy.
            3 if !self.queue.is_empty() => {
                let mut m = self.queue[ch.below(self.queue.len())].clone();
                let at = ch.below(m.payload.len().max(1));
                match ch.byte() % 3 {
                    0 => {
                        if let Some(b) = m.payload.get_mut(at) {
                            *b ^= 1 << (ch.byte() % 8);
                        }
                    }
                    1 => m.payload.truncate(at),
                    _ => m.payload.extend_from_slice(ch.bytes(8)),
                }
                self.deliver(to, &m.topic, &m.payload);
            }
            // Raw bytes on any topic under any id.
            4 => {
                let topic = self.topic(ch);
                let len = usize::from(ch.byte());
                let raw = ch.bytes(len).to_vec();
                self.deliver(to, &topic, &raw);
            }
            // The rogue member re-signs an altered copy as its own.
            5 if !self.queue.is_empty() => {
                let m = self.queue[ch.below(self.queue.len())].clone();
                let Some(mut body) = Envelope::decode(&m.payload, wire::MAX_CERT_MESSAGE)
                    .ok()
                    .and_then(|e| Body::decode(&e.body).ok())
                else {
                    return;
                };
                body.sender = self.ids[NODES].id;
                body.tx = body
                    .tx
                    .wrapping_add(u64::from(ch.byte() % 3))
                    .wrapping_sub(1);
                body.round = body.round.wrapping_add(u32::from(ch.byte() % 4));
                let mut bytes = body.encode();
                if ch.byte() % 2 == 1 {
                    let at = ch.below(bytes.len().max(1));
                    if let Some(b) = bytes.get_mut(at) {
                        *b ^= ch.byte() | 1;
                    }
                }
                let env = wire::sign(&self.cfg.cluster_id(), &self.ids[NODES].key, bytes);
                let family = self
                    .topics
                    .parse(&m.topic)
                    .map_or(Family::Init, |r| r.family);
                let topic = self.topics.own(family, self.ids[NODES].id);
                for n in 0..NODES {
                    self.deliver(n, &topic, &env);
                }
            }
            // Time passes.
            6 => {
                self.now += u64::from(ch.byte()) * 20;
                for n in 0..NODES {
                    if self.nodes[n].next_timeout().is_some_and(|t| t <= self.now) {
                        self.input(n, Input::Tick);
                    }
                }
            }
            // The admin asks for a roster change.
            8 => self.change_request(to, ch),
            // A miner finds its seed; or a node reconnects.
            _ => {
                if let Some(job) = self.jobs[to].take() {
                    let t = pow::Template::new(&job.salt, &job.solver);
                    let stop = std::sync::atomic::AtomicBool::new(false);
                    let start = u64::from(ch.byte()) << 8;
                    let found = engine::by_name("portable")
                        .expect("the portable engine is always built in")
                        .search(&t, start, u64::MAX, job.difficulty, &stop)
                        .found;
                    if let Some(seed) = found {
                        self.input(to, Input::Mined { job: job.id, seed });
                    }
                } else {
                    self.input(to, Input::Connected);
                    let retained: Vec<(String, Vec<u8>)> = self
                        .retained
                        .iter()
                        .map(|(t, p)| (t.clone(), p.clone()))
                        .collect();
                    for (t, p) in retained {
                        self.deliver_as(to, &t, &p, true);
                    }
                }
            }
        }
    }

    /// The admin's signed request to change the roster node `to` has
    /// (or, now and then, a roster nobody has), retained on its
    /// `roster/<admin-id>` topic as `edgeminer roster` leaves it. Some
    /// requests are invalid (an empty roster, a quorum of half or fewer,
    /// the admin or a stranger added); none lets two quorums meet only in
    /// the rogue, which no protocol can survive.
    fn change_request(&mut self, to: usize, ch: &mut Choices) {
        let roster = self.nodes[to].roster();
        let base = match ch.byte() {
            0..=15 => [ch.byte(); 16],
            _ => roster.hash(),
        };
        let (drop, take) = (ch.byte(), ch.byte());
        let remove: Vec<NodeId> = roster
            .ids()
            .enumerate()
            .filter(|(i, _)| drop >> (i % 8) & 1 == 1)
            .map(|(_, id)| id)
            .collect();
        let mut add: Vec<Entry> = self
            .ids
            .iter()
            .map(|i| i.id)
            .chain([self.admin.id, STRANGER])
            .filter(|id| !roster.contains(*id))
            .enumerate()
            .filter(|(i, _)| take >> (i % 8) & 1 == 1)
            .map(|(_, id)| Entry {
                id,
                name: String::new(),
            })
            .collect();
        add.sort();
        let rogue = self.ids[NODES].id;
        let rogue_stays = (roster.contains(rogue) && !remove.contains(&rogue))
            || add.iter().any(|e| e.id == rogue);
        let n = roster.len() - remove.len() + add.len();
        let mut quorum = ch.below(n + 2);
        if rogue_stays && quorum * 2 == n + 1 {
            quorum += 1;
        }
        let change = Change {
            base,
            quorum: quorum as u32,
            add,
            remove,
        };
        let payload = sign_change(&self.cfg.genesis, &self.admin.key, change);
        self.publish(Publish {
            topic: self.topics.own(Family::Roster, self.admin.id),
            payload,
            retain: true,
        });
    }

    /// A topic of this cluster (or a stray one) under a member's, the
    /// admin's or a stranger's id.
    fn topic(&self, ch: &mut Choices) -> String {
        let who = match ch.below(NODES + 3) {
            i if i <= NODES => self.ids[i].id,
            i if i == NODES + 1 => self.admin.id,
            _ => STRANGER,
        };
        let families = Family::ALL.len();
        match usize::from(ch.byte()) % (families + 3) {
            f if f < families => self.topics.own(Family::ALL[f], who),
            f if f == families => self.topics.commit(who),
            f if f == families + 1 => self.topics.sync(who),
            _ => "edgeminer/other/init/0000000000000000".into(),
        }
    }

    fn deliver(&mut self, n: usize, topic: &str, payload: &[u8]) {
        self.deliver_as(n, topic, payload, false);
    }

    fn deliver_as(&mut self, n: usize, topic: &str, payload: &[u8], retained: bool) {
        self.input(
            n,
            Input::Message {
                topic,
                payload,
                retained,
            },
        );
    }

    /// Puts a message on the broker.
    fn publish(&mut self, p: Publish) {
        if p.retain {
            self.retained.insert(p.topic.clone(), p.payload.clone());
        }
        if self.published.len() < 10_000 {
            self.published.push(p.payload.clone());
        }
        if self.queue.len() >= QUEUE {
            self.queue.remove(0);
        }
        self.queue.push(p);
    }

    fn input(&mut self, n: usize, input: Input) {
        if !self.up[n] {
            return;
        }
        let out = self.nodes[n].handle(input, self.now);
        for step in out.into_steps() {
            let (node, disk, job) = (&self.nodes[n], &mut self.disks[n], &mut self.jobs[n]);
            match memory::carry_out(node, disk, job, step) {
                Some(Outward::Publish(p)) => self.publish(p),
                Some(Outward::Event(Event::Committed(c))) => self.check(c),
                Some(Outward::Event(Event::Stop(_))) => {
                    self.up[n] = false;
                    self.jobs[n] = None;
                }
                None => {}
            }
        }
    }

    /// A commit breaks nothing: one per transaction, a valid proof of
    /// work in the genesis's range, by members of the roster in force.
    fn check(&mut self, c: Committed) {
        let (lo, hi) = self.cfg.genesis.difficulty();
        assert!(
            (lo..=hi).contains(&c.difficulty),
            "tx {} committed at difficulty {}",
            c.tx,
            c.difficulty
        );
        assert!(
            pow::verify(&c.salt, &c.winner.0, c.seed, c.difficulty),
            "tx {} committed without a valid proof of work",
            c.tx
        );
        if let Some(first) = self.commits.get(&c.tx) {
            assert_eq!(*first, c.reference, "two different commits for tx {}", c.tx);
            return;
        }
        // Each node commits in order, so the first commit of a
        // transaction comes after the first of the one before.
        assert_eq!(
            c.tx,
            self.ledger.height() + 1,
            "tx {} committed out of order",
            c.tx
        );
        let roster = self.ledger.roster();
        for (who, id) in [("won", c.winner), ("led", c.leader)] {
            assert!(
                roster.contains(id),
                "tx {} {who} by {id}, not a member of roster version {}",
                c.tx,
                roster.version()
            );
        }
        self.commits.insert(c.tx, c.reference);
        let tx = c.tx;
        if let Err(e) = self.ledger.push(c) {
            panic!("tx {tx} committed a roster change that does not apply: {e}");
        }
    }
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster::new()
    }
}
