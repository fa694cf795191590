//! A node's durable state: the ledger of commit certificates and the vote
//! state, on top of the raw record file of [`crate::ledger`].
//!
//! The first ledger record describes the cluster (name, size, quorum,
//! difficulty range), so the ledger can be re-verified with nothing but the
//! state directory, and a node refuses a state directory that belongs to
//! another cluster. Every commit is re-verified at load: a ledger that fails
//! is never trusted silently.

use std::path::{Path, PathBuf};

use minicbor::{Decode, Encode};

use crate::ledger::{self, LedgerFile};
use crate::protocol::{self, verify_commit_with, Committed, Reject, VoteState};
use crate::wire::{self, Commit, SigCache};

pub const VOTES_FILE: &str = "votes.cbor";

/// The cluster a ledger belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cbor(array)]
pub struct Meta {
    #[n(0)]
    pub version: u8,
    #[n(1)]
    pub cluster: String,
    #[n(2)]
    pub nodes: u32,
    #[n(3)]
    pub quorum: u32,
    #[n(4)]
    pub difficulty_lo: u8,
    #[n(5)]
    pub difficulty_hi: u8,
}

impl Meta {
    pub fn of(cfg: &protocol::Config) -> Meta {
        Meta {
            version: 1,
            cluster: cfg.cluster.clone(),
            nodes: cfg.nodes as u32,
            quorum: cfg.quorum as u32,
            difficulty_lo: cfg.difficulty.0,
            difficulty_hi: cfg.difficulty.1,
        }
    }

    /// The settings needed to verify this ledger's certificates.
    pub fn protocol_config(&self) -> protocol::Config {
        protocol::Config {
            cluster: self.cluster.clone(),
            nodes: self.nodes as usize,
            quorum: self.quorum as usize,
            difficulty: (self.difficulty_lo, self.difficulty_hi),
            election_timeout_ms: 0,
            solution_window_ms: 0,
            init_timeout_ms: 0,
            name: String::new(),
            threads: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error(transparent)]
    Ledger(#[from] ledger::LedgerError),
    #[error("{0}: the first record does not describe a cluster: {1}")]
    BadMeta(PathBuf, wire::WireError),
    #[error("{path} belongs to cluster '{found}' ({found_nodes} nodes, quorum {found_quorum}, difficulty {found_lo}..{found_hi}); this node is configured for '{want}' ({want_nodes} nodes, quorum {want_quorum}, difficulty {want_lo}..{want_hi}): use another --state-dir or the same settings")]
    OtherCluster {
        path: PathBuf,
        found: String,
        found_nodes: u32,
        found_quorum: u32,
        found_lo: u8,
        found_hi: u8,
        want: String,
        want_nodes: u32,
        want_quorum: u32,
        want_lo: u8,
        want_hi: u8,
    },
    #[error("transaction {tx} in the ledger is invalid: {reason}")]
    BadEntry { tx: u64, reason: Reject },
    #[error("reading the vote state {0}: {1}")]
    Votes(PathBuf, std::io::Error),
}

/// Verifies records (after the meta record) in order; stops at the first bad one.
fn verify_all(meta: &Meta, records: &[Vec<u8>]) -> Result<Vec<Committed>, ChainError> {
    verify_records(&meta.protocol_config(), records)
}

/// Verifies commit records (transaction 1 first) by their certificates
/// alone, each building on the one before.
pub fn verify_records(
    cfg: &protocol::Config,
    records: &[Vec<u8>],
) -> Result<Vec<Committed>, ChainError> {
    verify_records_with(cfg, records, &SigCache::with_capacity(64))
}

/// [`verify_records`] with a cache of signatures already checked (the
/// simulation shares one among all its nodes and their restarts).
pub(crate) fn verify_records_with(
    cfg: &protocol::Config,
    records: &[Vec<u8>],
    sigs: &SigCache,
) -> Result<Vec<Committed>, ChainError> {
    let mut prev = protocol::genesis(&cfg.cluster);
    let mut out = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let tx = i as u64 + 1;
        let commit = Commit::decode(r).map_err(|e| ChainError::BadEntry {
            tx,
            reason: Reject::Wire(e),
        })?;
        let done = verify_commit_with(cfg, tx, &prev, &commit, sigs)
            .map_err(|reason| ChainError::BadEntry { tx, reason })?;
        prev = done.reference;
        out.push(done);
    }
    Ok(out)
}

fn decode_meta(path: &Path, bytes: &[u8]) -> Result<Meta, ChainError> {
    wire::decode_exact(bytes).map_err(|e| ChainError::BadMeta(path.to_path_buf(), e))
}

/// Opens (or starts) the ledger of a running node and verifies it.
pub fn open(
    dir: &Path,
    cfg: &protocol::Config,
) -> Result<(LedgerFile, Vec<Committed>), ChainError> {
    let (mut file, records) = LedgerFile::open(dir)?;
    let want = Meta::of(cfg);
    let Some((first, rest)) = records.split_first() else {
        file.append(&wire::encode(&want))?;
        return Ok((file, Vec::new()));
    };
    let meta = decode_meta(file.path(), first)?;
    if meta.cluster != want.cluster
        || meta.nodes != want.nodes
        || meta.quorum != want.quorum
        || (meta.difficulty_lo, meta.difficulty_hi) != (want.difficulty_lo, want.difficulty_hi)
    {
        return Err(ChainError::OtherCluster {
            path: file.path().to_path_buf(),
            found: meta.cluster,
            found_nodes: meta.nodes,
            found_quorum: meta.quorum,
            found_lo: meta.difficulty_lo,
            found_hi: meta.difficulty_hi,
            want: want.cluster,
            want_nodes: want.nodes,
            want_quorum: want.quorum,
            want_lo: want.difficulty_lo,
            want_hi: want.difficulty_hi,
        });
    }
    let commits = verify_all(&meta, rest)?;
    Ok((file, commits))
}

/// Read-only view for `ledger` and `verify`, safe while the node runs.
/// `None` when the directory has no ledger yet.
pub fn read(dir: &Path) -> Result<Option<(Meta, Vec<Committed>)>, ChainError> {
    if !dir.join(ledger::LEDGER_FILE).exists() {
        return Ok(None);
    }
    let records = ledger::read_records(dir)?;
    let Some((first, rest)) = records.split_first() else {
        return Ok(None);
    };
    let meta = decode_meta(&dir.join(ledger::LEDGER_FILE), first)?;
    let commits = verify_all(&meta, rest)?;
    Ok(Some((meta, commits)))
}

pub fn load_votes(dir: &Path) -> Result<Option<VoteState>, ChainError> {
    let path = dir.join(VOTES_FILE);
    match ledger::read_optional(&path).map_err(|e| ChainError::Votes(path.clone(), e))? {
        // An unreadable vote state only loses promises of an unfinished
        // transaction; the protocol tolerates that like a lost message.
        Some(bytes) => Ok(VoteState::decode(&bytes).ok()),
        None => Ok(None),
    }
}

pub fn save_votes(dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
    ledger::write_atomic(&dir.join(VOTES_FILE), bytes)
}
