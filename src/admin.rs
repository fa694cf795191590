//! `edgeminer roster`: the operator's membership commands.
//!
//! `show` prints the roster in force as the members report it. `add`,
//! `remove` and `quorum` ask the cluster for a change: they learn the
//! roster in force the same way (an observer, as `edgeminer status` is),
//! check the change against it, sign it with the admin key that the genesis
//! names, publish it retained on `roster/<admin-id>`, and wait until the
//! members report the new roster, which a transaction has then committed.
//! The change names the roster it applies to, so a request based on a
//! report that was out of date, or a lie, applies to nothing (the command
//! then says so when its wait is over).

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rand_core::{OsRng, RngCore};

use crate::config::BrokerSettings;
use crate::identity::{Identity, NodeId};
use crate::mqtt::{self, BrokerConfig, Event, Outgoing};
use crate::protocol::roster::sign_change;
use crate::protocol::{quorum, Genesis, Roster};
use crate::status::Collector;
use crate::wire::roster::Entry;
use crate::wire::{Change, Family};

/// What the operator asks for.
#[derive(Clone, Debug)]
pub enum Request {
    Add(Vec<Entry>),
    Remove(Vec<NodeId>),
    Quorum(usize),
}

/// How long to collect reports and to wait for the commit.
#[derive(Clone, Debug)]
pub struct Timing {
    pub settle: Duration,
    pub wait: Duration,
}

/// How long to wait for a first connection before giving up.
const CONNECT_LIMIT: Duration = Duration::from_secs(10);

/// The change a request makes of `roster`: the members sorted, and the
/// quorum given, else a majority of the new roster when the one in force is
/// a majority of its roster, else the one in force.
pub fn change_for(roster: &Roster, request: &Request, quorum: Option<usize>) -> Result<Change> {
    let (mut add, mut remove) = (Vec::new(), Vec::new());
    let size = match request {
        Request::Add(entries) => {
            add = entries.clone();
            roster.len() + entries.len()
        }
        Request::Remove(ids) => {
            remove = ids.clone();
            roster.len().saturating_sub(ids.len())
        }
        Request::Quorum(_) => roster.len(),
    };
    add.sort();
    remove.sort();
    let quorum = match (request, quorum) {
        (Request::Quorum(q), None) => *q,
        (Request::Quorum(_), Some(_)) => bail!("give the quorum once"),
        (_, Some(q)) => q,
        (_, None) if roster.quorum() == quorum::majority(roster.len()) => quorum::majority(size),
        (_, None) => roster.quorum(),
    };
    let change = Change {
        base: roster.hash(),
        quorum: quorum as u32,
        add,
        remove,
    };
    roster.apply(&change, 0).with_context(|| {
        format!(
            "this change cannot apply to the roster in force (version {})",
            roster.version()
        )
    })?;
    Ok(change)
}

/// The admin key, which must be the one the genesis names.
pub fn admin_key(genesis: &Genesis, path: &Path) -> Result<Identity> {
    let Some(admin) = genesis.admin_id() else {
        bail!(
            "the genesis of cluster '{}' names no admin key: its roster is fixed for good (see \"Recovery\" in PROTOCOL.md for a new genesis)",
            genesis.cluster()
        );
    };
    let key = Identity::load(path)
        .with_context(|| format!("reading the admin key {}", path.display()))?;
    if key.id != admin {
        bail!(
            "{} is not the admin key of cluster '{}': its id is {}, the genesis names {admin}",
            path.display(),
            genesis.cluster(),
            key.id
        );
    }
    Ok(key)
}

/// An observer's connection and what it collected.
struct Watch {
    link: mqtt::Link,
    events: tokio::sync::mpsc::Receiver<Event>,
    collector: Collector,
    start: Instant,
}

