//! A node's durable state: the ledger of commit certificates and the vote
//! state, on top of the raw record file of [`super::records`].
//!
//! The first ledger record is the cluster's genesis (its canonical
//! encoding), so the ledger can be re-verified with nothing but the state
//! directory, and a node refuses a state directory that belongs to another
//! cluster. A node resumes from its rosters file and its last certificate
//! ([`crate::protocol::head`]), in time that does not grow with the ledger;
//! `ledger` and `verify` check every certificate against the roster in force
//! at its height: a ledger that fails is never trusted silently.
//!
//! A genesis that continues another cluster's ledger (recovery from a lost
//! quorum) finds that ledger in the state directory: it is moved aside,
//! whole, to `ledger-<old cluster id>.bin`, and the new ledger starts.

use std::path::{Path, PathBuf};

use tracing::info;

use super::records::{self, RecordFile};
use crate::protocol::genesis::GenesisError;
use crate::protocol::head::{self, Checked, Records, ResumeError};
use crate::protocol::{Chain, Genesis, History, Reject, Resumed, Roster, VoteState};
use crate::wire::{ClusterId, SigCache};

pub const VOTES_FILE: &str = "votes.cbor";
/// The rosters in force, written after every committed roster change.
pub const ROSTERS_FILE: &str = "rosters.cbor";

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Ledger(#[from] records::RecordError),
    #[error("{0}: the first record is not a genesis this version reads ({1}); a ledger of an older edgeminer (before genesis files) cannot be used: move the state directory's ledger.bin aside")]
    BadGenesis(PathBuf, GenesisError),
    #[error("{path} belongs to cluster '{found}' ({found_id}); this node runs the genesis of cluster '{want}' ({want_id}): use another --state-dir, or the genesis file that made this ledger")]
    OtherCluster {
        path: PathBuf,
        found: String,
        found_id: ClusterId,
        want: String,
        want_id: ClusterId,
    },
    #[error("transaction {tx} in the ledger is invalid: {reason}")]
    BadEntry { tx: u64, reason: Reject },
    #[error("reading the vote state {0}: {1}")]
    Votes(PathBuf, std::io::Error),
    #[error("{0}: {1}")]
    Rosters(PathBuf, std::io::Error),
    #[error("{0}: {1}")]
    BadBase(PathBuf, String),
    #[error("moving the ledger of the cluster this one continues aside: {0}")]
    Archive(std::io::Error),
}

/// Verifies commit records (transaction 1 first) by their certificates,
/// with a cache of signatures already checked (the
/// simulation shares one among all its nodes and their restarts).
pub(crate) fn verify_records_with(
    genesis: &Genesis,
    records: &[Vec<u8>],
    sigs: &SigCache,
) -> Result<History, LedgerError> {
    History::verify(genesis, records, sigs)
        .map_err(|(tx, reason)| LedgerError::BadEntry { tx, reason })
}

fn decode_genesis(path: &Path, bytes: &[u8]) -> Result<Genesis, LedgerError> {
    Genesis::decode(bytes).map_err(|e| LedgerError::BadGenesis(path.to_path_buf(), e))
}

/// A node's open ledger: the record file, and where its transactions
/// start. Record 0 is the genesis; then transaction `t` is record `t`, or,
/// in a ledger pruned up to transaction `B` (`edgeminer prune`), record 1
/// is the base record standing for transactions 1..=B and transaction `t`
/// is record `t - B + 1`.
pub struct Ledger {
    file: RecordFile,
    /// The base record's height (0: nothing pruned).
    base: u64,
}

impl Ledger {
    fn index(&self, tx: u64) -> Option<usize> {
        if tx <= self.base || tx == 0 {
            return None;
        }
        let skip = self.base.saturating_sub(1);
        usize::try_from(tx - skip)
            .ok()
            .filter(|i| *i < self.file.len())
    }
    /// The last transaction in the ledger.
    pub fn height(&self) -> u64 {
        let n = self.file.len() as u64;
        match self.base {
            0 => n.saturating_sub(1),
            b => b + n.saturating_sub(2),
        }
    }
    /// Transactions pruned (before the first one held).
    pub fn pruned(&self) -> u64 {
        self.base
    }
    /// The record of transaction `tx`; `None` when it is not held (pruned,
    /// or not committed yet).
    pub fn read_tx(&self, tx: u64) -> Result<Option<Vec<u8>>, records::RecordError> {
        self.index(tx).map(|i| self.file.read(i)).transpose()
    }
    /// Appends the record of the next transaction (synced).
    pub fn append(&mut self, record: &[u8]) -> Result<(), records::RecordError> {
        self.file.append(record)
    }
    /// Bytes in the ledger file.
    pub fn bytes(&self) -> u64 {
        self.file.bytes()
    }
}

