//! `edgeminer prune`: drops a ledger's oldest transactions and keeps a
//! head anyone can still check, for labs that run for months.
//!
//! The ledger is checked whole first. Its transactions up to `B` are then
//! replaced by one base record (the head they made: height `B`, its
//! reference, the rosters in force), which follows the genesis record;
//! the certificates after it are kept as they are, so each still checks
//! against the base's rosters and the reference before it. The new ledger
//! is written beside the old one and renamed over it (a crash leaves one
//! or the other, whole). The node must be stopped: the ledger's lock says
//! whether it is. With `--archive` the old ledger stays, whole, under
//! another name (a hard link, no copy).

use std::fs;
use std::path::{Path, PathBuf};

use super::ledger::{self, LedgerError};
use super::records::{io, RecordFile, INDEX_FILE, LEDGER_FILE};
use crate::protocol::head;

/// What a prune did.
#[derive(Debug)]
pub struct Pruned {
    /// Transactions no longer in the ledger: 1..=`upto`.
    pub upto: u64,
    /// Transactions held after it: `upto + 1 ..= height`.
    pub height: u64,
    /// Bytes of `ledger.bin` before and after.
    pub before: u64,
    pub after: u64,
    /// Where the whole old ledger is, if kept.
    pub archive: Option<PathBuf>,
}

/// Keeps the last `keep` transactions of the ledger in `dir`; `None` when
/// there is nothing more to drop.
pub fn prune(dir: &Path, keep: u64, archive: Option<&Path>) -> Result<Option<Pruned>, LedgerError> {
    let lock = RecordFile::open(dir)?;
    let Some((_, history, raw)) = ledger::read_with_records(dir)? else {
        return Ok(None);
    };
    let (pruned, height) = (history.pruned(), history.height());
    let upto = height.saturating_sub(keep);
    if upto <= pruned {
        return Ok(None);
    }
    // The genesis record, the base record if pruned before, then commits.
    let first = if pruned > 0 { 2 } else { 1 };
    let commits = &raw[first..];
    let mut base = ledger::start_chain(dir, &raw)?;
    for c in &history.commits[..(upto - pruned) as usize] {
        base.push(c)
            .map_err(|reason| LedgerError::BadEntry { tx: c.tx, reason })?;
    }
    let tmp = dir.join(".prune");
    let _ = fs::remove_dir_all(&tmp);
    let mut out = RecordFile::open(&tmp)?;
    out.append(&raw[0])?;
    out.append(&head::encode_base(&base))?;
    for r in &commits[(upto - pruned) as usize..] {
        out.append(r)?;
    }
    let after = out.bytes();
    drop(out);
    let path = dir.join(LEDGER_FILE);
    let before = fs::metadata(&path).map_err(io(&path))?.len();
    if let Some(a) = archive {
        fs::hard_link(&path, a).map_err(io(a))?;
    }
    fs::rename(tmp.join(LEDGER_FILE), &path).map_err(io(&path))?;
    let idx = dir.join(INDEX_FILE);
    fs::rename(tmp.join(INDEX_FILE), &idx).map_err(io(&idx))?;
    let _ = fs::remove_dir_all(&tmp);
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    drop(lock);
    Ok(Some(Pruned {
        upto,
        height,
        before,
        after,
        archive: archive.map(Path::to_path_buf),
    }))
}
