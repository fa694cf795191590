//! The messages a node holds back, and why: a message whose signer's key
//! has not arrived cannot be checked yet; one of a later transaction waits
//! for the ledger to reach it; copies saved before a restart wait for the
//! next connect. Each queue is bounded (minting keys costs an attacker
//! nothing), the oldest dropped first.
//!
//! When a key or a commit frees held messages they go to the inbox, which
//! the node drains once the current input is done: no handler takes a
//! message itself in the middle of another.

use std::collections::VecDeque;

use super::gate;
use crate::identity::NodeId;
use crate::wire;

/// Messages held in each queue, at most.
const MAX_PENDING: usize = 1024;

/// A message as it came: its topic and its bytes.
pub type Message = (String, Vec<u8>);

/// The node's held messages and its inbox.
#[derive(Default)]
pub struct Held {
    /// Messages whose signer's key has not arrived yet.
    unverified: VecDeque<Message>,
    /// Messages for later transactions, replayed after each commit.
    future: VecDeque<Message>,
    /// Messages to take once the current input is done: held ones that
    /// can be checked now, solutions that waited for their challenge, the
    /// node's own challenge and the copies it saved before a restart.
    inbox: VecDeque<Message>,
    /// Saved copies of the solutions we backed before a restart, with
    /// their challenges and signers' keys, read at the next connect.
    restored: Vec<Vec<u8>>,
}

fn push_bounded(queue: &mut VecDeque<Message>, topic: &str, payload: &[u8]) {
    if queue.len() >= MAX_PENDING {
        queue.pop_front();
    }
    queue.push_back((topic.to_string(), payload.to_vec()));
}

impl Held {
    /// Holds a message until its signer's key arrives.
    pub fn until_key(&mut self, topic: &str, payload: &[u8]) {
        push_bounded(&mut self.unverified, topic, payload);
    }

    /// Holds a message of a later transaction until the ledger reaches it.
    pub fn until_commit(&mut self, topic: &str, payload: &[u8]) {
        push_bounded(&mut self.future, topic, payload);
    }

    /// `signer`'s key arrived: what it signed goes to the inbox (relayed
    /// messages sit on the relaying node's topic: look at who signed).
    pub fn key_arrived(&mut self, signer: NodeId) {
        let (theirs, rest): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.unverified)
            .into_iter()
            .partition(|(_, payload)| {
                gate::decode(payload, wire::MAX_CERT_MESSAGE).is_ok_and(|(_, b)| b.sender == signer)
            });
        self.unverified = rest;
        self.inbox.extend(theirs);
    }

    /// A commit moved the ledger on: every later transaction's message
    /// goes to the inbox (those still too early are held again).
    pub fn committed(&mut self) {
        let future = std::mem::take(&mut self.future);
        self.inbox.extend(future);
    }

    /// Messages to take once the current input is done.
    pub fn replay(&mut self, messages: impl IntoIterator<Item = Message>) {
        self.inbox.extend(messages);
    }

    /// The next message of the inbox.
    pub fn take_next(&mut self) -> Option<Message> {
        self.inbox.pop_front()
    }

    /// Empties the inbox (the node stopped).
    pub fn clear_inbox(&mut self) {
        self.inbox.clear();
    }

    /// Keeps the copies saved before a restart for the next connect.
    pub fn restore(&mut self, copies: Vec<Vec<u8>>) {
        self.restored = copies;
    }

    /// The copies saved before a restart, once.
    pub fn take_restored(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.restored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_are_bounded_and_released_in_order() {
        let mut h = Held::default();
        for i in 0..MAX_PENDING + 2 {
            h.until_commit(&format!("t{i}"), &[]);
        }
        h.until_key("k", b"not a message");
        h.committed();
        assert_eq!(
            h.take_next().map(|m| m.0),
            Some("t2".into()),
            "oldest dropped"
        );
        let mut n = 1;
        while h.take_next().is_some() {
            n += 1;
        }
        assert_eq!(n, MAX_PENDING);
        h.key_arrived(NodeId([1; 8]));
        assert!(h.take_next().is_none(), "undecodable: nobody's");
        h.replay([("x".into(), vec![])]);
        h.clear_inbox();
        assert!(h.take_next().is_none());
        h.restore(vec![vec![1]]);
        assert_eq!(h.take_restored(), [vec![1]]);
        assert!(h.take_restored().is_empty());
    }
}
