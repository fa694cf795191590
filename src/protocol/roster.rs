//! The roster: who the members are and what the quorum is, for one stretch
//! of the ledger.
//!
//! The genesis fixes the first roster. After that the roster changes only
//! by commit: an operator's [`Change`], signed by the admin key the genesis
//! names, rides in a leader's challenge, and the transaction that commits
//! that challenge commits the change; the new roster decides every
//! transaction after it. So each transaction is decided by the roster that
//! the ledger before it fixes, which every node that agrees on that ledger
//! agrees on: no joint consensus is needed (`docs/PROTOCOL.md`).
//!
//! A change names the roster it applies to by its [`Roster::hash`], which
//! covers a version that grows with every change: it applies once, to the
//! roster the operator saw, and can never be replayed.

use std::collections::BTreeMap;

use super::genesis::{check_members, Genesis, GenesisError};
use crate::identity::NodeId;
use crate::wire::roster::Entry;
use crate::wire::{self, Body, Change, ClusterId, Envelope, Payload, RosterView, SigCache};

/// The members and quorum in force, and where they came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Roster {
    cluster: ClusterId,
    version: u32,
    members: BTreeMap<NodeId, String>,
    quorum: usize,
    since: u64,
    hash: [u8; 16],
}

/// Why a roster change cannot apply.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChangeError {
    #[error("this cluster's genesis names no admin key, so its roster is fixed")]
    NoAdmin,
    #[error("signed by {0}, which is not the admin key of this cluster")]
    NotAdmin(NodeId),
    #[error("bad signature")]
    BadSignature,
    #[error("undecodable: {0}")]
    Wire(#[from] wire::WireError),
    #[error("it is for another roster than the one in force (version {version})")]
    Stale { version: u32 },
    #[error("it changes nothing")]
    Empty,
    #[error("{0} is a member already")]
    AddMember(NodeId),
    #[error("{0} is not a member")]
    RemoveStranger(NodeId),
    #[error("its lists are not in ascending order without repeats")]
    Order,
    #[error("the admin key cannot be a member")]
    AddAdmin,
    #[error("the roster it makes is invalid: {0}")]
    Invalid(GenesisError),
}

fn members_hash(cluster: &ClusterId, version: u32, quorum: usize, members: &[Entry]) -> [u8; 16] {
    let mut e = minicbor::Encoder::new(Vec::new());
    // Encoding into a Vec cannot fail; the results are ignored for that reason.
    let _ = e.array(3);
    let _ = e.u32(version);
    let _ = e.u32(quorum as u32);
    let _ = e.encode(members);
    let mut m = cluster.0.to_vec();
    m.extend_from_slice(&e.into_writer());
    wire::digest16(b"edgeminer/roster", &m)
}

impl Roster {
    /// The genesis roster: version 0, deciding from transaction 1.
    pub(crate) fn founding(g: &Genesis) -> Roster {
        Roster::build(g.id(), 0, g.members().to_vec(), g.quorum(), 1)
    }

