//! `edgeminer demo`: a whole cluster in one process, for a first look.
//!
//! Starts an MQTT broker inside the process (rumqttd) on a free loopback
//! port, or uses `--broker`, makes N throw-away keys and a genesis that
//! lists them (as the original lab's nodes had fresh keys at every start),
//! runs the N nodes there, each with its own MQTT client and temporary
//! state directory, until every node has committed the requested number of
//! transactions; then re-reads every node's ledger from disk and reports
//! whether they agree.
//!
//! It prints nothing itself: the lines it has to show while it runs go to
//! the caller as [`Line`]s, and the outcome is returned, so the binary
//! alone decides how they reach the terminal.

mod broker;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rand_core::{OsRng, RngCore};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::config::{BrokerSettings, MiningSettings, NodeConfig, StorageSettings};
use crate::identity::{Identity, NodeId};
use crate::node::{self, Report};
use crate::pow::engine::Engine;
use crate::progress::Board;
use crate::protocol::{self, quorum, Committed, Genesis};
use crate::store::ledger;
use crate::wire::roster::Entry;

/// Demo settings, already validated.
#[derive(Clone, Debug)]
pub struct DemoConfig {
    pub nodes: usize,
    pub rounds: u64,
    pub difficulty: (u8, u8),
    pub broker: Option<String>,
    pub threads: Option<usize>,
    /// The progress line's board, in an interactive terminal.
    pub progress: Option<Arc<Board>>,
}

/// A line to show while the demo runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// The cluster, the broker and the settings, before any node starts.
    Cluster(String),
    /// A transaction, when its first node commits it.
    Committed(String),
}

/// The outcome, for the caller to print and to choose the exit code.
pub struct Outcome {
    pub table: String,
    pub agree: bool,
    pub summary: String,
}

/// Runs the demo, handing `show` each line to show on the way, and
/// returns the outcome to print.
pub async fn run(
    cfg: DemoConfig,
    engine: &'static dyn Engine,
    mut show: impl FnMut(Line),
) -> Result<Outcome> {
    let (keys, genesis) = cluster(cfg.nodes, cfg.difficulty)?;
    let url = match &cfg.broker {
        Some(u) => u.clone(),
        None => broker::start()?,
    };
    let threads = cfg
        .threads
        .unwrap_or_else(|| (num_cpus::get() / cfg.nodes).max(1));
    show(Line::Cluster(format!(
        "demo: cluster {} ({}) of {} nodes on {url}, quorum {}, difficulty {}..{}, {threads} mining thread(s) per node",
        genesis.cluster(),
        genesis.id(),
        cfg.nodes,
        genesis.quorum(),
        cfg.difficulty.0,
        cfg.difficulty.1
    )));
    let base = tempfile::Builder::new()
        .prefix("edgeminer-demo-")
        .tempdir()
        .context("creating the demo's state directories")?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (rep_tx, rep_rx) = mpsc::unbounded_channel::<Report>();
    let mut tasks = Vec::new();
    let mut dirs = Vec::new();
    for (i, key) in keys.into_iter().enumerate() {
        let name = format!("node-{}", i + 1);
        let dir = base.path().join(&name);
        dirs.push((name.clone(), dir.clone()));
        let node_cfg = node_config(&genesis, &url, threads, name, dir, key);
        let outputs = node::Outputs {
            reports: Some(rep_tx.clone()),
            progress: cfg.progress.clone(),
        };
        tasks.push(spawn_node(node_cfg, engine, stop_rx.clone(), outputs));
    }
    drop(rep_tx);
    let (elapsed, names) = wait_for_commits(&cfg, rep_rx, &mut show).await?;
    let _ = stop_tx.send(true);
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => bail!("a node failed: {e:#}"),
            Err(e) => bail!("a node task panicked: {e}"),
        }
    }
    compare_ledgers(&dirs, cfg.rounds, elapsed, &names)
}

/// Throw-away keys for `n` nodes and a genesis that lists them.
fn cluster(n: usize, difficulty: (u8, u8)) -> Result<(Vec<Identity>, Arc<Genesis>)> {
    let name = format!("demo-{:08x}", OsRng.next_u32());
    let keys: Vec<Identity> = (0..n).map(|_| Identity::ephemeral(&mut OsRng)).collect();
    let members = keys
        .iter()
        .enumerate()
        .map(|(i, k)| Entry {
            id: k.id,
            name: format!("node-{}", i + 1),
        })
        .collect();
    let genesis = Genesis::new(name, members, quorum::majority(n), difficulty, None, None)
        .map_err(|e| anyhow::anyhow!("--nodes {n}: {e}"))?;
    Ok((keys, Arc::new(genesis)))
}

