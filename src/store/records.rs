//! The append-only record file behind the ledger, and atomic small files.
//!
//! `ledger.bin` is an 8-byte header and then records `[len u32 LE]
//! [SHA-256(payload)[..4]] [payload]`. An append is synced before it
//! returns, so the node publishes only what is on disk; `ledger.idx`
//! ([`super::index`]) says where each record starts. A crash in the middle
//! of an append leaves a torn or checksum-failing last record: `open` cuts it
//! off (it was never acknowledged); damage followed by more data is reported
//! as corruption, never silently skipped. What the records mean is
//! `store::ledger`'s business.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tracing::warn;

use super::index::Index;
pub use super::index::INDEX_FILE;

pub const LEDGER_FILE: &str = "ledger.bin";
const HEADER: &[u8; 8] = b"EMLEDG1\n";
const MAX_RECORD: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The I/O error is in the message and not a `source`, so that a
    /// chain printed in full (`{:#}`) says it once.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{0} is not an edgeminer ledger (bad header)")]
    BadHeader(PathBuf),
    #[error("{path}: record {index} at byte {offset} is damaged and more data follows")]
    Corrupt {
        path: PathBuf,
        index: usize,
        offset: u64,
    },
    #[error("a record of {0} bytes is larger than the 1 MiB limit")]
    TooLarge(usize),
    #[error("{0} is in use by another edgeminer process (a node running on this state directory, or a prune); stop it first")]
    Busy(PathBuf),
}

pub(super) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RecordError + '_ {
    move |error| RecordError::Io {
        path: path.to_path_buf(),
        error,
    }
}

fn checksum(payload: &[u8]) -> [u8; 4] {
    let h = Sha256::digest(payload);
    [h[0], h[1], h[2], h[3]]
}

/// Whether `data` is a ledger file still being created: empty, or part of
/// the header (`open` creates the file, then writes the header). There is
/// nothing in it yet, and no damage: a reader sees no records, and `open`
/// starts it again.
fn unborn(data: &[u8]) -> bool {
    data.len() < HEADER.len() && HEADER.starts_with(data)
}

/// Reads the records of `file` from byte `pos` (the start of record
/// `index`) up to `len`, giving each one's offset and payload to `each`;
/// returns where the good prefix ends. Damage followed by more data that
/// could be a record is [`RecordError::Corrupt`]; anything else after the
/// good prefix is a torn tail.
fn scan(
    path: &Path,
    file: &File,
    mut pos: u64,
    len: u64,
    mut index: usize,
    mut each: impl FnMut(u64, Vec<u8>) -> Result<(), RecordError>,
) -> Result<u64, RecordError> {
    use std::io::{BufReader, Seek, SeekFrom};
    let mut reader = BufReader::with_capacity(1 << 16, file);
    reader.seek(SeekFrom::Start(pos)).map_err(io(path))?;
    while len - pos >= 8 {
        let rest = len - pos;
        let mut head = [0u8; 8];
        reader.read_exact(&mut head).map_err(io(path))?;
        let n = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        if n > MAX_RECORD || rest < 8 + n as u64 {
            break;
        }
        let mut payload = vec![0u8; n];
        reader.read_exact(&mut payload).map_err(io(path))?;
        if checksum(&payload) != head[4..8] {
            // A torn tail is the only damage a crash can cause: it must be
            // the last thing in the file.
            if rest > 8 + n as u64 && n > 0 {
                return Err(RecordError::Corrupt {
                    path: path.to_path_buf(),
                    index,
                    offset: pos,
                });
            }
            break;
        }
        each(pos, payload)?;
        pos += 8 + n as u64;
        index += 1;
    }
    Ok(pos)
}

/// The start of `file` when it is a ledger: `Ok(false)` when it is one
/// still being created ([`unborn`]).
fn header_ok(path: &Path, file: &File, len: u64) -> Result<bool, RecordError> {
    use std::os::unix::fs::FileExt;
    let mut head = vec![0u8; (len as usize).min(HEADER.len())];
    file.read_exact_at(&mut head, 0).map_err(io(path))?;
    if unborn(&head) {
        return Ok(false);
    }
    if head != HEADER {
        return Err(RecordError::BadHeader(path.to_path_buf()));
    }
    Ok(true)
}