    fn build(
        cluster: ClusterId,
        version: u32,
        members: Vec<Entry>,
        quorum: usize,
        since: u64,
    ) -> Roster {
        let hash = members_hash(&cluster, version, quorum, &members);
        Roster {
            cluster,
            version,
            members: members.into_iter().map(|e| (e.id, e.name)).collect(),
            quorum,
            since,
            hash,
        }
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.members.contains_key(&id)
    }
    /// Members (N).
    pub fn len(&self) -> usize {
        self.members.len()
    }
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
    /// Approvals (and election votes) needed.
    pub fn quorum(&self) -> usize {
        self.quorum
    }
    /// Changes applied since the genesis.
    pub fn version(&self) -> u32 {
        self.version
    }
    /// The first transaction this roster decides.
    pub fn since(&self) -> u64 {
        self.since
    }
    /// `SHA-256("edgeminer/roster" ‖ cluster id ‖ [version, quorum,
    /// members])[..16]`: what a change names as the roster it applies to.
    pub fn hash(&self) -> [u8; 16] {
        self.hash
    }
    /// Member ids in ascending order.
    pub fn ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members.keys().copied()
    }
    /// The name the roster gives a member (may be empty).
    pub fn name(&self, id: NodeId) -> Option<&str> {
        self.members.get(&id).map(String::as_str)
    }
    pub fn entries(&self) -> Vec<Entry> {
        self.members
            .iter()
            .map(|(id, name)| Entry {
                id: *id,
                name: name.clone(),
            })
            .collect()
    }

    /// How many members in a later election or voting round make a node
    /// follow them there: one more than the liars tolerated
    /// (`f = 2q - N - 1`), so that at least one of them is honest. Any more
    /// and q live members could stay split over two rounds for ever (with
    /// N = 13 and q = 7, one member late by a round never sees the 7 others
    /// it would need). Never more than the other members (N - 1): with
    /// q = N (two members, say) a node that fell behind could otherwise
    /// never be shown the way by anyone.
    pub fn follow_threshold(&self) -> usize {
        (2 * self.quorum)
            .saturating_sub(self.len())
            .min(self.len().saturating_sub(1))
            .max(1)
    }

    /// The roster after `change`, committed in transaction `tx`: in force
    /// from `tx + 1`.
    pub fn apply(&self, change: &Change, tx: u64) -> Result<Roster, ChangeError> {
        if change.base != self.hash {
            return Err(ChangeError::Stale {
                version: self.version,
            });
        }
        let ascending = |ids: &mut dyn Iterator<Item = NodeId>| {
            let v: Vec<NodeId> = ids.collect();
            v.windows(2).all(|p| p[0] < p[1])
        };
        if !ascending(&mut change.add.iter().map(|e| e.id))
            || !ascending(&mut change.remove.iter().copied())
        {
            return Err(ChangeError::Order);
        }
        if change.add.is_empty()
            && change.remove.is_empty()
            && change.quorum as usize == self.quorum
        {
            return Err(ChangeError::Empty);
        }
        let mut members = self.members.clone();
        for id in &change.remove {
            if members.remove(id).is_none() {
                return Err(ChangeError::RemoveStranger(*id));
            }
        }
        for e in &change.add {
            if self.members.contains_key(&e.id) {
                return Err(ChangeError::AddMember(e.id));
            }
            members.insert(e.id, e.name.clone());
        }
        let entries: Vec<Entry> = members
            .into_iter()
            .map(|(id, name)| Entry { id, name })
            .collect();
        let quorum = change.quorum as usize;
        check_members(&entries, quorum).map_err(ChangeError::Invalid)?;
        Ok(Roster::build(
            self.cluster,
            self.version + 1,
            entries,
            quorum,
            tx + 1,
        ))
    }

    /// What a node reports of this roster, for observers.
    pub fn view(&self) -> RosterView {
        RosterView {
            version: self.version,
            quorum: self.quorum as u32,
            members: self.entries(),
            since: self.since,
        }
    }

    /// The roster a node reports, if it is a consistent one of `cluster`
    /// (observers check who reports it).
    pub fn from_view(cluster: ClusterId, v: &RosterView) -> Result<Roster, GenesisError> {
        let mut members = v.members.clone();
        members.sort();
        check_members(&members, v.quorum as usize)?;
        Ok(Roster::build(
            cluster,
            v.version,
            members,
            v.quorum as usize,
            v.since,
        ))
    }
}

/// Checks an admin's signed change request against the roster in force:
/// signed by the genesis's admin key, for this roster, and making a valid
/// one. Returns the change and the roster it makes if committed in `tx`.
pub fn check_change(
    genesis: &Genesis,
    roster: &Roster,
    raw: &[u8],
    tx: u64,
    sigs: &SigCache,
) -> Result<(Change, Roster), ChangeError> {
    let (change, _) = signed_change(genesis, raw, sigs)?;
    if change.add.iter().any(|e| Some(e.id) == genesis.admin_id()) {
        return Err(ChangeError::AddAdmin);
    }
    let next = roster.apply(&change, tx)?;
    Ok((change, next))
}

/// Decodes a change request and checks that the admin signed it.
pub fn signed_change(
    genesis: &Genesis,
    raw: &[u8],
    sigs: &SigCache,
) -> Result<(Change, Body), ChangeError> {
    let env = Envelope::decode(raw, wire::MAX_ROSTER_MESSAGE)?;
    let body = Body::decode(&env.body)?;
    let Payload::Change(change) = body.payload.clone() else {
        return Err(ChangeError::Wire(wire::WireError::Malformed(format!(
            "a {} where a roster change belongs",
            body.kind()
        ))));
    };
    let (Some(admin), Some(admin_id)) = (genesis.admin(), genesis.admin_id()) else {
        return Err(ChangeError::NoAdmin);
    };
    if body.sender != admin_id {
        return Err(ChangeError::NotAdmin(body.sender));
    }
    let key = sigs.key(admin).ok_or(ChangeError::NoAdmin)?;
    if !sigs.verify(&genesis.id(), &env, &key) {
        return Err(ChangeError::BadSignature);
    }
    Ok((change, body))
}

