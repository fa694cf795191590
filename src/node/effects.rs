//! Carrying out one batch of the core's actions, in order, and nowhere
//! else.
//!
//! The order is what keeps the node's word: a ledger append or the vote
//! state is on disk (synced) before any action after it runs, so a commit
//! is published only once it is durable, and a vote or approval only once
//! its promise is. An error writing either ends the node before anything
//! after it happens.

use anyhow::{Context, Result};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::start::{Store, Who};
use super::{outgoing, Report};
use crate::chain;
use crate::miner::Pool;
use crate::mqtt::Link;
use crate::protocol::{Action, Node};

/// The driver's hands: the ledger it writes, and who hears of commits.
pub(super) struct Effects {
    store: Store,
    reports: Option<(mpsc::UnboundedSender<Report>, Who)>,
}

/// What a batch leaves for the driver to do after it.
#[derive(Debug, Default)]
pub(super) struct Done {
    /// Transactions the batch committed.
    pub commits: u64,
    /// Why the node must stop: it is no longer a member of its cluster.
    pub stop: Option<String>,
}

impl Effects {
    pub fn new(store: Store, who: &Who, reports: Option<mpsc::UnboundedSender<Report>>) -> Self {
        Effects {
            store,
            reports: reports.map(|to| (to, who.clone())),
        }
    }

    /// Carries out `actions` in order, each one finished before the next.
    pub fn carry_out(
        &mut self,
        actions: Vec<Action>,
        node: &Node,
        link: &Link,
        pool: &Pool,
    ) -> Result<Done> {
        let Store { dir, ledger } = &mut self.store;
        let mut done = Done::default();
        for action in actions {
            match action {
                Action::AppendLedger(record) => ledger
                    .append(&record)
                    .with_context(|| format!("writing the ledger in {}", dir.display()))?,
                Action::SaveVotes(bytes) => chain::save_votes(dir, &bytes)
                    .with_context(|| format!("writing the vote state in {}", dir.display()))?,
                Action::Publish(p) => {
                    link.publish(outgoing(p));
                }
                Action::Mine(job) => pool.start(job),
                Action::StopMining => pool.stop(),
                // Record 0 describes the cluster; transaction t is record t.
                Action::ServeHistory { tx } => match ledger.read(tx as usize) {
                    Ok(record) => {
                        if let Some(p) = node.history_message(tx, &record) {
                            link.publish(outgoing(p));
                        }
                    }
                    Err(e) => warn!("voting: cannot serve tx {tx} from the ledger: {e}"),
                },
                Action::Stop(why) => done.stop = Some(node.stop_message(&why)),
                Action::Committed(c) => {
                    debug!(tx = c.tx, "committed");
                    done.commits += 1;
                    if let Some((to, who)) = &self.reports {
                        let _ = to.send(Report {
                            node: who.name.clone(),
                            id: who.id,
                            commit: c,
                        });
                    }
                }
            }
        }
        Ok(done)
    }
}
