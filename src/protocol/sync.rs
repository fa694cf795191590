//! Catch-up, part of the voting phase: a node whose ledger is behind asks
//! for the next commit it misses, one transaction at a time, and the one
//! member it names answers with the certificate from its ledger. The answer
//! is checked like any commit certificate, so the requester trusts nobody.
//!
//! A node believes it is behind only on evidence it can check: a member's
//! signed message of a later transaction (a commit, or a vote, challenge,
//! solution or approval whose signer committed the transaction before), and
//! only once `f + 1` members show it ([`Roster::follow_threshold`]), so
//! that at least one of them is honest. A claim in a request is no
//! evidence. Without an answer it asks again later and later (1 s,
//! doubling to 30 s), and after [`GIVE_UP_AFTER`] unanswered requests it
//! forgets the claims until new evidence comes. A node that is not a
//! member (a learner: a board not yet added, see `membership`) asks without
//! evidence, with the same back-off.
//!
//! Each request names its responder: the member that answered the last
//! request, while it goes on answering; else a member that showed it has
//! the transaction, those heard from lately first (a message the broker
//! kept is no sign of life: the member may have died since), then online
//! ones, another one at every retry. So one requester costs the cluster
//! one answer per request, not one per member, and a requester whose
//! first choices died goes on at full speed once one member answers.

use std::collections::BTreeMap;

use tracing::{info, warn};

use super::certificate::{decode_signed, Part};
use super::roster::Roster;
use super::{Effect, Node, Output, Publish, Reject};
use crate::identity::NodeId;
use crate::wire::{self, Body, Commit, Payload, Sync};

/// The first wait for an answer; it doubles with every unanswered request.
const RETRY_MS: u64 = 1_000;
/// The longest wait between two requests.
const RETRY_MAX_MS: u64 = 30_000;
/// Unanswered requests after which a node forgets the claims that made it
/// ask, until new evidence arrives.
pub const GIVE_UP_AFTER: u32 = 6;
/// At most one answer to the same request of one requester this often.
const SERVE_EVERY_MS: u64 = 20;
/// A member heard from this recently is taken to be alive.
const HEARD_LATELY_MS: u64 = 5_000;
/// Requesters remembered for the rate limit.
const MAX_SERVED: usize = 1024;

/// Where this node stands in catching up.
#[derive(Default)]
pub struct CatchUp {
    /// The highest transaction each member has shown it committed.
    claims: BTreeMap<NodeId, u64>,
    /// When each member was last heard, by a message of its own that
    /// reached us as it was sent (it is alive then: a member whose
    /// presence still says online may be long dead).
    heard: BTreeMap<NodeId, u64>,
    /// When to ask next, if at all.
    next_at: Option<u64>,
    /// Requests without progress since the last commit.
    pub(super) unanswered: u32,
    /// What each requester was last answered and when (rate limit).
    served: BTreeMap<NodeId, (u64, u64)>,
    /// The member last asked, and for which transaction.
    asked: Option<(NodeId, u64)>,
    /// The member whose certificate answered the last request.
    answered_by: Option<NodeId>,
    /// When this node last committed (the core's time).
    committed_at: u64,
}

impl CatchUp {
    /// The transaction that `f + 1` members of `roster` show they have
    /// committed (the highest such).
    fn target(&self, roster: &Roster) -> u64 {
        let mut shown: Vec<u64> = self
            .claims
            .iter()
            .filter(|(id, _)| roster.contains(**id))
            .map(|(_, tx)| *tx)
            .collect();
        shown.sort_unstable_by(|a, b| b.cmp(a));
        shown
            .get(roster.follow_threshold() - 1)
            .copied()
            .unwrap_or(0)
    }

    /// Records that `who` has shown it committed `tx`; whether that is
    /// further than it showed before.
    pub fn claim(&mut self, who: NodeId, tx: u64) -> bool {
        let slot = self.claims.entry(who).or_default();
        let raised = tx > *slot;
        *slot = (*slot).max(tx);
        raised
    }

    /// How far members have shown they are, by member (for the responder).
    pub fn claim_of(&self, id: NodeId) -> u64 {
        self.claims.get(&id).copied().unwrap_or(0)
    }

    /// Whether a certificate of `tx` answers this node's request (whoever
    /// sent it: answers to others' requests for it count too).
    pub fn answers(&self, tx: u64) -> bool {
        self.asked.is_some_and(|(_, t)| t == tx)
    }

    /// `who` sent the certificate of `tx` that answered this node's
    /// request: it has that transaction, and is the first to ask next.
    pub fn answered(&mut self, who: NodeId, tx: u64) {
        self.claim(who, tx);
        self.answered_by = Some(who);
    }