/// The open ledger file of a running node. Nothing per record is kept in
/// memory: where each record starts is in the index file.
pub struct RecordFile {
    file: File,
    path: PathBuf,
    index: Index,
    end: u64,
}

impl RecordFile {
    /// Opens (creating when missing) the ledger; cuts a torn tail. Reads
    /// only what the index does not cover yet (all of it when the index is
    /// missing or does not match).
    pub fn open(dir: &Path) -> Result<RecordFile, RecordError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
        let path = dir.join(LEDGER_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io(&path))?;
        // One writer per state directory: a second node on it would append
        // a second chain of commits to the same file.
        file.try_lock().map_err(|e| match e {
            fs::TryLockError::WouldBlock => RecordError::Busy(path.clone()),
            fs::TryLockError::Error(e) => io(&path)(e),
        })?;
        let len = file.metadata().map_err(io(&path))?.len();
        let mut index = Index::open(dir)?;
        if !header_ok(&path, &file, len)? {
            file.set_len(0).map_err(io(&path))?;
            file.write_all(HEADER).map_err(io(&path))?;
            file.sync_all().map_err(io(&path))?;
            sync_dir(dir);
            index.clear()?;
            let end = HEADER.len() as u64;
            return Ok(RecordFile {
                file,
                path,
                index,
                end,
            });
        }
        let from = Self::indexed_end(&path, &file, &mut index, len)?;
        let count = index.len() as usize;
        let good = scan(&path, &file, from, len, count, |at, _| index.push(at))?;
        if good < len {
            warn!(
                "ledger: {} ends with {} bytes of an unfinished write (a crash); cutting them off",
                path.display(),
                len - good
            );
            file.set_len(good).map_err(io(&path))?;
            file.sync_all().map_err(io(&path))?;
        }
        index.sync()?;
        Ok(RecordFile {
            file,
            path,
            index,
            end: good,
        })
    }

    /// Where the records the index covers end; an index that does not
    /// match the ledger is emptied (and rebuilt by the caller's scan).
    fn indexed_end(
        path: &Path,
        file: &File,
        index: &mut Index,
        len: u64,
    ) -> Result<u64, RecordError> {
        let first = HEADER.len() as u64;
        let Some(last) = index.len().checked_sub(1) else {
            return Ok(first);
        };
        if index.tail_ok(first, len)? {
            let at = index.get(last)?;
            if let Ok(n) = record_at(file, path, last as usize, at).map(|p| p.len()) {
                if at + 8 + n as u64 <= len {
                    return Ok(at + 8 + n as u64);
                }
            }
        }
        warn!(
            "ledger: the index {} does not match {}; reading the whole ledger to rebuild it",
            super::index::INDEX_FILE,
            path.display()
        );
        index.clear()?;
        Ok(first)
    }

    /// Appends one record and syncs it to disk before returning.
    pub fn append(&mut self, payload: &[u8]) -> Result<(), RecordError> {
        if payload.len() > MAX_RECORD {
            return Err(RecordError::TooLarge(payload.len()));
        }
        let mut rec = Vec::with_capacity(8 + payload.len());
        rec.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        rec.extend_from_slice(&checksum(payload));
        rec.extend_from_slice(payload);
        self.file.write_all(&rec).map_err(io(&self.path))?;
        self.file.sync_data().map_err(io(&self.path))?;
        self.index.push(self.end)?;
        self.end += rec.len() as u64;
        Ok(())
    }

    /// Reads record `index` back from disk (and checks it).
    pub fn read(&self, index: usize) -> Result<Vec<u8>, RecordError> {
        if index as u64 >= self.index.len() {
            return Err(RecordError::Io {
                path: self.path.clone(),
                error: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no record {index}"),
                ),
            });
        }
        let at = self.index.get(index as u64)?;
        record_at(&self.file, &self.path, index, at)
    }

    pub fn len(&self) -> usize {
        self.index.len() as usize
    }
    pub fn is_empty(&self) -> bool {
        self.index.len() == 0
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Bytes in the ledger file.
    pub fn bytes(&self) -> u64 {
        self.end
    }
}

