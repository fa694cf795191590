//! One message type per phase, and the common body header.
//!
//! A body is the CBOR array `[kind, sender, tx, round, payload]`. The header
//! fields are what domain separation relies on: a vote for round 3 of
//! transaction 7 can never be replayed as one for round 4, or as a solution.
//! Payloads are small CBOR arrays with integer positions, so every phase
//! message stays well under 200 bytes.

use std::fmt;

use minicbor::decode::Decoder;
use minicbor::encode::{Encoder, Write};
use minicbor::{Decode, Encode};

use super::roster::{Change, RosterView};
use super::topics::Family;
use super::{decode_exact, encode, ClusterId, WireError};
use crate::identity::NodeId;

/// The message kinds; the first five match the phases of the same name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// init: presence (online, offline) of a node.
    Presence = 1,
    /// pubkey: a node's public key, self-signed.
    PubKey = 2,
    /// election: a vote for a leader of one round.
    Vote = 3,
    /// challenge: the elected leader's proof-of-work challenge.
    Challenge = 4,
    /// solution: a miner's seed for a challenge.
    Solution = 5,
    /// voting: approval or rejection of one solution.
    Approval = 6,
    /// voting: the certificate of a commit (a quorum of confirmations from one voting round).
    Commit = 7,
    /// voting: a node asks for the commit certificate of one transaction it
    /// missed (catch-up); any node that has it answers.
    Sync = 8,
    /// status: what a node is doing, for observers (`edgeminer status`);
    /// not protocol input, nodes never read it.
    Status = 9,
    /// roster: the admin's request to change the roster.
    Change = 10,
    /// roster: a node's report of the roster in force, for observers.
    Roster = 11,
}

impl Kind {
    pub fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::Presence,
            2 => Kind::PubKey,
            3 => Kind::Vote,
            4 => Kind::Challenge,
            5 => Kind::Solution,
            6 => Kind::Approval,
            7 => Kind::Commit,
            8 => Kind::Sync,
            9 => Kind::Status,
            10 => Kind::Change,
            11 => Kind::Roster,
            _ => return None,
        })
    }

    /// The topic family, and so the phase, this kind belongs to; `None`
    /// for a status message, which is no phase's.
    pub fn family(self) -> Option<Family> {
        Some(match self {
            Kind::Presence => Family::Init,
            Kind::PubKey => Family::PubKey,
            Kind::Vote => Family::Election,
            Kind::Challenge => Family::Challenge,
            Kind::Solution => Family::Solution,
            Kind::Approval | Kind::Commit | Kind::Sync => Family::Voting,
            Kind::Change | Kind::Roster => Family::Roster,
            Kind::Status => return None,
        })
    }

    /// The phase this kind belongs to, as named in logs and docs: its
    /// family's name.
    pub fn phase(self) -> &'static str {
        self.family().map_or("status", Family::as_str)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Kind::Presence => "presence",
            Kind::PubKey => "pubkey",
            Kind::Vote => "vote",
            Kind::Challenge => "challenge",
            Kind::Solution => "solution",
            Kind::Approval => "approval",
            Kind::Commit => "commit",
            Kind::Sync => "sync request",
            Kind::Status => "status",
            Kind::Change => "roster change",
            Kind::Roster => "roster view",
        };
        f.write_str(s)
    }
}

impl<C> Encode<C> for NodeId {
    fn encode<W: Write>(
        &self,
        e: &mut Encoder<W>,
        _: &mut C,
    ) -> Result<(), minicbor::encode::Error<W::Error>> {
        e.bytes(&self.0)?;
        Ok(())
    }
}

impl<'b, C> Decode<'b, C> for NodeId {
    fn decode(d: &mut Decoder<'b>, _: &mut C) -> Result<Self, minicbor::decode::Error> {
        let b = d.bytes()?;
        let arr: [u8; 8] = b
            .try_into()
            .map_err(|_| minicbor::decode::Error::message("node id must be 8 bytes"))?;
        Ok(NodeId(arr))
    }
}

