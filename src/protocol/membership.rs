//! This node's own membership: taking part while the roster in force names
//! it, learning while it does not, and the admin's change requests.
//!
//! A node whose id is not in the roster of its ledger head is a *learner*:
//! a board too many, one started with the wrong genesis, or one just added
//! whose ledger has not caught up with its addition yet. It never votes,
//! mines or says it is online (so nobody elects it); it publishes its key,
//! so that the members can check its requests, and catches up commit by
//! commit, checking each against the roster of its height. Once a commit
//! adds it, it is a member (under the name the roster gives it) and starts
//! like any restarted node. If it hears the members (their own signed
//! messages as they are sent) but no commit comes, and no request of the
//! admin to add it arrives, for [`LEARNER_PATIENCE`] init timeouts after it
//! starts, or if the genesis names no admin (the roster can never change),
//! it stops for good: the driver exits with code 78, which its service
//! does not restart. The wait is longer than one init timeout because the
//! admin's request may be published just after the board starts, or lost
//! with a broker that restarts and published again.
//!
//! The admin's change requests arrive retained on `roster/<admin-id>`; the
//! node keeps the latest one whose signature checks, and proposes it with
//! its challenge when it leads and the request applies to the roster in
//! force (see [`super::roster`]).

use tracing::{debug, info, warn};

use super::roster::{check_change, signed_change, ChangeError};
use super::timers::Timer;
use super::{Effect, Event, Node, Output, Phase, Publish, Reject, Stop};
use crate::wire::{Family, Payload};

/// How many init timeouts a new learner waits, hearing the members, for
/// the admin's request that adds it before it stops.
pub const LEARNER_PATIENCE: u64 = 3;

impl Node {
    /// Whether this node is learning (not a member, still looking).
    pub(crate) fn learning(&self) -> bool {
        self.phase == Phase::Learner && self.stopped.is_none()
    }

    /// Why this node cannot take part at all, known before it connects:
    /// it is not a member and the roster can never change.
    pub fn refusal(&self) -> Option<Stop> {
        (!self.is_member() && self.cfg.genesis.admin().is_none()).then(|| self.not_a_member())
    }

    fn not_a_member(&self) -> Stop {
        Stop::NotAMember {
            height: self.height,
            removed_at: self.removed_at,
            fixed: self.cfg.genesis.admin().is_none(),
        }
    }

    /// Stops taking part for good.
    pub(crate) fn stop(&mut self, why: Stop, out: &mut Output) {
        self.stopped = Some(why.clone());
        self.timers.stop(Timer::Round);
        self.timers.stop(Timer::Resend);
        self.timers.stop(Timer::Learner);
        out.event(Event::Stop(why));
    }

    /// A learner's part when connected: its key, and a time limit.
    pub(crate) fn announce_learner(&mut self, now: u64, out: &mut Output) {
        if let Some(why) = self.refusal() {
            return self.stop(why, out);
        }
        if !self.timers.runs(Timer::Learner) {
            info!(
                "init: this node ({}) is not in the roster of cluster '{}' at tx {}; catching up to see whether a later roster adds it",
                self.me,
                self.cfg.genesis.cluster(),
                self.height
            );
            self.timers.set(
                Timer::Learner,
                now + LEARNER_PATIENCE * self.cfg.init_timeout_ms,
            );
        }
        out.effect(Effect::Publish(self.pubkey_message()));
        if self.catchup_next().is_none() {
            self.request_sync(now, out);
        }
    }

    /// The init timeout passed without a commit that adds this node. While
    /// the admin's request to add it is out, applicable and not committed
    /// yet (the cluster may be slow, or busy with faults), it waits on.
    pub(crate) fn learner_gives_up(&mut self, now: u64, out: &mut Output) {
        if self.add_requested {
            debug!("init: the admin has asked to add this node, and this node has not caught up with that change yet; waiting on");
            self.timers
                .set(Timer::Learner, now + self.cfg.init_timeout_ms);
            return;
        }
        // Nothing heard for a while: cut off from the broker, not refused.
        let quiet = self
            .catchup
            .last_heard()
            .is_none_or(|t| now.saturating_sub(t) >= self.cfg.init_timeout_ms / 2);
        if quiet {
            debug!("init: nothing heard from the cluster lately; waiting on");
            self.timers
                .set(Timer::Learner, now + self.cfg.init_timeout_ms);
            return;
        }
        let why = self.not_a_member();
        warn!("init: {}", self.stop_message(&why));
        self.stop(why, out);
    }