/// The checked payload of record `index`, which starts at byte `at`.
fn record_at(file: &File, path: &Path, index: usize, at: u64) -> Result<Vec<u8>, RecordError> {
    use std::os::unix::fs::FileExt;
    let corrupt = || RecordError::Corrupt {
        path: path.to_path_buf(),
        index,
        offset: at,
    };
    let mut head = [0u8; 8];
    file.read_exact_at(&mut head, at).map_err(io(path))?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len > MAX_RECORD {
        return Err(corrupt());
    }
    let mut payload = vec![0u8; len];
    file.read_exact_at(&mut payload, at + 8).map_err(io(path))?;
    if checksum(&payload) != head[4..8] {
        return Err(corrupt());
    }
    Ok(payload)
}

/// The first record (a ledger's genesis) and the file's length, read only:
/// `None` when the file is missing or has no complete first record yet.
pub fn read_first(dir: &Path) -> Result<Option<(Vec<u8>, u64)>, RecordError> {
    let path = dir.join(LEDGER_FILE);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path)(e)),
    };
    let len = file.metadata().map_err(io(&path))?.len();
    if len < HEADER.len() as u64 + 8 || !header_ok(&path, &file, len)? {
        return Ok(None);
    }
    record_at(&file, &path, 0, HEADER.len() as u64).map(|r| Some((r, len)))
}

/// Whether a running node holds the ledger in `dir` (its writer's lock),
/// found with a shared lock that is let go at once.
pub fn in_use(dir: &Path) -> bool {
    let Ok(file) = File::open(dir.join(LEDGER_FILE)) else {
        return false;
    };
    matches!(file.try_lock_shared(), Err(fs::TryLockError::WouldBlock))
}

/// Read-only load (for `ledger` and `verify` while a node runs): an
/// unfinished last record is ignored, not cut, and a file the node is just
/// creating has no records.
pub fn read_records(dir: &Path) -> Result<Vec<Vec<u8>>, RecordError> {
    let path = dir.join(LEDGER_FILE);
    let file = File::open(&path).map_err(io(&path))?;
    let len = file.metadata().map_err(io(&path))?.len();
    let mut records = Vec::new();
    if header_ok(&path, &file, len)? {
        scan(&path, &file, HEADER.len() as u64, len, 0, |_, r| {
            records.push(r);
            Ok(())
        })?;
    }
    Ok(records)
}

fn sync_dir(dir: &Path) {
    // Makes a new or renamed file's directory entry durable; failing to open
    // a directory (some filesystems) only weakens durability of the name.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Writes a small file atomically: temp file, sync, rename, sync directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir);
    Ok(())
}

