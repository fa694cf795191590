//! Where the node stands, read once and shown to everyone who watches it:
//! systemd's status line and watchdog ([`crate::service`]), the retained
//! status message for observers ([`crate::protocol::status`]), Prometheus
//! metrics ([`crate::metrics`]) and the progress line ([`crate::progress`]).
//! Thermal care ([`crate::thermal`]) lives here too: its readings are part
//! of the picture, and it sets how many of the pool's threads mine.
//!
//! The core's side of [`Standing`] changes only when the core handles an
//! input, so it is read after every output of the core; the driver's side
//! (broker, hash rate, threads, temperature) when it is measured. Every
//! audience takes it from there, so they never disagree. systemd's status
//! line goes out at every status period and within a second of a new
//! phase, transaction, round, leader or broker state.
//!
//! On reload, thermal care and the metrics endpoint take their new settings
//! here ([`Telemetry::reload`]).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tracing::info;
use tracing::warn;

use super::start::Who;
use super::{outgoing, Misconfigured};
use crate::config::{NodeConfig, Reload, ThermalSettings};
use crate::identity::NodeId;
use crate::metrics::{self, Metrics};
use crate::miner::Pool;
use crate::mqtt::Link;
use crate::progress::{Board, Seat};
use crate::protocol::status::Measured;
use crate::protocol::{Node, Phase};
use crate::service::{self, Broker, Notifier, Status};
use crate::standing::Standing;
use crate::thermal::Care;

/// What makes a status message worth sending before the next period: the
/// committed height, the round and the leader.
type Shown = (u64, u32, Option<NodeId>);

/// What makes systemd's status line worth sending before the next period:
/// the broker, the phase, and what a status message shows.
type Line = (Broker, Phase, Shown);

impl Standing {
    fn new(node: &Node, pool: &Pool) -> Standing {
        let mut s = Standing {
            phase: node.phase(),
            height: 0,
            round: 0,
            leader: None,
            difficulty: None,
            commits: 0,
            broker: Broker::Connecting,
            hashrate: 0.0,
            active: pool.active(),
            threads: pool.threads(),
            temperature: None,
        };
        s.read(node, 0);
        s
    }

    /// The core's side, after an output that committed `commits`
    /// transactions.
    fn read(&mut self, node: &Node, commits: u64) {
        self.phase = node.phase();
        self.height = node.height();
        self.round = node.round();
        self.leader = node.leader().map(|id| (id, node.name_of(id)));
        self.difficulty = node.difficulty();
        self.commits = commits;
    }

    /// The transaction under way.
    pub fn tx(&self) -> u64 {
        self.height + 1
    }

    fn shown(&self) -> Shown {
        (self.height, self.round, self.leader.as_ref().map(|l| l.0))
    }

    fn line(&self) -> Line {
        (self.broker, self.phase, self.shown())
    }

    /// systemd's status line.
    fn status(&self) -> Status {
        Status {
            broker: self.broker,
            phase: self.phase,
            tx: self.tx(),
            round: self.round,
            leader: self.leader.as_ref().map(|l| l.1.clone()),
            hashrate: self.hashrate,
            active: self.active,
            threads: self.threads,
        }
    }

    /// The driver's half of the status message for observers.
    fn measured(&self) -> Measured {
        let small = |n: usize| n.min(usize::from(u16::MAX)) as u16;
        Measured {
            // Rounded down to whole candidates per second; never negative.
            hashrate: self.hashrate.max(0.0) as u64,
            active: small(self.active),
            threads: small(self.threads),
            cores: small(num_cpus::get()),
            temp_mc: self.temperature.map(|c| (c * 1000.0).round() as i32),
        }
    }
}

/// At most one status message per this long, besides the periodic one.
const STATUS_GAP: Duration = Duration::from_secs(1);

/// When the next update is due: the status message for observers, or
/// systemd's status line. Every status period, within a gap of a change of
/// what the last one showed (so that it follows a fast cluster without
/// flooding its audience), and, for the message, at once after a
/// (re)connect.
#[derive(Debug)]
struct Schedule<T> {
    gap: Duration,
    due: Option<Instant>,
    /// What the last one showed, and when it went out.
    last: Option<(T, Instant)>,
}

impl<T: Copy + PartialEq> Schedule<T> {
    fn new(gap: Duration) -> Schedule<T> {
        Schedule {
            gap,
            due: None,
            last: None,
        }
    }

    fn at(&mut self, when: Instant) {
        self.due = Some(when);
    }

