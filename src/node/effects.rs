//! Carrying out the core's output, and nowhere else.
//!
//! The output's shape is what keeps the node's word: its ledger appends
//! and vote state are on disk (synced) before any publish or mining
//! change, so a commit is published only once it is durable, and a vote
//! or approval only once its promise is. An error writing either ends the
//! node before anything after it happens.

use anyhow::{Context, Result};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::start::{Store, Who};
use super::{outgoing, Report};
use crate::miner::Pool;
use crate::mqtt::Link;
use crate::protocol::{Effect, Event, Node, Output, Persist};
use crate::store::ledger;

/// The driver's hands: the ledger it writes, and who hears of commits.
pub(super) struct Effects {
    store: Store,
    reports: Option<(mpsc::UnboundedSender<Report>, Who)>,
}

/// What an output leaves for the driver to do after it.
#[derive(Debug, Default)]
pub(super) struct Done {
    /// Transactions the output committed.
    pub commits: u64,
    /// Why the node must stop: it is no longer a member of its cluster.
    pub stop: Option<String>,
    /// The disk: bytes in the ledger file after the output, and bytes the
    /// output wrote (records, their index entries, the small state files).
    pub disk: Disk,
}

#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Disk {
    pub ledger_bytes: u64,
    pub written: u64,
}

impl Effects {
    pub fn new(store: Store, who: &Who, reports: Option<mpsc::UnboundedSender<Report>>) -> Self {
        Effects {
            store,
            reports: reports.map(|to| (to, who.clone())),
        }
    }

    /// Carries out one output: its writes, durable before anything else,
    /// then its effects, then its events.
    pub fn carry_out(
        &mut self,
        out: Output,
        node: &Node,
        link: &Link,
        pool: &Pool,
    ) -> Result<Done> {
        let Store { dir, ledger } = &mut self.store;
        let mut written = 0;
        for write in out.persist {
            written += bytes_written(&write);
            match write {
                Persist::AppendLedger(record) => ledger
                    .append(&record)
                    .with_context(|| format!("writing the ledger in {}", dir.display()))?,
                Persist::SaveVotes(bytes) => ledger::save_votes(dir, &bytes)
                    .with_context(|| format!("writing the vote state in {}", dir.display()))?,
                Persist::SaveRosters(bytes) => ledger::save_rosters(dir, &bytes)
                    .with_context(|| format!("writing the rosters in {}", dir.display()))?,
            }
        }
        for effect in out.then {
            match effect {
                Effect::Publish(p) => {
                    link.publish(outgoing(p));
                }
                Effect::Mine(job) => pool.start(job),
                Effect::StopMining => pool.stop(),
                // Record 0 describes the cluster; transaction t is record t.
                Effect::ServeHistory { tx } => match ledger.read_tx(tx) {
                    Ok(Some(record)) => {
                        if let Some(p) = node.history_message(tx, &record) {
                            link.publish(outgoing(p));
                        }
                    }
                    Ok(None) => debug!(
                        "voting: tx {tx} is not in this ledger (pruned up to tx {})",
                        ledger.pruned()
                    ),
                    Err(e) => warn!("voting: cannot serve tx {tx} from the ledger: {e}"),
                },
            }
        }
        let mut done = Done {
            disk: Disk {
                ledger_bytes: ledger.bytes(),
                written,
            },
            ..Done::default()
        };
        for event in out.events {
            match event {
                Event::Stop(why) => done.stop = Some(node.stop_message(&why)),
                Event::Committed(c) => {
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

/// What a durable write puts on the disk: a ledger record with its 8-byte
/// header and its 8-byte index entry, or a whole small file.
fn bytes_written(p: &Persist) -> u64 {
    match p {
        Persist::AppendLedger(r) => r.len() as u64 + 16,
        Persist::SaveVotes(b) | Persist::SaveRosters(b) => b.len() as u64,
    }
}