/// Signs a change request with the admin key.
pub fn sign_change(genesis: &Genesis, admin: &p256::ecdsa::SigningKey, change: Change) -> Vec<u8> {
    let id = crate::identity::Identity::from_key(admin.clone()).id;
    let body = Body {
        sender: id,
        tx: 0,
        round: 0,
        payload: Payload::Change(change),
    };
    wire::sign(&genesis.id(), admin, body.encode())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    fn entry(b: u8, name: &str) -> Entry {
        Entry {
            id: NodeId([b; 8]),
            name: name.into(),
        }
    }

    fn admin() -> Identity {
        Identity::from_key(p256::ecdsa::SigningKey::from_slice(&[7; 32]).expect("a scalar"))
    }

    fn lab(admin: Option<&Identity>) -> Genesis {
        Genesis::new(
            "lab".into(),
            (1..=5).map(|b| entry(b, "")).collect(),
            3,
            (8, 8),
            admin.map(|a| a.public),
            None,
        )
        .expect("valid")
    }

    fn change(r: &Roster, quorum: u32, add: &[u8], remove: &[u8]) -> Change {
        Change {
            base: r.hash(),
            quorum,
            add: add.iter().map(|&b| entry(b, "new")).collect(),
            remove: remove.iter().map(|&b| NodeId([b; 8])).collect(),
        }
    }

    #[test]
    fn changes_apply_once_in_order() {
        let g = lab(None);
        let r0 = g.roster();
        assert_eq!(
            (r0.version(), r0.len(), r0.quorum(), r0.since()),
            (0, 5, 3, 1)
        );
        assert_eq!(r0.follow_threshold(), 1);
        let r1 = r0.apply(&change(&r0, 3, &[], &[5]), 7).expect("remove one");
        assert_eq!((r1.version(), r1.len(), r1.since()), (1, 4, 8));
        assert!(!r1.contains(NodeId([5; 8])));
        assert_eq!(r1.follow_threshold(), 2);
        let again = r1.apply(&change(&r0, 3, &[], &[4]), 9);
        assert_eq!(again, Err(ChangeError::Stale { version: 1 }), "a replay");
        let r2 = r1
            .apply(&change(&r1, 3, &[5], &[]), 9)
            .expect("add it back");
        assert_ne!(r2.hash(), r0.hash(), "same members, another version");
        assert_eq!(r2.name(NodeId([5; 8])), Some("new"));
    }

    #[test]
    fn invalid_changes_are_refused() {
        let r = lab(None).roster();
        assert_eq!(
            r.apply(&change(&r, 3, &[], &[]), 1),
            Err(ChangeError::Empty)
        );
        assert_eq!(
            r.apply(&change(&r, 3, &[1], &[]), 1),
            Err(ChangeError::AddMember(NodeId([1; 8])))
        );
        assert_eq!(
            r.apply(&change(&r, 3, &[], &[9]), 1),
            Err(ChangeError::RemoveStranger(NodeId([9; 8])))
        );
        assert_eq!(
            r.apply(&change(&r, 3, &[], &[2, 1]), 1),
            Err(ChangeError::Order)
        );
        assert!(matches!(
            r.apply(&change(&r, 3, &[6, 7], &[]), 1),
            Err(ChangeError::Invalid(GenesisError::Quorum { .. }))
        ));
        assert!(matches!(
            r.apply(&change(&r, 2, &[], &[]), 1),
            Err(ChangeError::Invalid(GenesisError::Quorum { .. }))
        ));
        assert!(r.apply(&change(&r, 4, &[6, 7], &[]), 1).is_ok());
    }

    #[test]
    fn only_the_admin_signs_changes() {
        let a = admin();
        let g = lab(Some(&a));
        let r = g.roster();
        let sigs = SigCache::default();
        let raw = sign_change(&g, &a.key, change(&r, 4, &[6], &[]));
        let (_, next) = check_change(&g, &r, &raw, 4, &sigs).expect("the admin's change");
        assert_eq!((next.len(), next.since()), (6, 5));
        let other =
            Identity::from_key(p256::ecdsa::SigningKey::from_slice(&[8; 32]).expect("a scalar"));
        let forged = sign_change(&g, &other.key, change(&r, 4, &[6], &[]));
        assert_eq!(
            check_change(&g, &r, &forged, 4, &sigs).map(|_| ()),
            Err(ChangeError::NotAdmin(other.id))
        );
        let fixed = lab(None);
        let raw = sign_change(&fixed, &a.key, change(&fixed.roster(), 4, &[6], &[]));
        assert_eq!(
            check_change(&fixed, &fixed.roster(), &raw, 4, &sigs).map(|_| ()),
            Err(ChangeError::NoAdmin)
        );
        let adds_admin = Change {
            add: vec![Entry {
                id: a.id,
                name: String::new(),
            }],
            ..change(&r, 3, &[], &[])
        };
        let raw = sign_change(&g, &a.key, adds_admin);
        assert_eq!(
            check_change(&g, &r, &raw, 4, &sigs).map(|_| ()),
            Err(ChangeError::AddAdmin)
        );
    }

    #[test]
    fn views_round_trip() {
        let r = lab(None).roster();
        let back = Roster::from_view(lab(None).id(), &r.view()).expect("consistent");
        assert_eq!(back, r);
    }
}