    fn sent(&mut self, shown: T, now: Instant) {
        self.last = Some((shown, now));
    }

    /// After an output: a change of what the last one showed makes the
    /// next one due a gap after it, unless one is due already.
    fn moved(&mut self, shown: T) {
        if let (None, Some((before, at))) = (self.due, self.last) {
            if before != shown {
                self.due = Some(at + self.gap);
            }
        }
    }
}

/// What woke the telemetry.
pub(super) enum Due {
    /// The status period: systemd's line and watchdog, the pool's figures.
    Period,
    /// The status message for observers.
    Message,
    /// systemd's status line, after a change.
    Line,
    /// Thermal care's next reading.
    Thermal,
}

/// The audiences and the timers that pace them.
pub(super) struct Telemetry {
    standing: Standing,
    notifier: Notifier,
    period: Interval,
    /// The pool's candidate count at the last period, and when.
    mark: (std::time::Instant, u64),
    message: Schedule<Shown>,
    line: Schedule<Line>,
    thermal: Option<(Care, Interval)>,
    metrics: Option<Metrics>,
    /// Serves `metrics` until the node stops.
    _server: Option<metrics::Server>,
    seat: Option<Seat>,
    /// For a metrics endpoint started on reload.
    who: Who,
    connects: u64,
    /// Connected since the last output: the node announced itself in it.
    announced: bool,
}

impl Telemetry {
    /// Starts the metrics endpoint, takes a seat on the progress board and
    /// starts thermal care; then tells systemd the node is started (its
    /// status says that it is connecting to the broker).
    pub fn start(
        cfg: &NodeConfig,
        who: &Who,
        node: &Node,
        pool: &Pool,
        notifier: Notifier,
        progress: Option<Arc<Board>>,
    ) -> Result<Telemetry> {
        let (metrics, server) = serve_metrics(cfg, who, pool)?.unzip();
        let mut tele = Telemetry {
            standing: Standing::new(node, pool),
            period: every(notifier.period()),
            notifier,
            mark: (std::time::Instant::now(), 0),
            message: Schedule::new(STATUS_GAP),
            line: Schedule::new(service::LINE_GAP),
            thermal: thermal(cfg, pool),
            metrics,
            _server: server,
            seat: progress.map(|board| board.seat(pool.meter())),
            connects: 0,
            announced: false,
            who: who.clone(),
        };
        tele.notifier.ready(&tele.standing.status());
        tele.line.sent(tele.standing.line(), Instant::now());
        Ok(tele)
    }

    /// The next timer to fire.
    pub async fn due(&mut self) -> Due {
        tokio::select! {
            _ = self.period.tick() => Due::Period,
            _ = until(self.message.due) => Due::Message,
            _ = until(self.line.due) => Due::Line,
            _ = next_tick(&mut self.thermal) => Due::Thermal,
        }
    }

    pub fn on(&mut self, due: Due, node: &Node, pool: &Pool, link: &Link, now_ms: u64) {
        match due {
            Due::Period => self.tick_period(pool),
            Due::Message => self.publish_status(node, link, now_ms),
            Due::Line => {
                self.line.due = None;
                self.notifier.status(&self.standing.status());
                self.line.sent(self.standing.line(), Instant::now());
            }
            Due::Thermal => self.read_temperature(pool, now_ms),
        }
    }

    fn tick_period(&mut self, pool: &Pool) {
        let (at, hashes) = (std::time::Instant::now(), pool.hashes());
        let s = &mut self.standing;
        s.hashrate = service::hashrate(self.mark.1, hashes, at - self.mark.0);
        self.mark = (at, hashes);
        self.notifier.tick(&s.status());
        (self.line.due, self.line.last) = (None, Some((s.line(), Instant::now())));
        if let Some(m) = &mut self.metrics {
            m.mining(metrics::Mining {
                candidates: hashes,
                hashrate: s.hashrate,
                active: s.active,
            });
        }
        self.message.at(Instant::now());
    }

    /// Observers' view (`edgeminer status`), retained; only while
    /// connected, so a reconnect does not flush a backlog of them.
    fn publish_status(&mut self, node: &Node, link: &Link, now_ms: u64) {
        self.message.due = None;
        if self.standing.broker == Broker::Connected {
            link.publish(outgoing(
                node.status_message(self.standing.measured(), now_ms),
            ));
            self.message.sent(self.standing.shown(), Instant::now());
        }
    }