pub fn read_optional(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every record of an open file, read back through its index.
    fn all(f: &RecordFile) -> Vec<Vec<u8>> {
        (0..f.len())
            .map(|i| f.read(i).expect("read back"))
            .collect()
    }

    /// Opens the ledger in `dir` and reads every record back.
    fn open_all(dir: &Path) -> Result<(RecordFile, Vec<Vec<u8>>), RecordError> {
        let f = RecordFile::open(dir)?;
        let recs = all(&f);
        Ok((f, recs))
    }

    fn filled(n: usize) -> (tempfile::TempDir, Vec<Vec<u8>>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut f, recs) = open_all(dir.path()).expect("open");
        assert!(recs.is_empty());
        let want: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; 10 + i]).collect();
        for r in &want {
            f.append(r).expect("append");
        }
        (dir, want)
    }

    /// A full disk, as the daemon logs it (the whole chain of causes),
    /// says "No space left on device" once.
    #[test]
    fn an_io_error_is_said_once() {
        let err =
            io(Path::new("/var/lib/edgeminer/ledger.bin"))(std::io::Error::from_raw_os_error(28));
        let line = format!("{:#}", anyhow::Error::new(err).context("appending tx 7"));
        assert_eq!(line.matches("os error 28").count(), 1, "{line}");
        assert!(line.contains("ledger.bin"), "{line}");
    }

    #[test]
    fn round_trip_and_reopen() {
        let (dir, want) = filled(5);
        let (f, got) = open_all(dir.path()).expect("reopen");
        assert_eq!(got, want);
        assert_eq!(f.len(), 5);
        for (i, w) in want.iter().enumerate() {
            assert_eq!(&f.read(i).expect("read back"), w);
        }
        assert!(f.read(5).is_err());
        assert_eq!(read_records(dir.path()).expect("read"), want);
    }

    #[test]
    fn torn_tail_is_cut_and_file_stays_usable() {
        let (dir, want) = filled(3);
        let path = dir.path().join(LEDGER_FILE);
        let len = fs::metadata(&path).expect("stat").len();
        for cut in 1..(8 + 12) {
            let f = OpenOptions::new().write(true).open(&path).expect("open");
            f.set_len(len - cut).expect("truncate");
            drop(f);
            assert_eq!(read_records(dir.path()).expect("read-only").len(), 2);
            let (mut lf, got) = open_all(dir.path()).expect("open cuts the tail");
            assert_eq!(got, want[..2]);
            lf.append(&want[2]).expect("append again");
            drop(lf);
        }
        let (_, got) = open_all(dir.path()).expect("reopen");
        assert_eq!(got, want);
    }

    /// A kill -9 can stop a write at any byte: cutting the file at every
    /// offset leaves exactly the records that were whole, never an error,
    /// and the next append lands after them.
    #[test]
    fn a_cut_at_every_offset_keeps_the_whole_records() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(LEDGER_FILE);
        let (mut f, _) = open_all(dir.path()).expect("open");
        let want: Vec<Vec<u8>> = (0..4).map(|i| vec![0xA0 + i as u8; 1 + 37 * i]).collect();
        // File length after the header and after each record.
        let mut ends = vec![fs::metadata(&path).expect("stat").len()];
        for r in &want {
            f.append(r).expect("append");
            ends.push(fs::metadata(&path).expect("stat").len());
        }
        drop(f);
        let full = fs::read(&path).expect("read");
        for cut in 0..=full.len() as u64 {
            fs::write(&path, &full[..cut as usize]).expect("write");
            let whole = ends.iter().filter(|e| **e <= cut).count().saturating_sub(1);
            let (mut lf, got) =
                open_all(dir.path()).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
            assert_eq!(got, want[..whole], "cut at {cut}");
            lf.append(b"next").expect("append after the cut");
            drop(lf);
            let (_, again) = open_all(dir.path()).expect("reopen");
            assert_eq!(again.len(), whole + 1, "cut at {cut}");
            assert_eq!(again[whole], b"next");
        }
    }

    #[test]
    fn damage_in_the_last_record_is_cut_but_in_the_middle_is_corruption() {
        let (dir, _) = filled(3);
        let path = dir.path().join(LEDGER_FILE);
        let mut data = fs::read(&path).expect("read");
        let last = data.len() - 1;
        data[last] ^= 1;
        fs::write(&path, &data).expect("write");
        assert_eq!(open_all(dir.path()).expect("cut").1.len(), 2);

        let (dir, _) = filled(3);
        let path = dir.path().join(LEDGER_FILE);
        let mut data = fs::read(&path).expect("read");
        data[HEADER.len() + 9] ^= 1;
        fs::write(&path, &data).expect("write");
        // With its index, a node opens without reading old records: the
        // damage shows when the record is read (and `verify` reads all).
        let f = RecordFile::open(dir.path()).expect("open by the index");
        assert!(matches!(
            f.read(0),
            Err(RecordError::Corrupt { index: 0, .. })
        ));
        assert_eq!(f.read(2).expect("the others read").len(), 12);
        drop(f);
        assert!(matches!(
            read_records(dir.path()),
            Err(RecordError::Corrupt { index: 0, .. })
        ));
        // Without it, the whole file is read and the damage refused.
        fs::remove_file(dir.path().join(super::super::index::INDEX_FILE)).expect("rm");
        assert!(matches!(
            RecordFile::open(dir.path()),
            Err(RecordError::Corrupt { index: 0, .. })
        ));
    }

    /// An index that lags (entries lost to a power cut), is damaged, or is
    /// missing is completed or rebuilt from the ledger at open.
    #[test]
    fn a_lost_or_damaged_index_is_rebuilt() {
        let (dir, want) = filled(200);
        let idx = dir.path().join(super::super::index::INDEX_FILE);
        let full = fs::read(&idx).expect("read index");
        type Hurt = Box<dyn Fn(&mut Vec<u8>)>;
        let damage: Vec<Hurt> = vec![
            Box::new(|d| d.truncate(8 + 8 * 150)),
            Box::new(|d| d.truncate(8 + 8 * 150 + 3)),
            Box::new(|d| {
                let n = d.len();
                d[n - 20..].fill(0)
            }),
            Box::new(|d| d.truncate(0)),
            Box::new(|d| d[0] ^= 1),
            Box::new(|d| {
                let n = d.len();
                d[n - 8..].copy_from_slice(&u64::MAX.to_le_bytes())
            }),
        ];
        for (i, hurt) in damage.iter().enumerate() {
            let mut data = full.clone();
            hurt(&mut data);
            fs::write(&idx, &data).expect("write index");
            let (mut f, got) = open_all(dir.path()).unwrap_or_else(|e| panic!("case {i}: {e}"));
            assert_eq!(got, want, "case {i}");
            f.append(b"after").expect("append");
            drop(f);
            let (f, got) = open_all(dir.path()).expect("reopen");
            assert_eq!(got.len(), 201, "case {i}");
            assert_eq!(got[200], b"after");
            // Back to the 200 records for the next case.
            let end = f.index.get(200).expect("offset");
            drop(f);
            let l = OpenOptions::new()
                .write(true)
                .open(dir.path().join(LEDGER_FILE));
            l.expect("open").set_len(end).expect("cut");
            fs::write(&idx, &full).expect("restore index");
        }
    }

    #[test]
    fn a_ledger_being_created_is_empty_not_damaged() {
        // `open` creates the file and then writes the header: a reader in
        // between (`edgeminer ledger` while the node starts), or a crash in
        // between, sees an empty file or part of the header.
        for cut in 0..HEADER.len() {
            let dir = tempfile::tempdir().expect("temp dir");
            fs::write(dir.path().join(LEDGER_FILE), &HEADER[..cut]).expect("write");
            assert_eq!(read_records(dir.path()).expect("read-only").len(), 0);
            let (mut f, recs) = open_all(dir.path()).expect("open starts it again");
            assert!(recs.is_empty());
            f.append(b"first").expect("append");
            drop(f);
            assert_eq!(
                read_records(dir.path()).expect("read"),
                vec![b"first".to_vec()]
            );
        }
    }

    #[test]
    fn one_writer_per_state_directory() {
        let (dir, _) = filled(2);
        let first = RecordFile::open(dir.path()).expect("open");
        assert!(matches!(
            RecordFile::open(dir.path()),
            Err(RecordError::Busy(_))
        ));
        // Readers (`ledger`, `verify`) read on.
        assert_eq!(read_records(dir.path()).expect("read").len(), 2);
        drop(first);
        RecordFile::open(dir.path()).expect("free again");
    }

    #[test]
    fn bad_header_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(dir.path().join(LEDGER_FILE), b"not a ledger").expect("write");
        assert!(matches!(
            RecordFile::open(dir.path()),
            Err(RecordError::BadHeader(_))
        ));
    }

    #[test]
    fn atomic_small_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path().join("votes.cbor");
        assert_eq!(read_optional(&p).expect("read"), None);
        write_atomic(&p, b"one").expect("write");
        write_atomic(&p, b"two").expect("write");
        assert_eq!(read_optional(&p).expect("read"), Some(b"two".to_vec()));
    }
}
