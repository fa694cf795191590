//! Where a node resumes its ledger: the head (height, the reference the
//! next transaction builds on, the rosters in force), from what it wrote
//! and synced itself, in time that does not grow with the ledger.
//!
//! Every record was verified before it was appended, and every record is
//! checksummed. So at start a node does not check every certificate
//! again: it takes the rosters from the small rosters file it writes after
//! every committed roster change, checks the last certificate in full
//! against them (which also proves the previous record's reference it
//! builds on), and applies the change that last certificate may carry. A
//! node writes the rosters file right after appending a change and before
//! appending anything else, so only the last record can carry a change
//! the file does not have yet. When the file is missing (a ledger of an
//! older edgeminer), damaged or disagrees with the last certificate, the
//! node checks the whole ledger, as `edgeminer verify` always does.

use std::collections::VecDeque;

use minicbor::{Decode, Encode};

use super::certificate::Committed;
use super::genesis::Genesis;
use super::history::Chain;
use super::roster::Roster;
use super::{reference, Reject};
use crate::wire::{self, Bytes, Commit, Envelope, RosterView, SigCache};

/// How many of the last transactions' references a node keeps, to compare
/// late copies of commits it holds with its own.
pub const RECENT: usize = 256;

/// A ledger's commit records, by transaction (1 first).
pub trait Records {
    type Error: std::fmt::Display;
    /// Committed transactions.
    fn height(&self) -> u64;
    /// The record of transaction `tx` (1..=height).
    fn record(&self, tx: u64) -> Result<Vec<u8>, Self::Error>;
}

/// The rosters file: every roster since the genesis's, as of `height`.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cbor(array)]
struct SavedRosters {
    #[n(0)]
    cluster: Bytes,
    #[n(1)]
    height: u64,
    /// The rosters after the genesis roster, oldest first.
    #[n(2)]
    rosters: Vec<RosterView>,
}

/// The rosters file's bytes for `rosters` (the genesis roster first) as of
/// `height`.
pub fn saved_rosters(genesis: &Genesis, height: u64, rosters: &[Roster]) -> Vec<u8> {
    wire::encode(&SavedRosters {
        cluster: Bytes(genesis.id().0.to_vec()),
        height,
        rosters: rosters.iter().skip(1).map(Roster::view).collect(),
    })
}

/// The height and the last roster a rosters file records, when it is
/// this cluster's: what a look at a node's state directory can tell
/// without reading its ledger (`edgeminer doctor`). Not checked against
/// the ledger, as [`resume`] does.
pub fn saved_roster(genesis: &Genesis, saved: &[u8]) -> Result<(u64, Roster), String> {
    let saved = decode_saved(genesis, saved)?;
    let rosters = rosters_from(genesis, &saved.rosters)?;
    let last = rosters.last().cloned().unwrap_or_else(|| genesis.roster());
    Ok((saved.height, last))
}

/// The rosters file's contents, when they are this cluster's.
fn decode_saved(genesis: &Genesis, saved: &[u8]) -> Result<SavedRosters, String> {
    let saved: SavedRosters =
        wire::decode_exact(saved).map_err(|e| format!("the rosters file does not decode: {e}"))?;
    if saved.cluster.0 != genesis.id().0 {
        return Err("the rosters file is another cluster's".into());
    }
    Ok(saved)
}

/// The genesis roster, then `views`.
fn rosters_from(genesis: &Genesis, views: &[RosterView]) -> Result<Vec<Roster>, String> {
    let mut rosters = vec![genesis.roster()];
    for v in views {
        rosters.push(Roster::from_view(genesis.id(), v).map_err(|e| e.to_string())?);
    }
    Ok(rosters)
}

/// The record that stands for the transactions a pruned ledger dropped:
/// the head they made (height, last reference, rosters). It follows the
/// genesis record; a node writes it only from a ledger it checked whole.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cbor(array)]
struct Base {
    #[n(0)]
    magic: String,
    #[n(1)]
    height: u64,
    #[n(2)]
    prev: Bytes,
    /// The rosters after the genesis roster, oldest first.
    #[n(3)]
    rosters: Vec<RosterView>,
}

const BASE_MAGIC: &str = "edgeminer/base";

/// The base record of a ledger pruned up to `chain`'s head.
pub fn encode_base(chain: &Chain) -> Vec<u8> {
    wire::encode(&Base {
        magic: BASE_MAGIC.into(),
        height: chain.height(),
        prev: Bytes(chain.prev().to_vec()),
        rosters: chain.rosters().iter().skip(1).map(Roster::view).collect(),
    })
}

/// The head a base record stands for; `None` when `record` is not a base
/// record (it is a commit certificate).
pub fn decode_base(genesis: &Genesis, record: &[u8]) -> Option<Result<Chain, String>> {
    let base: Base = wire::decode_exact(record).ok()?;
    if base.magic != BASE_MAGIC {
        return None;
    }
    let chain = rosters_from(genesis, &base.rosters).and_then(|rosters| {
        let prev: [u8; 16] = (base.prev.0.as_slice().try_into())
            .map_err(|_| "the base record's reference is not 16 bytes".to_string())?;
        Ok(Chain::from_parts(base.height, prev, rosters))
    });
    Some(chain.map_err(|e| format!("the base record is invalid: {e}")))
}

/// How a resumed head was checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Checked {
    /// Nothing after the start (the genesis, or a pruned ledger's base).
    Empty,
    /// The rosters file and the last certificate.
    Tail,
    /// Every certificate, and why.
    Whole(String),
}

