//! Catch-up, part of the voting phase: a node whose ledger is behind asks
//! for the next commit it misses, one transaction at a time, and any node
//! that has it answers with the certificate from its ledger. The answer is
//! checked like any commit certificate, so the requester trusts nobody.
//! Requests are retried every second while the node is behind; answers are
//! rate-limited per requester.

use tracing::info;

use super::certificate::decode_signed;
use super::{Action, Node, Publish, Reject};
use crate::wire::{self, Body, Commit, Payload, Sync};

/// How often a behind node asks again when no answer came.
const RETRY_MS: u64 = 1_000;
/// At most one answer to the same request of one requester this often.
const SERVE_EVERY_MS: u64 = 20;

impl Node {
    /// When to ask again for the next missing commit, if behind.
    pub(crate) fn sync_retry_at(&self) -> Option<u64> {
        if self.behind > self.height {
            Some(self.last_sync.map_or(0, |t| t + RETRY_MS))
        } else {
            None
        }
    }

    /// Asks for transaction `height + 1`.
    pub(crate) fn request_sync(&mut self, now: u64, out: &mut Vec<Action>) {
        if self.behind <= self.height {
            return;
        }
        self.last_sync = Some(now);
        let want = self.height + 1;
        let msg = self.sign(want, 0, Payload::Sync(Sync { seen: self.behind }));
        if want % 100 == 1 || self.behind - self.height < 3 {
            info!(
                "voting: asking for tx {want} (the cluster is at tx {})",
                self.behind
            );
        }
        out.push(Action::Publish(Publish {
            topic: self.topics.sync(self.me),
            payload: msg,
            retain: false,
        }));
    }

    pub(crate) fn on_sync(
        &mut self,
        body: &Body,
        s: Sync,
        now: u64,
        out: &mut Vec<Action>,
    ) -> Result<(), Reject> {
        if body.sender == self.me || body.tx == 0 || body.tx > self.height {
            return Ok(());
        }
        if s.seen > self.height && s.seen > self.behind {
            // The requester knows of commits we lack too.
            self.behind = s.seen;
            self.request_sync(now, out);
        }
        // The same request again within a moment is a duplicate; the next
        // transaction is answered at once, so catching up is not paced.
        if self
            .served
            .get(&body.sender)
            .is_some_and(|&(tx, t)| tx == body.tx && now < t + SERVE_EVERY_MS)
        {
            return Ok(());
        }
        self.served.insert(body.sender, (body.tx, now));
        out.push(Action::ServeHistory { tx: body.tx });
        Ok(())
    }

    /// The answer to a sync request: ledger record `tx` as a signed commit
    /// message (not retained: the retained one stays the latest commit).
    pub fn history_message(&self, tx: u64, record: &[u8]) -> Option<Publish> {
        let commit = Commit::decode(record).ok()?;
        let (_, cbody) =
            decode_signed(&commit.challenge.0, wire::MAX_CERT_MESSAGE, "challenge").ok()?;
        if cbody.tx != tx {
            return None;
        }
        let payload = self.sign(tx, cbody.round, Payload::Commit(commit));
        Some(Publish {
            topic: self.topics.commit(self.me),
            payload,
            retain: false,
        })
    }
}
