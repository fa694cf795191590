//! The simulated world: nodes of the pure protocol core, their disks, a
//! broker, a virtual clock and the faults of a [`Plan`].
//!
//! Everything happens as events on one timeline ordered by (time, sequence);
//! all randomness comes from RNG streams derived from the run's seed, so a
//! run is a pure function of (seed, plan). The model is harsher than a real
//! broker: deliveries are reordered even between two messages of one sender,
//! messages published while a node has no session are lost (a real client
//! would queue some of them), and wills may land after the node is back.

use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use super::check::{Checker, Violation};
use super::forge::Forger;
use super::plan::{FaultKind, Plan};
use crate::identity::Identity;
use crate::pow::{self, Job};
use crate::protocol::head;
use crate::protocol::memory::{self, Disk, Outward};
use crate::protocol::reference;
use crate::protocol::roster::sign_change;
use crate::protocol::{
    quorum, Chain, Config, Durable, Effect, Event, Genesis, Input, Node, Output, Persist, Publish,
    Resumed, Step, VoteState,
};
use crate::store::ledger;
use crate::wire::roster::{Change, Entry};
use crate::wire::{Body, Envelope, Family, Payload, SigCache, Stance, Topics};

/// The broker publishes a will this long (at most) after it loses a client:
/// 1.5 times the daemon's 5 s keep-alive.
pub(crate) const WILL_AFTER_MS: u64 = 7_500;

/// One machine: a node (while its process runs) and its disk.
pub struct Host {
    pub identity: Identity,
    pub node: Option<Node>,
    /// The durable ledger and vote state.
    pub disk: Disk,
    /// The current broker session, if connected.
    session: Option<u64>,
    will: Option<Publish>,
    /// Partitions in force that cut this host off.
    cut_off: u32,
    reconnecting: bool,
    mining: Option<Job>,
    /// Crash after this many actions of the next step: (cut, restart after).
    crash_after: Option<(usize, Option<u64>)>,
    dead_for_good: bool,
    /// Started at least once (spare boards start when the admin adds them).
    launched: bool,
    /// Mean time to mine a job (boards differ).
    mine_ms: u64,
    restarts: u64,
}

enum Ev {
    Deliver {
        to: usize,
        session: u64,
        topic: Rc<str>,
        payload: Rc<[u8]>,
        /// Sent from the broker's store on connecting.
        retained: bool,
    },
    /// A seed found for `job`: the whole job, not its id, since a
    /// restarted node numbers its jobs from 1 again and a seed mined
    /// before the crash must not pass for one of the new job.
    Mined {
        host: usize,
        job: Job,
        seed: u64,
    },
    Fault(usize),
    Restart(usize),
    Reconnect(usize),
    PartitionEnd(Vec<usize>),
    BrokerUp {
        lose_retained: bool,
    },
    Will {
        host: usize,
        epoch: u64,
        will: Publish,
    },
    /// A forger's next batch (index into `World::forgers`).
    Forge(usize),
    /// The admin looks at the roster and makes its next change.
    Admin,
}

/// A forger at work until `until`.
struct Forging {
    forger: Forger,
    until: u64,
    every: u64,
    batches: u64,
    /// Its first key is a member's (stolen).
    insider: bool,
}

/// A window of time with lossy or slow delivery.
struct Window {
    until: u64,
    node: Option<usize>,
    drop_pct: u64,
    dup_pct: u64,
    extra: u64,
}

pub struct World {
    pub cfg: Config,
    /// The key that signs roster changes (the genesis names it).
    pub admin: Identity,
    pub hosts: Vec<Host>,
    pub now: u64,
    pub steps: u64,
    plan: Plan,
    events: BTreeMap<(u64, u64), Ev>,
    seq: u64,
    net: ChaCha8Rng,
    mine: ChaCha8Rng,
    boot: ChaCha8Rng,
    retained: BTreeMap<Rc<str>, Rc<[u8]>>,
    broker_down: u32,
    broker_epoch: u64,
    sessions: u64,
    windows: Vec<Window>,
    pub checker: Checker,
    pub violation: Option<Violation>,
    pub trace: Option<Vec<String>>,
    /// Print trace lines as they happen (to interleave with node logs).
    live: bool,
    /// One signature cache for all nodes.
    sigs: SigCache,
    /// The last timer fired (host, time) and how often in a row.
    spin: ((usize, u64), u32),
    /// Members in the genesis (hosts beyond are spare boards).
    members: usize,
    forgers: Vec<Forging>,
    /// The member whose key a forger stole (it may be called a liar).
    insider: Option<usize>,
    /// Membership changes the plan asked for, not made yet.
    admin_queue: VecDeque<FaultKind>,
    /// The admin's published request and the roster version it makes.
    admin_pending: Option<(Vec<u8>, u32)>,
}

