//! The driver of one node: it owns the MQTT link, the ledger file, the
//! mining pool and the clock, feeds the pure protocol core, and carries out
//! the output it returns.
//!
//! [`run`] only assembles the parts and turns the loop, so that the whole
//! life of a node reads on one screen; each part has its own file:
//!
//! - `start`: what comes before the loop: the key, the ledger, the core
//!   built from them, the broker connection;
//! - `effects`: one output of the core carried out: its writes durable
//!   before its publishes and mining changes;
//! - `telemetry`: where the node stands, read once and shown to systemd,
//!   observers, metrics and the progress line, with the timers that pace
//!   them and thermal care.
//!
//! Shutdown is seen only between two outputs: an output (a ledger append
//! and the publishes after it) is carried out to its end, then the node stops
//! mining, publishes its goodbye and closes the connection within a second.
//!
//! A reload (SIGHUP) is seen there too: the node reads its configuration
//! file and flags again, takes what can change while it runs (log level,
//! thermal care, metrics address), names in its log what waits for a
//! restart, and carries on; an invalid file changes nothing.

mod effects;
mod start;
mod telemetry;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::config::{self, NodeConfig};
use crate::logging;
use crate::miner::Pool;
use crate::mqtt::{Event, Link, Outgoing};
use crate::pow::engine::Engine;
use crate::progress;
use crate::protocol::{Committed, Input, Node, Output, Publish};
use crate::service::Notifier;
use crate::signals::Reloads;

use effects::Effects;
use telemetry::Telemetry;

/// What a running node reports to whoever started it (the demo's table).
#[derive(Clone, Debug)]
pub struct Report {
    pub node: String,
    pub id: crate::identity::NodeId,
    pub commit: Committed,
}

/// The node is not, or no longer, a member of its cluster's roster:
/// starting it again cannot help (`edgeminer run` exits with code 78).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotAMember(pub String);

/// A setting the node cannot work with, found once it runs: the broker
/// refused its login or certificates, or the metrics address cannot be
/// served. Starting again cannot help either (`edgeminer run` exits with
/// code 78).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Misconfigured(pub String);

/// Who else hears from a running node besides the broker and the log.
#[derive(Default)]
pub struct Outputs {
    /// Every commit (the demo's table).
    pub reports: Option<mpsc::UnboundedSender<Report>>,
    /// The progress line of an interactive terminal.
    pub progress: Option<Arc<progress::Board>>,
}

