//! The gate every message from the broker passes, for the node and for the
//! observer alike: which topic it came on, how large it may be, whether it
//! decodes, whether its kind belongs on that topic, whether its body may
//! name a sender other than the topic's, and whether its signature (or, for
//! a key, its proof of possession) holds.
//!
//! What a message *means* is left to its reader: the node dispatches it to
//! a phase, the observer updates its picture. Both refuse with the same
//! structured reasons ([`Reject`]), so a refusal reads the same in the
//! node's log, its metrics and `edgeminer status`.

use p256::ecdsa::VerifyingKey;

use super::Reject;
use crate::identity::NodeId;
use crate::wire::{
    self, topics::Route, Body, ClusterId, Envelope, Family, Kind, PubKey, SigCache, Topics,
    WireError,
};

/// Where a message came in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Channel {
    /// A phase's or membership's topic (what nodes read).
    Protocol(Route),
    /// A node's status topic (what only observers read).
    Status(NodeId),
}

impl Channel {
    /// The channel of `topic`; `None` for a topic of no channel of this
    /// cluster.
    pub fn parse(topics: &Topics, topic: &str) -> Option<Channel> {
        if let Some(id) = topics.parse_status(topic) {
            return Some(Channel::Status(id));
        }
        topics.parse(topic).map(Channel::Protocol)
    }

    /// The sender the topic names.
    pub fn sender(&self) -> NodeId {
        match self {
            Channel::Protocol(r) => r.sender,
            Channel::Status(id) => *id,
        }
    }

    /// The largest message this channel carries: challenges carry election
    /// votes and confirmations carry approvals.
    pub fn limit(&self) -> usize {
        match self {
            Channel::Protocol(r) => match r.family {
                Family::Challenge | Family::Voting => wire::MAX_CERT_MESSAGE,
                Family::Roster => wire::MAX_ROSTER_MESSAGE,
                _ => wire::MAX_PHASE_MESSAGE,
            },
            Channel::Status(_) => wire::MAX_PHASE_MESSAGE,
        }
    }

    /// Whether a message here may be signed by someone other than the
    /// sender the topic names. Keys (which hash to their id), solutions,
    /// challenges and approvals are signed by their owner, miner, leader or
    /// voter and checked on their own, so any member may pass one on (see
    /// `TxState::republish`).
    fn relayable(&self) -> bool {
        let Channel::Protocol(r) = self else {
            return false;
        };
        match r.family {
            Family::PubKey | Family::Solution | Family::Challenge => true,
            Family::Voting => !r.commit && !r.sync,
            Family::Init | Family::Election | Family::Roster => false,
        }
    }

    /// Whether a message of `kind` belongs here: a kind of the topic's
    /// family (see [`Kind::family`]), and on `voting/<id>` the one its
    /// sub-topic names.
    fn carries(&self, kind: Kind) -> bool {
        let Channel::Protocol(r) = self else {
            return kind == Kind::Status;
        };
        if kind.family() != Some(r.family) {
            return false;
        }
        match r.family {
            Family::Voting if r.sync => kind == Kind::Sync,
            Family::Voting if r.commit => kind == Kind::Commit,
            Family::Voting => kind == Kind::Approval,
            // One kind per family, but for the admin's change requests and
            // the nodes' roster reports on `roster/<id>`.
            _ => true,
        }
    }
}

/// A message that decoded and sits on a channel that carries its kind,
/// its signature not yet checked.
#[derive(Clone, Debug)]
pub struct Opened {
    pub channel: Channel,
    pub env: Envelope,
    pub body: Body,
}

/// Decodes `payload`, which came on `channel`, and checks that it belongs
/// there (size, kind, sender).
pub fn open(channel: Channel, payload: &[u8]) -> Result<Opened, Reject> {
    let (env, body) = decode(payload, channel.limit())?;
    let topic = channel.sender();
    if body.sender != topic && !channel.relayable() {
        return Err(Reject::TopicMismatch {
            topic,
            body: body.sender,
        });
    }
    if !channel.carries(body.kind()) {
        return Err(Reject::WrongFamily(body.kind()));
    }
    Ok(Opened { channel, env, body })
}

