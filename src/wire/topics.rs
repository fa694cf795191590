//! Topic layout: `edgeminer/<cluster>/<phase>/<sender-id>[/commit|/sync]`.
//!
//! One topic family per phase, and the sender's id as the last level so that a
//! broker ACL can let each node write only its own topics (`%u` patterns). A
//! message whose topic names a different sender than the key that signed it is
//! refused, so the topic can be trusted for routing only after verification.
//!
//! Besides the phases, membership has its own family, `roster/<id>`: the
//! admin's retained change request (under the admin key's id) and each
//! node's retained report of the roster in force (under its own id).
//!
//! Each node also keeps a retained status message on
//! `edgeminer/<cluster>/status/<id>` for observers (`edgeminer status`). It
//! is not a [`Family`]: nodes do not subscribe to it and [`Topics::parse`]
//! does not know it, so it can never be protocol input.

use crate::identity::NodeId;

/// The six phases' topic families, and membership's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Init,
    PubKey,
    Election,
    Challenge,
    Solution,
    Voting,
    /// Roster change requests (from the admin) and roster reports (from
    /// nodes, for observers).
    Roster,
}

impl Family {
    pub const ALL: [Family; 7] = [
        Family::Init,
        Family::PubKey,
        Family::Election,
        Family::Challenge,
        Family::Solution,
        Family::Voting,
        Family::Roster,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Family::Init => "init",
            Family::PubKey => "pubkey",
            Family::Election => "election",
            Family::Challenge => "challenge",
            Family::Solution => "solution",
            Family::Voting => "voting",
            Family::Roster => "roster",
        }
    }

    fn parse(s: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// A parsed incoming topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub family: Family,
    pub sender: NodeId,
    /// `voting/<id>/commit`: a commit certificate rather than a vote.
    pub commit: bool,
    /// `voting/<id>/sync`: a request for a missed commit.
    pub sync: bool,
}

/// Topic names of one cluster.
#[derive(Clone, Debug)]
pub struct Topics {
    prefix: String,
}

/// Whether a cluster name is usable inside a topic: 1 to 64 of `[A-Za-z0-9_-]`.
pub fn valid_cluster_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Topics {
    /// The caller validates the name with [`valid_cluster_name`] first.
    pub fn new(cluster: &str) -> Topics {
        Topics {
            prefix: format!("edgeminer/{cluster}"),
        }
    }

    /// The topic a node publishes a phase message on.
    pub fn own(&self, family: Family, me: NodeId) -> String {
        format!("{}/{}/{}", self.prefix, family.as_str(), me)
    }

    /// The retained topic of a node's latest commit certificate.
    pub fn commit(&self, me: NodeId) -> String {
        format!("{}/voting/{}/commit", self.prefix, me)
    }

    /// Where a node asks for commits it missed.
    pub fn sync(&self, me: NodeId) -> String {
        format!("{}/voting/{}/sync", self.prefix, me)
    }

    /// The retained status topic of a node (for observers only).
    pub fn status(&self, me: NodeId) -> String {
        format!("{}/status/{}", self.prefix, me)
    }

    /// What an observer subscribes to: keys, presence, status, rosters,
    /// challenges and the commits of every node, never the votes or
    /// solutions.
    pub fn observer_subscriptions(&self) -> Vec<String> {
        [
            "pubkey/+",
            "init/+",
            "status/+",
            "roster/+",
            "challenge/+",
            "voting/+/commit",
        ]
        .iter()
        .map(|t| format!("{}/{}", self.prefix, t))
        .collect()
    }

    /// The sender of a status topic of this cluster; `None` for anything else.
    pub fn parse_status(&self, topic: &str) -> Option<NodeId> {
        let rest = topic.strip_prefix(&self.prefix)?.strip_prefix("/status/")?;
        rest.parse().ok()
    }

    /// What a node subscribes to: every family of its cluster.
    pub fn subscriptions(&self) -> Vec<String> {
        Family::ALL
            .iter()
            .map(|f| format!("{}/{}/#", self.prefix, f.as_str()))
            .collect()
    }

    /// Parses a topic of this cluster; `None` for anything else.
    pub fn parse(&self, topic: &str) -> Option<Route> {
        let rest = topic.strip_prefix(&self.prefix)?.strip_prefix('/')?;
        let mut parts = rest.split('/');
        let family = Family::parse(parts.next()?)?;
        let sender: NodeId = parts.next()?.parse().ok()?;
        let (commit, sync) = match parts.next() {
            None => (false, false),
            Some("commit") if family == Family::Voting => (true, false),
            Some("sync") if family == Family::Voting => (false, true),
            Some(_) => return None,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Route {
            family,
            sender,
            commit,
            sync,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let t = Topics::new("lab");
        let id = NodeId([1, 2, 3, 4, 5, 6, 7, 8]);
        for f in Family::ALL {
            let r = t.parse(&t.own(f, id)).expect("own topic parses");
            assert_eq!((r.family, r.sender, r.commit), (f, id, false));
        }
        assert!(t.parse(&t.commit(id)).expect("commit topic").commit);
        assert!(t.parse(&t.sync(id)).expect("sync topic").sync);
        assert_eq!(t.parse("edgeminer/other/init/0102030405060708"), None);
        assert_eq!(t.parse("edgeminer/lab/init/xyz"), None);
        assert_eq!(t.parse("edgeminer/lab/bogus/0102030405060708"), None);
        assert_eq!(t.parse("edgeminer/lab/init/0102030405060708/commit"), None);
        assert_eq!(t.parse_status(&t.status(id)), Some(id));
        assert_eq!(t.parse(&t.status(id)), None, "status is no protocol input");
        assert_eq!(t.parse_status(&t.own(Family::Init, id)), None);
        assert_eq!(
            t.parse_status("edgeminer/lab/status/0102030405060708/x"),
            None
        );
        assert!(!t.subscriptions().iter().any(|s| s.contains("/status/")));
        assert!(valid_cluster_name("lab-1_x"));
        assert!(!valid_cluster_name("a/b") && !valid_cluster_name("") && !valid_cluster_name("#"));
    }
}