impl<C> Encode<C> for ClusterId {
    fn encode<W: Write>(
        &self,
        e: &mut Encoder<W>,
        _: &mut C,
    ) -> Result<(), minicbor::encode::Error<W::Error>> {
        e.bytes(&self.0)?;
        Ok(())
    }
}

impl<'b, C> Decode<'b, C> for ClusterId {
    fn decode(d: &mut Decoder<'b>, _: &mut C) -> Result<Self, minicbor::decode::Error> {
        let arr: [u8; 16] = d
            .bytes()?
            .try_into()
            .map_err(|_| minicbor::decode::Error::message("cluster id must be 16 bytes"))?;
        Ok(ClusterId(arr))
    }
}

/// init: a node is online (retained) or gone (its last will, also retained).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cbor(array)]
pub struct Presence {
    #[n(0)]
    pub online: bool,
    /// Grows with every start of the node; a newer one replaces an older one.
    #[n(1)]
    pub incarnation: u64,
    #[n(2)]
    pub name: String,
    #[n(3)]
    pub threads: u16,
    #[n(4)]
    pub version: String,
}

/// pubkey: the sender's compressed SEC1 key; the sender id is derived from
/// it. `cluster` names the cluster the sender runs (its genesis), so that a
/// node started with another genesis is named as such rather than refused
/// for a bad signature.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cbor(array)]
pub struct PubKey {
    #[cbor(n(0), with = "minicbor::bytes")]
    pub key: [u8; 33],
    #[n(1)]
    pub name: String,
    #[n(2)]
    pub cluster: ClusterId,
}

/// election: the sender votes for `candidate` to lead (tx, round), on top of
/// the commit `prev`.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cbor(array)]
pub struct Vote {
    #[n(0)]
    pub candidate: NodeId,
    #[cbor(n(1), with = "minicbor::bytes")]
    pub prev: [u8; 16],
}

/// challenge: the leader of (tx, round) asks for a seed with at least
/// `difficulty` leading zero bits; `votes` are the election votes (envelopes)
/// that made it leader and `keys` the voters' public keys, so that a node
/// that never saw a voter's key (it may be gone) can still check them.
/// `change`, when present, is the admin's signed roster change (a [`Change`]
/// envelope) that the transaction commits; it is left out of the encoding
/// when absent.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cbor(array)]
pub struct Challenge {
    #[n(0)]
    pub difficulty: u8,
    #[cbor(n(1), with = "minicbor::bytes")]
    pub salt: [u8; 12],
    #[cbor(n(2), with = "minicbor::bytes")]
    pub prev: [u8; 16],
    #[n(3)]
    pub votes: Vec<Bytes>,
    #[n(4)]
    pub keys: Vec<Key33>,
    #[n(5)]
    pub change: Option<Bytes>,
}

/// solution: the sender's seed for the challenge whose reference is `challenge`.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cbor(array)]
pub struct Solution {
    #[cbor(n(0), with = "minicbor::bytes")]
    pub challenge: [u8; 16],
    #[n(1)]
    pub seed: u64,
}

/// What a ballot of the voting phase says of its solution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stance {
    /// The proof of work is invalid.
    Reject,
    /// This node backs the solution in this voting round.
    Approve,
    /// This node saw a quorum approve the solution in this round and now
    /// locks on it.
    Confirm,
}

impl Stance {
    /// The two booleans of the wire layout: (approve, confirm).
    fn flags(self) -> (bool, bool) {
        match self {
            Stance::Reject => (false, false),
            Stance::Approve => (true, false),
            Stance::Confirm => (true, true),
        }
    }

    fn from_flags(approve: bool, confirm: bool) -> Option<Stance> {
        match (approve, confirm) {
            (false, false) => Some(Stance::Reject),
            (true, false) => Some(Stance::Approve),
            (true, true) => Some(Stance::Confirm),
            (false, true) => None,
        }
    }
}