    fn read_temperature(&mut self, pool: &Pool, now_ms: u64) {
        let Some((care, _)) = &mut self.thermal else {
            return;
        };
        if let Some(threads) = care.check(now_ms) {
            pool.set_active(threads);
        }
        self.standing.active = pool.active();
        self.standing.temperature = care.temperature();
        if let (Some(m), Some(t)) = (&self.metrics, self.standing.temperature) {
            m.temperature(t);
        }
    }

    pub fn connected(&mut self) {
        (self.standing.broker, self.announced) = (Broker::Connected, true);
        self.connects += 1;
        if let Some(m) = &self.metrics {
            m.connected(self.connects > 1);
        }
    }

    pub fn disconnected(&mut self) {
        self.standing.broker = Broker::Lost;
        if let Some(m) = &self.metrics {
            m.disconnected();
        }
    }

    /// The ledger file's size and what the last output wrote, for metrics.
    pub fn disk(&mut self, ledger_bytes: u64, written: u64) {
        if let Some(m) = &mut self.metrics {
            m.disk(ledger_bytes, written);
        }
    }

    /// After every output of the core (empty ones too): the core's side of
    /// the standing, to every audience.
    pub fn after_output(&mut self, node: &Node, commits: u64) {
        self.standing.read(node, commits);
        if let Some(m) = &mut self.metrics {
            m.protocol(&self.standing, node);
        }
        if let Some(seat) = &self.seat {
            seat.update(&self.standing);
        }
        self.message.moved(self.standing.shown());
        self.line.moved(self.standing.line());
        if std::mem::take(&mut self.announced) {
            // Observers learn of a (re)connected node at once.
            self.message.at(Instant::now());
        }
    }

    /// Takes the reloaded settings `cfg` that `changed` names: thermal care
    /// and the metrics endpoint. A metrics address that cannot be served
    /// keeps the endpoint where it was.
    pub fn reload(&mut self, cfg: &NodeConfig, changed: &Reload, pool: &Pool) {
        if changed.thermal {
            self.reload_thermal(cfg.mining.thermal.as_ref(), pool);
        }
        if changed.metrics {
            self.reload_metrics(cfg, pool);
        }
    }

    fn reload_thermal(&mut self, t: Option<&ThermalSettings>, pool: &Pool) {
        match (t, &mut self.thermal) {
            (None, _) => {
                self.thermal = None;
                pool.set_active(pool.threads());
                self.standing.active = pool.active();
                self.standing.temperature = None;
                info!("reload: thermal care off, mining with every thread");
            }
            (Some(t), Some((care, timer))) => {
                // Where the controller stands (threads, last step) stays.
                care.reconfigure(t.path.clone(), t.limits);
                if timer.period() != Duration::from_millis(t.interval_ms) {
                    *timer = every(Duration::from_millis(t.interval_ms));
                }
                log_thermal("reload: ", t);
            }
            (Some(t), None) => {
                let care = Care::new(t.path.clone(), t.limits, pool.threads());
                self.thermal = Some((care, every(Duration::from_millis(t.interval_ms))));
                log_thermal("reload: ", t);
            }
        }
    }

    fn reload_metrics(&mut self, cfg: &NodeConfig, pool: &Pool) {
        let Some(addr) = cfg.metrics_addr else {
            self._server = None;
            self.metrics = None;
            info!("reload: metrics endpoint off");
            return;
        };
        let metrics = self
            .metrics
            .take()
            .unwrap_or_else(|| new_metrics(cfg, &self.who, pool));
        // The old endpoint goes first: the new address may be the same
        // port on another interface.
        let old = self._server.take().map(|s| s.addr());
        match metrics::Server::start(addr, metrics.registry()) {
            Ok(server) => {
                info!(
                    "reload: serving metrics on http://{}/metrics",
                    server.addr()
                );
                self._server = Some(server);
            }
            Err(e) => {
                warn!("reload: {e}; metrics_addr stays as it was");
                self._server = old.and_then(|a| metrics::Server::start(a, metrics.registry()).ok());
            }
        }
        self.metrics = Some(metrics);
    }

    /// systemd hears that a reload started.
    pub fn reloading(&mut self) {
        self.notifier.reloading();
    }

    /// systemd hears that the reload is done, with the status line.
    pub fn reloaded(&mut self) {
        self.notifier.reloaded(&self.standing.status());
        self.line.sent(self.standing.line(), Instant::now());
    }

    /// Leaving: systemd shows the unit as deactivating.
    pub fn stopping(&mut self) {
        self.notifier.stopping();
    }
}

