//! What one input asks of the driver: the durable writes first, then what
//! may only follow them, and what happened.
//!
//! "Persist before publish" is in the type rather than in the order of a
//! list that every driver must keep: a driver writes and syncs all of
//! [`Output::persist`] before it carries out anything in
//! [`Output::then`], so no vote, approval or commit leaves the node before
//! the promise it makes is on disk. Holding a message back is always safe
//! (the network may delay it anyway); sending one early never is.

use super::{Committed, Publish, Stop};
use crate::pow::Job;

/// A write that must be durable before any effect of the same output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Persist {
    /// Append this record to the ledger (and sync it).
    AppendLedger(Vec<u8>),
    /// Replace the saved vote state with this one (durably).
    SaveVotes(Vec<u8>),
    /// Replace the rosters file with this one (durably): after every
    /// committed roster change, before the next append (see
    /// [`super::head`]).
    SaveRosters(Vec<u8>),
}

/// What the driver does once the writes are durable, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    Publish(Publish),
    /// Mine this job (replacing any other).
    Mine(Job),
    StopMining,
    /// Someone missed transaction `tx`: read its ledger record and publish
    /// [`super::Node::history_message`] of it.
    ServeHistory {
        tx: u64,
    },
}

/// What happened, for tables, logs, metrics and the driver's own decisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A transaction was committed (its record is among the writes).
    Committed(Committed),
    /// This node takes no further part: stop once the rest of this output
    /// is carried out, and say why ([`super::Node::stop_message`]).
    Stop(Stop),
}

/// Everything one input asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Output {
    /// Writes, in order; all durable before anything in `then`.
    pub persist: Vec<Persist>,
    /// Effects, in order.
    pub then: Vec<Effect>,
    /// Events, in order.
    pub events: Vec<Event>,
}

impl Output {
    pub(crate) fn persist(&mut self, p: Persist) {
        self.persist.push(p);
    }

    pub(crate) fn effect(&mut self, e: Effect) {
        self.then.push(e);
    }

    pub(crate) fn event(&mut self, e: Event) {
        self.events.push(e);
    }

    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.persist.is_empty() && self.then.is_empty() && self.events.is_empty()
    }

    /// The messages to publish, in order.
    pub fn publishes(&self) -> impl Iterator<Item = &Publish> {
        self.then.iter().filter_map(|e| match e {
            Effect::Publish(p) => Some(p),
            _ => None,
        })
    }

    /// Why the node stops, if this output stops it.
    pub fn stop(&self) -> Option<&Stop> {
        self.events.iter().find_map(|e| match e {
            Event::Stop(s) => Some(s),
            _ => None,
        })
    }
}

/// One item of an output, in the order every driver carries them out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Write(Persist),
    Effect(Effect),
    Event(Event),
}

impl Output {
    /// The output's items in the order a driver carries them out: every
    /// write, then every effect, then every event.
    pub fn into_steps(self) -> impl Iterator<Item = Step> {
        let writes = self.persist.into_iter().map(Step::Write);
        let effects = self.then.into_iter().map(Step::Effect);
        writes
            .chain(effects)
            .chain(self.events.into_iter().map(Step::Event))
    }
}