fn stream(seed: u64, which: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(which);
    r
}

fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    rng.next_u64() % n.max(1)
}

impl World {
    /// A cluster of `n` members with quorum `q`, its keys and timings
    /// drawn from `seed`.
    pub fn new(n: usize, q: usize, seed: u64, plan: Plan, trace: bool, live: bool) -> World {
        let mut keys = stream(seed, 1);
        let mut boot = stream(seed, 2);
        let spares = plan.spares();
        let mut hosts: Vec<Host> = (0..n + spares)
            .map(|i| Host {
                identity: Identity::ephemeral(&mut rand_chacha::ChaCha20Rng::seed_from_u64(
                    keys.next_u64(),
                )),
                node: None,
                disk: Disk::default(),
                session: None,
                will: None,
                cut_off: 0,
                reconnecting: false,
                mining: None,
                crash_after: None,
                dead_for_good: false,
                launched: i < n,
                mine_ms: 300 + below(&mut boot, 2_700),
                restarts: 0,
            })
            .collect();
        let admin = Identity::ephemeral(&mut rand_chacha::ChaCha20Rng::seed_from_u64(
            keys.next_u64(),
        ));
        let members = hosts[..n]
            .iter()
            .enumerate()
            .map(|(i, h)| Entry {
                id: h.identity.id,
                name: format!("n{i}"),
            })
            .collect();
        // Simulated sizes and quorums are valid by construction (`run`);
        // an invalid one is a bug of the caller.
        // The checker's own test asks for unsafe quorums on purpose.
        let safe = n / 2 + 1;
        let genesis = Genesis::new(
            "sim".into(),
            members,
            safe,
            (4, 6),
            Some(admin.public),
            None,
        )
        .expect("a valid simulated cluster")
        .with_unsafe_quorum(q);
        let cfg = super::config(Arc::new(genesis));
        for h in &mut hosts {
            h.disk = Disk::new(&cfg.genesis);
        }
        let ids = hosts.iter().map(|h| h.identity.id).collect();
        let sigs = SigCache::with_capacity(16_384);
        let mut w = World {
            checker: Checker::new(cfg.genesis.clone(), ids, sigs.clone()),
            cfg,
            admin,
            hosts,
            now: 0,
            steps: 0,
            events: BTreeMap::new(),
            seq: 0,
            net: stream(seed, 3),
            mine: stream(seed, 4),
            boot,
            retained: BTreeMap::new(),
            broker_down: 0,
            broker_epoch: 0,
            sessions: 0,
            windows: Vec::new(),
            violation: None,
            trace: (trace || live).then(Vec::new),
            live,
            spin: ((usize::MAX, 0), 0),
            sigs,
            plan,
            members: n,
            forgers: Vec::new(),
            insider: None,
            admin_queue: VecDeque::new(),
            admin_pending: None,
        };
        for i in 0..w.plan.faults.len() {
            let at = w.plan.faults[i].at;
            w.schedule(at, Ev::Fault(i));
        }
        for h in 0..n {
            let at = below(&mut w.boot, 500);
            w.schedule(at, Ev::Restart(h));
        }
        w
    }

    fn schedule(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.events.insert((at, self.seq), ev);
    }

    fn note(&mut self, line: impl FnOnce() -> String) {
        if let Some(t) = &mut self.trace {
            let line = format!("t={:>6} {}", self.now, line());
            if self.live {
                eprintln!("{line}");
            }
            t.push(line);
        }
    }

