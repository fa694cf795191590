//! The protocol core: a pure state machine for one node.
//!
//! [`Node::handle`] takes one [`Input`] (a message from the broker, a mined
//! seed, a timer, a reconnect) and the current time, and returns the
//! [`Output`] the driver must carry out: what to make durable, then what
//! may follow it (publish, mine), and what happened.
//! Nothing in here does IO, reads a clock or touches a global RNG; time and
//! randomness come in from outside, so the whole cluster can be simulated.
//!
//! The six phases of the original each have their own module: [`init`]
//! (presence), [`pubkey`] (keys), [`election`] (votes for a leader),
//! [`challenge`] (the leader's proof-of-work task), [`solution`] (seeds and
//! their check) and [`voting`] (approvals and commit certificates).
//! Membership is fixed by the cluster's [`genesis`] and changed only by
//! commit ([`roster`], [`membership`]): every message from a node that is
//! not a member of the roster in force is refused before it changes
//! anything.

pub mod ballots;
pub mod certificate;
pub mod challenge;
pub mod commit;
pub mod counters;
pub mod election;
pub mod electorate;
pub mod gate;
pub mod genesis;
pub mod head;
pub mod held;
pub mod history;
pub mod init;
pub mod membership;
pub mod memory;
pub mod output;
pub mod persist;
pub mod pubkey;
pub mod quorum;
pub mod roster;
pub mod rounds;
pub mod solution;
pub mod start;
pub mod status;
pub mod sync;
pub mod timers;
pub mod tx;
pub mod voting;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use p256::ecdsa::SigningKey;
use rand_chacha::ChaCha20Rng;
use tracing::{debug, warn};

use crate::identity::NodeId;
use crate::pow::Job;
use crate::wire::topics::Route;
use crate::wire::{
    self, Body, ClusterId, Envelope, Family, Kind, Payload, SigCache, Topics, WireError,
};
use gate::Channel;
use held::Held;
use timers::{Timer, Timers};

pub use certificate::{verify_commit, CertError, Committed};
pub use counters::Counters;
pub use genesis::Genesis;
pub use head::Resumed;
pub use history::{Chain, History};
pub use output::{Effect, Event, Output, Persist, Step};
pub use persist::VoteState;
pub use roster::Roster;
pub use start::{Builder, Durable};

/// The cluster every node shares (its genesis), plus this node's own
/// settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// The cluster: name, founding roster, difficulty range, admin key.
    pub genesis: Arc<Genesis>,
    /// A round without a valid challenge after this long starts the next round.
    pub election_timeout_ms: u64,
    /// After the first valid solution, wait this long before approving, so
    /// that nodes choose among the same candidates.
    pub solution_window_ms: u64,
    /// Start the first election with a quorum (not all N) after this long.
    pub init_timeout_ms: u64,
    /// Human-readable name carried in presence and key messages.
    pub name: String,
    /// Mining threads, announced in presence.
    pub threads: u16,
}

impl Config {
    /// The cluster's id: the domain of every signature.
    pub fn cluster_id(&self) -> ClusterId {
        self.genesis.id()
    }

    /// Checks the timers: each must let the protocol make progress.
    pub fn check_timing(&self) -> Result<(), TimingError> {
        let e = self.election_timeout_ms;
        if !(MIN_ELECTION_TIMEOUT_MS..=MAX_TIMER_MS).contains(&e) {
            return Err(TimingError::ElectionTimeout(e));
        }
        if self.solution_window_ms >= e {
            return Err(TimingError::SolutionWindow {
                window: self.solution_window_ms,
                election: e,
            });
        }
        if !(MIN_ELECTION_TIMEOUT_MS..=MAX_TIMER_MS).contains(&self.init_timeout_ms) {
            return Err(TimingError::InitTimeout(self.init_timeout_ms));
        }
        Ok(())
    }

    /// These settings for the node called `n<i>` (tests, simulation).
    pub fn named(&self, i: usize) -> Config {
        Config {
            name: format!("n{i}"),
            ..self.clone()
        }
    }
}

