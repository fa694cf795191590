//! What a node keeps in its state directory, in two layers: `records`, the
//! append-only file of checksummed records (with `index`, where each one
//! starts, and atomic small files), which knows nothing of their meaning; and `ledger`, the cluster's ledger on
//! top of it (the genesis as record 0, then commit certificates checked
//! against the roster of their height) and the saved vote state.
//!
//! The node key lives in [`crate::identity`].

mod index;
pub mod ledger;
pub mod prune;
pub mod records;