    /// Heights of the nodes that run now (None for a stopped process).
    pub fn heights(&self) -> Vec<Option<u64>> {
        self.hosts
            .iter()
            .map(|h| h.node.as_ref().map(Node::height))
            .collect()
    }

    pub fn is_dead_for_good(&self, h: usize) -> bool {
        self.hosts[h].dead_for_good
    }

    /// Hosts that must make progress: started, and neither dead for good
    /// nor stopped by the protocol (removed from the roster).
    pub fn live(&self) -> Vec<usize> {
        (0..self.hosts.len())
            .filter(|&h| self.hosts[h].launched && !self.hosts[h].dead_for_good)
            .collect()
    }

    /// Runs one event or timer. Returns false when nothing can happen any more.
    pub fn step(&mut self) -> bool {
        self.steps += 1;
        let tick = self
            .hosts
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.node.as_ref().and_then(Node::next_timeout).map(|t| (t, i)))
            .min();
        let next_ev = self.events.first_key_value().map(|(k, _)| k.0);
        match (tick, next_ev) {
            (Some((t, h)), ev) if ev.is_none_or(|e| t <= e) => {
                self.now = self.now.max(t);
                if self.spin.0 == (h, t) {
                    self.spin.1 += 1;
                    if self.spin.1 > 1_000 {
                        self.fail(Violation::Spin { node: h, at: t });
                    }
                } else {
                    self.spin = ((h, t), 0);
                }
                self.note(|| format!("n{h} timer"));
                self.input(h, Input::Tick);
                true
            }
            (_, Some(_)) => {
                let Some(((at, _), ev)) = self.events.pop_first() else {
                    return false;
                };
                self.now = self.now.max(at);
                self.event(ev);
                true
            }
            _ => false,
        }
    }

    fn event(&mut self, ev: Ev) {
        match ev {
            Ev::Deliver {
                to,
                session,
                topic,
                payload,
                retained,
            } => {
                if self.hosts[to].session != Some(session) {
                    return;
                }
                if self.trace.is_some() {
                    let d = self.describe(&payload);
                    self.note(|| format!("n{to} <- {d}"));
                }
                self.input(
                    to,
                    Input::Message {
                        topic: &topic,
                        payload: &payload,
                        retained,
                    },
                );
            }
            Ev::Mined { host, job, seed } => {
                if self.hosts[host].node.is_some() && self.hosts[host].mining.as_ref() == Some(&job)
                {
                    self.hosts[host].mining = None;
                    let id = job.id;
                    self.note(|| format!("n{host} mined seed {seed} (job {id})"));
                    self.input(host, Input::Mined { job: id, seed });
                }
            }
            Ev::Fault(i) => self.fault(i),
            Ev::Restart(h) => self.restart(h),
            Ev::Reconnect(h) => {
                self.hosts[h].reconnecting = false;
                self.connect(h);
            }
            Ev::PartitionEnd(nodes) => {
                for h in nodes {
                    self.hosts[h].cut_off -= 1;
                    self.note(|| format!("n{h} link restored"));
                    self.want_session(h);
                }
            }
            Ev::BrokerUp { lose_retained } => {
                self.broker_down -= 1;
                if lose_retained {
                    self.retained.clear();
                }
                self.note(|| "broker up".into());
                for h in 0..self.hosts.len() {
                    self.want_session(h);
                }
            }
            Ev::Will { host, epoch, will } => {
                if self.broker_down == 0 && self.broker_epoch == epoch {
                    self.note(|| format!("broker publishes the will of n{host}"));
                    self.publish(host, will);
                }
            }
            Ev::Forge(i) => self.forge(i),
            Ev::Admin => self.admin(),
        }
    }

    fn fault(&mut self, i: usize) {
        let f = self.plan.faults[i].clone();
        self.note(|| format!("FAULT {f}"));
        match f.kind {
            FaultKind::Crash { node, cut, down } => {
                if self.hosts[node].node.is_none() {
                    if down.is_none() {
                        self.hosts[node].dead_for_good = true;
                    }
                    return;
                }
                // Half the crashes cut the next step short, half strike now.
                if cut > 0 && cut % 2 == 1 {
                    self.hosts[node].crash_after = Some((cut / 2, down));
                } else {
                    self.crash(node, down);
                }
            }
            FaultKind::Partition { nodes, dur } => {
                for &h in &nodes {
                    self.hosts[h].cut_off += 1;
                    self.drop_session(h, true);
                }
                self.schedule(self.now + dur, Ev::PartitionEnd(nodes));
            }
            FaultKind::BrokerRestart {
                down,
                lose_retained,
            } => {
                self.broker_down += 1;
                self.broker_epoch += 1;
                for h in 0..self.hosts.len() {
                    self.drop_session(h, false);
                }
                self.schedule(self.now + down, Ev::BrokerUp { lose_retained });
            }
            FaultKind::Lossy {
                dur,
                drop_pct,
                dup_pct,
            } => self.windows.push(Window {
                until: self.now + dur,
                node: None,
                drop_pct: drop_pct.into(),
                dup_pct: dup_pct.into(),
                extra: 0,
            }),
            FaultKind::Slow { node, dur, extra } => self.windows.push(Window {
                until: self.now + dur,
                node: Some(node),
                drop_pct: 0,
                dup_pct: 0,
                extra,
            }),
            FaultKind::Forgery {
                dur,
                every,
                keys,
                insider,
            } => {
                let mut ids = Vec::new();
                if let Some(m) = insider {
                    self.insider = Some(m);
                    ids.push(self.hosts[m].identity.clone());
                }
                ids.extend(self.mint(keys.saturating_sub(ids.len()).max(1)));
                self.forgers.push(Forging {
                    forger: Forger::new(self.cfg.genesis.clone(), ids),
                    until: self.now + dur,
                    every,
                    batches: 0,
                    insider: insider.is_some(),
                });
                self.schedule(self.now, Ev::Forge(self.forgers.len() - 1));
            }
            FaultKind::Ghosts { count } => {
                let forger = Forger::new(self.cfg.genesis.clone(), self.mint(count));
                for k in 0..count {
                    for p in forger.ghost(k, self.now + 1) {
                        self.publish(usize::MAX, p);
                    }
                }
            }
            kind @ (FaultKind::Remove { .. } | FaultKind::Add { .. }) => {
                self.admin_queue.push_back(kind);
                if self.admin_pending.is_none() {
                    self.schedule(self.now, Ev::Admin);
                }
            }
        }
    }

    /// Fresh keys, as anyone can make.
    fn mint(&mut self, count: usize) -> Vec<Identity> {
        (0..count)
            .map(|_| {
                Identity::ephemeral(&mut rand_chacha::ChaCha20Rng::seed_from_u64(
                    self.boot.next_u64(),
                ))
            })
            .collect()
    }

    /// One batch of forgeries: the next transaction as the forger's keys
    /// alone would make it, its certificate, and far-future claims.
    fn forge(&mut self, i: usize) {
        let f = &mut self.forgers[i];
        if self.now > f.until {
            return;
        }
        f.batches += 1;
        let retain = f.batches % 2 == 1;
        let next = self.now + f.every;
        let (height, prev) = self.checker.head();
        let Forging {
            forger: f, insider, ..
        } = &self.forgers[i];
        let (msgs, cert) = f.transaction(height + 1, prev);
        let member = self.hosts[0].identity.id;
        let far = 1u64 << 62;
        // A stolen key signs certificates and far-future claims, not
        // messages of the transaction under way: those would make its
        // member an equivocator, which is another attack (the adversary
        // tests), and one that rosters tolerate only up to their limit.
        let stolen = f.id(0).to_string();
        let mut out: Vec<Publish> = msgs
            .into_iter()
            .filter(|p| !insider || !p.topic.contains(&stolen))
            .collect();
        out.push(f.certificate(0, height + 1, cert.clone(), retain));
        out.push(f.sync(0, far, member));
        out.push(f.vote(0, far, 0, prev, f.id(0)));
        out.push(f.certificate(0, far, cert, false));
        self.note(|| {
            format!(
                "FORGER publishes {} messages for tx {}",
                out.len(),
                height + 1
            )
        });
        for p in out {
            self.publish(usize::MAX, p);
        }
        self.schedule(next, Ev::Forge(i));
    }

    /// The admin: once its last request is committed, the next change the
    /// plan asks for; until then, the last request again now and then (an
    /// operator who reruns the command).
    fn admin(&mut self) {
        let topic = Topics::new(self.cfg.genesis.cluster()).own(Family::Roster, self.admin.id);
        if let Some((raw, version)) = self.admin_pending.clone() {
            if self.checker.roster().version() < version {
                self.publish_retained(topic, raw);
                self.schedule(self.now + 2_000, Ev::Admin);
                return;
            }
            self.admin_pending = None;
        }
        let Some(kind) = self.admin_queue.pop_front() else {
            return;
        };
        let roster = self.checker.roster().clone();
        let planned_dead = self.plan.dead_for_good();
        let (change, start) = match kind {
            FaultKind::Remove { node } => {
                let gone = self.hosts[node].identity.id;
                let rest: Vec<usize> = (0..self.hosts.len())
                    .filter(|&h| h != node && roster.contains(self.hosts[h].identity.id))
                    .collect();
                let q = quorum::majority(rest.len());
                let alive = rest
                    .iter()
                    .filter(|&&h| !planned_dead.contains(&h) && !self.hosts[h].dead_for_good)
                    .count();
                if !roster.contains(gone) || rest.len() < 2 || alive < q {
                    self.note(|| format!("the admin does not remove n{node}"));
                    self.schedule(self.now, Ev::Admin);
                    return;
                }
                let change = Change {
                    base: roster.hash(),
                    quorum: q as u32,
                    add: vec![],
                    remove: vec![gone],
                };
                (change, None)
            }
            FaultKind::Add { spare } => {
                let h = self.members + spare;
                let id = self.hosts[h].identity.id;
                let change = Change {
                    base: roster.hash(),
                    quorum: quorum::majority(roster.len() + 1) as u32,
                    add: vec![Entry {
                        id,
                        name: format!("n{h}"),
                    }],
                    remove: vec![],
                };
                (change, Some(h))
            }
            _ => return,
        };
        self.note(|| format!("ADMIN asks for {change:?}"));
        let raw = sign_change(&self.cfg.genesis, &self.admin.key, change);
        self.admin_pending = Some((raw.clone(), roster.version() + 1));
        self.publish_retained(topic, raw);
        if let Some(h) = start {
            self.hosts[h].launched = true;
            let at = self.now + 100 + below(&mut self.boot, 900);
            self.schedule(at, Ev::Restart(h));
        }
        self.schedule(self.now + 2_000, Ev::Admin);
    }

    fn publish_retained(&mut self, topic: String, payload: Vec<u8>) {
        let p = Publish {
            topic,
            payload,
            retain: true,
        };
        self.publish(usize::MAX, p);
    }

    /// The protocol stopped node `h` for good (removed, or no member):
    /// its process exits and is not restarted.
    fn stop(&mut self, h: usize) {
        self.drop_session(h, true);
        let host = &mut self.hosts[h];
        host.node = None;
        host.mining = None;
        host.crash_after = None;
        host.dead_for_good = true;
    }

    fn crash(&mut self, h: usize, down: Option<u64>) {
        self.note(|| format!("n{h} CRASHES"));
        self.drop_session(h, true);
        let host = &mut self.hosts[h];
        host.node = None;
        host.mining = None;
        host.crash_after = None;
        match down {
            Some(d) => self.schedule(self.now + d, Ev::Restart(h)),
            None => host.dead_for_good = true,
        }
    }

    /// Starts the node's process from its disk, as the daemon does.
    fn restart(&mut self, h: usize) {
        let host = &self.hosts[h];
        if host.node.is_some() || host.dead_for_good {
            return;
        }
        let Some(head) = self.resume(h) else {
            return;
        };
        let host = &self.hosts[h];
        let votes = host
            .disk
            .votes
            .as_ref()
            .map(|b| VoteState::decode(b).expect("the sim writes whole vote states"));
        let mut cfg = self.cfg.clone();
        cfg.name = format!("n{h}");
        let mut rng_seed = [0u8; 32];
        self.boot.fill_bytes(&mut rng_seed);
        let incarnation = self.now + 1;
        // Every node checks every signature; once is enough for the run.
        let node = Node::builder(cfg, &host.identity)
            .rng_seed(rng_seed)
            .incarnation(incarnation)
            .durable(Durable { head, votes })
            .sig_cache(self.sigs.clone())
            .start(self.now);
        if node.height() != host.disk.height() {
            self.fail(Violation::Durability {
                node: h,
                reason: "the node's height differs from its ledger".into(),
            });
        }
        self.note(|| format!("n{h} starts at height {}", node.height()));
        let host = &mut self.hosts[h];
        host.restarts += 1;
        host.node = Some(node);
        self.want_session(h);
    }

    /// What `h` resumes from its disk, as the daemon does (its rosters file
    /// and last certificate); checked against the whole ledger, which must
    /// give the same head.
    fn resume(&mut self, h: usize) -> Option<Resumed> {
        let disk = &self.hosts[h].disk;
        let g = &self.cfg.genesis;
        let whole = ledger::verify_records_with(g, &disk.records, &self.sigs);
        let head = head::resume(g, &Chain::new(g), disk.rosters.as_deref(), disk, &self.sigs);
        let reason = match (&whole, &head) {
            (Err(e), _) => format!("the ledger does not load: {e}"),
            (_, Err(e)) => format!("the ledger does not resume: {e}"),
            (Ok(w), Ok(r)) => {
                let (a, b) = (w.chain(), &r.chain);
                if (a.height(), a.prev(), a.rosters()) == (b.height(), b.prev(), b.rosters()) {
                    return head.ok();
                }
                format!(
                    "the resumed head ({:?}) differs from the whole ledger's",
                    r.checked
                )
            }
        };
        self.fail(Violation::Durability { node: h, reason });
        None
    }

    /// Connects `h` soon if it runs, has a link and the broker is up.
    fn want_session(&mut self, h: usize) {
        let host = &self.hosts[h];
        if host.node.is_some()
            && host.session.is_none()
            && host.cut_off == 0
            && self.broker_down == 0
            && !host.reconnecting
        {
            self.hosts[h].reconnecting = true;
            let at = self.now + 1 + below(&mut self.net, 300);
            self.schedule(at, Ev::Reconnect(h));
        }
    }

    fn connect(&mut self, h: usize) {
        let host = &self.hosts[h];
        if host.node.is_none() || host.session.is_some() || host.cut_off > 0 || self.broker_down > 0
        {
            return;
        }
        self.sessions += 1;
        let session = self.sessions;
        let will = host.node.as_ref().map(Node::last_will);
        let host = &mut self.hosts[h];
        host.session = Some(session);
        host.will = will;
        self.note(|| format!("n{h} connects (session {session})"));
        self.input(h, Input::Connected);
        let retained: Vec<_> = self
            .retained
            .iter()
            .map(|(t, p)| (t.clone(), p.clone()))
            .collect();
        for (topic, payload) in retained {
            let at = self.now + 1 + below(&mut self.net, 20);
            self.schedule(
                at,
                Ev::Deliver {
                    to: h,
                    session,
                    topic,
                    payload,
                    retained: true,
                },
            );
        }
    }

    fn drop_session(&mut self, h: usize, will: bool) {
        let Some(_) = self.hosts[h].session.take() else {
            return;
        };
        self.note(|| format!("n{h} loses the broker"));
        if will {
            if let Some(w) = self.hosts[h].will.clone() {
                let at = self.now + below(&mut self.net, WILL_AFTER_MS);
                let epoch = self.broker_epoch;
                self.schedule(
                    at,
                    Ev::Will {
                        host: h,
                        epoch,
                        will: w,
                    },
                );
            }
        }
    }

    fn input(&mut self, h: usize, input: Input<'_>) {
        let Some(node) = self.hosts[h].node.as_mut() else {
            return;
        };
        let actions = {
            let _span = tracing::info_span!("n", "{h}").entered();
            node.handle(input, self.now)
        };
        // Every simulated node is honest (but for a stolen key): none may
        // be called a liar.
        let liars: Vec<_> = node.liars.iter().copied().collect();
        let accused = liars.into_iter().find_map(|liar| {
            let i = self.hosts.iter().position(|x| x.identity.id == liar);
            (i != self.insider || i.is_none()).then(|| i.unwrap_or(usize::MAX))
        });
        if let Some(accused) = accused {
            self.fail(Violation::FalseAccusation {
                accuser: h,
                accused,
            });
        }
        self.apply(h, actions);
    }

    fn fail(&mut self, v: Violation) {
        self.note(|| format!("VIOLATION {v}"));
        if self.violation.is_none() {
            self.violation = Some(v);
        }
    }

    /// Carries out one output as a driver does: the writes, then the
    /// effects, then the events; a planned crash cuts it after as many
    /// steps as the plan says.
    fn apply(&mut self, h: usize, out: Output) {
        let cut = self.hosts[h].crash_after.take();
        let mut stop = false;
        for (k, step) in out.into_steps().enumerate() {
            if cut.is_some_and(|(c, _)| k == c) {
                break;
            }
            match &step {
                Step::Write(Persist::AppendLedger(record)) => {
                    let tx = self.hosts[h].disk.height() + 1;
                    if let Err(v) = self.checker.appended(h, tx, record) {
                        self.fail(v);
                    }
                }
                Step::Effect(Effect::Publish(p)) => self.check_sync_request(h, p),
                Step::Effect(Effect::Mine(job)) => {
                    self.start_mining(h, job.clone());
                    continue;
                }
                _ => {}
            }
            let host = &mut self.hosts[h];
            let Some(node) = host.node.as_ref() else {
                break;
            };
            match memory::carry_out(node, &mut host.disk, &mut host.mining, step) {
                Some(Outward::Publish(p)) if host.session.is_some() => self.publish(h, p),
                Some(Outward::Event(e)) => stop |= self.happened(h, e),
                Some(Outward::Publish(_)) | None => {}
            }
        }
        if let Some((_, down)) = cut {
            self.crash(h, down);
        } else if stop {
            self.stop(h);
        }
    }

    /// Checks what a node reports; whether it stops.
    fn happened(&mut self, h: usize, e: Event) -> bool {
        match e {
            Event::Stop(why) => {
                self.note(|| format!("n{h} STOPS: {why:?}"));
                true
            }
            Event::Committed(c) => {
                self.note(|| format!("n{h} COMMITS tx {} (seed {})", c.tx, c.seed));
                // One input may commit more than one transaction (catching
                // up): all its records are written before any is reported.
                if c.tx > self.hosts[h].disk.height() {
                    self.fail(Violation::Durability {
                        node: h,
                        reason: format!("tx {} reported before it was written", c.tx),
                    });
                }
                if let Err(v) = self.checker.committed(h, &c) {
                    self.fail(v);
                }
                false
            }
        }
    }

    /// A member asks for catch-up only for a transaction some node has
    /// committed: claims it cannot check never move it.
    fn check_sync_request(&mut self, h: usize, p: &Publish) {
        if !self.hosts[h].node.as_ref().is_some_and(Node::is_member) {
            return;
        }
        let Ok(body) = Envelope::decode(&p.payload, usize::MAX).and_then(|e| Body::decode(&e.body))
        else {
            return;
        };
        let agreed = self.checker.commits();
        if !matches!(body.payload, Payload::Sync(_)) || body.tx <= agreed {
            return;
        }
        // A roster that tolerates no liar (2q - N - 1 = 0) believes any one
        // member: with a member's key stolen, requests may follow (backing
        // off as nobody answers). Otherwise no single liar moves anyone.
        if self.insider.is_some() && self.checker.roster().follow_threshold() < 2 {
            return;
        }
        self.fail(Violation::CatchUp {
            node: h,
            tx: body.tx,
            agreed,
        });
    }

    fn start_mining(&mut self, h: usize, job: Job) {
        let start = self.mine.next_u64() >> 8;
        let seed = (start..)
            .find(|&s| pow::verify(&job.salt, &job.solver, s, job.difficulty))
            .unwrap_or(start);
        // Exponentially distributed mining time around the host's mean.
        let u = (self.mine.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let took = (-(1.0 - u).ln() * self.hosts[h].mine_ms as f64) as u64;
        self.hosts[h].mining = Some(job.clone());
        self.schedule(self.now + 1 + took, Ev::Mined { host: h, job, seed });
    }

    /// The broker takes a message from `from` and fans it out.
    fn publish(&mut self, from: usize, p: Publish) {
        if self.broker_down > 0 {
            return;
        }
        if self.trace.is_some() {
            let d = self.describe(&p.payload);
            let who = match from {
                usize::MAX => "outsider".to_string(),
                _ => format!("n{from}"),
            };
            self.note(|| format!("{who} -> {d}{}", if p.retain { " (retained)" } else { "" }));
        }
        let topic: Rc<str> = p.topic.into();
        let payload: Rc<[u8]> = p.payload.into();
        if p.retain {
            if payload.is_empty() {
                self.retained.remove(&topic);
            } else {
                self.retained.insert(topic.clone(), payload.clone());
            }
        }
        let now = self.now;
        self.windows.retain(|w| w.until > now);
        for to in 0..self.hosts.len() {
            let Some(session) = self.hosts[to].session else {
                continue;
            };
            let (mut drop_pct, mut dup_pct, mut extra) = (0, 0, 0);
            for w in self
                .windows
                .iter()
                .filter(|w| w.node.is_none_or(|n| n == to))
            {
                drop_pct = drop_pct.max(w.drop_pct);
                dup_pct = dup_pct.max(w.dup_pct);
                extra = extra.max(w.extra);
            }
            if below(&mut self.net, 100) < drop_pct {
                continue;
            }
            let copies = if below(&mut self.net, 100) < dup_pct {
                2
            } else {
                1
            };
            for _ in 0..copies {
                let mut delay = 1 + below(&mut self.net, 15) + below(&mut self.net, extra + 1);
                if below(&mut self.net, 100) < 3 {
                    delay += 20 + below(&mut self.net, 300);
                }
                self.schedule(
                    now + delay,
                    Ev::Deliver {
                        to,
                        session,
                        topic: topic.clone(),
                        payload: payload.clone(),
                        retained: false,
                    },
                );
            }
        }
    }
}

