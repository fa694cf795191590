//! The driver of one node: it owns the MQTT link, the ledger file, the
//! mining pool and the clock, feeds the pure protocol core, and carries out
//! the actions it returns in order: a ledger append or vote state is durable
//! before anything after it is published.
//!
//! It also keeps systemd informed ([`crate::service`]) and applies thermal
//! care to the pool ([`crate::thermal`]); every status period it also
//! publishes the node's retained status message for observers
//! ([`crate::protocol::status`]). Shutdown is seen only between two
//! batches of actions: a batch (a ledger append and the publishes after it)
//! runs to its end, then the node stops mining, publishes its goodbye and
//! closes the connection within a second.
//!
//! With a metrics address it serves Prometheus metrics ([`crate::metrics`]),
//! copying the protocol's figures after every batch of actions and the
//! pool's at every status tick.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use rand_core::{OsRng, RngCore};
use tokio::sync::mpsc;
use tokio::time::{Interval, MissedTickBehavior};
use tracing::{debug, info, warn};

use crate::chain;
use crate::config::NodeConfig;
use crate::identity::Identity;
use crate::metrics::{self, Metrics};
use crate::miner::{self, Pool};
use crate::mqtt::{self, BrokerConfig, Event, Outgoing};
use crate::pow::engine::Engine;
use crate::progress;
use crate::protocol::status::Measured;
use crate::protocol::{Action, Committed, Durable, Input, Node, Publish};
use crate::service::{self, Broker, Notifier, Status};
use crate::thermal::Care;

/// What a running node reports to whoever started it (the demo's table).
#[derive(Clone, Debug)]
pub struct Report {
    pub node: String,
    pub id: crate::identity::NodeId,
    pub commit: Committed,
}

fn outgoing(p: Publish) -> Outgoing {
    Outgoing {
        topic: p.topic,
        payload: p.payload,
        retain: p.retain,
    }
}

/// A timer that ticks every `period`, late ticks delayed rather than bunched.
fn every(period: Duration) -> Interval {
    let mut i = tokio::time::interval(period);
    i.set_missed_tick_behavior(MissedTickBehavior::Delay);
    i
}

