//! The genesis: what a cluster is, fixed before it starts.
//!
//! A cluster is its genesis: its name (the topics' prefix), its members
//! (node ids, with names for people), the quorum, the difficulty range, the
//! admin key that may change the roster later (or none: the roster is then
//! fixed for good), and, for a cluster that takes over from one that lost
//! its quorum for good, the head of the ledger it continues. Its canonical
//! encoding is the ledger's first record, and its hash is the **cluster
//! id**: every signature's domain names the id, and transaction 1 builds on
//! a reference derived from it, so two clusters, even with the same name,
//! never accept each other's messages or ledgers.
//!
//! Membership is not "whoever publishes a key": a node counts only if the
//! roster in force names it (see [`super::roster`]).

use minicbor::decode::Decoder;
use minicbor::encode::Encoder;

use super::roster::Roster;
use crate::identity::NodeId;
use crate::pow::MAX_DIFFICULTY;
use crate::wire::roster::Entry;
use crate::wire::topics::valid_cluster_name;
use crate::wire::{self, ClusterId};

/// Members a roster may hold (the wire's certificate limit follows from it).
pub use crate::wire::MAX_MEMBERS;
/// Longest member name, in bytes.
pub const MAX_NAME: usize = 32;
/// The format of the genesis record this version writes and reads.
pub const FORMAT: u8 = 1;

/// What a cluster continues: the head of a surviving ledger of another
/// cluster (recovery from a lost quorum, see `docs/PROTOCOL.md`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parent {
    pub cluster: ClusterId,
    /// Transactions that cluster committed up to the head kept.
    pub height: u64,
    /// The reference of its last solution.
    pub head: [u8; 16],
}

/// A cluster's genesis, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Genesis {
    cluster: String,
    members: Vec<Entry>,
    quorum: usize,
    difficulty: (u8, u8),
    admin: Option<[u8; 33]>,
    parent: Option<Parent>,
    id: ClusterId,
}

/// Why a genesis is not valid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GenesisError {
    #[error("cluster name '{0}': use 1 to 64 of A-Z a-z 0-9 _ -")]
    Name(String),
    #[error("{0} members: a cluster has 1 to {MAX_MEMBERS}")]
    Size(usize),
    #[error("member {0} is listed twice")]
    Duplicate(NodeId),
    #[error("member name '{0}': use 1 to {MAX_NAME} printable characters, or none")]
    MemberName(String),
    #[error(
        "quorum {quorum} of {members} members: must be more than half of them (so that two quorums always share a member) and at most all of them"
    )]
    Quorum { quorum: usize, members: usize },
    #[error("difficulty {0}..{1}: need 1 <= A <= B <= {MAX_DIFFICULTY}")]
    Difficulty(u8, u8),
    #[error("the admin key is not a P-256 public key")]
    AdminKey,
    #[error("the admin key's id {0} is a member's: use a key of its own for the admin")]
    AdminIsMember(NodeId),
    #[error("not a genesis record: {0}")]
    Malformed(String),
    #[error("genesis format {0}; this version reads format {FORMAT}")]
    Format(u8),
}

/// Whether a member name is acceptable: printable, without the characters
/// that would break a table or a TOML line.
pub fn valid_member_name(name: &str) -> bool {
    name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| !c.is_control() && c != '"' && c != '\\' && c != '=')
}

impl Genesis {
    /// Validates the parts and sorts the members by id.
    pub fn new(
        cluster: String,
        mut members: Vec<Entry>,
        quorum: usize,
        difficulty: (u8, u8),
        admin: Option<[u8; 33]>,
        parent: Option<Parent>,
    ) -> Result<Genesis, GenesisError> {
        if !valid_cluster_name(&cluster) {
            return Err(GenesisError::Name(cluster));
        }
        members.sort();
        check_members(&members, quorum)?;
        let (lo, hi) = difficulty;
        if lo == 0 || hi < lo || hi > MAX_DIFFICULTY {
            return Err(GenesisError::Difficulty(lo, hi));
        }
        if let Some(key) = &admin {
            if p256::ecdsa::VerifyingKey::from_sec1_bytes(key).is_err() {
                return Err(GenesisError::AdminKey);
            }
            let id = NodeId::from_public_key(key);
            if members.iter().any(|m| m.id == id) {
                return Err(GenesisError::AdminIsMember(id));
            }
        }
        let mut g = Genesis {
            cluster,
            members,
            quorum,
            difficulty,
            admin,
            parent,
            id: ClusterId::default(),
        };
        g.id = ClusterId(wire::digest16(b"edgeminer/cluster", &g.encode()));
        Ok(g)
    }