/// voting: the sender's ballot on the solution whose reference is
/// `solution`, in voting round `vround`: a rejection of an invalid proof
/// of work, an approval backing the solution for the round, or a
/// confirmation (the sender saw a quorum approve it in the round).
///
/// On the wire the stance is two booleans, `[solution, approve, confirm,
/// vround]`; a confirmation that does not approve is refused. A
/// confirmation carries no proof: the approvals travel once each, from
/// their voters and again with every resend of a node that saw them, so
/// what each node receives per transaction, and a commit certificate, grow
/// linearly with the cluster. (Ledgers written before this carry a fifth
/// element, the approvals, in each confirmation; readers skip it.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approval {
    pub solution: [u8; 16],
    pub stance: Stance,
    pub vround: u32,
}

/// The wire layout of [`Approval`].
#[derive(Encode, Decode)]
#[cbor(array)]
struct ApprovalWire {
    #[cbor(n(0), with = "minicbor::bytes")]
    solution: [u8; 16],
    #[n(1)]
    approve: bool,
    #[n(2)]
    confirm: bool,
    #[n(3)]
    vround: u32,
}

impl<C> Encode<C> for Approval {
    fn encode<W: Write>(
        &self,
        e: &mut Encoder<W>,
        ctx: &mut C,
    ) -> Result<(), minicbor::encode::Error<W::Error>> {
        let (approve, confirm) = self.stance.flags();
        ApprovalWire {
            solution: self.solution,
            approve,
            confirm,
            vround: self.vround,
        }
        .encode(e, ctx)
    }
}

impl<'b, C> Decode<'b, C> for Approval {
    fn decode(d: &mut Decoder<'b>, ctx: &mut C) -> Result<Self, minicbor::decode::Error> {
        let w = ApprovalWire::decode(d, ctx)?;
        let stance = Stance::from_flags(w.approve, w.confirm)
            .ok_or_else(|| minicbor::decode::Error::message("a confirmation must also approve"))?;
        Ok(Approval {
            solution: w.solution,
            stance,
            vround: w.vround,
        })
    }
}

impl Approval {
    /// A first-stage approval of `solution` in round `vround`.
    pub fn approve(solution: [u8; 16], vround: u32) -> Approval {
        Approval {
            solution,
            stance: Stance::Approve,
            vround,
        }
    }

    /// A confirmation of `solution` in round `vround`.
    pub fn confirm(solution: [u8; 16], vround: u32) -> Approval {
        Approval {
            solution,
            stance: Stance::Confirm,
            vround,
        }
    }

    /// A rejection of an invalid solution.
    pub fn reject(solution: [u8; 16]) -> Approval {
        Approval {
            stance: Stance::Reject,
            ..Approval::approve(solution, 0)
        }
    }
}

/// voting: everything needed to check a commit without trusting anyone: the
/// challenge (with its election votes), the solution, a quorum of confirmations,
/// and the public keys of every signer.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cbor(array)]
pub struct Commit {
    #[n(0)]
    pub challenge: Bytes,
    #[n(1)]
    pub solution: Bytes,
    /// A quorum of confirmations of the solution, all from one voting round.
    #[n(2)]
    pub confirmations: Vec<Bytes>,
    #[n(3)]
    pub keys: Vec<Key33>,
}

/// voting: the sender's ledger ends before the body's transaction; it asks
/// `responder`, and only that member, for the commit certificate of it.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cbor(array)]
pub struct Sync {
    #[n(0)]
    pub responder: NodeId,
}

/// Where a node stands, as its status message says (the protocol core's
/// phase, on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
#[cbor(index_only)]
pub enum StatusPhase {
    /// Waiting for the members.
    #[n(0)]
    Init,
    /// Voting for, or waiting on, a leader.
    #[n(1)]
    Election,
    /// Mining the open challenge.
    #[n(2)]
    Mining,
    /// Approved a solution, waiting for a quorum.
    #[n(3)]
    Voting,
    /// Left the cluster cleanly (its last status).
    #[n(4)]
    Left,
    /// Not a member of the roster in force: catching up to see whether a
    /// later roster adds it.
    #[n(5)]
    Learner,
}