/// The next tick of an optional timer; never, without one.
async fn next_tick(timer: &mut Option<Interval>) {
    match timer {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

fn status(node: &Node, pool: &Pool, broker: Broker, hashrate: f64) -> Status {
    Status {
        broker,
        phase: node.phase(),
        tx: node.height() + 1,
        round: node.round(),
        leader: node.leader().map(|id| node.name_of(id)),
        hashrate,
        active: pool.active(),
        threads: pool.threads(),
    }
}

/// The driver's half of the status message for observers.
fn measured(pool: &Pool, hashrate: f64, care: Option<&Care>) -> Measured {
    let small = |n: usize| n.min(usize::from(u16::MAX)) as u16;
    Measured {
        // Rounded down to whole candidates per second; never negative.
        hashrate: hashrate.max(0.0) as u64,
        active: small(pool.active()),
        threads: small(pool.threads()),
        cores: small(num_cpus::get()),
        temp_mc: care
            .and_then(Care::temperature)
            .map(|c| (c * 1000.0).round() as i32),
    }
}

/// At most one status message per this long, besides the periodic one.
const STATUS_GAP: Duration = Duration::from_secs(1);

/// What makes a status message worth sending before the next period: the
/// committed height, the round and the leader.
type Shown = (u64, u32, Option<crate::identity::NodeId>);

fn shown(node: &Node) -> Shown {
    (node.height(), node.round(), node.leader())
}

/// Sleeps until `due`, or for ever without one.
async fn until(due: Option<tokio::time::Instant>) {
    match due {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The node is not, or no longer, a member of its cluster's roster:
/// starting it again cannot help (`edgeminer run` exits with code 78).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotAMember(pub String);

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
    let Outputs { reports, progress } = outputs;
    let dir: PathBuf = cfg.storage.state_dir.clone();
    let identity = match &cfg.storage.key {
        Some(key) => key.clone(),
        None => {
            let (id, created) = Identity::load_or_create(&dir)
                .with_context(|| format!("loading the node key from {}", dir.display()))?;
            if created {
                info!("init: created a new node key in {}", dir.display());
            }
            id
        }
    };
    let genesis = cfg.protocol.genesis.clone();
    let (mut ledger, history) = chain::open(&dir, &genesis)
        .with_context(|| format!("opening the ledger in {}", dir.display()))?;
    let votes = chain::load_votes(&dir)?;
    let mut protocol = cfg.protocol.clone();
    // The roster's name for this node is the one every other node shows.
    if let Some(n) = history.roster().name(identity.id).filter(|n| !n.is_empty()) {
        protocol.name = n.to_string();
    }
    let name = protocol.name.clone();
    let roster = history.roster();
    let (lo, hi) = genesis.difficulty();
    info!(
        "init: node {name} ({}) in cluster '{}' ({}): {} members, quorum {}, difficulty {lo}..{hi}, {} committed transactions, {} mining threads ({})",
        identity.id,
        genesis.cluster(),
        genesis.id(),
        roster.len(),
        roster.quorum(),
        history.height(),
        cfg.mining.threads,
        engine.name()
    );

    let start = Instant::now();
    let now = || start.elapsed().as_millis() as u64;
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);
    let mut node = Node::new(
        protocol,
        &identity,
        seed,
        unix_millis(),
        Durable { history, votes },
        now(),
    );
    if let Some(why) = node.refusal() {
        return Err(NotAMember(node.stop_message(&why)).into());
    }

    let broker = BrokerConfig {
        url: cfg.broker.url.clone(),
        client_id: format!(
            "edgeminer-{}-{:04x}",
            identity.id,
            OsRng.next_u32() & 0xffff
        ),
        keep_alive_secs: 5,
        tls: cfg.broker.tls.clone(),
        credentials: cfg.broker.credentials.clone(),
    };
    let (link, mut events) = mqtt::start(
        &broker,
        node.topics().subscriptions(),
        Some(outgoing(node.last_will())),
    )
    .with_context(|| format!("connecting to the broker {}", cfg.broker.url))?;

    let (found_tx, mut found_rx) = mpsc::unbounded_channel::<miner::Found>();
    let pool = Pool::new(cfg.mining.threads, engine, found_tx);
    // Metrics: the endpoint is up before the broker answers, so a scraper
    // sees a node that cannot connect (broker_connected 0).
    let (mut meter, _server) = match cfg.metrics_addr {
        Some(addr) => {
            let m = Metrics::new(&metrics::Identity {
                cluster: genesis.cluster().to_string(),
                cluster_id: genesis.id().to_string(),
                node: name.clone(),
                id: identity.id.to_string(),
                engine: engine.name(),
                threads: pool.threads(),
            });
            let server = metrics::Server::start(addr, m.registry())?;
            info!("init: serving metrics on http://{}/metrics", server.addr());
            (Some(m), Some(server))
        }
        None => (None, None),
    };
    let seat = progress.map(|board| board.seat(pool.meter()));
    let mut connects = 0u64;
    tokio::pin!(shutdown);

    let mut notifier = Notifier::from_env();
    let mut status_timer = every(notifier.period());
    let (mut broker, mut rate_mark, mut hashrate) =
        (Broker::Connecting, (Instant::now(), 0u64), 0.0);
    // The status for observers: every period, and within STATUS_GAP of a
    // new transaction, round or leader (so that it follows a fast cluster
    // without flooding the broker).
    let (mut status_shown, mut status_sent, mut status_due) =
        (None::<Shown>, Instant::now(), None::<tokio::time::Instant>);
    let mut care = None;
    let mut thermal_timer = None;
    if let Some(t) = &cfg.mining.thermal {
        info!(
            "thermal: reading {} every {} ms; fewer threads above {} °C, paused above {} °C",
            t.path.display(),
            t.interval_ms,
            t.limits.soft_c,
            t.limits.hard_c
        );
        care = Some(Care::new(t.path.clone(), t.limits, pool.threads()));
        thermal_timer = Some(every(Duration::from_millis(t.interval_ms)));
    }

    loop {
        let wake = node
            .next_timeout()
            .map(|t| Duration::from_millis(t.saturating_sub(now())))
            .unwrap_or(Duration::from_secs(3600));
        // Each branch only decides; the actions run below, to their end,
        // before the next select: shutdown never cuts a batch short.
        let mut announced = false;
        let actions = tokio::select! {
            _ = &mut shutdown => break,
            ev = events.recv() => match ev {
                Some(Event::Connected) => {
                    info!("init: connected to the broker {}", cfg.broker.url);
                    (broker, announced) = (Broker::Connected, true);
                    connects += 1;
                    if let Some(m) = &meter {
                        m.connected(connects > 1);
                    }
                    node.handle(Input::Connected, now())
                }
                Some(Event::Disconnected) => {
                    warn!("init: lost the broker {}; reconnecting", cfg.broker.url);
                    broker = Broker::Lost;
                    if let Some(m) = &meter {
                        m.disconnected();
                    }
                    Vec::new()
                }
                Some(Event::Message { topic, payload, retained }) => node.handle(
                    Input::Message {
                        topic: &topic,
                        payload: &payload,
                        retained,
                    },
                    now(),
                ),
                Some(Event::Fatal(why)) => {
                    pool.stop();
                    anyhow::bail!("{why}");
                }
                None => anyhow::bail!("the MQTT client stopped"),
            },
            found = found_rx.recv() => match found {
                Some(f) => node.handle(Input::Mined { job: f.job_id, seed: f.seed }, now()),
                None => anyhow::bail!("the mining pool stopped"),
            },
            _ = tokio::time::sleep(wake) => node.handle(Input::Tick, now()),
            _ = status_timer.tick() => {
                let (at, hashes) = (Instant::now(), pool.hashes());
                hashrate = service::hashrate(rate_mark.1, hashes, at - rate_mark.0);
                rate_mark = (at, hashes);
                notifier.tick(&status(&node, &pool, broker, hashrate));
                if let Some(m) = meter.as_mut() {
                    m.mining(metrics::Mining {
                        candidates: hashes,
                        hashrate,
                        active: pool.active(),
                    });
                }
                status_due = Some(tokio::time::Instant::now());
                Vec::new()
            }
            _ = until(status_due) => {
                // Observers' view (`edgeminer status`), retained; only while
                // connected, so a reconnect does not flush a backlog of them.
                status_due = None;
                if broker == Broker::Connected {
                    let m = measured(&pool, hashrate, care.as_ref());
                    link.publish(outgoing(node.status_message(m, now())));
                    (status_shown, status_sent) = (Some(shown(&node)), Instant::now());
                }
                Vec::new()
            }
            _ = next_tick(&mut thermal_timer) => {
                if let Some(threads) = care.as_mut().and_then(|c| c.check(now())) {
                    pool.set_active(threads);
                }
                if let (Some(m), Some(t)) = (&meter, care.as_ref().and_then(Care::temperature)) {
                    m.temperature(t);
                }
                Vec::new()
            }
        };
        let mut commits = 0;
        let mut stop = None;
        for action in actions {
            match action {
                Action::AppendLedger(record) => ledger
                    .append(&record)
                    .with_context(|| format!("writing the ledger in {}", dir.display()))?,
                Action::SaveVotes(bytes) => chain::save_votes(&dir, &bytes)
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
                Action::Stop(why) => stop = Some(node.stop_message(&why)),
                Action::Committed(c) => {
                    debug!(tx = c.tx, "committed");
                    commits += 1;
                    if let Some(r) = &reports {
                        let _ = r.send(Report {
                            node: name.clone(),
                            id: identity.id,
                            commit: c,
                        });
                    }
                }
            }
        }
        if let Some(m) = meter.as_mut() {
            m.protocol(&node, commits);
        }
        if let Some(s) = &seat {
            s.update(&node);
        }
        if status_due.is_none() && status_shown.is_some_and(|s| s != shown(&node)) {
            status_due = Some((status_sent + STATUS_GAP).into());
        }
        if announced {
            // Observers learn of a (re)connected node at once.
            status_due = Some(tokio::time::Instant::now());
            // Connected and announced: started, as far as systemd knows.
            notifier.ready(&status(&node, &pool, broker, hashrate));
        }
        if let Some(why) = stop {
            notifier.stopping();
            pool.stop();
            let goodbye = node.goodbye().into_iter().map(outgoing).collect();
            link.close(goodbye, Duration::from_secs(1)).await;
            return Err(NotAMember(why).into());
        }
    }

    notifier.stopping();
    info!("init: {name} leaving the cluster");
    pool.stop();
    let goodbye = node.goodbye().into_iter().map(outgoing).collect();
    link.close(goodbye, Duration::from_secs(1)).await;
    drop(pool);
    Ok(())
}
