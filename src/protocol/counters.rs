//! What a node has counted since it started, for metrics: elections it saw
//! end and messages it refused, by phase and reason. Pure counters, kept by
//! the state machine; the driver reads them ([`super::Node::counters`]).

use std::collections::BTreeMap;

use super::Reject;

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
            Reject::Wire(_) => "undecodable",
            Reject::TopicMismatch { .. } => "topic_mismatch",
            Reject::WrongFamily(_) => "wrong_family",
            Reject::BadSignature => "bad_signature",
            Reject::KeyIdMismatch => "key_id_mismatch",
            Reject::BadKey => "bad_key",
            Reject::TooManyMembers(_) => "too_many_members",
            Reject::UnknownSigner(_) => "unknown_signer",
            Reject::WrongTransaction { .. } => "wrong_transaction",
            Reject::WrongPrev => "wrong_prev",
            Reject::Difficulty { .. } => "difficulty",
            Reject::Election(_) => "bad_election",
            Reject::RoundTooFar { .. } => "round_too_far",
            Reject::UnknownChallenge => "unknown_challenge",
            Reject::BadProofOfWork => "bad_proof_of_work",
            Reject::Certificate(_) => "bad_certificate",
        }
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
    fn reasons_are_label_safe() {
        let all = [
            Reject::BadSignature,
            Reject::WrongPrev,
            Reject::UnknownChallenge,
            Reject::Certificate(String::new()),
            Reject::Election(String::new()),
            Reject::RoundTooFar { got: 1, at: 0 },
        ];
        for r in all {
            let s = r.reason();
            assert!(!s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
    }
}