impl World {
    fn host_name(&self, id: crate::identity::NodeId) -> String {
        self.hosts
            .iter()
            .position(|h| h.identity.id == id)
            .map_or_else(|| id.to_string(), |i| format!("n{i}"))
    }

    /// A short description of a message for traces.
    fn describe(&self, payload: &[u8]) -> String {
        match Envelope::decode(payload, usize::MAX).and_then(|e| Body::decode(&e.body)) {
            Ok(b) => {
                let who = self
                    .hosts
                    .iter()
                    .position(|h| h.identity.id == b.sender)
                    .map_or_else(|| b.sender.to_string(), |i| format!("n{i}"));
                let what = match &b.payload {
                    Payload::Presence(p) if p.online => "presence (online)".to_string(),
                    Payload::Presence(_) => "presence (gone)".to_string(),
                    Payload::Approval(a) => format!(
                        "{} of {} in voting round {}",
                        match a.stance {
                            Stance::Reject => "rejection",
                            Stance::Confirm => "confirmation",
                            Stance::Approve => "approval",
                        },
                        hex4(&a.solution),
                        a.vround
                    ),
                    Payload::Sync(s) => format!("sync request to {}", self.host_name(s.responder)),
                    Payload::Solution(_) => {
                        format!("solution {}", hex4(&reference(&payload_body(payload))))
                    }
                    _ => b.kind().to_string(),
                };
                format!("{what} from {who} (tx {} round {})", b.tx, b.round)
            }
            Err(_) if payload.is_empty() => "a cleared retained message".into(),
            Err(e) => format!("an undecodable message: {e}"),
        }
    }
}

fn payload_body(payload: &[u8]) -> Vec<u8> {
    Envelope::decode(payload, usize::MAX)
        .map(|e| e.body)
        .unwrap_or_default()
}

fn hex4(r: &[u8; 16]) -> String {
    r[..4].iter().map(|b| format!("{b:02x}")).collect()
}
