//! The node's status message for observers (`edgeminer status`): where the
//! core stands (phase, transaction, round, leader, the open challenge), plus
//! what only the driver can measure (hash rate, threads, temperature),
//! signed like every other message and retained on `status/<id>`.
//!
//! Pure like the rest of the core: the driver passes its measurements and
//! the time in, and publishes what comes out. No node reads status messages.
//! A node that leaves cleanly sends a last one with phase "left", rather
//! than an empty retained message that would remove it: observers can then
//! tell a node that left from one that died.

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
            Phase::Learner => StatusPhase::Learner,
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
        let open = self.open_challenge();
        self.status_publish(Status {
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
        })
    }

    /// The last status, sent when leaving cleanly: phase "left", nothing
    /// mined, no transaction of its own under way.
    pub fn status_left(&self) -> Publish {
        self.status_publish(Status {
            incarnation: self.incarnation,
            name: self.cfg.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            phase: StatusPhase::Left,
            leader: None,
            difficulty: None,
            open_ms: None,
            hashrate: 0,
            active: 0,
            threads: self.cfg.threads,
            cores: 0,
            temp_mc: None,
        })
    }

    fn status_publish(&self, status: Status) -> Publish {
        Publish {
            topic: self.topics.status(self.me),
            payload: self.sign(
                self.height + 1,
                self.tx.election.round(),
                Payload::Status(status),
            ),
            retain: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::tests::Sim;
    use crate::protocol::Input;
    use crate::wire::{Body, Envelope, Family, MAX_PHASE_MESSAGE};

    #[test]
    fn a_signed_status_of_the_open_transaction_that_no_node_takes_as_input() {
        let mut sim = Sim::new(3, 7);
        sim.connect_all();
        assert!(sim.run_until(2, 100_000), "two commits");
        let m = Measured {
            hashrate: 1234,
            active: 1,
            threads: 2,
            cores: 4,
            temp_mc: Some(50_000),
        };
        let node = &sim.nodes[0];
        let p = node.status_message(m, sim.now);
        assert_eq!(p.topic, node.topics().status(node.id()));
        assert!(p.retain);
        let env = Envelope::decode(&p.payload, MAX_PHASE_MESSAGE).expect("an envelope");
        assert!(env.verify(&sim.cfg.cluster_id(), sim.ids[0].key.verifying_key()));
        let body = Body::decode(&env.body).expect("a body");
        assert_eq!(
            (body.sender, body.tx, body.round),
            (node.id(), node.height() + 1, node.round())
        );
        let Payload::Status(s) = body.payload else {
            panic!("a status body, not {:?}", body.kind());
        };
        assert_eq!(s.phase, StatusPhase::from(node.phase()));
        assert_eq!(s.leader, node.leader());
        assert_eq!(s.open_ms.is_some(), node.leader().is_some());
        assert_eq!((s.hashrate, s.active, s.threads, s.cores), (1234, 1, 2, 4));
        assert_eq!(s.temp_mc, Some(50_000));

        // Another node ignores it on the status topic (it never subscribes
        // there) and refuses it anywhere else.
        let other = &mut sim.nodes[1];
        let before = other.rejected;
        let out = other.handle(
            Input::Message {
                topic: &p.topic,
                payload: &p.payload,
                retained: false,
            },
            sim.now,
        );
        assert!(out.is_empty() && other.rejected == before);
        let init = other.topics().own(Family::Init, sim.ids[0].id);
        let out = other.handle(
            Input::Message {
                topic: &init,
                payload: &p.payload,
                retained: false,
            },
            sim.now,
        );
        assert!(out.is_empty());
        assert_eq!(other.rejected, before + 1);

        // Leaving cleanly replaces the retained status with a "left" one.
        let bye = sim.nodes[0].goodbye();
        let last = bye.iter().find(|g| g.topic == p.topic && g.retain);
        let env = Envelope::decode(&last.expect("a last status").payload, MAX_PHASE_MESSAGE)
            .expect("an envelope");
        assert!(env.verify(&sim.cfg.cluster_id(), sim.ids[0].key.verifying_key()));
        let body = Body::decode(&env.body).expect("a body");
        assert!(
            matches!(&body.payload, Payload::Status(s) if s.phase == StatusPhase::Left),
            "{body:?}"
        );
    }
}