/// The shortest election timeout: a round must outlast a message's trip
/// through the broker, or no leader ever issues its challenge in time.
pub const MIN_ELECTION_TIMEOUT_MS: u64 = 100;
/// The longest any timer may be (an hour).
pub const MAX_TIMER_MS: u64 = 3_600_000;

/// Protocol timers that would stop a cluster from deciding.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TimingError {
    #[error("election_timeout_ms = {0}: use {MIN_ELECTION_TIMEOUT_MS} to {MAX_TIMER_MS} (a round shorter than a message's trip never elects a leader)")]
    ElectionTimeout(u64),
    #[error("solution_window_ms = {window}: use less than election_timeout_ms ({election}), or no round would ever approve a solution")]
    SolutionWindow { window: u64, election: u64 },
    #[error("init_timeout_ms = {0}: use {MIN_ELECTION_TIMEOUT_MS} to {MAX_TIMER_MS} (a shorter wait never hears the other members)")]
    InitTimeout(u64),
}

/// Why a node stops taking part for good (the driver exits with code 78:
/// starting again cannot help).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Not a member of the roster in force, and no later roster adds it.
    NotAMember {
        /// The transaction the node's ledger ends at.
        height: u64,
        /// When its own ledger shows it was removed.
        removed_at: Option<u64>,
        /// The genesis names no admin key: the roster can never change.
        fixed: bool,
    },
    /// A committed roster change removed this node.
    Removed { tx: u64 },
}

/// A message to put on the broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publish {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// What happens to a node: the inputs of the state machine.
#[derive(Clone, Debug)]
pub enum Input<'a> {
    /// The broker connection is (re)established: announce our state again.
    Connected,
    /// A message arrived on `topic`; `retained` when the broker sent it
    /// from its store (on subscribing) rather than as it was published.
    Message {
        topic: &'a str,
        payload: &'a [u8],
        retained: bool,
    },
    /// The pool found `seed` for job `job`.
    Mined { job: u64, seed: u64 },
    /// Time passed (the driver calls this at [`Node::next_timeout`]).
    Tick,
}

/// Where a node stands, for logs and status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Not a member of the roster in force: catching up to find out
    /// whether a later roster adds it, and taking no part meanwhile.
    Learner,
    /// Waiting for the members (init and pubkey phases).
    Init,
    /// Voting for, or waiting on, a leader.
    Election,
    /// A challenge is open and the pool mines it.
    Challenge,
    /// This node has approved a solution and waits for a quorum.
    Voting,
}