/// Decodes a signed message of at most `limit` bytes.
pub fn decode(raw: &[u8], limit: usize) -> Result<(Envelope, Body), WireError> {
    let env = Envelope::decode(raw, limit)?;
    let body = Body::decode(&env.body)?;
    Ok((env, body))
}

/// Checks `env`'s signature by `key` for `cluster` (each signature once:
/// see [`SigCache`]).
pub fn verify(
    sigs: &SigCache,
    cluster: &ClusterId,
    env: &Envelope,
    key: &VerifyingKey,
) -> Result<(), Reject> {
    if sigs.verify(cluster, env, key) {
        Ok(())
    } else {
        Err(Reject::BadSignature)
    }
}

/// Checks a key announcement on its own: the key hashes to the sender's
/// id, names `cluster`, and signed its own message (proof of possession).
/// Whether its owner is a member is the reader's question.
pub fn key(
    sigs: &SigCache,
    cluster: &ClusterId,
    env: &Envelope,
    sender: NodeId,
    pk: &PubKey,
) -> Result<VerifyingKey, Reject> {
    if NodeId::from_public_key(&pk.key) != sender {
        return Err(Reject::KeyIdMismatch);
    }
    if pk.cluster != *cluster {
        return Err(Reject::OtherCluster(pk.cluster));
    }
    let key = sigs.key(&pk.key).ok_or(Reject::BadKey)?;
    verify(sigs, cluster, env, &key)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(topics: &Topics, topic: &str) -> Channel {
        Channel::parse(topics, topic).expect("a topic of the cluster")
    }

    #[test]
    fn channels_carry_their_kinds_only() {
        let t = Topics::new("lab");
        let id = NodeId([7; 8]);
        let status = route(&t, &t.status(id));
        assert_eq!(status, Channel::Status(id));
        assert!(status.carries(Kind::Status) && !status.carries(Kind::Presence));
        let commit = route(&t, &t.commit(id));
        assert!(commit.carries(Kind::Commit) && !commit.carries(Kind::Approval));
        assert!(!commit.relayable());
        let approvals = route(&t, &t.own(Family::Voting, id));
        assert!(approvals.carries(Kind::Approval) && approvals.relayable());
        let roster = route(&t, &t.own(Family::Roster, id));
        assert!(roster.carries(Kind::Roster) && roster.carries(Kind::Change));
        assert!(!roster.carries(Kind::Commit));
        assert_eq!(commit.limit(), wire::MAX_CERT_MESSAGE);
        assert_eq!(roster.limit(), wire::MAX_ROSTER_MESSAGE);
        assert_eq!(status.limit(), wire::MAX_PHASE_MESSAGE);
        assert!(Channel::parse(&t, "edgeminer/other/init/0707070707070707").is_none());
    }

    /// Every kind of message has exactly one kind of topic.
    #[test]
    fn each_kind_has_one_channel() {
        let t = Topics::new("lab");
        let id = NodeId([3; 8]);
        let mut channels: Vec<Channel> = Family::ALL
            .iter()
            .map(|&f| route(&t, &t.own(f, id)))
            .collect();
        channels.extend([t.commit(id), t.sync(id), t.status(id)].map(|x| route(&t, &x)));
        for k in (0..=u8::MAX).filter_map(Kind::from_u8) {
            let n = channels.iter().filter(|c| c.carries(k)).count();
            assert_eq!(n, 1, "{k} is carried by {n} channels");
        }
    }

    #[test]
    fn oversized_and_garbage_are_refused_before_decoding() {
        let t = Topics::new("lab");
        let ch = route(&t, &t.own(Family::Init, NodeId([1; 8])));
        let big = vec![0u8; wire::MAX_PHASE_MESSAGE + 1];
        assert!(matches!(
            open(ch.clone(), &big),
            Err(Reject::Wire(WireError::TooLarge { .. }))
        ));
        assert!(matches!(open(ch, &[1, 2, 3]), Err(Reject::Wire(_))));
    }
}