    /// What to tell the operator when this node stops.
    pub fn stop_message(&self, why: &Stop) -> String {
        let g = &self.cfg.genesis;
        let who = format!("this node ({})", self.me);
        let cluster = format!("cluster '{}' ({})", g.cluster(), g.id());
        match why {
            Stop::NotAMember {
                fixed: true,
                height,
                ..
            } => format!(
                "{who} is not a member of {cluster} (its roster at tx {height} names {}), and the genesis names no admin, so the roster never changes: start it with the genesis of its own cluster, or make a new genesis that lists it",
                self.roster_names()
            ),
            Stop::NotAMember {
                removed_at: Some(tx),
                ..
            } => format!(
                "{who} was removed from {cluster} in tx {tx}, and no later roster adds it again: add it with `edgeminer roster add {}` first, then start it",
                self.me
            ),
            Stop::NotAMember { height, .. } => format!(
                "{who} is not a member of {cluster}: no roster up to tx {height} names it (members: {}); add it with `edgeminer roster add {}` first, then start it",
                self.roster_names(),
                self.me
            ),
            Stop::Removed { tx } => format!(
                "{who} was removed from {cluster} by the roster change committed in tx {tx}; it takes no further part"
            ),
        }
    }

    fn roster_names(&self) -> String {
        self.roster
            .ids()
            .map(|id| self.name_of(id))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The admin's change request, as it arrived on `roster/<admin-id>`.
    pub(crate) fn on_change_request(&mut self, raw: &[u8], _now: u64) -> Result<(), Reject> {
        let g = self.cfg.genesis.clone();
        let (change, _) = signed_change(&g, raw, &self.sigs)?;
        if change.add.iter().any(|e| e.id == self.me) {
            self.add_requested = true;
        }
        if self.change_request.as_deref() == Some(raw) {
            return Ok(());
        }
        match check_change(&g, &self.roster, raw, self.height + 1, &self.sigs) {
            Ok((_, next)) => {
                info!(
                    "roster: the admin asks for version {}: {} members, quorum {} ({} added, {} removed); the next leader proposes it",
                    next.version(),
                    next.len(),
                    next.quorum(),
                    change.add.len(),
                    change.remove.len()
                );
            }
            // A request already applied, or meant for a roster this node
            // has not reached: nothing to say.
            Err(ChangeError::Stale { .. }) => {
                debug!("roster: a change request for another roster than the one in force");
            }
            Err(e) => return Err(Reject::Change(e)),
        }
        self.change_request = Some(raw.to_vec());
        Ok(())
    }

    /// The change request to propose with a challenge for `tx`, if it
    /// applies to the roster in force.
    pub(crate) fn pending_change(&self, tx: u64) -> Option<Vec<u8>> {
        let raw = self.change_request.as_ref()?;
        check_change(&self.cfg.genesis, &self.roster, raw, tx, &self.sigs)
            .is_ok()
            .then(|| raw.clone())
    }

    /// A node just added goes by the name the roster gives it (as one
    /// started as a member does): its key and presence are signed again.
    pub(crate) fn take_roster_name(&mut self) {
        let Some(name) = self.roster.name(self.me).filter(|n| !n.is_empty()) else {
            return;
        };
        if self.cfg.name == name {
            return;
        }
        self.cfg.name = name.to_string();
        self.announcements = None;
        let key = self.pubkey_message().payload;
        self.announcements = Some((key.clone(), self.presence_message(true).payload));
        let (me, public, name) = (self.me, self.public, self.cfg.name.clone());
        self.members.insert_key(me, public, name, key);
    }

    /// This node's report of the roster in force, retained for observers.
    pub fn roster_message(&self) -> Publish {
        Publish {
            topic: self.topics.own(Family::Roster, self.me),
            payload: self.sign(self.height, 0, Payload::Roster(self.roster.view())),
            retain: true,
        }
    }
}
