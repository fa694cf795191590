//! The wire format: topics, the signed envelope and one message type per phase.
//!
//! Everything a node puts on the broker is a CBOR [`Envelope`]: the exact body
//! bytes that were signed plus a P-256 signature over those bytes, prefixed
//! with a domain tag that names the cluster (see [`envelope`]). Bodies name
//! their kind, transaction and round, so a signature made for one purpose can
//! never be accepted for another. Sizes are checked before anything is decoded.

pub mod envelope;
pub mod messages;
pub mod roster;
pub mod topics;

pub use envelope::{sign, Envelope, SigCache};
pub use messages::{
    Approval, Body, Bytes, Challenge, Commit, Key33, Kind, Payload, Presence, PubKey, Solution,
    Stance, Status, StatusPhase, Sync, Vote,
};
pub use roster::{Change, RosterView};
pub use topics::{Family, Topics};

/// Members a roster may hold: the genesis and every change keep to it, and
/// the certificate limit below follows from it.
pub const MAX_MEMBERS: usize = 64;
/// Largest envelope of a single-signature phase message (init, pubkey,
/// election, solution, voting) a node takes.
pub const MAX_PHASE_MESSAGE: usize = 512;
/// Largest single-signature message a node writes, with a 32-byte name
/// and the largest numbers (`phase_messages_are_small` checks every kind).
pub const MAX_SIGNED: usize = 200;
/// Largest envelope on a `roster/<id>` topic: a change request or a
/// node's report of the roster, each with up to 64 members and their names.
pub const MAX_ROSTER_MESSAGE: usize = 8 * 1024;
/// What a commit certificate holds per member of the roster, at most: its
/// election vote in the challenge and its confirmation (each one signed
/// message in a byte string), and its public key twice (in the challenge
/// and in the commit), each with its CBOR header.
pub const CERT_PER_MEMBER: usize = 2 * (MAX_SIGNED + 2) + 2 * (33 + 2);
/// Largest envelope that carries a certificate (a challenge with its
/// election votes, a commit with its confirmations): what a roster of
/// [`MAX_MEMBERS`] needs when every member votes and confirms and the
/// challenge carries a roster change, plus the fixed parts (the leader's
/// and the miner's messages, headers and the signature). It follows the
/// member limit, so no roster can outgrow it.
pub const MAX_CERT_MESSAGE: usize = 2048 + MAX_ROSTER_MESSAGE + MAX_MEMBERS * CERT_PER_MEMBER;

/// A cluster's id: the first 16 bytes of SHA-256 over its genesis record
/// (see `protocol::genesis`). Every signature's domain names it, so two
/// clusters, even of the same name, never accept each other's messages.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ClusterId(pub [u8; 16]);

impl std::fmt::Display for ClusterId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl std::fmt::Debug for ClusterId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for ClusterId {
    type Err = ();
    /// 32 lowercase hex characters.
    fn from_str(s: &str) -> Result<ClusterId, ()> {
        let bytes = unhex(s).ok_or(())?;
        Ok(ClusterId(bytes.try_into().map_err(|_| ())?))
    }
}

/// Bytes from lowercase hex; `None` for anything else.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    b.chunks(2)
        .map(|p| Some((nib(p[0])? << 4) | nib(p[1])?))
        .collect()
}

/// Why bytes from the network were refused by the codec.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("payload of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("malformed CBOR: {0}")]
    Malformed(String),
    #[error("trailing bytes after the message")]
    Trailing,
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    #[error("a {found} message on the {expected} topic")]
    WrongKind { expected: Kind, found: Kind },
    #[error("bad signature encoding")]
    BadSignature,
}

impl From<minicbor::decode::Error> for WireError {
    fn from(e: minicbor::decode::Error) -> Self {
        WireError::Malformed(e.to_string())
    }
}

/// Decodes a whole value from `bytes`, refusing trailing garbage.
pub(crate) fn decode_exact<'b, T: minicbor::Decode<'b, ()>>(
    bytes: &'b [u8],
) -> Result<T, WireError> {
    let mut d = minicbor::Decoder::new(bytes);
    let v = d.decode()?;
    if d.position() != bytes.len() {
        return Err(WireError::Trailing);
    }
    Ok(v)
}

/// Encodes a value to CBOR. Encoding into a `Vec` cannot fail.
pub(crate) fn encode<T: minicbor::Encode<()>>(v: &T) -> Vec<u8> {
    // Writing into a Vec is infallible: the only error source is the writer.
    minicbor::to_vec(v).unwrap_or_default()
}

/// First 16 bytes of SHA-256 over a domain tag and some bytes: how messages
/// refer to each other (a solution to its challenge, a vote to its solution,
/// a challenge to the previous commit).
pub fn digest16(tag: &[u8], bytes: &[u8]) -> [u8; 16] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(tag);
    h.update(bytes);
    let full = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// Lowercase hex of a byte string (ids and references in logs and tables).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}