/// A ledger's head, ready for [`super::Durable`].
#[derive(Clone, Debug)]
pub struct Resumed {
    pub chain: Chain,
    /// The last commit and its certificate.
    pub last: Option<(Committed, Commit)>,
    /// References of the last transactions, oldest first, ending with the
    /// head's (at most [`RECENT`]).
    pub recent: Vec<[u8; 16]>,
    pub checked: Checked,
}

impl Resumed {
    /// An empty ledger's.
    pub fn empty(genesis: &Genesis) -> Resumed {
        Resumed {
            chain: Chain::new(genesis),
            last: None,
            recent: Vec::new(),
            checked: Checked::Empty,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResumeError<E: std::fmt::Display> {
    #[error("reading transaction {tx}: {error}")]
    Read { tx: u64, error: E },
    #[error("transaction {tx} in the ledger is invalid: {reason}")]
    Bad { tx: u64, reason: Reject },
}

/// The head of `records`, which follow `start` (the genesis's head, or a
/// pruned ledger's base): from the rosters file (`saved`) and the last
/// certificate when they agree, else from every certificate.
pub fn resume<R: Records>(
    genesis: &Genesis,
    start: &Chain,
    saved: Option<&[u8]>,
    records: &R,
    sigs: &SigCache,
) -> Result<Resumed, ResumeError<R::Error>> {
    if records.height() <= start.height() {
        let recent = (start.height() > 0).then(|| start.prev());
        return Ok(Resumed {
            chain: start.clone(),
            last: None,
            recent: recent.into_iter().collect(),
            checked: Checked::Empty,
        });
    }
    let why = match saved.map(|s| tail(genesis, start, s, records, sigs)) {
        Some(Ok(r)) => return Ok(r),
        Some(Err(why)) => why,
        None => "there is no rosters file".to_string(),
    };
    whole(genesis, start, records, sigs, why)
}

/// The reference a commit record builds the next transaction on (not
/// checked: [`tail`] checks the certificate that builds on it).
fn reference_of(record: &[u8]) -> Option<[u8; 16]> {
    let c = Commit::decode(record).ok()?;
    let e = Envelope::decode(&c.solution.0, wire::MAX_PHASE_MESSAGE).ok()?;
    Some(reference(&e.body))
}

fn tail<R: Records>(
    genesis: &Genesis,
    start: &Chain,
    saved: &[u8],
    records: &R,
    sigs: &SigCache,
) -> Result<Resumed, String> {
    let height = records.height();
    let saved = decode_saved(genesis, saved)?;
    if saved.height > height {
        return Err(format!(
            "the rosters file is of tx {}, beyond the ledger's last ({height})",
            saved.height
        ));
    }
    let mut rosters = rosters_from(genesis, &saved.rosters)
        .map_err(|e| format!("a roster in the rosters file is invalid: {e}"))?;
    // The roster the last transaction made, if the file has it already.
    let made = match rosters.last() {
        Some(r) if r.since() > height && rosters.len() > 1 => rosters.pop(),
        _ => None,
    };
    let read = |tx| {
        records
            .record(tx)
            .map_err(|e| format!("reading transaction {tx}: {e}"))
    };
    let prev = match height - 1 {
        h if h == start.height() => start.prev(),
        h => reference_of(&read(h)?).ok_or_else(|| format!("transaction {h} does not decode"))?,
    };
    let mut chain = Chain::from_parts(height - 1, prev, rosters);
    let commit = Commit::decode(&read(height)?)
        .map_err(|e| format!("transaction {height} does not decode: {e}"))?;
    let done = (chain.verify_next(genesis, &commit, sigs))
        .and_then(|d| chain.push(&d).map(|()| d))
        .map_err(|e| {
            format!("transaction {height} does not check against the rosters file: {e}")
        })?;
    if made.is_some_and(|m| &m != chain.roster()) {
        return Err(format!(
            "the rosters file's last roster is not the one transaction {height} makes"
        ));
    }
    let recent = if height > 1 {
        vec![prev, done.reference]
    } else {
        vec![done.reference]
    };
    if rosters_differ(start, &chain) {
        return Err("the rosters file does not continue the base record's rosters".into());
    }
    Ok(Resumed {
        chain,
        last: Some((done, commit)),
        recent,
        checked: Checked::Tail,
    })
}

/// Whether `chain`'s rosters do not begin with `start`'s.
fn rosters_differ(start: &Chain, chain: &Chain) -> bool {
    !chain.rosters().starts_with(start.rosters())
}

fn whole<R: Records>(
    genesis: &Genesis,
    start: &Chain,
    records: &R,
    sigs: &SigCache,
    why: String,
) -> Result<Resumed, ResumeError<R::Error>> {
    let height = records.height();
    let mut chain = start.clone();
    let mut recent = VecDeque::with_capacity(RECENT);
    let mut last = None;
    for tx in start.height() + 1..=height {
        let record = records
            .record(tx)
            .map_err(|error| ResumeError::Read { tx, error })?;
        let bad = |reason| ResumeError::Bad { tx, reason };
        let commit = Commit::decode(&record).map_err(|e| bad(Reject::Wire(e)))?;
        let done = chain.verify_next(genesis, &commit, sigs).map_err(bad)?;
        chain.push(&done).map_err(bad)?;
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(done.reference);
        if tx == height {
            last = Some((done, commit));
        }
    }
    Ok(Resumed {
        chain,
        last,
        recent: recent.into(),
        checked: Checked::Whole(why),
    })
}
