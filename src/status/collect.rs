//! The observer's picture of a cluster: messages in, a [`ClusterView`] out.
//!
//! Pure, like the protocol core: the caller passes each message with the
//! time it arrived (milliseconds of its own clock) and asks for the view at
//! a time. Every message is checked before it counts: keys must hash to
//! their id and sign their own announcement, for the cluster id of the
//! genesis; presence, status, roster and commit messages must be signed by
//! the node their topic names, challenges by their leader. Messages whose
//! signer's key has not arrived yet wait in a bounded queue.
//!
//! Only members count. The roster shown is the one the members report
//! (each node keeps its report of the roster in force retained on
//! `roster/<id>`): the report most members make of a roster that lists
//! them, the newest on a tie, else the genesis roster. Keys of nodes that
//! no report lists wait in a small queue (a member just added may speak
//! before the reports name it), and are counted as not members.
//!
//! The observer displays; it does not audit. A commit's outer signature and
//! a challenge's are checked, not their certificates (`edgeminer verify`
//! does that on a ledger).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use p256::ecdsa::VerifyingKey;

use crate::identity::NodeId;
use crate::protocol::gate::{self, Channel};
use crate::protocol::{Genesis, Reject, Roster};
use crate::wire::{
    self, Body, ClusterId, Commit, Envelope, Family, Kind, Payload, Presence, PubKey, RosterView,
    SigCache, Status, Topics,
};

/// Messages held until their signer's key arrives.
const MAX_PENDING: usize = 256;
/// Nodes the observer keeps track of.
const MAX_NODES: usize = 256;
/// Commits kept (the newest).
const MAX_COMMITS: usize = 16;

/// Why a message did not count: the gate's reasons, which the nodes give
/// too, and the observer's own bounds.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    #[error("not a topic of this cluster the observer reads")]
    Topic,
    #[error("too many nodes (limit {MAX_NODES})")]
    TooManyNodes,
    #[error(transparent)]
    Gate(#[from] Reject),
}

/// A status message and its context.
#[derive(Clone, Debug)]
pub(super) struct Seen {
    pub status: Status,
    /// The body's transaction (the one under way) and round.
    pub tx: u64,
    pub round: u32,
    /// When it arrived (the caller's clock, ms).
    pub at: u64,
}

#[derive(Default)]
pub(super) struct Entry {
    key: Option<VerifyingKey>,
    pub name: String,
    pub presence: Option<Presence>,
    pub status: Option<Seen>,
}

/// Everything the observer has seen of one cluster.
pub struct Collector {
    pub(super) cluster: String,
    pub(super) cluster_id: ClusterId,
    genesis_roster: Roster,
    /// Each member's latest report of the roster in force.
    views: BTreeMap<NodeId, RosterView>,
    /// Keys of nodes no roster lists (yet), and who they are.
    strangers: VecDeque<(String, Vec<u8>, u64)>,
    pub(super) not_members: BTreeSet<NodeId>,
    topics: Topics,
    sigs: SigCache,
    pub(super) nodes: BTreeMap<NodeId, Entry>,
    pending: VecDeque<(String, Vec<u8>, u64)>,
    /// Challenges by (tx, round): leader, difficulty, when first seen.
    pub(super) challenges: BTreeMap<(u64, u32), (NodeId, u8, u64)>,
    /// Commits by transaction: round, difficulty, leader, winner, seed.
    pub(super) commits: BTreeMap<u64, (u32, u8, NodeId, NodeId, u64)>,
}

impl Collector {
    pub fn new(genesis: &Genesis) -> Collector {
        Collector {
            cluster: genesis.cluster().to_string(),
            cluster_id: genesis.id(),
            genesis_roster: genesis.roster(),
            views: BTreeMap::new(),
            strangers: VecDeque::new(),
            not_members: BTreeSet::new(),
            topics: Topics::new(genesis.cluster()),
            sigs: SigCache::with_capacity(1024),
            nodes: BTreeMap::new(),
            pending: VecDeque::new(),
            challenges: BTreeMap::new(),
            commits: BTreeMap::new(),
        }
    }

    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// The roster the members report (see the module's doc).
    pub fn roster(&self) -> Roster {
        self.roster_reports().0
    }

    /// [`Collector::roster`], and how many members report it (0 for the
    /// genesis roster when nobody reports one).
    pub fn roster_reports(&self) -> (Roster, usize) {
        let mut counts: BTreeMap<(u32, [u8; 16]), (usize, Roster)> = BTreeMap::new();
        for (reporter, v) in &self.views {
            let Ok(r) = Roster::from_view(self.cluster_id, v) else {
                continue;
            };
            if !r.contains(*reporter) {
                continue;
            }
            counts.entry((r.version(), r.hash())).or_insert((0, r)).0 += 1;
        }
        counts
            .into_iter()
            .max_by_key(|((version, _), (n, _))| (*n, *version))
            .map(|(_, (n, r))| (r, n))
            .unwrap_or_else(|| (self.genesis_roster.clone(), 0))
    }

    /// Counts a node that is no member (bounded: minting keys costs an
    /// attacker nothing).
    fn stranger(&mut self, id: NodeId) {
        if self.not_members.len() < MAX_NODES {
            self.not_members.insert(id);
        }
    }

    /// Whether any roster the observer knows of lists `id`.
    fn listed(&self, id: NodeId) -> bool {
        self.genesis_roster.contains(id)
            || self
                .views
                .values()
                .any(|v| v.members.iter().any(|m| m.id == id))
    }