    /// A genesis whose quorum may be unsafe (half the members or fewer):
    /// only for the simulation, to show that its checker sees the
    /// disagreement such a quorum allows. Nothing reads one from a file.
    #[doc(hidden)]
    pub fn with_unsafe_quorum(mut self, quorum: usize) -> Genesis {
        self.quorum = quorum.clamp(1, self.members.len());
        self.id = ClusterId(wire::digest16(b"edgeminer/cluster", &self.encode()));
        self
    }

    pub fn id(&self) -> ClusterId {
        self.id
    }
    /// The cluster's name: the prefix of its topics.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }
    /// The founding members, in ascending id order.
    pub fn members(&self) -> &[Entry] {
        &self.members
    }
    pub fn quorum(&self) -> usize {
        self.quorum
    }
    /// Accepted difficulties (leading zero bits); leaders draw from them.
    pub fn difficulty(&self) -> (u8, u8) {
        self.difficulty
    }
    /// The public key that signs roster changes, if any.
    pub fn admin(&self) -> Option<&[u8; 33]> {
        self.admin.as_ref()
    }
    pub fn admin_id(&self) -> Option<NodeId> {
        self.admin.as_ref().map(NodeId::from_public_key)
    }
    pub fn parent(&self) -> Option<&Parent> {
        self.parent.as_ref()
    }

    /// The roster in force for transaction 1.
    pub fn roster(&self) -> Roster {
        Roster::founding(self)
    }

    /// The "previous commit" of transaction 1: bound to the cluster id (and
    /// so to everything in the genesis, a parent's head included).
    pub fn prev(&self) -> [u8; 16] {
        wire::digest16(b"edgeminer/genesis", &self.id.0)
    }

    /// The canonical encoding: the CBOR array `[format, cluster, members,
    /// quorum, difficulty low, difficulty high, admin key or null, parent or
    /// null]`, members as `[id, name]` in ascending id order and a parent as
    /// `[cluster id, height, head]`. Its hash is the cluster id.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new(Vec::new());
        // Encoding into a Vec cannot fail; the results are ignored for that reason.
        let _ = e.array(8);
        let _ = e.u8(FORMAT);
        let _ = e.str(&self.cluster);
        let _ = e.encode(&self.members);
        let _ = e.u32(self.quorum as u32);
        let _ = e.u8(self.difficulty.0);
        let _ = e.u8(self.difficulty.1);
        let _ = match &self.admin {
            Some(k) => e.bytes(k).map(drop),
            None => e.null().map(drop),
        };
        let _ = match &self.parent {
            Some(p) => e
                .array(3)
                .and_then(|e| e.encode(p.cluster))
                .and_then(|e| e.u64(p.height))
                .and_then(|e| e.bytes(&p.head))
                .map(drop),
            None => e.null().map(drop),
        };
        e.into_writer()
    }

    /// Reads a genesis record: valid, and in exactly its canonical encoding
    /// (so that its bytes, and hence the cluster id, are the same for
    /// every reader).
    pub fn decode(bytes: &[u8]) -> Result<Genesis, GenesisError> {
        let bad = |e: minicbor::decode::Error| GenesisError::Malformed(e.to_string());
        let mut d = Decoder::new(bytes);
        if d.array().map_err(bad)? != Some(8) {
            return Err(GenesisError::Malformed("not an 8-element array".into()));
        }
        let format = d.u8().map_err(bad)?;
        if format != FORMAT {
            return Err(GenesisError::Format(format));
        }
        let cluster = d.str().map_err(bad)?.to_string();
        let members: Vec<Entry> = d.decode().map_err(bad)?;
        let quorum = d.u32().map_err(bad)? as usize;
        let difficulty = (d.u8().map_err(bad)?, d.u8().map_err(bad)?);
        let admin = match d.datatype().map_err(bad)? {
            minicbor::data::Type::Null => d.null().map(|_| None).map_err(bad)?,
            _ => Some(
                d.bytes()
                    .map_err(bad)?
                    .try_into()
                    .map_err(|_| GenesisError::AdminKey)?,
            ),
        };
        let parent = match d.datatype().map_err(bad)? {
            minicbor::data::Type::Null => d.null().map(|_| None).map_err(bad)?,
            _ => {
                if d.array().map_err(bad)? != Some(3) {
                    return Err(GenesisError::Malformed(
                        "a parent is [id, height, head]".into(),
                    ));
                }
                let cluster: ClusterId = d.decode().map_err(bad)?;
                let height = d.u64().map_err(bad)?;
                let head: [u8; 16] = d
                    .bytes()
                    .map_err(bad)?
                    .try_into()
                    .map_err(|_| GenesisError::Malformed("a head is 16 bytes".into()))?;
                Some(Parent {
                    cluster,
                    height,
                    head,
                })
            }
        };
        let g = Genesis::new(cluster, members, quorum, difficulty, admin, parent)?;
        if g.encode() != bytes {
            return Err(GenesisError::Malformed(
                "not in canonical form (members out of order, or trailing bytes)".into(),
            ));
        }
        Ok(g)
    }
}

