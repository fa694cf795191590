//! A cluster of pure protocol nodes run by fuzz bytes, for the `cluster`
//! target and for making seed corpora.
//!
//! Three honest nodes and one rogue member (a cluster of four, quorum
//! three, so one liar is tolerated) exchange messages through an in-memory
//! broker whose every choice comes from the input: which message goes to
//! whom and when, which is dropped, duplicated, cut, bit-flipped or
//! replaced by raw bytes. The rogue member has a real key and no code of its
//! own: it re-signs, as its own, altered copies of whatever it sees (other
//! transactions, rounds, candidates, solutions), so its signatures are valid
//! and its content is anything. Time passes and mining finishes when the
//! input says so.
//!
//! After every step the cluster checks what no input may break: no panic,
//! no two different commits for one transaction among the honest nodes, and
//! every commit a valid proof of work by a member.

use std::collections::BTreeMap;

use edgeminer::identity::{Identity, NodeId};
use edgeminer::pow::{self, engine};
use edgeminer::protocol::{Action, Config, Input, Node, Publish};
use edgeminer::wire::{self, Body, Envelope, Family, Payload, Presence, PubKey, Topics};
use rand_core::SeedableRng;

/// Honest nodes; the rogue member's key is `ids[NODES]`.
pub const NODES: usize = 3;
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
    pub ids: Vec<Identity>,
    pub nodes: Vec<Node>,
    pub queue: Vec<Publish>,
    pub retained: BTreeMap<String, Vec<u8>>,
    /// Each node's ledger records, for answering catch-up requests.
    pub records: Vec<Vec<Vec<u8>>>,
    /// The job each node mines, if any.
    pub jobs: Vec<Option<pow::Job>>,
    /// Every commit seen: transaction → solution reference.
    pub commits: BTreeMap<u64, [u8; 16]>,
    /// Every payload published, for seed corpora.
    pub published: Vec<Vec<u8>>,
    pub now: u64,
}

impl Cluster {
    pub fn new() -> Cluster {
        let cfg = Config {
            cluster: "fuzz".into(),
            nodes: NODES + 1,
            quorum: 3,
            difficulty: (1, 3),
            election_timeout_ms: 1000,
            solution_window_ms: 50,
            init_timeout_ms: 2000,
            name: String::new(),
            threads: 1,
        };
        let ids: Vec<Identity> = (0..=NODES as u8)
            .map(|i| Identity::ephemeral(&mut rand_chacha::ChaCha20Rng::from_seed([i + 1; 32])))
            .collect();
        let nodes = ids[..NODES]
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let cfg = Config {
                    name: format!("f{i}"),
                    ..cfg.clone()
                };
                Node::new(cfg, id, [i as u8; 32], 1, &[], None, 0)
            })
            .collect();
        let mut c = Cluster {
            topics: Topics::new(&cfg.cluster),
            cfg,
            ids,
            nodes,
            queue: Vec::new(),
            retained: BTreeMap::new(),
            records: vec![Vec::new(); NODES],
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
        wire::sign(&self.cfg.cluster, &self.ids[NODES].key, body.encode())
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
        match ch.byte() % 8 {
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
                let env = wire::sign(&self.cfg.cluster, &self.ids[NODES].key, bytes);
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
                        self.deliver(to, &t, &p);
                    }
                }
            }
        }
    }

    /// A topic of this cluster (or a stray one) under a member's or a
    /// stranger's id.
    fn topic(&self, ch: &mut Choices) -> String {
        let who = match ch.below(NODES + 2) {
            i if i <= NODES => self.ids[i].id,
            _ => NodeId([0xee; 8]),
        };
        match ch.byte() % 9 {
            6 => self.topics.commit(who),
            7 => self.topics.sync(who),
            8 => "edgeminer/other/init/0000000000000000".into(),
            f => self.topics.own(Family::ALL[usize::from(f)], who),
        }
    }

    fn deliver(&mut self, n: usize, topic: &str, payload: &[u8]) {
        self.input(n, Input::Message { topic, payload });
    }

    fn input(&mut self, n: usize, input: Input) {
        let actions = self.nodes[n].handle(input, self.now);
        for a in actions {
            match a {
                Action::Publish(p) => {
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
                Action::Mine(job) => self.jobs[n] = Some(job),
                Action::StopMining => self.jobs[n] = None,
                Action::AppendLedger(r) => self.records[n].push(r),
                Action::SaveVotes(_) => {}
                Action::Committed(c) => {
                    assert!(
                        self.ids.iter().any(|i| i.id == c.winner),
                        "tx {} won by a stranger",
                        c.tx
                    );
                    assert!(
                        pow::verify(&c.salt, &c.winner.0, c.seed, c.difficulty),
                        "tx {} committed without a valid proof of work",
                        c.tx
                    );
                    let first = *self.commits.entry(c.tx).or_insert(c.reference);
                    assert_eq!(first, c.reference, "two different commits for tx {}", c.tx);
                }
                Action::ServeHistory { tx } => {
                    let record = self.records[n].get((tx as usize).wrapping_sub(1)).cloned();
                    if let Some(p) = record.and_then(|r| self.nodes[n].history_message(tx, &r)) {
                        self.queue.push(p);
                    }
                }
            }
        }
    }
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster::new()
    }
}
