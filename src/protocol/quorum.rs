//! Vote counting as pure functions: who wins an election, and when a set of
//! approvals is a quorum.
//!
//! Kept apart from the phase modules so that the rules can be read, and
//! tested from tables, on their own.

use std::collections::BTreeMap;

use crate::identity::NodeId;

/// The default quorum: a strict majority of the configured cluster size.
pub fn majority(nodes: usize) -> usize {
    nodes / 2 + 1
}

/// The election rule of the original: most votes wins, ties go to the highest
/// node id. Returns the winner and its vote count, or `None` while fewer than
/// `quorum` votes are in.
pub fn tally(votes: impl IntoIterator<Item = NodeId>, quorum: usize) -> Option<(NodeId, usize)> {
    let mut counts: BTreeMap<NodeId, usize> = BTreeMap::new();
    let mut total = 0;
    for candidate in votes {
        *counts.entry(candidate).or_default() += 1;
        total += 1;
    }
    if total < quorum.max(1) {
        return None;
    }
    // BTreeMap iterates in ascending id order, so `max_by_key` (which keeps
    // the last maximum) breaks ties towards the highest id.
    counts.into_iter().max_by_key(|&(_, n)| n)
}

/// How many equivocating nodes agreement survives with this quorum: two
/// quorums share at least `2q - n` nodes, and only a node that signs for both
/// sides can make two conflicting certificates.
pub fn tolerated_liars(nodes: usize, quorum: usize) -> usize {
    (2 * quorum).saturating_sub(nodes).saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> NodeId {
        NodeId([b; 8])
    }

    #[test]
    fn election_table() {
        // (votes, quorum, expected winner and its count)
        type Case = (&'static [u8], usize, Option<(u8, usize)>);
        let cases: &[Case] = &[
            (&[], 1, None),
            (&[1, 1], 3, None),
            (&[1, 1, 2], 3, Some((1, 2))),
            (&[1, 2, 3], 3, Some((3, 1))),
            (&[2, 1, 2, 1], 3, Some((2, 2))),
            (&[5, 5, 9, 9, 9], 3, Some((9, 3))),
            (&[7], 1, Some((7, 1))),
        ];
        for (votes, q, want) in cases {
            let got = tally(votes.iter().map(|&b| id(b)), *q);
            assert_eq!(
                got,
                want.map(|(w, n)| (id(w), n)),
                "votes {votes:?} quorum {q}"
            );
        }
    }

    #[test]
    fn majorities_intersect() {
        for n in 1..=15 {
            let q = majority(n);
            assert!(2 * q > n, "two quorums of {q} out of {n} must share a node");
        }
        assert_eq!(tolerated_liars(4, 3), 1);
        assert_eq!(tolerated_liars(5, 3), 0);
        assert_eq!(tolerated_liars(5, 4), 2);
        assert_eq!(tolerated_liars(3, 2), 0);
    }
}
