//! The append-only record file behind the ledger, and atomic small files.
//!
//! `ledger.bin` is an 8-byte header and then records `[len u32 LE]
//! [SHA-256(payload)[..4]] [payload]`. An append is synced before it
//! returns, so the node publishes only what is on disk. A crash in the middle
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
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RecordError + '_ {
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

/// Parses records; returns them, their offsets and the length of the good
/// prefix. `Err(Corrupt)` when damage is followed by more data.
#[allow(clippy::type_complexity)]
fn parse(path: &Path, data: &[u8]) -> Result<(Vec<Vec<u8>>, Vec<u64>, usize), RecordError> {
    if data.len() < HEADER.len() || &data[..HEADER.len()] != HEADER {
        return Err(RecordError::BadHeader(path.to_path_buf()));
    }
    let mut records = Vec::new();
    let mut offsets = Vec::new();
    let mut pos = HEADER.len();
    while pos < data.len() {
        let rest = &data[pos..];
        let good = rest.len() >= 8 && {
            let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            len <= MAX_RECORD && rest.len() >= 8 + len && checksum(&rest[8..8 + len]) == rest[4..8]
        };
        if !good {
            // A torn tail is the only damage a crash can cause: it must be
            // the last thing in the file. Anything after a bad record that
            // could be a record means the file was damaged otherwise.
            let len = if rest.len() >= 4 {
                u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize
            } else {
                0
            };
            if len <= MAX_RECORD && rest.len() > 8 + len && len > 0 {
                return Err(RecordError::Corrupt {
                    path: path.to_path_buf(),
                    index: records.len(),
                    offset: pos as u64,
                });
            }
            return Ok((records, offsets, pos));
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        records.push(rest[8..8 + len].to_vec());
        offsets.push(pos as u64);
        pos += 8 + len;
    }
    Ok((records, offsets, pos))
}

/// The open ledger file of a running node.
pub struct RecordFile {
    file: File,
    path: PathBuf,
    /// Where each record starts (8 bytes per record, for serving history).
    offsets: Vec<u64>,
    end: u64,
}

impl RecordFile {
    /// Opens (creating when missing) and reads all records; cuts a torn tail.
    pub fn open(dir: &Path) -> Result<(RecordFile, Vec<Vec<u8>>), RecordError> {
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
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(io(&path))?;
        if unborn(&data) {
            file.set_len(0).map_err(io(&path))?;
            file.write_all(HEADER).map_err(io(&path))?;
            file.sync_all().map_err(io(&path))?;
            sync_dir(dir);
            let end = HEADER.len() as u64;
            let offsets = Vec::new();
            return Ok((
                RecordFile {
                    file,
                    path,
                    offsets,
                    end,
                },
                Vec::new(),
            ));
        }
        let (records, offsets, good) = parse(&path, &data)?;
        if good < data.len() {
            warn!(
                "ledger: {} ends with {} bytes of an unfinished write (a crash); cutting them off",
                path.display(),
                data.len() - good
            );
            file.set_len(good as u64).map_err(io(&path))?;
            file.sync_all().map_err(io(&path))?;
        }
        let end = good as u64;
        Ok((
            RecordFile {
                file,
                path,
                offsets,
                end,
            },
            records,
        ))
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
        self.offsets.push(self.end);
        self.end += rec.len() as u64;
        Ok(())
    }

    /// Reads record `index` back from disk (and checks it).
    pub fn read(&self, index: usize) -> Result<Vec<u8>, RecordError> {
        use std::os::unix::fs::FileExt;
        let Some(&at) = self.offsets.get(index) else {
            return Err(RecordError::Io {
                path: self.path.clone(),
                error: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no record {index}"),
                ),
            });
        };
        let mut head = [0u8; 8];
        self.file
            .read_exact_at(&mut head, at)
            .map_err(io(&self.path))?;
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        if len > MAX_RECORD {
            return Err(RecordError::Corrupt {
                path: self.path.clone(),
                index,
                offset: at,
            });
        }
        let mut payload = vec![0u8; len];
        self.file
            .read_exact_at(&mut payload, at + 8)
            .map_err(io(&self.path))?;
        if checksum(&payload) != head[4..8] {
            return Err(RecordError::Corrupt {
                path: self.path.clone(),
                index,
                offset: at,
            });
        }
        Ok(payload)
    }

    pub fn len(&self) -> usize {
        self.offsets.len()
    }
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Read-only load (for `ledger` and `verify` while a node runs): an
/// unfinished last record is ignored, not cut, and a file the node is just
/// creating has no records.
pub fn read_records(dir: &Path) -> Result<Vec<Vec<u8>>, RecordError> {
    let path = dir.join(LEDGER_FILE);
    let data = fs::read(&path).map_err(io(&path))?;
    if unborn(&data) {
        return Ok(Vec::new());
    }
    Ok(parse(&path, &data)?.0)
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

    fn filled(n: usize) -> (tempfile::TempDir, Vec<Vec<u8>>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut f, recs) = RecordFile::open(dir.path()).expect("open");
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
        let (f, got) = RecordFile::open(dir.path()).expect("reopen");
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
            let (mut lf, got) = RecordFile::open(dir.path()).expect("open cuts the tail");
            assert_eq!(got, want[..2]);
            lf.append(&want[2]).expect("append again");
            drop(lf);
        }
        let (_, got) = RecordFile::open(dir.path()).expect("reopen");
        assert_eq!(got, want);
    }

    /// A kill -9 can stop a write at any byte: cutting the file at every
    /// offset leaves exactly the records that were whole, never an error,
    /// and the next append lands after them.
    #[test]
    fn a_cut_at_every_offset_keeps_the_whole_records() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(LEDGER_FILE);
        let (mut f, _) = RecordFile::open(dir.path()).expect("open");
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
                RecordFile::open(dir.path()).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
            assert_eq!(got, want[..whole], "cut at {cut}");
            lf.append(b"next").expect("append after the cut");
            drop(lf);
            let (_, again) = RecordFile::open(dir.path()).expect("reopen");
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
        assert_eq!(RecordFile::open(dir.path()).expect("cut").1.len(), 2);

        let (dir, _) = filled(3);
        let path = dir.path().join(LEDGER_FILE);
        let mut data = fs::read(&path).expect("read");
        data[HEADER.len() + 9] ^= 1;
        fs::write(&path, &data).expect("write");
        assert!(matches!(
            RecordFile::open(dir.path()),
            Err(RecordError::Corrupt { index: 0, .. })
        ));
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
            let (mut f, recs) = RecordFile::open(dir.path()).expect("open starts it again");
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