impl Records for Ledger {
    type Error = records::RecordError;
    fn height(&self) -> u64 {
        Ledger::height(self)
    }
    fn record(&self, tx: u64) -> Result<Vec<u8>, Self::Error> {
        self.read_tx(tx)?.ok_or_else(|| records::RecordError::Io {
            path: self.file.path().to_path_buf(),
            error: std::io::Error::new(std::io::ErrorKind::NotFound, format!("no tx {tx}")),
        })
    }
}

/// Where a ledger's transactions start: the genesis's head, or the head
/// its base record stands for.
fn start_of(genesis: &Genesis, path: &Path, second: Option<&[u8]>) -> Result<Chain, LedgerError> {
    match second.and_then(|r| head::decode_base(genesis, r)) {
        None => Ok(Chain::new(genesis)),
        Some(Ok(chain)) => Ok(chain),
        Some(Err(e)) => Err(LedgerError::BadBase(path.to_path_buf(), e)),
    }
}

/// Where the ledger whose records (genesis first) are `raw` starts.
pub(super) fn start_chain(dir: &Path, raw: &[Vec<u8>]) -> Result<Chain, LedgerError> {
    let path = dir.join(records::LEDGER_FILE);
    let Some(first) = raw.first() else {
        return Err(LedgerError::Ledger(records::RecordError::BadHeader(path)));
    };
    let genesis = decode_genesis(&path, first)?;
    start_of(&genesis, &path, raw.get(1).map(Vec::as_slice))
}

/// Opens (or starts) the ledger of a running node and resumes its head:
/// from the rosters file and the last certificate, or, when they do not
/// agree or the file is missing, by checking every certificate (and then
/// writing the rosters file, so the next start is quick).
pub fn open(dir: &Path, genesis: &Genesis) -> Result<(Ledger, Resumed), LedgerError> {
    archive_parent(dir, genesis)?;
    let mut file = RecordFile::open(dir)?;
    let path = dir.join(ROSTERS_FILE);
    let write_rosters = |chain: &Chain| {
        let bytes = head::saved_rosters(genesis, chain.height(), chain.rosters());
        records::write_atomic(&path, &bytes).map_err(|e| LedgerError::Rosters(path.clone(), e))
    };
    if file.is_empty() {
        let empty = Resumed::empty(genesis);
        write_rosters(&empty.chain)?;
        file.append(&genesis.encode())?;
        return Ok((Ledger { file, base: 0 }, empty));
    }
    let found = decode_genesis(file.path(), &file.read(0)?)?;
    if found.id() != genesis.id() {
        return Err(LedgerError::OtherCluster {
            path: file.path().to_path_buf(),
            found: found.cluster().to_string(),
            found_id: found.id(),
            want: genesis.cluster().to_string(),
            want_id: genesis.id(),
        });
    }
    let second = if file.len() > 1 {
        Some(file.read(1)?)
    } else {
        None
    };
    let start = start_of(genesis, file.path(), second.as_deref())?;
    let ledger = Ledger {
        file,
        base: start.height(),
    };
    let saved = records::read_optional(&path).map_err(|e| LedgerError::Rosters(path.clone(), e))?;
    let sigs = SigCache::with_capacity(64);
    let resumed =
        head::resume(genesis, &start, saved.as_deref(), &ledger, &sigs).map_err(|e| match e {
            ResumeError::Read { error, .. } => LedgerError::Ledger(error),
            ResumeError::Bad { tx, reason } => LedgerError::BadEntry { tx, reason },
        })?;
    match &resumed.checked {
        Checked::Whole(why) => {
            info!(
                "init: checked all {} certificates of the ledger ({why}); writing {}",
                resumed.chain.height() - ledger.pruned(),
                path.display()
            );
            write_rosters(&resumed.chain)?;
        }
        _ => info!(
            "init: resumed the ledger at tx {} from its last certificate and {}",
            resumed.chain.height(),
            path.display()
        ),
    }
    Ok((ledger, resumed))
}

pub fn save_rosters(dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
    records::write_atomic(&dir.join(ROSTERS_FILE), bytes)
}

