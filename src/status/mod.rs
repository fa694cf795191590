//! `edgeminer status`: the operator's view of a whole cluster.
//!
//! An observer connects to the broker, subscribes to the nodes' keys,
//! presence, status, roster reports, challenges and commits (never to votes
//! or solutions) and
//! never publishes anything: it sets no last will and sends no message, so
//! it cannot disturb the cluster. [`collect`] turns the messages into a
//! picture of the cluster (pure, unit-tested); [`view`] prints it as text or
//! JSON. Without `--watch` it collects the retained messages for a settle
//! time (`--wait`), prints once and returns; with `--watch` it redraws every
//! second until stopped.

pub mod collect;
pub mod view;

use std::future::Future;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use rand_core::{OsRng, RngCore};
use tracing::debug;

use crate::config::BrokerSettings;
use crate::mqtt::{self, BrokerConfig, Event};
pub use collect::Collector;
pub use view::ClusterView;

/// How long to wait for a first connection before giving up.
const CONNECT_LIMIT: Duration = Duration::from_secs(10);
/// How often `--watch` redraws.
const REDRAW: Duration = Duration::from_secs(1);

/// What `edgeminer status` was asked for.
#[derive(Clone, Debug)]
pub struct Options {
    pub genesis: crate::protocol::Genesis,
    pub broker: BrokerSettings,
    /// How long to collect retained messages before printing once.
    pub wait: Duration,
    pub watch: bool,
    pub json: bool,
    /// Clear the screen before each redraw (stdout is a terminal).
    pub terminal: bool,
}

/// Clears a terminal and moves to its top left corner.
const CLEAR: &str = "\x1b[H\x1b[2J";

fn print(view: &ClusterView, opts: &Options, out: &mut impl Write) -> std::io::Result<()> {
    if opts.json {
        writeln!(out, "{}", view.to_json())?;
    } else if opts.watch && opts.terminal {
        write!(
            out,
            "{CLEAR}edgeminer status, every {} s (Ctrl-C to quit)\n\n{}",
            REDRAW.as_secs(),
            view.to_text()
        )?;
    } else {
        if opts.watch {
            writeln!(out)?;
        }
        write!(out, "{}", view.to_text())?;
    }
    out.flush()
}

/// Watches the cluster until done (after `wait` without `--watch`) or until
/// `shutdown` completes.
pub async fn run(opts: Options, shutdown: impl Future<Output = ()>) -> Result<()> {
    let mut collector = Collector::new(&opts.genesis);
    let broker = BrokerConfig {
        url: opts.broker.url.clone(),
        client_id: format!("edgeminer-status-{:08x}", OsRng.next_u32()),
        keep_alive_secs: 5,
        tls: opts.broker.tls.clone(),
        credentials: opts.broker.credentials.clone(),
    };
    // No last will, and the link is never used to publish.
    let (link, mut events) =
        mqtt::start(&broker, collector.topics().observer_subscriptions(), None)?;
    let start = Instant::now();
    let now = || start.elapsed().as_millis() as u64;
    let mut connected: Option<Instant> = None;
    // Once a second with --watch; otherwise often enough to end on time.
    let period = if opts.watch {
        REDRAW
    } else {
        Duration::from_millis(100)
    };
    let mut redraw = tokio::time::interval(period);
    redraw.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stdout = std::io::stdout();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            ev = events.recv() => match ev {
                Some(Event::Connected) => {
                    connected.get_or_insert_with(Instant::now);
                }
                Some(Event::Disconnected) => debug!("status: lost the broker; reconnecting"),
                Some(Event::Message { topic, payload, .. }) => {
                    if let Err(e) = collector.handle(&topic, &payload, now()) {
                        debug!("status: ignored a message on {topic}: {e}");
                    }
                }
                Some(Event::Fatal(why)) => bail!("{why}"),
                None => bail!("the MQTT client stopped"),
            },
            _ = redraw.tick() => {
                match connected {
                    None if start.elapsed() > CONNECT_LIMIT => bail!(
                        "could not reach the broker {} within {} s",
                        opts.broker.url,
                        CONNECT_LIMIT.as_secs()
                    ),
                    None => {}
                    Some(at) if !opts.watch && at.elapsed() >= opts.wait => {
                        print(&collector.view(now()), &opts, &mut stdout)?;
                        break;
                    }
                    Some(_) if !opts.watch => {}
                    Some(_) => print(&collector.view(now()), &opts, &mut stdout)?,
                }
            }
        }
    }
    link.close(Vec::new(), Duration::from_millis(500)).await;
    Ok(())
}
