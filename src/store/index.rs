//! `ledger.idx`: where each record of `ledger.bin` starts, so that a node
//! reads any record (to serve a transaction someone missed, or its last
//! ones at start) without reading the ledger before it, and keeps nothing
//! per record in memory.
//!
//! An 8-byte header, then one little-endian `u64` offset per record. The
//! index is derived data: it is written after the record it points to is
//! synced, synced itself every [`SYNC_EVERY`] entries, and checked at
//! open ([`Index::tail_ok`]); a missing, damaged or lagging index is
//! rebuilt or completed from `ledger.bin` by `records::RecordFile::open`.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::records::{io, RecordError};

pub const INDEX_FILE: &str = "ledger.idx";
const HEADER: &[u8; 8] = b"EMLIDX1\n";
/// Entries between two syncs: at most this many can be lost or torn by a
/// power cut, and [`Index::tail_ok`] looks at twice as many.
const SYNC_EVERY: u64 = 64;

pub(super) struct Index {
    file: File,
    path: PathBuf,
    count: u64,
}

impl Index {
    /// Opens (creating, or starting again when its header is not ours) the
    /// index in `dir`; a torn last entry is dropped.
    pub(super) fn open(dir: &Path) -> Result<Index, RecordError> {
        let path = dir.join(INDEX_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        let len = file.metadata().map_err(io(&path))?.len();
        let mut head = [0u8; 8];
        let ours = len >= 8 && file.read_exact_at(&mut head, 0).is_ok() && &head == HEADER;
        let mut index = Index {
            file,
            path,
            count: 0,
        };
        if ours {
            index.count = (len - 8) / 8;
            if len != 8 + index.count * 8 {
                index.truncate(index.count)?;
            }
        } else {
            index.clear()?;
        }
        Ok(index)
    }

    /// Entries.
    pub(super) fn len(&self) -> u64 {
        self.count
    }

    /// Where record `i` starts.
    pub(super) fn get(&self, i: u64) -> Result<u64, RecordError> {
        let mut b = [0u8; 8];
        self.file
            .read_exact_at(&mut b, 8 + i * 8)
            .map_err(io(&self.path))?;
        Ok(u64::from_le_bytes(b))
    }

    /// Whether the last entries (those a power cut could have torn) rise
    /// strictly from the first record's offset and stay below `end`.
    pub(super) fn tail_ok(&self, first: u64, end: u64) -> Result<bool, RecordError> {
        let from = self.count.saturating_sub(2 * SYNC_EVERY);
        let mut last = if from == 0 {
            None
        } else {
            Some(self.get(from - 1)?)
        };
        for i in from..self.count {
            let at = self.get(i)?;
            let fine = match last {
                None => at == first,
                Some(l) => at > l,
            };
            if !fine || at >= end {
                return Ok(false);
            }
            last = Some(at);
        }
        Ok(true)
    }

    /// Appends the offset of the next record.
    pub(super) fn push(&mut self, offset: u64) -> Result<(), RecordError> {
        self.file
            .write_all_at(&offset.to_le_bytes(), 8 + self.count * 8)
            .map_err(io(&self.path))?;
        self.count += 1;
        if self.count.is_multiple_of(SYNC_EVERY) {
            self.sync()?;
        }
        Ok(())
    }

    /// Keeps the first `n` entries.
    pub(super) fn truncate(&mut self, n: u64) -> Result<(), RecordError> {
        self.file.set_len(8 + n * 8).map_err(io(&self.path))?;
        self.count = n;
        Ok(())
    }

    /// Empties the index (its header only).
    pub(super) fn clear(&mut self) -> Result<(), RecordError> {
        self.file.set_len(0).map_err(io(&self.path))?;
        self.file.write_all_at(HEADER, 0).map_err(io(&self.path))?;
        self.count = 0;
        Ok(())
    }

    pub(super) fn sync(&self) -> Result<(), RecordError> {
        self.file.sync_data().map_err(io(&self.path))
    }
}