/// When `genesis` continues the cluster whose ledger is in `dir`, moves
/// that ledger aside (and drops its vote state, which only meant something
/// to the old cluster).
fn archive_parent(dir: &Path, genesis: &Genesis) -> Result<(), LedgerError> {
    let Some(parent) = genesis.parent() else {
        return Ok(());
    };
    let path = dir.join(records::LEDGER_FILE);
    if !path.exists() {
        return Ok(());
    }
    let old = RecordFile::open(dir)?;
    if old.is_empty() {
        return Ok(());
    }
    let Ok(found) = Genesis::decode(&old.read(0)?) else {
        return Ok(());
    };
    if found.id() != parent.cluster {
        return Ok(());
    }
    let had = (old.len() - 1) as u64;
    drop(old);
    let aside = dir.join(format!("ledger-{}.bin", found.id()));
    std::fs::rename(&path, &aside).map_err(LedgerError::Archive)?;
    let _ = std::fs::remove_file(dir.join(records::INDEX_FILE));
    if had > parent.height {
        tracing::warn!(
            "init: this node's ledger of '{}' goes on to tx {had}, beyond tx {} where this cluster continues it: transactions {}..={had} are not part of the new cluster (kept in {})",
            found.cluster(),
            parent.height,
            parent.height + 1,
            aside.display()
        );
    }
    let _ = std::fs::remove_file(dir.join(VOTES_FILE));
    let _ = std::fs::remove_file(dir.join(ROSTERS_FILE));
    info!(
        "init: this cluster continues '{}' ({}) after tx {}: its ledger of {} transactions is now {}",
        found.cluster(),
        found.id(),
        parent.height,
        had,
        aside.display()
    );
    Ok(())
}

/// Read-only view for `ledger` and `verify`, safe while the node runs:
/// every certificate checked. `None` when the directory has no ledger yet.
pub fn read(dir: &Path) -> Result<Option<(Genesis, History)>, LedgerError> {
    Ok(read_with_records(dir)?.map(|(g, h, _)| (g, h)))
}

/// A checked ledger and its raw records (the genesis record first).
type WithRecords = (Genesis, History, Vec<Vec<u8>>);

/// [`read`], and the raw records it checked.
pub(super) fn read_with_records(dir: &Path) -> Result<Option<WithRecords>, LedgerError> {
    if !dir.join(records::LEDGER_FILE).exists() {
        return Ok(None);
    }
    let records = records::read_records(dir)?;
    let Some((first, rest)) = records.split_first() else {
        return Ok(None);
    };
    let genesis = decode_genesis(&dir.join(records::LEDGER_FILE), first)?;
    let start = start_chain(dir, &records)?;
    let rest = if start.height() > 0 { &rest[1..] } else { rest };
    let history = History::verify_from(&genesis, start, rest, &SigCache::with_capacity(64))
        .map_err(|(tx, reason)| LedgerError::BadEntry { tx, reason })?;
    Ok(Some((genesis, history, records)))
}

/// What a quick look at a state directory shows, read only and without
/// the lock a running node holds (`edgeminer doctor`).
#[derive(Debug)]
pub struct Peek {
    /// The genesis the ledger starts with.
    pub genesis: Genesis,
    /// The ledger file's size in bytes.
    pub bytes: u64,
    /// The height and roster of the rosters file, if there is one (and it
    /// is `genesis`'s cluster's).
    pub roster: Option<Result<(u64, Roster), String>>,
}

/// The genesis of the ledger in `dir` and its rosters file; `None` when
/// there is no ledger yet. Reads two small pieces, whatever the ledger's
/// length.
pub fn peek(dir: &Path) -> Result<Option<Peek>, LedgerError> {
    let Some((first, bytes)) = records::read_first(dir)? else {
        return Ok(None);
    };
    let genesis = decode_genesis(&dir.join(records::LEDGER_FILE), &first)?;
    let path = dir.join(ROSTERS_FILE);
    let saved = records::read_optional(&path).map_err(|e| LedgerError::Rosters(path, e))?;
    let roster = saved.map(|s| head::saved_roster(&genesis, &s));
    Ok(Some(Peek {
        genesis,
        bytes,
        roster,
    }))
}

pub fn load_votes(dir: &Path) -> Result<Option<VoteState>, LedgerError> {
    let path = dir.join(VOTES_FILE);
    match records::read_optional(&path).map_err(|e| LedgerError::Votes(path.clone(), e))? {
        // An unreadable vote state only loses promises of an unfinished
        // transaction; the protocol tolerates that like a lost message.
        Some(bytes) => Ok(VoteState::decode(&bytes).ok()),
        None => Ok(None),
    }
}

pub fn save_votes(dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
    records::write_atomic(&dir.join(VOTES_FILE), bytes)
}
