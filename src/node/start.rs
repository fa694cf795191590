//! What a node does before its loop: load its key, open and re-verify its
//! ledger, build the protocol core on them, and start the broker
//! connection. A node that is no member of its cluster's roster stops here,
//! before it connects.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use rand_core::{OsRng, RngCore};
use tokio::sync::mpsc;
use tracing::info;

use super::{outgoing, NotAMember};
use crate::config::NodeConfig;
use crate::identity::{Identity, NodeId};
use crate::mqtt::{self, BrokerConfig, Event, Link};
use crate::pow::engine::Engine;
use crate::protocol::{Durable, Node};
use crate::store::ledger;

/// Who the node is: its id, and the name its roster gives it (the one
/// every other node shows).
#[derive(Clone, Debug)]
pub(super) struct Who {
    pub id: NodeId,
    pub name: String,
}

/// The state directory and the ledger file open in it.
pub(super) struct Store {
    pub dir: PathBuf,
    pub ledger: ledger::Ledger,
}

/// What the loop starts from.
pub(super) struct Opened {
    pub who: Who,
    pub store: Store,
    pub node: Node,
    pub clock: Clock,
}

/// The core's clock: milliseconds since the node started.
pub(super) struct Clock(Instant);

impl Clock {
    pub fn now(&self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }

    /// How long to sleep until the core's next timeout (`at`, on this
    /// clock); an hour without one.
    pub fn until(&self, at: Option<u64>) -> Duration {
        at.map(|t| Duration::from_millis(t.saturating_sub(self.now())))
            .unwrap_or(Duration::from_secs(3600))
    }
}

/// Loads the key, opens the ledger and builds the core; refuses a node
/// that is no member of its cluster ([`NotAMember`]).
pub(super) fn open(cfg: &NodeConfig, engine: &dyn Engine) -> Result<Opened> {
    let dir = cfg.storage.state_dir.clone();
    let identity = identity(cfg)?;
    let genesis = cfg.protocol.genesis.clone();
    let (ledger, head) = ledger::open(&dir, &genesis)
        .with_context(|| format!("opening the ledger in {}", dir.display()))?;
    let votes = ledger::load_votes(&dir)?;
    let mut protocol = cfg.protocol.clone();
    // The roster's name for this node is the one every other node shows.
    let chain = &head.chain;
    if let Some(n) = chain.roster().name(identity.id).filter(|n| !n.is_empty()) {
        protocol.name = n.to_string();
    }
    let name = protocol.name.clone();
    let roster = chain.roster();
    let (lo, hi) = genesis.difficulty();
    info!(
        "init: node {name} ({}) in cluster '{}' ({}): {} members, quorum {}, difficulty {lo}..{hi}, {} committed transactions, {} mining threads ({})",
        identity.id,
        genesis.cluster(),
        genesis.id(),
        roster.len(),
        roster.quorum(),
        chain.height(),
        cfg.mining.threads,
        engine.name()
    );

    let clock = Clock(Instant::now());
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);
    let durable = Durable { head, votes };
    let node = Node::builder(protocol, &identity)
        .rng_seed(seed)
        .incarnation(unix_millis())
        .durable(durable)
        .start(clock.now());
    if let Some(why) = node.refusal() {
        return Err(NotAMember(node.stop_message(&why)).into());
    }
    Ok(Opened {
        who: Who {
            id: identity.id,
            name,
        },
        store: Store { dir, ledger },
        node,
        clock,
    })
}

/// The key given in the configuration, or the one in the state directory
/// (made there on the first start).
fn identity(cfg: &NodeConfig) -> Result<Identity> {
    if let Some(key) = &cfg.storage.key {
        return Ok(key.clone());
    }
    let dir = &cfg.storage.state_dir;
    let (id, created) = Identity::load_or_create(dir)
        .with_context(|| format!("loading the node key from {}", dir.display()))?;
    if created {
        info!("init: created a new node key in {}", dir.display());
    }
    Ok(id)
}

/// Starts the broker connection (in the background), with the core's
/// subscriptions and last will.
pub(super) fn connect(
    cfg: &NodeConfig,
    id: NodeId,
    node: &Node,
) -> Result<(Link, mpsc::Receiver<Event>)> {
    let broker = BrokerConfig {
        url: cfg.broker.url.clone(),
        client_id: format!("edgeminer-{id}-{:04x}", OsRng.next_u32() & 0xffff),
        keep_alive_secs: 5,
        tls: cfg.broker.tls.clone(),
        credentials: cfg.broker.credentials.clone(),
    };
    let will = Some(outgoing(node.last_will()));
    mqtt::start(&broker, node.topics().subscriptions(), will)
        .with_context(|| format!("connecting to the broker {}", cfg.broker.url))
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