/// Why a message from the network was refused. Every refusal is logged with
/// its phase and claimed sender.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Reject {
    #[error("undecodable: {0}")]
    Wire(#[from] WireError),
    #[error("the topic names sender {topic} but the body names {body}")]
    TopicMismatch { topic: NodeId, body: NodeId },
    #[error("a {0} message on the wrong topic family")]
    WrongFamily(Kind),
    #[error("bad signature")]
    BadSignature,
    #[error("the key does not hash to the claimed id")]
    KeyIdMismatch,
    #[error("invalid public key")]
    BadKey,
    #[error("signer {0} has no known key")]
    UnknownSigner(NodeId),
    #[error("transaction {got} does not follow our ledger (expected {want})")]
    WrongTransaction { got: u64, want: u64 },
    #[error("it builds on another ledger head")]
    WrongPrev,
    #[error("difficulty {got} outside the accepted range {lo}..{hi}")]
    Difficulty { got: u8, lo: u8, hi: u8 },
    #[error("the election certificate is invalid: {0}")]
    Election(#[from] election::ElectionError),
    #[error("round {got} is too far ahead of round {at}")]
    RoundTooFar { got: u32, at: u32 },
    #[error("the challenge is unknown")]
    UnknownChallenge,
    #[error("the seed does not meet the difficulty")]
    BadProofOfWork,
    #[error("the commit certificate is invalid: {0}")]
    Certificate(#[from] CertError),
    #[error("{0} is not a member of the roster in force")]
    NotAMember(NodeId),
    #[error("it runs another genesis (cluster id {0}): a board started with another cluster's file, or an old one")]
    OtherCluster(ClusterId),
    #[error("the roster change is invalid: {0}")]
    Change(#[from] roster::ChangeError),
}

/// Messages of a later transaction are held for replay up to this far
/// ahead of the ledger.
const MAX_TX_AHEAD: u64 = 64;

/// One node's protocol state.
pub struct Node {
    pub(crate) cfg: Config,
    pub(crate) topics: Topics,
    pub(crate) key: SigningKey,
    pub(crate) me: NodeId,
    pub(crate) public: [u8; 33],
    pub(crate) incarnation: u64,
    pub(crate) rng: ChaCha20Rng,
    pub(crate) phase: Phase,
    pub(crate) started_at: u64,
    pub(crate) members: init::Members,
    /// The roster in force for the next transaction, and every roster
    /// since the genesis (the genesis roster first), to check old
    /// certificates with.
    pub(crate) roster: Roster,
    pub(crate) rosters: Vec<Roster>,
    /// The admin's latest roster change request (checked signature), for
    /// this node's next challenge as leader.
    pub(crate) change_request: Option<Vec<u8>>,
    /// The admin has asked (in a request signed by its key) to add this
    /// node: a learner waits for that change rather than give up, also
    /// after the admin's next request replaced it on the broker.
    pub(crate) add_requested: bool,
    /// The transaction whose roster change last removed this node, if the
    /// ledger shows one and no later change added it back.
    pub(crate) removed_at: Option<u64>,
    /// Why this node stopped, once it did.
    pub(crate) stopped: Option<Stop>,
    /// Which refusals to log.
    pub(crate) refusals: counters::RefusalLog,
    /// Messages held back (no key yet, a later transaction, copies saved
    /// before a restart) and the inbox that takes them once freed.
    pub(crate) held: Held,
    /// Nodes caught signing two conflicting messages for one round.
    pub(crate) liars: BTreeSet<NodeId>,
    /// Committed transactions so far and the reference of the last one.
    pub(crate) height: u64,
    pub(crate) prev: [u8; 16],
    /// References of the last transactions (at most [`head::RECENT`]),
    /// oldest first, ending with `prev`: older ones are on disk only.
    pub(crate) recent: std::collections::VecDeque<[u8; 16]>,
    pub(crate) last_commit: Option<Vec<u8>>,
    pub(crate) tx: tx::TxState,
    /// Every timer but catch-up's retry.
    pub(crate) timers: Timers,
    pub(crate) next_job: u64,
    /// Catch-up: what members showed they committed, and when to ask next.
    pub(crate) catchup: sync::CatchUp,
    /// Refusals so far (for status and tests).
    pub rejected: u64,
    /// Elections seen and refusals by reason, for metrics.
    pub(crate) counters: Counters,
    /// Signatures already checked.
    pub(crate) sigs: SigCache,
    /// Our key and "online" presence, signed once: they are sent again at
    /// every resend, and a signature costs milliseconds on a Pi Zero.
    pub(crate) announcements: Option<(Vec<u8>, Vec<u8>)>,
}

impl Node {
    pub fn id(&self) -> NodeId {
        self.me
    }
    pub fn phase(&self) -> Phase {
        self.phase
    }
    /// Committed transactions.
    pub fn height(&self) -> u64 {
        self.height
    }
    pub fn round(&self) -> u32 {
        self.tx.election.round()
    }
    /// The leader of the transaction under way, once a challenge is known
    /// (of the latest round that has one).
    pub fn leader(&self) -> Option<NodeId> {
        self.open_challenge().map(|c| c.leader)
    }
    /// The newest valid challenge of the open transaction (of the latest
    /// round that has one).
    pub(crate) fn open_challenge(&self) -> Option<&challenge::ChallengeInfo> {
        self.tx.challenges.values().max_by_key(|c| c.round)
    }
    /// What this node has counted since it started (metrics).
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
    /// The difficulty of the newest challenge of the open transaction.
    pub fn difficulty(&self) -> Option<u8> {
        self.open_challenge().map(|c| c.difficulty)
    }
    /// Members online now (with a known key), this node included.
    pub fn members_online(&self) -> usize {
        self.online().len()
    }
    pub fn config(&self) -> &Config {
        &self.cfg
    }
    /// The roster in force for the next transaction.
    pub fn roster(&self) -> &Roster {
        &self.roster
    }
    /// Members of the roster in force that are online (by their presence),
    /// this node included when it is one.
    pub fn members_online_ids(&self) -> BTreeSet<NodeId> {
        self.online()
    }
    /// Whether the roster in force names this node.
    pub fn is_member(&self) -> bool {
        self.roster.contains(self.me)
    }
    /// Why the node stopped taking part, if it did.
    pub fn stopped(&self) -> Option<&Stop> {
        self.stopped.as_ref()
    }
    pub fn topics(&self) -> &Topics {
        &self.topics
    }
    /// Display name of a node: its announced name, else its id.
    /// A node's name: the roster's (agreed by every member), else the one
    /// its key announced, else its id.
    pub fn name_of(&self, id: NodeId) -> String {
        match self.roster().name(id) {
            Some(name) if !name.is_empty() => name.to_string(),
            _ => self.members.name_of(id),
        }
    }

    /// When the driver must call [`Input::Tick`] next, if ever.
    pub fn next_timeout(&self) -> Option<u64> {
        if self.stopped.is_some() {
            return None;
        }
        self.timers
            .next()
            .into_iter()
            .chain(self.sync_retry_at())
            .min()
    }

    /// Feeds one input; returns what to do.
    pub fn handle(&mut self, input: Input<'_>, now: u64) -> Output {
        let mut out = Output::default();
        if self.stopped.is_some() {
            return out;
        }
        match input {
            Input::Connected => {
                self.reconnected(now);
                // What we backed before a restart, checked like any
                // message, before we send it again with the rest.
                for raw in self.held.take_restored() {
                    self.receive_own_copy(&raw);
                }
                self.drain_inbox(now, &mut out);
                self.announce(now, &mut out)
            }
            Input::Message {
                topic,
                payload,
                retained,
            } => self.receive(topic, payload, !retained, now, &mut out),
            Input::Mined { job, seed } => self.mined(job, seed, now, &mut out),
            Input::Tick => self.tick(now, &mut out),
        }
        self.drain_inbox(now, &mut out);
        out
    }

    /// Takes the messages the input freed, in order. It ends: a message
    /// comes back here only when a key, a commit or a challenge arrives,
    /// and each of those is taken once.
    fn drain_inbox(&mut self, now: u64, out: &mut Output) {
        while let Some((topic, payload)) = self.held.take_next() {
            if self.stopped.is_some() {
                self.held.clear_inbox();
                return;
            }
            self.receive(&topic, &payload, false, now, out);
        }
    }

    /// The retained "gone" presence the broker publishes if we die.
    pub fn last_will(&self) -> Publish {
        self.presence_message(false)
    }

    /// What to publish when leaving cleanly: "gone", and a last status
    /// saying so (for observers).
    pub fn goodbye(&self) -> Vec<Publish> {
        vec![self.presence_message(false), self.status_left()]
    }

    fn tick(&mut self, now: u64, out: &mut Output) {
        if self.sync_retry_at().is_some_and(|t| now >= t) {
            self.request_sync(now, out);
        }
        if self.timers.expired(Timer::Window, now) {
            self.approve_best(now, out);
        }
        match self.phase {
            Phase::Learner => {
                if self.timers.expired(Timer::Learner, now) {
                    self.learner_gives_up(now, out);
                } else if self.timers.expired(Timer::Resend, now) {
                    // Our key, so that members can check our requests.
                    self.tx.resends += 1;
                    let wait = self.cfg.election_timeout_ms << self.tx.resends.min(3);
                    self.timers.set(Timer::Resend, now + wait);
                    out.effect(Effect::Publish(self.pubkey_message()));
                }
            }
            Phase::Init => {
                // Past the wait, only a member coming online can start us:
                // no more timer, or the driver would spin.
                if self.timers.expired(Timer::Round, now) {
                    self.timers.stop(Timer::Round);
                }
                self.maybe_start(now, out);
                if self.timers.expired(Timer::Resend, now) {
                    self.resend_timeout(now, out);
                }
            }
            _ => {
                if self.timers.expired(Timer::Round, now) {
                    self.round_timeout(now, out);
                }
                if self.timers.expired(Timer::Resend, now) {
                    self.resend_timeout(now, out);
                }
            }
        }
    }

    /// Our key and presence, the keys of those whose messages we pass on,
    /// and our messages of the open transaction: what a node that missed
    /// them needs from us (sent on every connect and every resend).
    pub(crate) fn publish_own_state(&self, out: &mut Output) {
        out.effect(Effect::Publish(self.pubkey_message()));
        out.effect(Effect::Publish(self.presence_message(true)));
        for p in self.relayed_keys() {
            out.effect(Effect::Publish(p));
        }
        for p in self.tx.republish(&self.topics, self.me) {
            out.effect(Effect::Publish(p));
        }
    }

    /// Publishes everything others may have missed while we were away.
    fn announce(&mut self, now: u64, out: &mut Output) {
        if self.phase == Phase::Learner {
            return self.announce_learner(now, out);
        }
        out.effect(Effect::Publish(self.roster_message()));
        self.publish_own_state(out);
        if let Some(c) = &self.last_commit {
            out.effect(Effect::Publish(Publish {
                topic: self.topics.commit(self.me),
                payload: c.clone(),
                retain: true,
            }));
        }
    }

    /// Signs a body of ours.
    pub(crate) fn sign(&self, tx: u64, round: u32, payload: Payload) -> Vec<u8> {
        let body = Body {
            sender: self.me,
            tx,
            round,
            payload,
        };
        wire::sign(&self.cfg.cluster_id(), &self.key, body.encode())
    }

    pub(crate) fn publish(&self, out: &mut Output, family: Family, payload: Vec<u8>, retain: bool) {
        out.effect(Effect::Publish(Publish {
            topic: self.topics.own(family, self.me),
            payload,
            retain,
        }));
    }

    /// Takes one message. `live`: it comes from its sender just now (not
    /// from the broker's store, not held here), so the sender is alive.
    fn receive(&mut self, topic: &str, payload: &[u8], live: bool, now: u64, out: &mut Output) {
        let Some(route) = self.topics.parse(topic) else {
            debug!(topic, "ignored: not a topic of this cluster");
            return;
        };
        if payload.is_empty() {
            // A cleared retained message (someone left for good).
            debug!(topic, "ignored: empty retained message");
            return;
        }
        match self.accept(&route, topic, payload, live, now, out) {
            Ok(()) => {}
            Err(reason) => {
                self.rejected += 1;
                let phase = route.family.as_str();
                self.counters.reject(phase, &reason);
                let Some(quiet) = self.refusals.log(route.sender, reason.reason(), now) else {
                    return;
                };
                let since = if quiet > 0 {
                    format!(" ({quiet} more such refusals in the last minute)")
                } else {
                    String::new()
                };
                warn!(
                    phase,
                    sender = %self.name_of(route.sender),
                    "{phase}: refused a message claiming to be from {}: {reason}{since}",
                    self.name_of(route.sender),
                );
            }
        }
    }

    /// Decodes, authenticates and dispatches one message.
    fn accept(
        &mut self,
        route: &Route,
        topic: &str,
        payload: &[u8],
        live: bool,
        now: u64,
        out: &mut Output,
    ) -> Result<(), Reject> {
        let gate::Opened { env, body, .. } = gate::open(Channel::Protocol(route.clone()), payload)?;
        match &body.payload {
            // Other nodes' reports of the roster are for observers.
            Payload::Roster(_) => return Ok(()),
            Payload::Change(_) => return self.on_change_request(payload, now),
            _ => {}
        }
        if !self.admits(&body)? {
            return Ok(());
        }
        if let Payload::PubKey(pk) = &body.payload {
            return self.on_pubkey(&env, &body, pk);
        }
        let own_live = live && body.sender == route.sender && self.roster.contains(body.sender);
        if let Some(done) = self.already_committed(&body, own_live, now, out) {
            return done;
        }
        let Some(key) = self.members.key(body.sender) else {
            self.held.until_key(topic, payload);
            debug!(sender = %body.sender, "{}: held until the sender's key arrives", body.kind().phase());
            return Ok(());
        };
        gate::verify(&self.sigs, &self.cfg.cluster_id(), &env, key)?;
        // A former member's request is signed, but says nothing of the
        // members: only the roster's own count as heard.
        if live
            && body.sender == route.sender
            && body.sender != self.me
            && self.roster.contains(body.sender)
        {
            self.catchup.hear(body.sender, now);
        }
        if self.liars.contains(&body.sender) && body.kind() != Kind::Presence {
            debug!(sender = %body.sender, "{}: ignored a known liar", body.kind().phase());
            return Ok(());
        }
        if self.held_for_later(topic, payload, &body, now, out) {
            return Ok(());
        }
        self.dispatch(&env, &body, now, out)
    }

    /// Only members count: anything else is refused before it changes
    /// anything. `Ok(false)`: ignore it quietly (our own messages come back
    /// to us as a learner).
    fn admits(&self, body: &Body) -> Result<bool, Reject> {
        if self.roster.contains(body.sender) {
            return Ok(true);
        }
        if body.sender == self.me {
            return Ok(false);
        }
        // A board of a namesake cluster says so in its key: name that.
        if let Payload::PubKey(pk) = &body.payload {
            if pk.cluster != self.cfg.cluster_id() {
                return Err(Reject::OtherCluster(pk.cluster));
            }
        }
        // A removed member that was away asks for the commits it missed
        // (one of them removed it): its key and its requests are taken,
        // nothing else.
        let former = matches!(body.payload, Payload::PubKey(_) | Payload::Sync(_))
            && self.rosters.iter().any(|r| r.contains(body.sender));
        if former {
            Ok(true)
        } else {
            Err(Reject::NotAMember(body.sender))
        }
    }

    /// Messages of a transaction we have committed change nothing, so they
    /// are dropped before their signature is checked (each node receives
    /// every commit N times; a certificate is kilobytes). A commit is still
    /// compared with ours, by its certificate alone. A member's own live
    /// message of such a transaction (`own_live`) may mean it missed the
    /// commit: see [`Node::remind`]. `Some` when `body` is such a message,
    /// with what taking it gave.
    fn already_committed(
        &mut self,
        body: &Body,
        own_live: bool,
        now: u64,
        out: &mut Output,
    ) -> Option<Result<(), Reject>> {
        if body.tx > self.height {
            return None;
        }
        match &body.payload {
            Payload::Commit(c) => Some(self.on_commit_message(body, c.clone(), now, out)),
            Payload::Vote(_)
            | Payload::Challenge(_)
            | Payload::Solution(_)
            | Payload::Approval(_) => {
                debug!(sender = %self.name_of(body.sender), tx = body.tx, "{}: stale, transaction already committed", body.kind().phase());
                if own_live && self.is_member() {
                    self.remind(body.sender, body.tx, now, out);
                }
                Some(Ok(()))
            }
            _ => None,
        }
    }

    /// Transaction-bound messages for a later transaction wait for our
    /// ledger to catch up, and a learner takes no part in the one under
    /// way; whether `body` is held or dropped for either reason.
    fn held_for_later(
        &mut self,
        topic: &str,
        payload: &[u8],
        body: &Body,
        now: u64,
        out: &mut Output,
    ) -> bool {
        let bound = matches!(
            body.kind(),
            Kind::Vote | Kind::Challenge | Kind::Solution | Kind::Approval
        );
        if !bound {
            return false;
        }
        let want = self.height + 1;
        if body.tx > want {
            // Its signer has committed the transaction before, which we
            // lack: our copy of that commit may have been lost, and nothing
            // else would tell us.
            self.evidence(body.sender, body.tx - 1, now, out);
            // Held for when our ledger reaches it; one too far ahead is
            // evidence only (catch-up will pass its transaction anyway).
            if body.tx <= want + MAX_TX_AHEAD {
                self.held.until_commit(topic, payload);
            }
            return true;
        }
        if self.phase == Phase::Learner {
            debug!(sender = %body.sender, "{}: a learner takes no part", body.kind().phase());
            return true;
        }
        false
    }

    /// Hands a checked message to its phase.
    fn dispatch(
        &mut self,
        env: &Envelope,
        body: &Body,
        now: u64,
        out: &mut Output,
    ) -> Result<(), Reject> {
        match body.payload.clone() {
            Payload::Presence(p) => self.on_presence(body, p, now, out),
            Payload::Vote(v) => self.on_vote(env, body, v, now, out),
            Payload::Challenge(c) => self.on_challenge(env, body, c, now, out),
            Payload::Solution(s) => self.on_solution(env, body, s, now, out),
            Payload::Approval(a) => self.on_approval(env, body, a, now, out),
            Payload::Commit(c) => self.on_commit_message(body, c, now, out),
            Payload::Sync(s) => self.on_sync(body, s, now, out),
            // Keys, changes and rosters were handled before; status is no
            // protocol input (and arrives on no topic that routes here).
            Payload::PubKey(_) | Payload::Status(_) | Payload::Change(_) | Payload::Roster(_) => {
                Ok(())
            }
        }
    }

    /// Takes held messages again once the current input is done (a key
    /// arrived or a commit moved us on).
    pub(crate) fn replay(&mut self, queue: impl IntoIterator<Item = (String, Vec<u8>)>) {
        self.held.replay(queue);
    }

    /// Records proof that `who` signed two conflicting messages.
    pub(crate) fn caught_lying(&mut self, who: NodeId, what: &str) {
        if self.liars.insert(who) {
            warn!(
                liar = %who,
                "{what}: {} ({who}) signed two conflicting messages; ignoring it from now on",
                self.name_of(who)
            );
        }
    }

    /// Members currently online (with a known key), including us when we
    /// are one.
    pub(crate) fn online(&self) -> BTreeSet<NodeId> {
        let mut s: BTreeSet<NodeId> = self.members.online().collect();
        s.insert(self.me);
        s.retain(|id| !self.liars.contains(id) && self.roster.contains(*id));
        s
    }

    pub(crate) fn mine(&mut self, salt: [u8; 12], difficulty: u8, out: &mut Output) -> u64 {
        let id = self.next_job;
        self.next_job += 1;
        out.effect(Effect::Mine(Job {
            id,
            salt,
            solver: self.me.0,
            difficulty,
        }));
        id
    }

    /// Stops the pool if it mines for us: a vote, a commit or leaving the
    /// cluster ends the work.
    pub(crate) fn stop_mining(&mut self, out: &mut Output) {
        if self.tx.mining.take().is_some() {
            out.effect(Effect::StopMining);
        }
    }

    /// Keys of all known members, for certificate checks.
    pub(crate) fn key_map(&self) -> BTreeMap<NodeId, p256::ecdsa::VerifyingKey> {
        self.members.keys()
    }
}

/// How messages refer to each other: a digest of the exact body bytes.
pub fn reference(body: &[u8]) -> [u8; 16] {
    wire::digest16(b"edgeminer/ref", body)
}
#[cfg(test)]
mod tests;