impl Watch {
    fn open(genesis: &Genesis, broker: &BrokerSettings) -> Result<Watch> {
        let collector = Collector::new(genesis);
        let cfg = BrokerConfig {
            url: broker.url.clone(),
            client_id: format!("edgeminer-roster-{:08x}", OsRng.next_u32()),
            keep_alive_secs: 5,
            tls: broker.tls.clone(),
            credentials: broker.credentials.clone(),
        };
        let (link, events) = mqtt::start(&cfg, collector.topics().observer_subscriptions(), None)?;
        Ok(Watch {
            link,
            events,
            collector,
            start: Instant::now(),
        })
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Collects messages until `done` says so or `limit` passes; whether
    /// `done` said so.
    async fn until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&Collector) -> bool,
    ) -> Result<bool> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if done(&self.collector) {
                return Ok(true);
            }
            let ev = tokio::select! {
                ev = self.events.recv() => ev,
                _ = tokio::time::sleep_until(deadline) => return Ok(false),
            };
            match ev {
                Some(Event::Message { topic, payload, .. }) => {
                    let now = self.now();
                    let _ = self.collector.handle(&topic, &payload, now);
                }
                Some(Event::Fatal(why)) => bail!("{why}"),
                Some(_) => {}
                None => bail!("the MQTT client stopped"),
            }
        }
    }

    /// Connects, then collects the retained reports for `settle`.
    async fn settle(&mut self, url: &str, settle: Duration) -> Result<()> {
        let mut connected = false;
        let deadline = tokio::time::Instant::now() + CONNECT_LIMIT;
        while !connected {
            let ev = tokio::select! {
                ev = self.events.recv() => ev,
                _ = tokio::time::sleep_until(deadline) => bail!("could not reach the broker {url} within {} s", CONNECT_LIMIT.as_secs()),
            };
            match ev {
                Some(Event::Connected) => connected = true,
                Some(Event::Message { topic, payload, .. }) => {
                    let now = self.now();
                    let _ = self.collector.handle(&topic, &payload, now);
                }
                Some(Event::Fatal(why)) => bail!("{why}"),
                Some(Event::Disconnected) => {}
                None => bail!("the MQTT client stopped"),
            }
        }
        self.until(settle, |_| false).await?;
        Ok(())
    }
}

/// The roster in force and how many members report it, with a line per
/// member saying whether it is online.
fn describe(c: &Collector, now: u64) -> (Roster, usize, String) {
    let (roster, reporters) = c.roster_reports();
    let view = c.view(now);
    let mut text = format!(
        "cluster {} ({}): roster version {}, {} members, quorum {}, in force since tx {} (reported by {} of them)\n",
        view.cluster, view.cluster_id, roster.version(), roster.len(), roster.quorum(), roster.since(), reporters
    );
    for n in &view.nodes {
        text.push_str(&format!(
            "  {:<16} {}  {}\n",
            n.name,
            n.id,
            if n.online { "online" } else { "offline" }
        ));
    }
    (roster, reporters, text)
}

/// `edgeminer roster show`.
pub async fn show(
    genesis: &Genesis,
    broker: &BrokerSettings,
    timing: Timing,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let mut w = Watch::open(genesis, broker)?;
    tokio::select! {
        r = w.settle(&broker.url, timing.settle) => r?,
        _ = shutdown => return Ok(()),
    }
    let (_, reporters, text) = describe(&w.collector, w.now());
    print!("{text}");
    if reporters == 0 {
        println!(
            "(no member reports a roster: this is the genesis roster; are the nodes running?)"
        );
    }
    w.link.close(Vec::new(), Duration::from_millis(500)).await;
    Ok(())
}

/// `edgeminer roster add|remove|quorum`: asks for the change and waits
/// for its commit.
pub async fn change(
    genesis: &Genesis,
    broker: &BrokerSettings,
    admin: &Identity,
    request: Request,
    quorum: Option<usize>,
    timing: Timing,
) -> Result<()> {
    let mut w = Watch::open(genesis, broker)?;
    w.settle(&broker.url, timing.settle).await?;
    let (roster, reporters, text) = describe(&w.collector, w.now());
    if reporters == 0 {
        bail!(
            "no member of cluster '{}' reports its roster on {}: are the nodes running, and is this their broker? (a change needs a running cluster to commit it)",
            genesis.cluster(),
            broker.url
        );
    }
    print!("{text}");
    let change = change_for(&roster, &request, quorum)?;
    let next = roster.apply(&change, 0)?;
    let online = w
        .collector
        .view(w.now())
        .nodes
        .iter()
        .filter(|n| n.online)
        .count();
    println!(
        "asking for version {}: {} members, quorum {}",
        next.version(),
        next.len(),
        next.quorum()
    );
    if next.quorum() > online + change.add.len() {
        println!(
            "warning: {online} members are online now; the new roster needs {} for every commit",
            next.quorum()
        );
    }
    let payload = sign_change(genesis, &admin.key, change);
    w.link.publish(Outgoing {
        topic: w.collector.topics().own(Family::Roster, admin.id),
        payload,
        retain: true,
    });
    let want = next.hash();
    let committed = w
        .until(timing.wait, |c| c.roster_reports().0.hash() == want)
        .await?;
    let (now_roster, reporters) = w.collector.roster_reports();
    w.link.close(Vec::new(), Duration::from_secs(1)).await;
    if !committed {
        bail!(
            "the change was not committed within {} s (the members report version {}); the request stays on the broker, retained, and a leader proposes it while it applies to the roster in force",
            timing.wait.as_secs(),
            now_roster.version()
        );
    }
    println!(
        "committed: roster version {} is in force from tx {} ({} members report it)",
        now_roster.version(),
        now_roster.since(),
        reporters
    );
    Ok(())
}