impl StatusPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusPhase::Init => "init",
            StatusPhase::Election => "election",
            StatusPhase::Mining => "mining",
            StatusPhase::Voting => "voting",
            StatusPhase::Left => "left",
            StatusPhase::Learner => "learner",
        }
    }
}

/// status: what a node is doing, retained on `status/<id>` and refreshed
/// every few seconds, for `edgeminer status`. The body's tx and round are
/// the transaction under way (one past the committed ones) and its election
/// round. Informational only: no node takes it as protocol input.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cbor(array)]
pub struct Status {
    /// The presence incarnation of the node's current start.
    #[n(0)]
    pub incarnation: u64,
    #[n(1)]
    pub name: String,
    #[n(2)]
    pub version: String,
    #[n(3)]
    pub phase: StatusPhase,
    /// Leader of the open transaction, once its challenge is known.
    #[n(4)]
    pub leader: Option<NodeId>,
    /// Difficulty of the leader's challenge, once known.
    #[n(5)]
    pub difficulty: Option<u8>,
    /// Milliseconds since this node accepted that challenge.
    #[n(6)]
    pub open_ms: Option<u64>,
    /// Candidates tried per second over the last period.
    #[n(7)]
    pub hashrate: u64,
    /// Mining threads allowed now (thermal care may pause some), and all.
    #[n(8)]
    pub active: u16,
    #[n(9)]
    pub threads: u16,
    /// CPU cores of the board.
    #[n(10)]
    pub cores: u16,
    /// SoC temperature in millidegrees Celsius, when the node reads one.
    #[n(11)]
    pub temp_mc: Option<i32>,
}

/// A byte string inside a payload (a nested envelope).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

/// A compressed public key inside a payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key33(pub [u8; 33]);

impl<C> Encode<C> for Bytes {
    fn encode<W: Write>(
        &self,
        e: &mut Encoder<W>,
        _: &mut C,
    ) -> Result<(), minicbor::encode::Error<W::Error>> {
        e.bytes(&self.0)?;
        Ok(())
    }
}

impl<'b, C> Decode<'b, C> for Bytes {
    fn decode(d: &mut Decoder<'b>, _: &mut C) -> Result<Self, minicbor::decode::Error> {
        Ok(Bytes(d.bytes()?.to_vec()))
    }
}

impl<C> Encode<C> for Key33 {
    fn encode<W: Write>(
        &self,
        e: &mut Encoder<W>,
        _: &mut C,
    ) -> Result<(), minicbor::encode::Error<W::Error>> {
        e.bytes(&self.0)?;
        Ok(())
    }
}

impl<'b, C> Decode<'b, C> for Key33 {
    fn decode(d: &mut Decoder<'b>, _: &mut C) -> Result<Self, minicbor::decode::Error> {
        let arr: [u8; 33] = d
            .bytes()?
            .try_into()
            .map_err(|_| minicbor::decode::Error::message("public key must be 33 bytes"))?;
        Ok(Key33(arr))
    }
}

/// The phase-specific part of a body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    Presence(Presence),
    PubKey(PubKey),
    Vote(Vote),
    Challenge(Challenge),
    Solution(Solution),
    Approval(Approval),
    Commit(Commit),
    Sync(Sync),
    Status(Status),
    Change(Change),
    Roster(RosterView),
}

impl Payload {
    pub fn kind(&self) -> Kind {
        match self {
            Payload::Presence(_) => Kind::Presence,
            Payload::PubKey(_) => Kind::PubKey,
            Payload::Vote(_) => Kind::Vote,
            Payload::Challenge(_) => Kind::Challenge,
            Payload::Solution(_) => Kind::Solution,
            Payload::Approval(_) => Kind::Approval,
            Payload::Commit(_) => Kind::Commit,
            Payload::Sync(_) => Kind::Sync,
            Payload::Status(_) => Kind::Status,
            Payload::Change(_) => Kind::Change,
            Payload::Roster(_) => Kind::Roster,
        }
    }
}

