//! Phase 1, init: who is in the cluster and who is online.
//!
//! Each node keeps a retained presence message on `init/<id>`; its last will
//! replaces it with "gone" when the broker loses the node. A presence counts
//! only once the sender's key is known and the signature checks, and a newer
//! incarnation (a restart) replaces an older one, so replayed old presences
//! change nothing. Only members of the roster in force count (the
//! membership check comes first), and a learner never says it is online.
//! The first election starts when every member of the roster is online, or
//! a quorum after the init timeout.

use std::collections::BTreeMap;

use p256::ecdsa::VerifyingKey;
use tracing::info;

use super::{Effect, Node, Output, Phase, Publish, Reject};
use crate::identity::NodeId;
use crate::wire::{Body, Family, Payload, Presence};

/// What we know of one member.
#[derive(Clone, Debug)]
pub struct Member {
    pub key: VerifyingKey,
    pub public: [u8; 33],
    pub name: String,
    /// The signed key message, to pass on to nodes that missed it.
    pub announcement: Vec<u8>,
    pub online: bool,
    pub incarnation: u64,
    pub threads: u16,
}

/// The membership table: keys (pubkey phase) and presence (init phase).
#[derive(Default)]
pub struct Members {
    by_id: BTreeMap<NodeId, Member>,
}

impl Members {
    pub fn len(&self) -> usize {
        self.by_id.len()
    }
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
    pub fn get(&self, id: NodeId) -> Option<&Member> {
        self.by_id.get(&id)
    }
    pub fn key(&self, id: NodeId) -> Option<&VerifyingKey> {
        self.by_id.get(&id).map(|m| &m.key)
    }
    pub fn keys(&self) -> BTreeMap<NodeId, VerifyingKey> {
        self.by_id.iter().map(|(id, m)| (*id, m.key)).collect()
    }
    pub fn iter(&self) -> impl Iterator<Item = (&NodeId, &Member)> {
        self.by_id.iter()
    }
    pub fn online(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.by_id
            .iter()
            .filter(|(_, m)| m.online)
            .map(|(id, _)| *id)
    }
    /// Forgets everyone `keep` says no to (members a roster change removed).
    pub fn retain(&mut self, keep: impl Fn(NodeId) -> bool) {
        self.by_id.retain(|id, _| keep(*id));
    }
    pub fn name_of(&self, id: NodeId) -> String {
        match self.by_id.get(&id) {
            Some(m) if !m.name.is_empty() => m.name.clone(),
            _ => id.to_string(),
        }
    }

    /// Adds a key (already checked against the id) and the signed message
    /// that announced it. Returns false when the key was known already.
    pub fn insert_key(
        &mut self,
        id: NodeId,
        public: [u8; 33],
        name: String,
        announcement: Vec<u8>,
    ) -> bool {
        if let Some(m) = self.by_id.get_mut(&id) {
            m.name = name;
            return false;
        }
        let Ok(key) = VerifyingKey::from_sec1_bytes(&public) else {
            return false;
        };
        self.by_id.insert(
            id,
            Member {
                key,
                public,
                name,
                announcement,
                online: false,
                incarnation: 0,
                threads: 0,
            },
        );
        true
    }
}

impl Node {
    pub(crate) fn presence_message(&self, online: bool) -> Publish {
        let payload = match &self.announcements {
            Some((_, presence)) if online => presence.clone(),
            _ => self.sign(
                0,
                0,
                Payload::Presence(Presence {
                    online,
                    incarnation: self.incarnation,
                    name: self.cfg.name.clone(),
                    threads: self.cfg.threads,
                    version: env!("CARGO_PKG_VERSION").to_string(),
                }),
            ),
        };
        Publish {
            topic: self.topics.own(Family::Init, self.me),
            payload,
            retain: true,
        }
    }

    pub(crate) fn on_presence(
        &mut self,
        body: &Body,
        p: Presence,
        now: u64,
        out: &mut Output,
    ) -> Result<(), Reject> {
        if body.sender == self.me && !p.online && p.incarnation <= self.incarnation {
            // Our own will, published by a broker that lost us for a while
            // (or that is out of date), or the will of an earlier start of
            // ours that the broker published after we came back: the
            // others ignore an older incarnation, but nodes that connect
            // later would read "gone". We are here, say so.
            out.effect(Effect::Publish(self.presence_message(true)));
            return Ok(());
        }
        let Some(m) = self.members.by_id.get_mut(&body.sender) else {
            return Err(Reject::UnknownSigner(body.sender));
        };
        // Newer incarnations win; within one incarnation the latest word
        // does. A node cut off for longer than its keep-alive is declared
        // gone by its will and comes back online with the same incarnation;
        // the broker keeps one topic's messages in order.
        let newer = p.incarnation > m.incarnation
            || (p.incarnation == m.incarnation && p.online != m.online);
        if !newer {
            return Ok(());
        }
        let changed = m.online != p.online;
        // A newer start of a member we took for online: it died and came
        // back before its will said so, and missed as much as one that was
        // gone.
        let restarted = p.online && m.online && p.incarnation > m.incarnation;
        m.incarnation = p.incarnation;
        m.online = p.online;
        m.threads = p.threads;
        if !p.name.is_empty() {
            m.name = p.name.clone();
        }
        if (changed || restarted) && body.sender != self.me {
            if p.online {
                let again = if restarted { " again (restarted)" } else { "" };
                info!(
                    "init: {} ({}) is online{again} with {} threads, version {}",
                    p.name, body.sender, p.threads, p.version
                );
                // It missed whatever we sent while it was away; retained
                // messages reach it from the broker, the others we send again.
                if !matches!(self.phase, Phase::Init | Phase::Learner) {
                    for m in self.tx.republish(&self.topics, self.me) {
                        if !m.retain {
                            out.effect(Effect::Publish(m));
                        }
                    }
                }
            } else {
                info!("init: {} ({}) is gone", p.name, body.sender);
            }
        }
        if self.phase == Phase::Init {
            self.maybe_start(now, out);
        }
        Ok(())
    }

    /// Leaves init for the first election once enough members are online:
    /// all of them, or a quorum after the init wait. A node that has run
    /// before (it has a ledger, or a vote of the open transaction) does
    /// not wait: the cluster has started, a member still gone may be dead,
    /// and the others may be electing it meanwhile.
    pub(crate) fn maybe_start(&mut self, now: u64, out: &mut Output) {
        if self.phase != Phase::Init {
            return;
        }
        let online = self.online().len();
        let waited = now.saturating_sub(self.started_at) >= self.cfg.init_timeout_ms;
        let resumed = self.height > 0 || self.tx.election.my_vote().is_some();
        let (n, q) = (self.roster.len(), self.roster.quorum());
        if online >= n || ((waited || resumed) && online >= q) {
            let round = self.tx.election.round();
            info!(
                "init: {online} of {n} members online (quorum {q}); starting tx {} round {round}",
                self.height + 1
            );
            self.phase = Phase::Election;
            self.enter_round(round, now, out);
        }
    }
}
