//! Starting a node: what it must be given (its settings and key) and what
//! it may be given (an RNG seed, its incarnation, what it had on disk, a
//! signature cache shared with other nodes of one process), each by name.
//!
//! A node on a board seeds its RNG from the operating system and takes the
//! wall clock as its incarnation; tests and the simulation choose both, so
//! that a run can be replayed.

use std::collections::BTreeSet;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::head::Resumed;
use super::timers::{Timer, Timers};
use super::{counters, init, sync, tx, Config, Counters, Node, Phase, Roster, VoteState};
use crate::identity::{Identity, NodeId};
use crate::wire::{Payload, SigCache, Topics};

/// What a node had on disk when it started.
#[derive(Clone, Debug)]
pub struct Durable {
    /// Its ledger's head: height, the rosters in force, the last commit
    /// (whose certificate is published again at the next connect: a node
    /// that crashed after writing a commit and before publishing it would
    /// otherwise leave the others waiting for a confirmation it will never
    /// send again) and the last references.
    pub head: Resumed,
    /// Its saved vote state.
    pub votes: Option<VoteState>,
}

impl Durable {
    /// An empty state directory.
    pub fn fresh(cfg: &Config) -> Durable {
        Durable {
            head: Resumed::empty(&cfg.genesis),
            votes: None,
        }
    }
}

/// How a node starts; [`Node::builder`] makes one.
pub struct Builder<'a> {
    cfg: Config,
    identity: &'a Identity,
    rng_seed: [u8; 32],
    incarnation: u64,
    durable: Option<Durable>,
    sigs: Option<SigCache>,
}

impl Node {
    /// A node of `cfg` with `identity`: by default with an empty state
    /// directory, incarnation 1, an RNG seeded with zeros and a signature
    /// cache of its own.
    pub fn builder(cfg: Config, identity: &Identity) -> Builder<'_> {
        Builder {
            cfg,
            identity,
            rng_seed: [0; 32],
            incarnation: 1,
            durable: None,
            sigs: None,
        }
    }
}

impl Builder<'_> {
    /// The seed of the RNG that draws challenge salts and difficulties.
    pub fn rng_seed(mut self, seed: [u8; 32]) -> Self {
        self.rng_seed = seed;
        self
    }

    /// This start's incarnation: later presence messages replace earlier
    /// ones by it, so it must grow from one start to the next.
    pub fn incarnation(mut self, n: u64) -> Self {
        self.incarnation = n;
        self
    }

    /// What the node had on disk.
    pub fn durable(mut self, d: Durable) -> Self {
        self.durable = Some(d);
        self
    }

    /// Signatures already checked, shared with other nodes of this process.
    pub fn sig_cache(mut self, sigs: SigCache) -> Self {
        self.sigs = Some(sigs);
        self
    }

    /// The node, started at `now`.
    pub fn start(self, now: u64) -> Node {
        let Builder {
            cfg,
            identity,
            rng_seed,
            incarnation,
            durable,
            sigs,
        } = self;
        let Durable { head, votes } = durable.unwrap_or_else(|| Durable::fresh(&cfg));
        let Resumed {
            chain,
            last,
            recent,
            ..
        } = head;
        let topics = Topics::new(cfg.genesis.cluster());
        let roster = chain.roster().clone();
        let member = roster.contains(identity.id);
        let mut node = Node {
            topics,
            key: identity.key.clone(),
            me: identity.id,
            public: identity.public,
            incarnation,
            rng: ChaCha20Rng::from_seed(rng_seed),
            phase: Phase::Init,
            started_at: now,
            members: init::Members::default(),
            roster,
            rosters: chain.rosters().to_vec(),
            change_request: None,
            add_requested: false,
            removed_at: removed_at(chain.rosters(), identity.id),
            stopped: None,
            refusals: counters::RefusalLog::default(),
            held: Default::default(),
            liars: BTreeSet::new(),
            height: chain.height(),
            prev: chain.prev(),
            recent: recent.into(),
            last_commit: None,
            tx: tx::TxState::default(),
            timers: Timers::default(),
            next_job: 1,
            catchup: sync::CatchUp::default(),
            rejected: 0,
            counters: Counters::default(),
            sigs: sigs.unwrap_or_default(),
            announcements: None,
            cfg,
        };
        let key_message = node.pubkey_message().payload;
        node.announcements = Some((key_message.clone(), node.presence_message(true).payload));
        node.members
            .insert_key(node.me, node.public, node.cfg.name.clone(), key_message);
        if !member {
            node.phase = Phase::Learner;
            node.timers
                .set(Timer::Resend, now + node.cfg.election_timeout_ms);
            return node;
        }
        if let Some((done, commit)) = last {
            let msg = node.sign(done.tx, done.round, Payload::Commit(commit));
            node.last_commit = Some(msg);
        }
        if let Some(v) = votes {
            node.restore_votes(v);
        }
        // In init, the deadline is the end of the wait for all members.
        node.timers
            .set(Timer::Round, now + node.cfg.init_timeout_ms);
        node.timers
            .set(Timer::Resend, now + node.cfg.election_timeout_ms);
        node
    }
}

/// The transaction whose change last removed `me`, unless a later one
/// added it back (`rosters` oldest first; each is in force from the
/// transaction after the change that made it).
fn removed_at(rosters: &[Roster], me: NodeId) -> Option<u64> {
    let mut at = None;
    for pair in rosters.windows(2) {
        if pair[0].contains(me) && !pair[1].contains(me) {
            at = Some(pair[1].since() - 1);
        }
        if !pair[0].contains(me) && pair[1].contains(me) {
            at = None;
        }
    }
    at
}
