//! What a node has counted since it started, for metrics: elections it saw
//! end and messages it refused, by phase and reason. Pure counters, kept by
//! the state machine; the driver reads them ([`super::Node::counters`]).
//!
//! Also which refusals are worth a log line: the first of each (sender,
//! reason) in a minute, and then a count of the rest, so that a second
//! cluster sharing the topics, or a flood, cannot drown the log.

use std::collections::BTreeMap;

use super::Reject;
use crate::identity::NodeId;

/// Counts since the node started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Elections this node saw end with a leader (one per transaction and
    /// round that had one).
    pub elections: u64,
    /// Refused messages by (phase, reason). Both are from short fixed
    /// lists ([`crate::wire::Family::as_str`], [`Reject::reason`]), so the
    /// map stays small whatever arrives.
    pub rejected: BTreeMap<(&'static str, &'static str), u64>,
}

impl Counters {
    pub(crate) fn reject(&mut self, phase: &'static str, why: &Reject) {
        *self.rejected.entry((phase, why.reason())).or_default() += 1;
    }

    /// Refused messages, all reasons together.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

impl Reject {
    /// A short fixed name for the kind of refusal (a metrics label).
    pub fn reason(&self) -> &'static str {
        match self {
            Reject::Wire(crate::wire::WireError::TooLarge { .. }) => "too_large",
            Reject::Wire(_) => "undecodable",
            Reject::TopicMismatch { .. } => "topic_mismatch",
            Reject::WrongFamily(_) => "wrong_family",
            Reject::BadSignature => "bad_signature",
            Reject::KeyIdMismatch => "key_id_mismatch",
            Reject::BadKey => "bad_key",
            Reject::UnknownSigner(_) => "unknown_signer",
            Reject::WrongTransaction { .. } => "wrong_transaction",
            Reject::WrongPrev => "wrong_prev",
            Reject::Difficulty { .. } => "difficulty",
            Reject::Election(_) => "bad_election",
            Reject::RoundTooFar { .. } => "round_too_far",
            Reject::UnknownChallenge => "unknown_challenge",
            Reject::BadProofOfWork => "bad_proof_of_work",
            Reject::Certificate(_) => "bad_certificate",
            Reject::NotAMember(_) => "not_a_member",
            Reject::OtherCluster(_) => "other_cluster",
            Reject::Change(_) => "bad_change",
        }
    }
}

/// How long one (sender, reason) stays quiet after a logged refusal.
const QUIET_MS: u64 = 60_000;
/// (sender, reason) pairs remembered; beyond this the oldest are forgotten.
const QUIET_MAX: usize = 1024;

/// Which refusals to log: the first per (sender, reason) every minute.
#[derive(Default)]
pub struct RefusalLog {
    /// (sender, reason) -> (when last logged, refusals since not logged).
    seen: BTreeMap<(NodeId, &'static str), (u64, u64)>,
}

impl RefusalLog {
    /// Whether to log this refusal now; `Some(n)` with the number of the
    /// same refusals left unlogged since the last line.
    pub fn log(&mut self, sender: NodeId, reason: &'static str, now: u64) -> Option<u64> {
        if let Some((at, quiet)) = self.seen.get_mut(&(sender, reason)) {
            if now < *at + QUIET_MS {
                *quiet += 1;
                return None;
            }
            let n = *quiet;
            *at = now;
            *quiet = 0;
            return Some(n);
        }
        if self.seen.len() >= QUIET_MAX {
            let oldest = self
                .seen
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.seen.remove(&k);
            }
        }
        self.seen.insert((sender, reason), (now, 0));
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_phase_and_reason() {
        let mut c = Counters::default();
        c.reject("election", &Reject::BadSignature);
        c.reject("election", &Reject::BadSignature);
        c.reject("solution", &Reject::BadProofOfWork);
        assert_eq!(c.rejected[&("election", "bad_signature")], 2);
        assert_eq!(c.rejected[&("solution", "bad_proof_of_work")], 1);
        assert_eq!(c.rejected_total(), 3);
    }

    #[test]
    fn refusals_are_logged_once_a_minute_per_sender_and_reason() {
        let mut log = RefusalLog::default();
        let (a, b) = (NodeId([1; 8]), NodeId([2; 8]));
        assert_eq!(log.log(a, "bad_signature", 0), Some(0));
        assert_eq!(log.log(a, "bad_signature", 10), None);
        assert_eq!(log.log(a, "not_a_member", 10), Some(0));
        assert_eq!(log.log(b, "bad_signature", 10), Some(0));
        assert_eq!(log.log(a, "bad_signature", 20), None);
        assert_eq!(log.log(a, "bad_signature", 60_000), Some(2));
        assert_eq!(log.log(a, "bad_signature", 60_001), None);
    }

    #[test]
    fn reasons_are_label_safe() {
        let all = [
            Reject::BadSignature,
            Reject::WrongPrev,
            Reject::UnknownChallenge,
            Reject::Certificate(crate::protocol::CertError::MixedRounds),
            Reject::Election(crate::protocol::election::ElectionError::TwoVotes(NodeId(
                [2; 8],
            ))),
            Reject::RoundTooFar { got: 1, at: 0 },
            Reject::NotAMember(NodeId([1; 8])),
        ];
        for r in all {
            let s = r.reason();
            assert!(!s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
    }
}