    /// When any member was last heard, if ever.
    pub fn last_heard(&self) -> Option<u64> {
        self.heard.values().max().copied()
    }

    /// `who`, a member, sent a message of its own just now.
    pub fn hear(&mut self, who: NodeId, now: u64) {
        self.heard.insert(who, now);
    }

    /// Forgets a member's claims (it left the roster).
    pub fn forget(&mut self, keep: impl Fn(NodeId) -> bool) {
        self.claims.retain(|id, _| keep(*id));
        self.heard.retain(|id, _| keep(*id));
    }
}

impl Node {
    /// Whether this node should be asking for commits it lacks.
    fn behind(&self) -> bool {
        self.catchup.target(&self.roster) > self.height || self.learning()
    }

    /// The broker connection is back: requests sent while it was down were
    /// lost, not unanswered, so the back-off starts again (the next
    /// request goes out within a second).
    pub(crate) fn reconnected(&mut self, now: u64) {
        self.catchup.unanswered = 0;
        if let Some(t) = self.catchup.next_at {
            self.catchup.next_at = Some(t.min(now + RETRY_MS));
        }
    }

    /// When the next catch-up request is due, if one is.
    pub(crate) fn catchup_next(&self) -> Option<u64> {
        self.catchup.next_at
    }

    /// When to ask again for the next missing commit, if behind.
    pub(crate) fn sync_retry_at(&self) -> Option<u64> {
        self.catchup.next_at.filter(|_| self.behind())
    }

    /// `who`, a member, has shown it committed `tx`: evidence that this
    /// node may be behind.
    pub(crate) fn evidence(&mut self, who: NodeId, tx: u64, now: u64, out: &mut Output) {
        // Our own id on a message we did not send: a stolen key, no news.
        if who == self.me {
            return;
        }
        if !self.catchup.claim(who, tx) {
            return;
        }
        // A member that shows a newer commit is alive and ahead: a request
        // waiting out a long back-off (grown while nobody could answer)
        // goes out within a second. A learner, whose requests go
        // unanswered until a commit adds it, also starts counting afresh.
        if self.catchup.next_at.is_some_and(|t| t > now + RETRY_MS) {
            self.catchup.next_at = Some(now + RETRY_MS);
            if self.learning() {
                self.catchup.unanswered = 0;
            }
        }
        let target = self.catchup.target(&self.roster);
        if target > self.height && self.catchup.next_at.is_none() {
            info!(
                "voting: {} members have committed up to tx {target} and this node's ledger ends at tx {}; catching up",
                self.roster.follow_threshold(),
                self.height
            );
            self.request_sync(now, out);
        }
    }

    /// Asks one member for transaction `height + 1`.
    pub(crate) fn request_sync(&mut self, now: u64, out: &mut Output) {
        if !self.behind() {
            self.catchup.next_at = None;
            return;
        }
        if self.catchup.unanswered >= GIVE_UP_AFTER {
            warn!(
                "voting: no member answered {GIVE_UP_AFTER} requests for tx {}; waiting for new evidence before asking again",
                self.height + 1
            );
            let height = self.height;
            self.catchup.claims.retain(|_, tx| *tx <= height);
            self.catchup.next_at = None;
            self.catchup.unanswered = 0;
            return;
        }
        let want = self.height + 1;
        let Some(responder) = self.responder(want, now) else {
            // Nobody to ask yet: try again when the wait is over.
            self.catchup.next_at = Some(now + RETRY_MS);
            return;
        };
        let wait = (RETRY_MS << self.catchup.unanswered.min(5)).min(RETRY_MAX_MS);
        self.catchup.unanswered += 1;
        self.catchup.next_at = Some(now + wait);
        let target = self.catchup.target(&self.roster);
        if want % 100 == 1 || target.saturating_sub(self.height) < 3 {
            info!("voting: asking {} for tx {want}", self.name_of(responder));
        }
        self.catchup.asked = Some((responder, want));
        let msg = self.sign(want, 0, Payload::Sync(Sync { responder }));
        out.effect(Effect::Publish(Publish {
            topic: self.topics.sync(self.me),
            payload: msg,
            retain: false,
        }));
    }

