//! The node's status message for observers (`edgeminer status`): where the
//! core stands (phase, transaction, round, leader, the open challenge), plus
//! what only the driver can measure (hash rate, threads, temperature),
//! signed like every other message and retained on `status/<id>`.
//!
//! Pure like the rest of the core: the driver passes its measurements and
//! the time in, and publishes what comes out. No node reads status messages.

use super::{Node, Phase, Publish};
use crate::wire::{Payload, Status, StatusPhase};

/// What the driver measures for a status message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Measured {
    /// Candidates tried per second over the last period.
    pub hashrate: u64,
    /// Mining threads allowed now, and all of them.
    pub active: u16,
    pub threads: u16,
    /// CPU cores of the board.
    pub cores: u16,
    /// SoC temperature in millidegrees Celsius, when read.
    pub temp_mc: Option<i32>,
}

impl From<Phase> for StatusPhase {
    fn from(p: Phase) -> StatusPhase {
        match p {
            Phase::Init => StatusPhase::Init,
            Phase::Election => StatusPhase::Election,
            Phase::Challenge => StatusPhase::Mining,
            Phase::Voting => StatusPhase::Voting,
        }
    }
}

impl Node {
    /// The status of the transaction under way at `now`, signed, for the
    /// retained `status/<id>` topic.
    pub fn status_message(&self, m: Measured, now: u64) -> Publish {
        let open = self.tx.challenges.values().max_by_key(|c| c.round);
        let status = Status {
            incarnation: self.incarnation,
            name: self.cfg.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            phase: self.phase.into(),
            leader: open.map(|c| c.leader),
            difficulty: open.map(|c| c.difficulty),
            open_ms: open.map(|c| now.saturating_sub(c.since)),
            hashrate: m.hashrate,
            active: m.active,
            threads: m.threads,
            cores: m.cores,
            temp_mc: m.temp_mc,
        };
        Publish {
            topic: self.topics.status(self.me),
            payload: self.sign(self.height + 1, self.tx.round, Payload::Status(status)),
            retain: true,
        }
    }

    /// An empty retained message on our status topic: the broker drops the
    /// retained status (sent when leaving cleanly).
    pub fn status_clear(&self) -> Publish {
        Publish {
            topic: self.topics.status(self.me),
            payload: Vec::new(),
            retain: true,
        }
    }
}