    /// Takes one message that arrived at `now`.
    pub fn handle(&mut self, topic: &str, payload: &[u8], now: u64) -> Result<(), Refused> {
        let channel = Channel::parse(&self.topics, topic)
            .filter(reads)
            .ok_or(Refused::Topic)?;
        if let Channel::Status(id) = channel {
            if payload.is_empty() {
                // A retained status cleared by hand (`mosquitto_pub -r -n`).
                if let Some(e) = self.nodes.get_mut(&id) {
                    e.status = None;
                }
                return Ok(());
            }
        }
        let gate::Opened { env, body, .. } = gate::open(channel, payload)?;
        match body.payload {
            Payload::PubKey(ref pk) => return self.on_key(topic, payload, &env, &body, pk, now),
            // The admin's change requests are for the nodes.
            Payload::Change(_) => return Ok(()),
            _ => {}
        }
        let sender = body.sender;
        let Some(key) = self.nodes.get(&sender).and_then(|e| e.key) else {
            if self.pending.len() >= MAX_PENDING {
                self.pending.pop_front();
            }
            self.pending
                .push_back((topic.to_string(), payload.to_vec(), now));
            return Ok(());
        };
        gate::verify(&self.sigs, &self.cluster_id, &env, &key)?;
        if let Payload::Roster(v) = body.payload {
            let new = self.views.insert(sender, v.clone()) != Some(v);
            if new {
                // A roster may list nodes whose keys came too early.
                for (topic, payload, at) in std::mem::take(&mut self.strangers) {
                    let _ = self.handle(&topic, &payload, at.min(now));
                }
            }
            return Ok(());
        }
        let entry = self.nodes.entry(sender).or_default();
        match body.payload {
            // A newer start replaces an older one; within one, the latest
            // word wins (as the nodes themselves take it).
            Payload::Presence(p)
                if entry
                    .presence
                    .as_ref()
                    .is_none_or(|old| p.incarnation >= old.incarnation) =>
            {
                entry.presence = Some(p);
            }
            // A node that left cleanly says so last, with phase "left".
            Payload::Status(status) => {
                entry.status = Some(Seen {
                    status,
                    tx: body.tx,
                    round: body.round,
                    at: now,
                })
            }
            Payload::Commit(c) => self.on_commit(body.tx, &c)?,
            Payload::Challenge(ch) => {
                self.challenges.entry((body.tx, body.round)).or_insert((
                    body.sender,
                    ch.difficulty,
                    now,
                ));
                while self.challenges.len() > MAX_COMMITS {
                    self.challenges.pop_first();
                }
            }
            // An older presence; the channels the observer reads carry
            // nothing else.
            _ => {}
        }
        Ok(())
    }

    fn on_key(
        &mut self,
        topic: &str,
        payload: &[u8],
        env: &Envelope,
        body: &Body,
        pk: &PubKey,
        now: u64,
    ) -> Result<(), Refused> {
        let key =
            gate::key(&self.sigs, &self.cluster_id, env, body.sender, pk).inspect_err(|e| {
                if matches!(e, Reject::OtherCluster(_)) {
                    self.stranger(body.sender);
                }
            })?;
        if !self.listed(body.sender) {
            if self.strangers.len() >= MAX_PENDING {
                self.strangers.pop_front();
            }
            self.strangers
                .push_back((topic.to_string(), payload.to_vec(), now));
            self.stranger(body.sender);
            return Err(Reject::NotAMember(body.sender).into());
        }
        self.not_members.remove(&body.sender);
        if !self.nodes.contains_key(&body.sender) && self.nodes.len() >= MAX_NODES {
            return Err(Refused::TooManyNodes);
        }
        let entry = self.nodes.entry(body.sender).or_default();
        let new = entry.key.is_none();
        entry.key = Some(key);
        entry.name = pk.name.clone();
        if new {
            // Replay what waited for this key; whatever still lacks one
            // goes back into the queue.
            for (topic, payload, at) in std::mem::take(&mut self.pending) {
                let _ = self.handle(&topic, &payload, at.min(now));
            }
        }
        Ok(())
    }

    fn on_commit(&mut self, tx: u64, c: &Commit) -> Result<(), Refused> {
        let (_, challenge) =
            gate::decode(&c.challenge.0, wire::MAX_CERT_MESSAGE).map_err(Reject::from)?;
        let (_, solution) =
            gate::decode(&c.solution.0, wire::MAX_PHASE_MESSAGE).map_err(Reject::from)?;
        let (Payload::Challenge(ch), Payload::Solution(s)) = (challenge.payload, solution.payload)
        else {
            return Err(Reject::WrongFamily(Kind::Commit).into());
        };
        self.commits.insert(
            tx,
            (
                challenge.round,
                ch.difficulty,
                challenge.sender,
                solution.sender,
                s.seed,
            ),
        );
        while self.commits.len() > MAX_COMMITS {
            self.commits.pop_first();
        }
        Ok(())
    }

    /// A node's name, else its id.
    pub(super) fn name_of(&self, id: NodeId) -> String {
        match self.nodes.get(&id) {
            Some(e) if !e.name.is_empty() => e.name.clone(),
            _ => id.to_string(),
        }
    }

    /// The cluster as seen at `now`.
    pub fn view(&self, now: u64) -> super::view::ClusterView {
        super::view::build(self, now)
    }
}

/// The channels an observer subscribes to (see
/// [`Topics::observer_subscriptions`]): never votes, solutions, approvals
/// or sync requests.
fn reads(channel: &Channel) -> bool {
    match channel {
        Channel::Status(_) => true,
        Channel::Protocol(r) => match r.family {
            Family::PubKey | Family::Init | Family::Challenge | Family::Roster => true,
            Family::Voting => r.commit,
            Family::Election | Family::Solution => false,
        },
    }
}

#[cfg(test)]
mod tests;