/// A decoded body: who says what, for which transaction and round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Body {
    pub sender: NodeId,
    pub tx: u64,
    pub round: u32,
    pub payload: Payload,
}

impl Body {
    pub fn kind(&self) -> Kind {
        self.payload.kind()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new(Vec::new());
        // Encoding into a Vec cannot fail; the results are ignored for that reason.
        let _ = e.array(5);
        let _ = e.u8(self.kind() as u8);
        let _ = e.encode(self.sender);
        let _ = e.u64(self.tx);
        let _ = e.u32(self.round);
        let _ = match &self.payload {
            Payload::Presence(p) => e.encode(p).map(drop),
            Payload::PubKey(p) => e.encode(p).map(drop),
            Payload::Vote(p) => e.encode(p).map(drop),
            Payload::Challenge(p) => e.encode(p).map(drop),
            Payload::Solution(p) => e.encode(p).map(drop),
            Payload::Approval(p) => e.encode(p).map(drop),
            Payload::Commit(p) => e.encode(p).map(drop),
            Payload::Sync(p) => e.encode(p).map(drop),
            Payload::Status(p) => e.encode(p).map(drop),
            Payload::Change(p) => e.encode(p).map(drop),
            Payload::Roster(p) => e.encode(p).map(drop),
        };
        e.into_writer()
    }

    pub fn decode(bytes: &[u8]) -> Result<Body, WireError> {
        let mut d = Decoder::new(bytes);
        if d.array()? != Some(5) {
            return Err(WireError::Malformed(
                "body must be a 5-element array".into(),
            ));
        }
        let k = d.u8()?;
        let kind = Kind::from_u8(k).ok_or(WireError::UnknownKind(k))?;
        let sender: NodeId = d.decode()?;
        let tx = d.u64()?;
        let round = d.u32()?;
        let payload = match kind {
            Kind::Presence => Payload::Presence(d.decode()?),
            Kind::PubKey => Payload::PubKey(d.decode()?),
            Kind::Vote => Payload::Vote(d.decode()?),
            Kind::Challenge => Payload::Challenge(d.decode()?),
            Kind::Solution => Payload::Solution(d.decode()?),
            Kind::Approval => Payload::Approval(d.decode()?),
            Kind::Commit => Payload::Commit(d.decode()?),
            Kind::Sync => Payload::Sync(d.decode()?),
            Kind::Status => Payload::Status(d.decode()?),
            Kind::Change => Payload::Change(d.decode()?),
            Kind::Roster => Payload::Roster(d.decode()?),
        };
        if d.position() != bytes.len() {
            return Err(WireError::Trailing);
        }
        Ok(Body {
            sender,
            tx,
            round,
            payload,
        })
    }
}

impl Commit {
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
    pub fn decode(bytes: &[u8]) -> Result<Commit, WireError> {
        decode_exact(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The stance is two booleans on the wire, as an outside node reads
    /// them; the combination that means nothing is refused.
    #[test]
    fn approval_layout_and_the_illegal_stance() {
        let a = Approval::confirm([1; 16], 3);
        let mut want = vec![0x84, 0x50];
        want.extend([1; 16]);
        want.extend([0xf5, 0xf5, 0x03]);
        assert_eq!(minicbor::to_vec(&a).expect("encodes"), want);
        assert_eq!(minicbor::decode::<Approval>(&want).expect("decodes"), a);
        // A confirmation of an older ledger, with its approvals as a fifth
        // element: they are skipped.
        let mut old = vec![0x85, 0x50];
        old.extend([1; 16]);
        old.extend([0xf5, 0xf5, 0x03, 0x81, 0x41, 0x07]);
        assert_eq!(minicbor::decode::<Approval>(&old).expect("decodes"), a);
        let mut reject = minicbor::to_vec(Approval::reject([1; 16])).expect("encodes");
        assert_eq!(reject[18..20], [0xf4, 0xf4]);
        reject[19] = 0xf5;
        assert!(minicbor::decode::<Approval>(&reject).is_err());
    }

    fn id() -> impl Strategy<Value = NodeId> {
        any::<[u8; 8]>().prop_map(NodeId)
    }

    fn bytes() -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes)
    }

