//! Where a node stands, in one snapshot that every display of it reads:
//! systemd's status line, the observers' status message, metrics and the
//! progress line. The driver fills it (`node::telemetry`); the displays
//! only read it, so they never disagree and never reach into the driver.

use crate::identity::NodeId;
use crate::protocol::Phase;
use crate::service::Broker;

/// Where a node stands: the core's side as of its last output,
/// the driver's as last measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Standing {
    pub phase: Phase,
    /// Transactions committed; the one under way is the next.
    pub height: u64,
    /// The election round of the transaction under way.
    pub round: u32,
    /// The leader of the transaction under way, once its challenge is
    /// known, and its name.
    pub leader: Option<(NodeId, String)>,
    /// The open challenge's difficulty.
    pub difficulty: Option<u8>,
    /// Transactions its last output committed.
    pub commits: u64,
    pub broker: Broker,
    /// Candidates per second over the last status period.
    pub hashrate: f64,
    /// Mining threads allowed by thermal care, of all.
    pub active: usize,
    pub threads: usize,
    /// The latest reading of thermal care, in °C.
    pub temperature: Option<f64>,
}