/// The rules every roster keeps: 1 to [`MAX_MEMBERS`] distinct members
/// (sorted), acceptable names, and a quorum of more than half of them.
pub(crate) fn check_members(members: &[Entry], quorum: usize) -> Result<(), GenesisError> {
    if members.is_empty() || members.len() > MAX_MEMBERS {
        return Err(GenesisError::Size(members.len()));
    }
    for pair in members.windows(2) {
        if pair[0].id == pair[1].id {
            return Err(GenesisError::Duplicate(pair[0].id));
        }
    }
    if let Some(m) = members.iter().find(|m| !valid_member_name(&m.name)) {
        return Err(GenesisError::MemberName(m.name.clone()));
    }
    if quorum * 2 <= members.len() || quorum > members.len() {
        return Err(GenesisError::Quorum {
            quorum,
            members: members.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(b: u8, name: &str) -> Entry {
        Entry {
            id: NodeId([b; 8]),
            name: name.into(),
        }
    }

    fn lab() -> Genesis {
        Genesis::new(
            "lab".into(),
            vec![entry(3, "c"), entry(1, "a"), entry(2, "b")],
            2,
            (8, 10),
            None,
            None,
        )
        .expect("a valid genesis")
    }

    #[test]
    fn encoding_is_canonical_and_names_the_cluster() {
        let g = lab();
        let ids: Vec<u8> = g.members().iter().map(|m| m.id.0[0]).collect();
        assert_eq!(ids, [1, 2, 3], "members are sorted by id");
        let bytes = g.encode();
        assert_eq!(Genesis::decode(&bytes), Ok(g.clone()));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(Genesis::decode(&trailing).is_err());
        // Anything else, the same name included, is another cluster.
        let other = Genesis::new("lab".into(), g.members().to_vec(), 3, (8, 10), None, None)
            .expect("valid");
        assert_ne!(other.id(), g.id());
        assert_ne!(other.prev(), g.prev());
        let renamed = Genesis::new(
            "lab".into(),
            vec![entry(3, "c"), entry(1, "a"), entry(2, "x")],
            2,
            (8, 10),
            None,
            None,
        )
        .expect("valid");
        assert_ne!(renamed.id(), g.id());
    }

    #[test]
    fn invalid_genesis_is_refused() {
        let m = vec![entry(1, "a"), entry(2, "b"), entry(3, "c")];
        let new = |cluster: &str, members: Vec<Entry>, q, d| {
            Genesis::new(cluster.into(), members, q, d, None, None)
        };
        assert!(matches!(
            new("a/b", m.clone(), 2, (8, 8)),
            Err(GenesisError::Name(_))
        ));
        assert_eq!(new("lab", vec![], 1, (8, 8)), Err(GenesisError::Size(0)));
        assert_eq!(
            new("lab", vec![entry(1, "a"), entry(1, "b")], 2, (8, 8)),
            Err(GenesisError::Duplicate(NodeId([1; 8])))
        );
        assert!(matches!(
            new("lab", m.clone(), 1, (8, 8)),
            Err(GenesisError::Quorum { .. })
        ));
        assert!(matches!(
            new("lab", m.clone(), 4, (8, 8)),
            Err(GenesisError::Quorum { .. })
        ));
        assert_eq!(
            new("lab", m.clone(), 2, (9, 8)),
            Err(GenesisError::Difficulty(9, 8))
        );
        assert!(matches!(
            new("lab", vec![entry(1, "a=b")], 1, (8, 8)),
            Err(GenesisError::MemberName(_))
        ));
        let admin = crate::identity::Identity::from_key(
            p256::ecdsa::SigningKey::from_slice(&[7; 32]).expect("a scalar"),
        );
        let as_member = vec![Entry {
            id: admin.id,
            name: String::new(),
        }];
        assert_eq!(
            Genesis::new("lab".into(), as_member, 1, (8, 8), Some(admin.public), None),
            Err(GenesisError::AdminIsMember(admin.id))
        );
        assert_eq!(
            Genesis::new("lab".into(), m, 2, (8, 8), Some([9; 33]), None),
            Err(GenesisError::AdminKey)
        );
    }

    #[test]
    fn admin_and_parent_round_trip() {
        let admin = crate::identity::Identity::from_key(
            p256::ecdsa::SigningKey::from_slice(&[7; 32]).expect("a scalar"),
        );
        let g = Genesis::new(
            "lab".into(),
            vec![entry(1, "a")],
            1,
            (8, 8),
            Some(admin.public),
            Some(Parent {
                cluster: lab().id(),
                height: 41,
                head: [5; 16],
            }),
        )
        .expect("valid");
        assert_eq!(Genesis::decode(&g.encode()), Ok(g.clone()));
        assert_eq!(g.admin_id(), Some(admin.id));
    }
}