    fn payload() -> impl Strategy<Value = Payload> {
        prop_oneof![
            (
                any::<bool>(),
                any::<u64>(),
                "[a-z0-9-]{0,32}",
                any::<u16>(),
                "[0-9.]{0,8}"
            )
                .prop_map(|(online, incarnation, name, threads, version)| {
                    Payload::Presence(Presence {
                        online,
                        incarnation,
                        name,
                        threads,
                        version,
                    })
                }),
            (proptest::collection::vec(any::<u8>(), 33), "[a-z]{0,32}").prop_map(|(k, name)| {
                let mut key = [0u8; 33];
                key.copy_from_slice(&k);
                Payload::PubKey(PubKey {
                    key,
                    name,
                    cluster: ClusterId([7; 16]),
                })
            }),
            (id(), any::<[u8; 16]>())
                .prop_map(|(candidate, prev)| Payload::Vote(Vote { candidate, prev })),
            (
                any::<u8>(),
                any::<[u8; 12]>(),
                any::<[u8; 16]>(),
                proptest::collection::vec(bytes(), 0..5)
            )
                .prop_map(|(difficulty, salt, prev, votes)| Payload::Challenge(
                    Challenge {
                        difficulty,
                        salt,
                        prev,
                        votes,
                        keys: vec![Key33([2; 33])],
                        change: (difficulty % 2 == 0).then(|| Bytes(vec![difficulty; 3])),
                    }
                )),
            (any::<[u8; 16]>(), any::<u64>())
                .prop_map(|(challenge, seed)| Payload::Solution(Solution { challenge, seed })),
            (
                any::<[u8; 16]>(),
                prop_oneof![
                    Just(Stance::Reject),
                    Just(Stance::Approve),
                    Just(Stance::Confirm)
                ],
                any::<u32>(),
            )
                .prop_map(|(solution, stance, vround)| {
                    Payload::Approval(Approval {
                        solution,
                        stance,
                        vround,
                    })
                }),
            id().prop_map(|responder| Payload::Sync(Sync { responder })),
            (
                any::<[u8; 16]>(),
                any::<u32>(),
                proptest::collection::vec((id(), "[a-z0-9-]{0,32}"), 0..4),
                proptest::collection::vec(id(), 0..4)
            )
                .prop_map(|(base, quorum, add, remove)| Payload::Change(Change {
                    base,
                    quorum,
                    add: add
                        .into_iter()
                        .map(|(id, name)| super::super::roster::Entry { id, name })
                        .collect(),
                    remove,
                })),
            (
                any::<u32>(),
                any::<u32>(),
                proptest::collection::vec((id(), "[a-z0-9-]{0,32}"), 0..4),
                any::<u64>()
            )
                .prop_map(|(version, quorum, members, since)| Payload::Roster(
                    RosterView {
                        version,
                        quorum,
                        members: members
                            .into_iter()
                            .map(|(id, name)| super::super::roster::Entry { id, name })
                            .collect(),
                        since,
                    }
                )),
            (
                (
                    any::<u64>(),
                    "[a-z0-9-]{0,32}",
                    0u8..6,
                    proptest::option::of(id())
                ),
                (
                    proptest::option::of(any::<u8>()),
                    proptest::option::of(any::<u64>()),
                    any::<u64>(),
                    any::<[u16; 3]>(),
                    proptest::option::of(any::<i32>())
                )
            )
                .prop_map(
                    |(
                        (incarnation, name, phase, leader),
                        (difficulty, open_ms, hashrate, t, temp_mc),
                    )| {
                        Payload::Status(Status {
                            incarnation,
                            name,
                            version: "0.1.0".into(),
                            phase: [
                                StatusPhase::Init,
                                StatusPhase::Election,
                                StatusPhase::Mining,
                                StatusPhase::Voting,
                                StatusPhase::Left,
                                StatusPhase::Learner,
                            ][usize::from(phase)],
                            leader,
                            difficulty,
                            open_ms,
                            hashrate,
                            active: t[0],
                            threads: t[1],
                            cores: t[2],
                            temp_mc,
                        })
                    }
                ),
            (
                bytes(),
                bytes(),
                proptest::collection::vec(bytes(), 0..4),
                proptest::collection::vec(any::<[u8; 16]>(), 0..3)
            )
                .prop_map(|(challenge, solution, confirmations, k)| Payload::Commit(
                    Commit {
                        challenge,
                        solution,
                        confirmations,
                        keys: k
                            .into_iter()
                            .map(|h| {
                                let mut key = [2u8; 33];
                                key[..16].copy_from_slice(&h);
                                Key33(key)
                            })
                            .collect()
                    }
                )),
        ]
    }

