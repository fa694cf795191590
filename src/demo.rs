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

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rand_core::{OsRng, RngCore};
use tokio::sync::{mpsc, watch};
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

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(l.local_addr()?.port())
}

/// Without the embedded broker, the demo needs `--broker`.
#[cfg(not(feature = "embedded-broker"))]
fn start_broker(_port: u16) -> Result<()> {
    bail!("this build has no embedded broker (built without the `embedded-broker` feature): pass --broker mqtt://HOST:PORT")
}

/// Starts rumqttd on 127.0.0.1:`port` in a background thread.
#[cfg(feature = "embedded-broker")]
fn start_broker(port: u16) -> Result<()> {
    use rumqttd::{Config, ConnectionSettings, RouterConfig, ServerSettings};
    use std::net::{SocketAddr, TcpStream};
    let listen: SocketAddr = ([127, 0, 0, 1], port).into();
    let server = ServerSettings {
        name: "demo".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 5_000,
            max_payload_size: 64 * 1024,
            // rumqttd hands retained messages only to free outgoing slots:
            // with the default limits a late subscriber misses some keys.
            max_inflight_count: 1_000,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 1_000,
            max_outgoing_packet_count: 10_000,
            max_segment_size: 16 * 1024 * 1024,
            max_segment_count: 10,
            ..Default::default()
        },
        v5: Some(HashMap::from([("demo".to_string(), server)])),
        ..Default::default()
    };
    std::thread::Builder::new()
        .name("broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!("demo: the embedded broker stopped: {e}");
            }
        })
        .context("starting the embedded broker")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(listen).is_err() {
        if Instant::now() > deadline {
            bail!("the embedded broker did not open {listen} within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Runs the demo, handing `show` each line to show on the way, and
/// returns the outcome to print.
pub async fn run(
    cfg: DemoConfig,
    engine: &'static dyn Engine,
    mut show: impl FnMut(Line),
) -> Result<Outcome> {
    let cluster = format!("demo-{:08x}", OsRng.next_u32());
    let keys: Vec<Identity> = (0..cfg.nodes)
        .map(|_| Identity::ephemeral(&mut OsRng))
        .collect();
    let members = keys
        .iter()
        .enumerate()
        .map(|(i, k)| Entry {
            id: k.id,
            name: format!("node-{}", i + 1),
        })
        .collect();
    let q = quorum::majority(cfg.nodes);
    let genesis = Arc::new(
        Genesis::new(cluster.clone(), members, q, cfg.difficulty, None, None)
            .map_err(|e| anyhow::anyhow!("--nodes {}: {e}", cfg.nodes))?,
    );
    let url = match &cfg.broker {
        Some(u) => u.clone(),
        None => {
            let port = free_port()?;
            start_broker(port)?;
            format!("mqtt://127.0.0.1:{port}")
        }
    };
    let threads = cfg
        .threads
        .unwrap_or_else(|| (num_cpus::get() / cfg.nodes).max(1));
    show(Line::Cluster(format!(
        "demo: cluster {cluster} ({}) of {} nodes on {url}, quorum {q}, difficulty {}..{}, {threads} mining thread(s) per node",
        genesis.id(),
        cfg.nodes,
        cfg.difficulty.0,
        cfg.difficulty.1
    )));
    let base = tempfile::Builder::new()
        .prefix("edgeminer-demo-")
        .tempdir()
        .context("creating the demo's state directories")?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (rep_tx, mut rep_rx) = mpsc::unbounded_channel::<Report>();
    let mut tasks = Vec::new();
    let mut dirs = Vec::new();
    for (i, key) in keys.into_iter().enumerate() {
        let name = format!("node-{}", i + 1);
        let dir = base.path().join(&name);
        dirs.push((name.clone(), dir.clone()));
        let node_cfg = NodeConfig {
            protocol: protocol::Config {
                genesis: genesis.clone(),
                election_timeout_ms: 3_000,
                solution_window_ms: 50,
                init_timeout_ms: 10_000,
                name,
                threads: threads as u16,
            },
            broker: BrokerSettings::plain(url.clone()),
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
        };
        let mut stop = stop_rx.clone();
        let reports = rep_tx.clone();
        let progress = cfg.progress.clone();
        // Each node's log lines carry its name ("demo{node=node-1}:"; the
        // field is not `name`, which JSON lines use for the span's own name).
        let span = tracing::info_span!("demo", node = %node_cfg.protocol.name);
        tasks.push(tokio::spawn(
            async move {
                let shutdown = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                let outputs = node::Outputs {
                    reports: Some(reports),
                    progress,
                };
                node::run(node_cfg, engine, shutdown, outputs).await
            }
            .instrument(span),
        ));
    }
    drop(rep_tx);

    let started = Instant::now();
    let mut counts: HashMap<String, u64> = HashMap::new();
    let mut names: HashMap<NodeId, String> = HashMap::new();
    let limit = Duration::from_secs(60 + 30 * cfg.rounds);
    while counts.len() < cfg.nodes || counts.values().any(|&c| c < cfg.rounds) {
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, rep_rx.recv()).await {
            Ok(Some(r)) => {
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
            Ok(None) => bail!(
                "every node stopped before {} transactions were committed",
                cfg.rounds
            ),
            Err(_) => bail!(
                "not every node committed {} transactions within {} s",
                cfg.rounds,
                limit.as_secs()
            ),
        }
    }
    let elapsed = started.elapsed();
    let _ = stop_tx.send(true);
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => bail!("a node failed: {e:#}"),
            Err(e) => bail!("a node task panicked: {e}"),
        }
    }

    // Read back what every node wrote to disk, and compare.
    let mut ledgers: Vec<(String, Vec<Committed>)> = Vec::new();
    for (name, dir) in &dirs {
        let commits = ledger::read(dir)
            .with_context(|| format!("reading the ledger of {name}"))?
            .map(|(_, h)| h.commits)
            .unwrap_or_default();
        ledgers.push((name.clone(), commits));
    }
    let shortest = ledgers.iter().map(|(_, c)| c.len()).min().unwrap_or(0);
    let reference = &ledgers[0].1;
    let agree = shortest as u64 >= cfg.rounds
        && ledgers
            .iter()
            .all(|(_, c)| c[..shortest] == reference[..shortest]);
    let table = crate::report::table(&reference[..shortest], &names);
    let summary = if agree {
        format!(
            "agreement: ok: all {} nodes hold the same {shortest} transactions ({:.1} s, {:.1} commits per minute)",
            cfg.nodes,
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