/// The metrics and their endpoint, when the configuration asks for them.
/// The endpoint is up before the broker answers, so a scraper sees a node
/// that cannot connect (broker_connected 0).
fn serve_metrics(
    cfg: &NodeConfig,
    who: &Who,
    pool: &Pool,
) -> Result<Option<(Metrics, metrics::Server)>> {
    let Some(addr) = cfg.metrics_addr else {
        return Ok(None);
    };
    let m = new_metrics(cfg, who, pool);
    // An address this board cannot serve is a setting to fix, not a
    // failure a restart mends.
    let server = metrics::Server::start(addr, m.registry())
        .map_err(|e| Misconfigured(format!("{e} (metrics_addr, --metrics-addr)")))?;
    info!("init: serving metrics on http://{}/metrics", server.addr());
    Ok(Some((m, server)))
}

fn new_metrics(cfg: &NodeConfig, who: &Who, pool: &Pool) -> Metrics {
    let genesis = &cfg.protocol.genesis;
    Metrics::new(&metrics::Identity {
        cluster: genesis.cluster().to_string(),
        cluster_id: genesis.id().to_string(),
        node: who.name.clone(),
        id: who.id.to_string(),
        engine: pool.engine_name(),
        threads: pool.threads(),
    })
}

/// Thermal care and its timer, when the configuration asks for it.
fn thermal(cfg: &NodeConfig, pool: &Pool) -> Option<(Care, Interval)> {
    let t = cfg.mining.thermal.as_ref()?;
    log_thermal("", t);
    let care = Care::new(t.path.clone(), t.limits, pool.threads());
    Some((care, every(Duration::from_millis(t.interval_ms))))
}

fn log_thermal(prefix: &str, t: &ThermalSettings) {
    info!(
        "{prefix}thermal: reading {} every {} ms; fewer threads above {} °C, paused above {} °C",
        t.path.display(),
        t.interval_ms,
        t.limits.soft_c,
        t.limits.hard_c
    );
}

/// A timer that ticks every `period`, late ticks delayed rather than bunched.
fn every(period: Duration) -> Interval {
    let mut i = tokio::time::interval(period);
    i.set_missed_tick_behavior(MissedTickBehavior::Delay);
    i
}

/// The next tick of an optional timer; never, without one.
async fn next_tick(timer: &mut Option<(Care, Interval)>) {
    match timer {
        Some((_, t)) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Sleeps until `due`, or for ever without one.
async fn until(due: Option<Instant>) {
    match due {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Phase;

    fn standing() -> Standing {
        Standing {
            phase: Phase::Challenge,
            height: 12,
            round: 1,
            leader: Some(("0123456789abcdef".parse().expect("an id"), "pi-02".into())),
            difficulty: Some(22),
            commits: 0,
            broker: Broker::Connected,
            hashrate: 41_260_000.7,
            active: 3,
            threads: 4,
            temperature: Some(61.2345),
        }
    }

    #[test]
    fn every_audience_sees_the_same_standing() {
        let s = standing();
        assert_eq!(
            s.status().to_string(),
            "mining, tx 13 round 1, leader pi-02, 41.3 MH/s on 3 of 4 threads (too hot)"
        );
        let m = s.measured();
        assert_eq!((m.hashrate, m.active, m.threads), (41_260_000, 3, 4));
        assert_eq!(m.temp_mc, Some(61_235));
        assert_eq!(s.shown(), (12, 1, s.leader.as_ref().map(|l| l.0)));
        let cold = Standing {
            hashrate: -1.0,
            temperature: None,
            ..standing()
        };
        assert_eq!(
            (cold.measured().hashrate, cold.measured().temp_mc),
            (0, None)
        );
    }

    #[test]
    fn the_status_message_follows_changes_a_gap_apart() {
        let t0 = Instant::now();
        let (a, b): (Shown, Shown) = ((1, 0, None), (2, 0, None));
        let mut s = Schedule::new(STATUS_GAP);
        s.moved(a);
        assert_eq!(s.due, None, "nothing sent yet: only the period sends");
        s.at(t0);
        s.due = None;
        s.sent(a, t0);
        s.moved(a);
        assert_eq!(s.due, None, "nothing new to show");
        s.moved(b);
        assert_eq!(s.due, Some(t0 + STATUS_GAP));
        s.at(t0);
        s.moved(b);
        assert_eq!(s.due, Some(t0), "a message already due stays due");
    }
}