    /// The member to ask for `want`: the one that answered the last
    /// request, while it has `want` and is heard from; else among those
    /// that showed they have it (those heard from lately first, then online
    /// ones), else among the online members, another one at every
    /// unanswered request.
    pub(super) fn responder(&self, want: u64, now: u64) -> Option<NodeId> {
        let online = self.online();
        let others: Vec<NodeId> = self.roster.ids().filter(|id| *id != self.me).collect();
        let has = |id: &NodeId| self.catchup.claim_of(*id) >= want;
        let lately = |id: &NodeId| {
            self.catchup
                .heard
                .get(id)
                .is_some_and(|&t| now < t + HEARD_LATELY_MS)
        };
        let last = self.catchup.answered_by.filter(|id| {
            self.catchup.unanswered == 0 && others.contains(id) && has(id) && lately(id)
        });
        if last.is_some() {
            return last;
        }
        let tiers: [Vec<NodeId>; 4] = [
            others
                .iter()
                .copied()
                .filter(|id| has(id) && lately(id))
                .collect(),
            others
                .iter()
                .copied()
                .filter(|id| has(id) && online.contains(id))
                .collect(),
            others.iter().copied().filter(has).collect(),
            others
                .iter()
                .copied()
                .filter(|id| online.contains(id))
                .collect(),
        ];
        let pool = tiers.into_iter().find(|t| !t.is_empty())?;
        // Spread requesters over responders: start from a place that
        // depends on who asks for what, then rotate.
        let start = wire::digest16(b"edgeminer/sync", &[self.me.0, want.to_be_bytes()].concat())[0]
            as usize;
        Some(pool[(start + self.catchup.unanswered as usize) % pool.len()])
    }

    /// A commit was applied. When it answers this node's request, the next
    /// request, if still behind, goes out at once. A commit of its own
    /// voting answers nothing (the node is at the cluster's head): a
    /// pending request keeps its back-off, so that a claim nobody serves
    /// (a lying member's) runs into [`GIVE_UP_AFTER`] however often the
    /// cluster commits.
    pub(crate) fn progressed(&mut self, answered: bool, now: u64, out: &mut Output) {
        self.catchup.committed_at = now;
        if !self.behind() {
            self.catchup.next_at = None;
            self.catchup.unanswered = 0;
        } else if answered {
            self.catchup.unanswered = 0;
            self.request_sync(now, out);
        }
    }

    pub(crate) fn on_sync(
        &mut self,
        body: &Body,
        s: Sync,
        now: u64,
        out: &mut Output,
    ) -> Result<(), Reject> {
        if s.responder != self.me || body.sender == self.me || body.tx == 0 {
            return Ok(());
        }
        if body.tx > self.height {
            tracing::debug!(
                "voting: {} asks for tx {} which this node has not committed",
                self.name_of(body.sender),
                body.tx
            );
            return Ok(());
        }
        // The same request again within a moment is a duplicate; the next
        // transaction is answered at once, so catching up is not paced.
        if self
            .catchup
            .served
            .get(&body.sender)
            .is_some_and(|&(tx, t)| tx == body.tx && now < t + SERVE_EVERY_MS)
        {
            return Ok(());
        }
        if self.catchup.served.len() >= MAX_SERVED {
            self.catchup.served.clear();
        }
        self.catchup.served.insert(body.sender, (body.tx, now));
        out.effect(Effect::ServeHistory { tx: body.tx });
        Ok(())
    }

    /// A member's own message of transaction `tx`, which this node has
    /// committed, came just now: the member may have missed that commit
    /// for good (every certificate of it and the confirmations it waits
    /// for lost, while those who sent them moved on), and one member ahead
    /// is not evidence enough for it to ask. So it gets the certificate as
    /// if it had asked, once the commit is older than an election timeout
    /// (a message sent just before the commit reached it is no sign) and at
    /// most once per election timeout. What an impostor could get out of
    /// this is a certificate anyone may have.
    pub(crate) fn remind(&mut self, who: NodeId, tx: u64, now: u64, out: &mut Output) {
        let every = self.cfg.election_timeout_ms;
        let fresh = tx == self.height && now < self.catchup.committed_at + every;
        let served =
            (self.catchup.served.get(&who)).is_some_and(|&(t, at)| t == tx && now < at + every);
        if tx == 0 || who == self.me || fresh || served {
            return;
        }
        if self.catchup.served.len() >= MAX_SERVED {
            self.catchup.served.clear();
        }
        self.catchup.served.insert(who, (tx, now));
        tracing::debug!(
            "voting: {} is still on tx {tx}; sending it the certificate",
            self.name_of(who)
        );
        out.effect(Effect::ServeHistory { tx });
    }

    /// The answer to a sync request: ledger record `tx` as a signed commit
    /// message (not retained: the retained one stays the latest commit).
    pub fn history_message(&self, tx: u64, record: &[u8]) -> Option<Publish> {
        let commit = Commit::decode(record).ok()?;
        let (_, cbody) =
            decode_signed(&commit.challenge.0, wire::MAX_CERT_MESSAGE, Part::Challenge).ok()?;
        if cbody.tx != tx {
            return None;
        }
        let payload = self.sign(tx, cbody.round, Payload::Commit(commit));
        Some(Publish {
            topic: self.topics.commit(self.me),
            payload,
            retain: false,
        })
    }
}