/// One demo node's settings: short timers, a temporary state directory.
fn node_config(
    genesis: &Arc<Genesis>,
    url: &str,
    threads: usize,
    name: String,
    dir: PathBuf,
    key: Identity,
) -> NodeConfig {
    NodeConfig {
        protocol: protocol::Config {
            genesis: genesis.clone(),
            election_timeout_ms: 3_000,
            solution_window_ms: 50,
            init_timeout_ms: 10_000,
            name,
            threads: threads as u16,
        },
        broker: BrokerSettings::plain(url.to_string()),
        // One process, many nodes: the board's temperature is not one
        // node's business here.
        mining: MiningSettings {
            threads,
            thermal: None,
        },
        storage: StorageSettings {
            state_dir: dir,
            key: Some(key),
        },
        metrics_addr: None,
        log_level: None,
        source: None,
    }
}

/// Runs one node until the demo says stop.
fn spawn_node(
    cfg: NodeConfig,
    engine: &'static dyn Engine,
    mut stop: watch::Receiver<bool>,
    outputs: node::Outputs,
) -> JoinHandle<Result<()>> {
    // Each node's log lines carry its name ("demo{node=node-1}:"; the
    // field is not `name`, which JSON lines use for the span's own name).
    let span = tracing::info_span!("demo", node = %cfg.protocol.name);
    let shutdown = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    tokio::spawn(node::run(cfg, engine, shutdown, outputs).instrument(span))
}

/// Waits until every node has committed `cfg.rounds` transactions,
/// showing each transaction when its first node commits it; how long that
/// took and the nodes' names.
async fn wait_for_commits(
    cfg: &DemoConfig,
    mut reports: mpsc::UnboundedReceiver<Report>,
    show: &mut impl FnMut(Line),
) -> Result<(Duration, HashMap<NodeId, String>)> {
    let started = Instant::now();
    let mut counts: HashMap<String, u64> = HashMap::new();
    let mut names: HashMap<NodeId, String> = HashMap::new();
    let limit = Duration::from_secs(60 + 30 * cfg.rounds);
    while counts.len() < cfg.nodes || counts.values().any(|&c| c < cfg.rounds) {
        let left = limit.saturating_sub(started.elapsed());
        let r = match tokio::time::timeout(left, reports.recv()).await {
            Ok(Some(r)) => r,
            Ok(None) => bail!(
                "every node stopped before {} transactions were committed",
                cfg.rounds
            ),
            Err(_) => bail!(
                "not every node committed {} transactions within {} s",
                cfg.rounds,
                limit.as_secs()
            ),
        };
        names.insert(r.id, r.node.clone());
        let c = counts.entry(r.node.clone()).or_default();
        *c = (*c).max(r.commit.tx);
        // Each transaction once, when its first node commits it.
        if counts.values().filter(|&&v| v >= r.commit.tx).count() == 1 {
            show(Line::Committed(format!(
                "demo: tx {} committed by {} after {:.1} s",
                r.commit.tx,
                r.node,
                started.elapsed().as_secs_f64()
            )));
        }
    }
    Ok((started.elapsed(), names))
}

/// Reads back what every node wrote to disk, and compares.
fn compare_ledgers(
    dirs: &[(String, PathBuf)],
    rounds: u64,
    elapsed: Duration,
    names: &HashMap<NodeId, String>,
) -> Result<Outcome> {
    let mut ledgers: Vec<(String, Vec<Committed>)> = Vec::new();
    for (name, dir) in dirs {
        let commits = ledger::read(dir)
            .with_context(|| format!("reading the ledger of {name}"))?
            .map(|(_, h)| h.commits)
            .unwrap_or_default();
        ledgers.push((name.clone(), commits));
    }
    let shortest = ledgers.iter().map(|(_, c)| c.len()).min().unwrap_or(0);
    let reference = &ledgers[0].1;
    let agree = shortest as u64 >= rounds
        && ledgers
            .iter()
            .all(|(_, c)| c[..shortest] == reference[..shortest]);
    let table = crate::report::table(&reference[..shortest], names);
    let summary = if agree {
        format!(
            "agreement: ok: all {} nodes hold the same {shortest} transactions ({:.1} s, {:.1} commits per minute)",
            ledgers.len(),
            elapsed.as_secs_f64(),
            shortest as f64 * 60.0 / elapsed.as_secs_f64()
        )
    } else {
        let lens: Vec<String> = ledgers
            .iter()
            .map(|(n, c)| format!("{n}: {}", c.len()))
            .collect();
        format!(
            "agreement: FAILED: the ledgers differ ({})",
            lens.join(", ")
        )
    };
    Ok(Outcome {
        table,
        agree,
        summary,
    })
}
