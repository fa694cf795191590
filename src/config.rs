//! Validated configuration, grouped by concern, from flags over a TOML file.
//!
//! Flags win over the file; anything invalid is refused here with a message
//! that names the setting, so the rest of the program can trust its inputs.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::cli::RunArgs;
use crate::protocol::{self, quorum};
use crate::wire::topics::valid_cluster_name;

/// The broker a node connects to.
#[derive(Clone, Debug)]
pub struct BrokerSettings {
    pub url: String,
}

/// How the node mines.
#[derive(Clone, Debug)]
pub struct MiningSettings {
    pub threads: usize,
}

/// Where the node keeps its state and which key it uses.
#[derive(Clone, Debug)]
pub struct StorageSettings {
    pub state_dir: PathBuf,
    pub ephemeral_key: bool,
}

/// Everything `edgeminer run` needs.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub protocol: protocol::Config,
    pub broker: BrokerSettings,
    pub mining: MiningSettings,
    pub storage: StorageSettings,
}

/// The TOML file; every key is optional and flags override it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub cluster: Option<String>,
    pub nodes: Option<usize>,
    pub quorum: Option<usize>,
    pub broker: Option<String>,
    pub name: Option<String>,
    pub threads: Option<usize>,
    pub difficulty: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub election_timeout_ms: Option<u64>,
    pub solution_window_ms: Option<u64>,
    pub init_timeout_ms: Option<u64>,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the configuration file {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("in the configuration file {}", path.display()))
    }
}

pub const DEFAULT_BROKER: &str = "mqtt://127.0.0.1:1883";
pub const DEFAULT_DIFFICULTY: (u8, u8) = (16, 20);

/// Parses `A..B`, `A..=B` or `A` into an inclusive range of leading zero bits.
pub fn parse_difficulty(s: &str) -> Result<(u8, u8)> {
    let s = s.trim();
    let (a, b) = match s.split_once("..") {
        Some((a, b)) => (a, b.trim_start_matches('=')),
        None => (s, s),
    };
    let lo: u8 = a
        .trim()
        .parse()
        .with_context(|| format!("difficulty '{s}': expected A..B"))?;
    let hi: u8 = b
        .trim()
        .parse()
        .with_context(|| format!("difficulty '{s}': expected A..B"))?;
    if lo == 0 || hi < lo || hi > crate::pow::MAX_DIFFICULTY {
        bail!(
            "difficulty '{s}': need 1 <= A <= B <= {}",
            crate::pow::MAX_DIFFICULTY
        );
    }
    Ok((lo, hi))
}

/// Checks the cluster-wide settings.
pub fn check_cluster(cluster: &str, nodes: usize, quorum: usize) -> Result<()> {
    if !valid_cluster_name(cluster) {
        bail!("cluster name '{cluster}': use 1 to 64 of A-Z a-z 0-9 _ -");
    }
    if nodes == 0 || nodes > 64 {
        bail!("--nodes {nodes}: a cluster has 1 to 64 nodes");
    }
    if quorum * 2 <= nodes || quorum > nodes {
        bail!(
            "--quorum {quorum}: must be more than half of --nodes {nodes} (so that two quorums always share a node) and at most {nodes}"
        );
    }
    Ok(())
}

impl NodeConfig {
    pub fn from_args(args: &RunArgs) -> Result<NodeConfig> {
        let file = match &args.config {
            Some(p) => FileConfig::load(p)?,
            None => FileConfig::default(),
        };
        let Some(cluster) = args.cluster.clone().or(file.cluster) else {
            bail!("no cluster name: give --cluster NAME (or `cluster` in the configuration file)");
        };
        let Some(nodes) = args.nodes.or(file.nodes) else {
            bail!("no cluster size: give --nodes N (or `nodes` in the configuration file)");
        };
        let Some(state_dir) = args.state_dir.clone().or(file.state_dir) else {
            bail!("no state directory: give --state-dir DIR (or `state_dir` in the configuration file)");
        };
        let quorum = args
            .quorum
            .or(file.quorum)
            .unwrap_or_else(|| quorum::majority(nodes));
        check_cluster(&cluster, nodes, quorum)?;
        let difficulty = match args.difficulty.clone().or(file.difficulty) {
            Some(s) => parse_difficulty(&s)?,
            None => DEFAULT_DIFFICULTY,
        };
        let threads = args.threads.or(file.threads).unwrap_or_else(num_cpus::get);
        if threads == 0 || threads > 1024 {
            bail!("--threads {threads}: use 1 to 1024");
        }
        let name = args
            .name
            .clone()
            .or(file.name)
            .unwrap_or_else(crate::identity::hostname);
        if name.is_empty() || name.len() > 32 {
            bail!("--name '{name}': use 1 to 32 characters");
        }
        let broker = args
            .broker
            .clone()
            .or(file.broker)
            .unwrap_or_else(|| DEFAULT_BROKER.to_string());
        Ok(NodeConfig {
            protocol: protocol::Config {
                cluster,
                nodes,
                quorum,
                difficulty,
                election_timeout_ms: file.election_timeout_ms.unwrap_or(5_000),
                solution_window_ms: file.solution_window_ms.unwrap_or(100),
                init_timeout_ms: file.init_timeout_ms.unwrap_or(15_000),
                name,
                threads: threads.min(u16::MAX as usize) as u16,
            },
            broker: BrokerSettings { url: broker },
            mining: MiningSettings { threads },
            storage: StorageSettings {
                state_dir,
                ephemeral_key: args.ephemeral_key,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn difficulty_ranges() {
        assert_eq!(parse_difficulty("16..20").expect("valid"), (16, 20));
        assert_eq!(parse_difficulty("16..=20").expect("valid"), (16, 20));
        assert_eq!(parse_difficulty("18").expect("valid"), (18, 18));
        assert!(parse_difficulty("20..16").is_err());
        assert!(parse_difficulty("0..4").is_err());
        assert!(parse_difficulty("1..200").is_err());
        assert!(parse_difficulty("x").is_err());
    }

    #[test]
    fn quorum_must_intersect() {
        assert!(check_cluster("lab", 4, 3).is_ok());
        assert!(check_cluster("lab", 4, 2).is_err());
        assert!(check_cluster("lab", 3, 4).is_err());
        assert!(check_cluster("a/b", 3, 2).is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<FileConfig>("clustr = \"x\"").is_err());
        let f: FileConfig = toml::from_str("cluster = \"lab\"\nnodes = 5").expect("valid file");
        assert_eq!(f.nodes, Some(5));
    }
}
