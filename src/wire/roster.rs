//! The two messages of membership, on `roster/<id>` topics.
//!
//! A [`Change`] is an operator's request to change the roster (add or
//! remove members, set the quorum), signed by the admin key that the
//! cluster's genesis names and retained on `roster/<admin-id>`. It names the
//! roster it applies to by that roster's hash, so it applies once, to
//! exactly the roster the operator saw, and never again. The next leader
//! puts it into its challenge; the transaction that commits that challenge
//! commits the change, and the new roster decides the transactions after it.
//!
//! A [`RosterView`] is a node's report of the roster in force at its
//! ledger head, retained on `roster/<node-id>` for observers (`edgeminer
//! status`, `edgeminer roster`): nodes never take it as input.

use minicbor::{Decode, Encode};

use crate::identity::NodeId;

/// A member as rosters list it: its id and its display name (may be empty).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Encode, Decode)]
#[cbor(array)]
pub struct Entry {
    #[n(0)]
    pub id: NodeId,
    #[n(1)]
    pub name: String,
}

/// roster: the admin asks the cluster to change its roster. The body's
/// sender is the admin key's id; tx and round are 0.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cbor(array)]
pub struct Change {
    /// The hash of the roster this change applies to (see
    /// `protocol::roster::Roster::hash`).
    #[cbor(n(0), with = "minicbor::bytes")]
    pub base: [u8; 16],
    /// The quorum of the new roster.
    #[n(1)]
    pub quorum: u32,
    /// Members to add, in ascending id order.
    #[n(2)]
    pub add: Vec<Entry>,
    /// Members to remove, in ascending id order.
    #[n(3)]
    pub remove: Vec<NodeId>,
}

/// roster: a node reports the roster in force after its ledger head. The
/// body's tx is the node's committed height, round 0.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cbor(array)]
pub struct RosterView {
    /// How many changes the ledger has applied since the genesis.
    #[n(0)]
    pub version: u32,
    #[n(1)]
    pub quorum: u32,
    /// Every member, in ascending id order.
    #[n(2)]
    pub members: Vec<Entry>,
    /// The first transaction this roster decides (1 for the genesis roster).
    #[n(3)]
    pub since: u64,
}