    proptest! {
        #[test]
        fn body_round_trips(sender in id(), tx in any::<u64>(), round in any::<u32>(), payload in payload()) {
            let body = Body { sender, tx, round, payload };
            let bytes = body.encode();
            prop_assert_eq!(Body::decode(&bytes).expect("own encoding decodes"), body);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Body::decode(&bytes);
            let _ = crate::wire::Envelope::decode(&bytes, 1024);
        }

        #[test]
        fn truncations_are_errors(sender in id(), payload in payload()) {
            let bytes = Body { sender, tx: 7, round: 1, payload }.encode();
            for cut in 0..bytes.len() {
                prop_assert!(Body::decode(&bytes[..cut]).is_err());
            }
        }
    }

    #[test]
    fn phase_messages_are_small() {
        use p256::ecdsa::SigningKey;
        let key = SigningKey::random(&mut rand_core::OsRng);
        let sender = NodeId([0xab; 8]);
        let cases = [
            Payload::Presence(Presence {
                online: true,
                incarnation: u64::MAX,
                name: "x".repeat(32),
                threads: 64,
                version: "0.1.0".into(),
            }),
            Payload::PubKey(PubKey {
                key: [2; 33],
                name: "x".repeat(32),
                cluster: ClusterId([7; 16]),
            }),
            Payload::Vote(Vote {
                candidate: sender,
                prev: [9; 16],
            }),
            Payload::Solution(Solution {
                challenge: [1; 16],
                seed: u64::MAX,
            }),
            Payload::Approval(Approval::approve([1; 16], u32::MAX)),
            Payload::Approval(Approval::confirm([1; 16], u32::MAX)),
            Payload::Status(Status {
                incarnation: u64::MAX,
                name: "x".repeat(32),
                version: "0.10.10".into(),
                phase: StatusPhase::Voting,
                leader: Some(sender),
                difficulty: Some(40),
                open_ms: Some(u64::MAX),
                hashrate: u64::MAX,
                active: u16::MAX,
                threads: u16::MAX,
                cores: u16::MAX,
                temp_mc: Some(i32::MIN),
            }),
        ];
        for p in cases {
            let kind = p.kind();
            let body = Body {
                sender,
                tx: u64::MAX,
                round: u32::MAX,
                payload: p,
            }
            .encode();
            let env = crate::wire::sign(&ClusterId([9; 16]), &key, body);
            assert!(
                env.len() <= crate::wire::MAX_SIGNED,
                "{kind} is {} bytes",
                env.len()
            );
        }
    }

    #[test]
    fn unknown_kind_and_trailing_bytes_are_refused() {
        let body = Body {
            sender: NodeId([1; 8]),
            tx: 1,
            round: 0,
            payload: Payload::Approval(Approval::reject([0; 16])),
        };
        let mut bytes = body.encode();
        bytes.push(0);
        assert_eq!(Body::decode(&bytes), Err(WireError::Trailing));
        let mut bad = body.encode();
        bad[1] = 12;
        assert_eq!(Body::decode(&bad), Err(WireError::UnknownKind(12)));
    }
}