/// Runs a node until `shutdown` completes.
pub async fn run(
    cfg: NodeConfig,
    engine: &'static dyn Engine,
    shutdown: impl Future<Output = ()>,
    outputs: Outputs,
) -> Result<()> {
    let mut cfg = cfg;
    // A node started from flags reloads on SIGHUP from now on.
    let mut reloads = match cfg.source {
        Some(_) => {
            set_log_level(&cfg, "init");
            Reloads::install()
        }
        None => Reloads::none(),
    };
    let mut notifier = Notifier::from_env();
    notifier.note("loading the key and the ledger");
    let opened = start::open(&cfg, engine)?;
    let (who, mut node, clock) = (opened.who, opened.node, opened.clock);
    let (link, mut events) = start::connect(&cfg, who.id, &node)?;
    let (found_tx, mut found_rx) = mpsc::unbounded_channel();
    let pool = Pool::new(cfg.mining.threads, engine, found_tx);
    // Started: systemd hears so now, whether the broker answers or not.
    let mut tele = Telemetry::start(&cfg, &who, &node, &pool, notifier, outputs.progress)?;
    let mut effects = Effects::new(opened.store, &who, outputs.reports);
    tokio::pin!(shutdown);
    loop {
        let wake = clock.until(node.next_timeout());
        // Each branch only decides; the output is carried out below, to its
        // end, before the next select: shutdown never cuts one short.
        let output = tokio::select! {
            _ = &mut shutdown => break,
            ev = events.recv() => match ev {
                Some(Event::Connected) => {
                    info!("init: connected to the broker {}", cfg.broker.url);
                    tele.connected();
                    node.handle(Input::Connected, clock.now())
                }
                Some(Event::Disconnected) => {
                    warn!("init: lost the broker {}; reconnecting", cfg.broker.url);
                    tele.disconnected();
                    Output::default()
                }
                Some(Event::Message { topic, payload, retained }) => {
                    let input = Input::Message { topic: &topic, payload: &payload, retained };
                    node.handle(input, clock.now())
                }
                Some(Event::Fatal(why)) => {
                    pool.stop();
                    return Err(Misconfigured(why).into());
                }
                None => bail!("the MQTT client stopped"),
            },
            found = found_rx.recv() => match found {
                Some(f) => node.handle(Input::Mined { job: f.job_id, seed: f.seed }, clock.now()),
                None => bail!("the mining pool stopped"),
            },
            _ = tokio::time::sleep(wake) => node.handle(Input::Tick, clock.now()),
            _ = reloads.next() => {
                reload(&mut cfg, &mut tele, &pool);
                Output::default()
            }
            due = tele.due() => {
                tele.on(due, &node, &pool, &link, clock.now());
                Output::default()
            }
        };
        let done = effects.carry_out(output, &node, &link, &pool)?;
        tele.after_output(&node, done.commits);
        tele.disk(done.disk.ledger_bytes, done.disk.written);
        if let Some(why) = done.stop {
            tele.stopping();
            leave(&pool, &node, link).await;
            return Err(NotAMember(why).into());
        }
    }
    tele.stopping();
    info!("init: {} leaving the cluster", who.name);
    leave(&pool, &node, link).await;
    drop(pool);
    Ok(())
}

/// Reads the configuration again and takes what can change while running.
fn reload(cfg: &mut NodeConfig, tele: &mut Telemetry, pool: &Pool) {
    tele.reloading();
    info!("reload: SIGHUP received; reading the configuration again");
    match cfg.reread() {
        None => info!("reload: this node has no configuration to read again"),
        Some(Err(e)) => warn!("reload: the configuration is invalid, nothing changed: {e:#}"),
        Some(Ok(new)) => {
            let changed = cfg.reload(&new);
            if changed.log_level {
                set_log_level(cfg, "reload");
            }
            tele.reload(cfg, &changed, pool);
            if !changed.restart.is_empty() {
                warn!(
                    "reload: changed, but a restart applies it (systemctl restart edgeminer); running with the values it started with: {}",
                    changed.restart.join(", ")
                );
            }
            if !(changed.log_level || changed.thermal || changed.metrics)
                && changed.restart.is_empty()
            {
                info!("reload: nothing changed");
            }
        }
    }
    tele.reloaded();
}

/// The configuration file's `log_level`, unless the flags or `RUST_LOG`
/// decide it.
fn set_log_level(cfg: &NodeConfig, when: &str) {
    match logging::set_level(cfg.log_level) {
        Ok(()) if when == "reload" => info!(
            "reload: log level {}",
            cfg.log_level.map_or("info", config::log_level_name)
        ),
        Ok(()) => {}
        Err(why) if cfg.log_level.is_some() => {
            info!("{when}: log_level in the configuration file is not used: {why}")
        }
        Err(_) => {}
    }
}

/// Stops mining and says goodbye: the goodbye is queued after every message
/// already queued, and the connection closes within a second.
async fn leave(pool: &Pool, node: &Node, link: Link) {
    pool.stop();
    let goodbye = node.goodbye().into_iter().map(outgoing).collect();
    link.close(goodbye, Duration::from_secs(1)).await;
}

/// A message of the core, as the MQTT link sends it.
fn outgoing(p: Publish) -> Outgoing {
    Outgoing {
        topic: p.topic,
        payload: p.payload,
        retain: p.retain,
    }
}
