//! Validated configuration, grouped by concern, from flags over a TOML file.
//!
//! Flags win over the file; anything invalid is refused here with a message
//! that names the setting, so the rest of the program can trust its inputs.
//! Paths of TLS files and of a credentials file may be flags; a password
//! never is: it comes from the file (which must then be private) or from a
//! credentials file.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::cli::RunArgs;
use crate::credentials::{self, Credentials, Secret};
use crate::mqtt::{self, ClientCert, TlsFiles};
use crate::protocol::{self, quorum};
use crate::wire::topics::valid_cluster_name;

/// The broker a node connects to, and how it proves who it is.
#[derive(Clone, Debug)]
pub struct BrokerSettings {
    pub url: String,
    /// For `mqtts://` URLs.
    pub tls: Option<TlsFiles>,
    pub credentials: Option<Credentials>,
}

impl BrokerSettings {
    /// A plain broker without credentials.
    pub fn plain(url: impl Into<String>) -> BrokerSettings {
        BrokerSettings {
            url: url.into(),
            tls: None,
            credentials: None,
        }
    }
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
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub credentials_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the configuration file {}", path.display()))?;
        let file: FileConfig = toml::from_str(&text)
            .with_context(|| format!("in the configuration file {}", path.display()))?;
        if file.password.is_some() {
            credentials::check_private(path).context(
                "the configuration file holds a `password` (or move it to a `credentials_file`)",
            )?;
        }
        Ok(file)
    }
}

/// The TLS files and credentials, from flags over the file.
fn broker_settings(args: &RunArgs, file: &FileConfig, url: String) -> Result<BrokerSettings> {
    let endpoint = mqtt::parse_url(&url)?;
    let ca_file = args.ca_file.clone().or(file.ca_file.clone());
    let cert = args.client_cert.clone().or(file.client_cert.clone());
    let key = args.client_key.clone().or(file.client_key.clone());
    let client = match (cert, key) {
        (Some(cert), Some(key)) => Some(ClientCert { cert, key }),
        (None, None) => None,
        _ => bail!("--client-cert and --client-key go together (a certificate and its key)"),
    };
    let tls = match (endpoint.tls, ca_file) {
        (true, Some(ca_file)) => Some(TlsFiles { ca_file, client }),
        (true, None) => bail!(
            "the broker URL {url} is TLS (mqtts://): give the CA certificate that signed the broker's with --ca-file FILE (or `ca_file` in the configuration file)"
        ),
        (false, ca) if ca.is_some() || client.is_some() => bail!(
            "--ca-file, --client-cert and --client-key are for TLS, but the broker URL {url} is plain MQTT: use mqtts://HOST[:8883]"
        ),
        (false, _) => None,
    };
    let in_file = (file.username.clone(), file.password.clone());
    let credentials = match (&args.credentials_file, &file.credentials_file, in_file) {
        (Some(path), _, _) | (None, Some(path), (None, None)) => Some(credentials::load(path)?),
        (None, Some(_), _) => bail!(
            "the configuration file gives both `credentials_file` and `username`/`password`: keep one"
        ),
        (None, None, (Some(username), Some(password))) => Some(Credentials { username, password }),
        (None, None, (None, None)) => None,
        (None, None, (Some(_), None)) => {
            bail!("the configuration file gives a `username` without a `password`")
        }
        (None, None, (None, Some(_))) => {
            bail!("the configuration file gives a `password` without a `username`")
        }
    };
    Ok(BrokerSettings {
        url,
        tls,
        credentials,
    })
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
        let url = args
            .broker
            .clone()
            .or(file.broker.clone())
            .unwrap_or_else(|| DEFAULT_BROKER.to_string());
        let broker = broker_settings(args, &file, url)?;
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
            broker,
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

    fn run_args(extra: &[&str]) -> RunArgs {
        use clap::Parser;
        let mut argv = vec!["edgeminer", "run", "--cluster", "lab", "--nodes", "3"];
        argv.extend_from_slice(&["--state-dir", "/nonexistent/edgeminer"]);
        argv.extend_from_slice(extra);
        match crate::cli::Cli::try_parse_from(argv)
            .expect("valid flags")
            .command
        {
            crate::cli::Command::Run(a) => *a,
            other => panic!("`run` parsed as {other:?}"),
        }
    }

    fn refusal(extra: &[&str]) -> String {
        format!(
            "{:#}",
            NodeConfig::from_args(&run_args(extra)).expect_err("refused")
        )
    }

    #[test]
    fn tls_settings_match_the_url() {
        assert!(refusal(&["--broker", "mqtts://b"]).contains("--ca-file"));
        assert!(refusal(&["--broker", "mqtt://b", "--ca-file", "ca.crt"]).contains("mqtts://"));
        let e = refusal(&[
            "--broker",
            "mqtts://b",
            "--ca-file",
            "c",
            "--client-cert",
            "x",
        ]);
        assert!(e.contains("--client-key"), "{e}");
        let cfg = NodeConfig::from_args(&run_args(&["--broker", "mqtts://b", "--ca-file", "c"]))
            .expect("valid");
        assert_eq!(cfg.broker.tls.expect("tls").ca_file, PathBuf::from("c"));
    }

    #[test]
    fn a_password_in_the_configuration_file_needs_a_private_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("edgeminer.toml");
        std::fs::write(&path, "username = \"n1\"\npassword = \"hunter2\"\n").expect("write");
        let flag = ["--config", path.to_str().expect("utf-8 temp path")];
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = refusal(&flag);
        assert!(e.contains("chmod 600") && !e.contains("hunter2"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let cfg = NodeConfig::from_args(&run_args(&flag)).expect("private file");
        let creds = cfg.broker.credentials.clone().expect("credentials");
        assert_eq!(
            (creds.username.as_str(), creds.password.expose()),
            ("n1", "hunter2")
        );
        assert!(!format!("{cfg:?}").contains("hunter2"));
        std::fs::write(&path, "credentials_file = \"c\"\nusername = \"n1\"\n").expect("write");
        assert!(refusal(&flag).contains("keep one"));
    }
}
