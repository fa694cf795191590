//! Validated configuration, grouped by concern, from flags over a TOML file.
//!
//! Flags win over the file; anything invalid is refused here with a message
//! that names the setting, so the rest of the program can trust its inputs.
//! Paths of TLS files and of a credentials file may be flags; a password
//! never is: it comes from the file (which must then be private) or from a
//! credentials file.
//!
//! Every error from here is a configuration error: `edgeminer run` exits
//! with code 78 (`EX_CONFIG`) on it, which the systemd unit does not retry.
//!
//! A running node reads its file and flags again on SIGHUP
//! ([`NodeConfig::reread`]); [`NodeConfig::reload`] then says which
//! settings it can take at once (log level, thermal care, metrics address)
//! and which wait for a restart.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::cli::{BrokerArgs, GoneArgs, RunArgs};
use crate::credentials::{self, Credentials, Secret};
use crate::identity::Identity;
use crate::logging::Verbosity;
use crate::mqtt::{self, ClientCert, TlsFiles};
use crate::protocol::{self, Genesis};
use crate::thermal::{self, Limits};

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
    /// Thermal care; `None` when off or when the board has no sensor.
    pub thermal: Option<ThermalSettings>,
}

/// Where the SoC's temperature is read, how often, and the limits.
#[derive(Clone, Debug, PartialEq)]
pub struct ThermalSettings {
    pub path: PathBuf,
    pub limits: Limits,
    pub interval_ms: u64,
}

/// Where the node keeps its state and which key it uses.
#[derive(Clone)]
pub struct StorageSettings {
    pub state_dir: PathBuf,
    /// The key to use instead of the state directory's `node.key` (the
    /// demo's throw-away keys, made before its genesis).
    pub key: Option<Identity>,
}

impl std::fmt::Debug for StorageSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageSettings")
            .field("state_dir", &self.state_dir)
            .field("key", &self.key.as_ref().map(|k| k.id))
            .finish()
    }
}

/// Everything `edgeminer run` needs.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub protocol: protocol::Config,
    pub broker: BrokerSettings,
    pub mining: MiningSettings,
    pub storage: StorageSettings,
    /// Where to serve Prometheus metrics; `None`: no metrics endpoint.
    pub metrics_addr: Option<SocketAddr>,
    /// This crate's log level from the file (`log_level`); `-q`, `-v` and
    /// `RUST_LOG` win over it.
    pub log_level: Option<Verbosity>,
    /// The flags the node was started with, read again with the file on
    /// reload; `None` for a node that cannot reload (the demo's).
    pub source: Option<Arc<RunArgs>>,
}

/// The TOML file; every key is optional and flags override it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub genesis: Option<PathBuf>,
    /// Keys of earlier versions that the genesis now fixes: refused with a
    /// message that says so (read, so that the message can be that one).
    pub cluster: Option<toml::Value>,
    pub nodes: Option<toml::Value>,
    pub quorum: Option<toml::Value>,
    pub difficulty: Option<toml::Value>,
    pub broker: Option<String>,
    pub name: Option<String>,
    pub threads: Option<usize>,
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
    pub thermal: Option<bool>,
    pub thermal_path: Option<PathBuf>,
    pub thermal_soft_c: Option<f64>,
    pub thermal_hard_c: Option<f64>,
    pub thermal_hysteresis_c: Option<f64>,
    pub thermal_interval_ms: Option<u64>,
    pub thermal_dwell_ms: Option<u64>,
    pub metrics_addr: Option<String>,
    pub log_level: Option<String>,
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

/// The genesis and broker settings of an observer (`edgeminer status`,
/// `edgeminer roster`), from flags over a node's configuration file.
pub fn observer_settings(
    genesis: Option<&Path>,
    broker: &BrokerArgs,
    config: Option<&Path>,
) -> Result<(Genesis, BrokerSettings)> {
    let file = match config {
        Some(p) => FileConfig::load(p)?,
        None => FileConfig::default(),
    };
    let Some(path) = genesis.map(Path::to_path_buf).or(file.genesis.clone()) else {
        bail!("no genesis: give --genesis FILE, the cluster's genesis file (or `genesis` in the configuration file given with --config)");
    };
    let genesis = crate::genesis_file::load(&path)?;
    let broker = broker_settings(broker, &file)?;
    Ok((genesis, broker))
}

/// Refuses the flags and keys of earlier versions that the genesis fixes
/// now, saying so.
fn refuse_gone(flags: &GoneArgs, file: &FileConfig) -> Result<()> {
    let gone = [
        ("cluster", flags.cluster.is_some() || file.cluster.is_some()),
        ("nodes", flags.nodes.is_some() || file.nodes.is_some()),
        ("quorum", flags.quorum.is_some() || file.quorum.is_some()),
        (
            "difficulty",
            flags.difficulty.is_some() || file.difficulty.is_some(),
        ),
    ];
    if let Some((name, _)) = gone.iter().find(|(_, given)| *given) {
        bail!(
            "`{name}` (--{name}) is no setting of a node any more: a cluster's name, members, quorum and difficulty are fixed in its genesis file (`edgeminer genesis`), which every node is given with --genesis FILE (or `genesis` in the configuration file)"
        );
    }
    if flags.ephemeral_key {
        bail!(
            "--ephemeral-key: a throw-away key can be no member of a cluster's roster; `edgeminer demo` runs a whole cluster of throw-away keys"
        );
    }
    Ok(())
}

/// The broker URL, TLS files and credentials, from flags over the file.
fn broker_settings(args: &BrokerArgs, file: &FileConfig) -> Result<BrokerSettings> {
    let url = args
        .url
        .clone()
        .or(file.broker.clone())
        .unwrap_or_else(|| DEFAULT_BROKER.to_string());
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

/// Thermal care's defaults: act before the firmware of a Pi 4 or 5, which
/// throttles the clock at 80 °C.
pub const DEFAULT_THERMAL: ThermalDefaults = ThermalDefaults {
    soft_c: 70.0,
    hard_c: 80.0,
    hysteresis_c: 5.0,
    interval_ms: 5_000,
    dwell_ms: 15_000,
};

/// See [`DEFAULT_THERMAL`].
pub struct ThermalDefaults {
    pub soft_c: f64,
    pub hard_c: f64,
    pub hysteresis_c: f64,
    pub interval_ms: u64,
    pub dwell_ms: u64,
}

/// Hotter than any SoC is rated for: a limit above it is a typo.
const MAX_LIMIT_C: f64 = 125.0;

/// Checks the thermal keys (also when thermal care is off, so that a bad
/// value never waits to be found) and finds the sensor.
///
/// The default sensor path missing (a PC, a container) is not an error:
/// one warning, and the node mines without thermal care. A path given
/// explicitly (`thermal_path`, `--thermal-path`, or `thermal = true` for the
/// default one) that cannot be read is refused, so that a typo never turns
/// the protection off unnoticed.
fn thermal_settings(args: &RunArgs, file: &FileConfig) -> Result<Option<ThermalSettings>> {
    let d = &DEFAULT_THERMAL;
    let soft = file.thermal_soft_c.unwrap_or(d.soft_c);
    let hard = file.thermal_hard_c.unwrap_or(d.hard_c);
    let hysteresis = file.thermal_hysteresis_c.unwrap_or(d.hysteresis_c);
    let interval_ms = file.thermal_interval_ms.unwrap_or(d.interval_ms);
    let dwell_ms = file.thermal_dwell_ms.unwrap_or(d.dwell_ms);
    if !(soft.is_finite() && soft > 0.0) {
        bail!("thermal_soft_c = {soft}: use a temperature in °C above 0");
    }
    if !(hard.is_finite() && hard <= MAX_LIMIT_C) {
        bail!("thermal_hard_c = {hard}: use a temperature in °C up to {MAX_LIMIT_C}");
    }
    if soft >= hard {
        bail!("thermal_soft_c = {soft} must be below thermal_hard_c = {hard}");
    }
    if !(hysteresis.is_finite() && hysteresis > 0.0 && hysteresis < soft) {
        bail!(
            "thermal_hysteresis_c = {hysteresis}: must be more than 0 and less than thermal_soft_c = {soft}"
        );
    }
    if !(100..=600_000).contains(&interval_ms) {
        bail!("thermal_interval_ms = {interval_ms}: use 100 to 600000 (10 minutes)");
    }
    if dwell_ms > 3_600_000 {
        bail!("thermal_dwell_ms = {dwell_ms}: use at most 3600000 (an hour)");
    }
    let on = args.thermal_path.is_some() || (!args.no_thermal && file.thermal != Some(false));
    if !on {
        return Ok(None);
    }
    let explicit = args.thermal_path.clone().or(file.thermal_path.clone());
    let path = explicit
        .clone()
        .unwrap_or_else(|| PathBuf::from(thermal::DEFAULT_PATH));
    if let Err(e) = thermal::read(&path) {
        if explicit.is_some() || file.thermal == Some(true) {
            bail!(
                "thermal care: {e} (fix `thermal_path` or --thermal-path, or set `thermal = false` on a board without a sensor)"
            );
        }
        tracing::warn!(
            "thermal: no temperature sensor ({e}); mining without thermal care (`thermal = false` in the configuration file silences this)"
        );
        return Ok(None);
    }
    Ok(Some(ThermalSettings {
        path,
        limits: Limits {
            soft_c: soft,
            hard_c: hard,
            hysteresis_c: hysteresis,
            dwell_ms,
        },
        interval_ms,
    }))
}

/// Parses the metrics endpoint's address: an IP address and a port.
pub fn parse_metrics_addr(s: &str) -> Result<SocketAddr> {
    s.trim().parse().map_err(|_| {
        anyhow::anyhow!(
            "metrics address '{s}': use IP:PORT, such as 0.0.0.0:9848 (every interface), 127.0.0.1:9848 or [::]:9848"
        )
    })
}

/// Parses the file's `log_level`.
pub fn parse_log_level(s: &str) -> Result<Verbosity> {
    match s.trim() {
        "warn" => Ok(Verbosity::Quiet),
        "info" => Ok(Verbosity::Normal),
        "debug" => Ok(Verbosity::Debug),
        "trace" => Ok(Verbosity::Trace),
        _ => bail!("log_level = \"{s}\": use \"warn\", \"info\", \"debug\" or \"trace\""),
    }
}

/// The file's name of a log level.
pub fn log_level_name(v: Verbosity) -> &'static str {
    match v {
        Verbosity::Quiet => "warn",
        Verbosity::Normal => "info",
        Verbosity::Debug => "debug",
        Verbosity::Trace => "trace",
    }
}

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

impl NodeConfig {
    pub fn from_args(args: &RunArgs) -> Result<NodeConfig> {
        let file = match &args.config {
            Some(p) => FileConfig::load(p)?,
            None => FileConfig::default(),
        };
        refuse_gone(&args.gone, &file)?;
        let broker = broker_settings(&args.broker, &file)?;
        let Some(genesis) = args.genesis.clone().or(file.genesis.clone()) else {
            bail!("no genesis: give --genesis FILE, the cluster's genesis file written by `edgeminer genesis` (or `genesis` in the configuration file)");
        };
        let genesis = crate::genesis_file::load(&genesis)?;
        let Some(state_dir) = args.state_dir.clone().or(file.state_dir.clone()) else {
            bail!("no state directory: give --state-dir DIR (or `state_dir` in the configuration file)");
        };
        let threads = args.threads.or(file.threads).unwrap_or_else(num_cpus::get);
        if threads == 0 || threads > 1024 {
            bail!("--threads {threads}: use 1 to 1024");
        }
        let name = args
            .name
            .clone()
            .or(file.name.clone())
            .unwrap_or_else(crate::identity::hostname);
        if name.is_empty() || name.len() > 32 {
            bail!("--name '{name}': use 1 to 32 characters");
        }
        let thermal = thermal_settings(args, &file)?;
        let metrics_addr = match args.metrics_addr.clone().or(file.metrics_addr.clone()) {
            Some(s) => Some(parse_metrics_addr(&s)?),
            None => None,
        };
        let log_level = file.log_level.as_deref().map(parse_log_level).transpose()?;

        let protocol = protocol::Config {
            genesis: Arc::new(genesis),
            election_timeout_ms: file.election_timeout_ms.unwrap_or(5_000),
            solution_window_ms: file.solution_window_ms.unwrap_or(100),
            init_timeout_ms: file.init_timeout_ms.unwrap_or(15_000),
            name,
            threads: threads.min(u16::MAX as usize) as u16,
        };
        protocol.check_timing()?;
        Ok(NodeConfig {
            protocol,
            broker,
            mining: MiningSettings { threads, thermal },
            storage: StorageSettings {
                state_dir,
                key: None,
            },
            metrics_addr,
            log_level,
            source: Some(Arc::new(args.clone())),
        })
    }

    /// The same flags and file again, as the node was started with: the
    /// configuration a reload asks for. `None` for a node without flags.
    pub fn reread(&self) -> Option<Result<NodeConfig>> {
        self.source.as_deref().map(NodeConfig::from_args)
    }

    /// Takes from `new` what a running node can change (log level, thermal
    /// care, metrics address) and returns what changed: those applied and
    /// the settings that wait for a restart, by name.
    pub fn reload(&mut self, new: &NodeConfig) -> Reload {
        let mut r = Reload::default();
        if self.log_level != new.log_level {
            self.log_level = new.log_level;
            r.log_level = true;
        }
        if self.mining.thermal != new.mining.thermal {
            self.mining.thermal = new.mining.thermal.clone();
            r.thermal = true;
        }
        if self.metrics_addr != new.metrics_addr {
            self.metrics_addr = new.metrics_addr;
            r.metrics = true;
        }
        let (a, b) = (&self.protocol, &new.protocol);
        let fixed = [
            ("genesis", a.genesis.id() != b.genesis.id()),
            ("name", a.name != b.name),
            ("threads", self.mining.threads != new.mining.threads),
            (
                "election_timeout_ms",
                a.election_timeout_ms != b.election_timeout_ms,
            ),
            (
                "solution_window_ms",
                a.solution_window_ms != b.solution_window_ms,
            ),
            ("init_timeout_ms", a.init_timeout_ms != b.init_timeout_ms),
            ("broker", self.broker.url != new.broker.url),
            (
                "ca_file, client_cert, client_key",
                self.broker.tls != new.broker.tls,
            ),
            (
                "credentials_file, username, password",
                self.broker.credentials != new.broker.credentials,
            ),
            ("state_dir", self.storage.state_dir != new.storage.state_dir),
        ];
        r.restart = fixed
            .iter()
            .filter(|(_, changed)| *changed)
            .map(|(name, _)| *name)
            .collect();
        r
    }
}

/// What a reload changed ([`NodeConfig::reload`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reload {
    pub log_level: bool,
    pub thermal: bool,
    pub metrics: bool,
    /// Settings that changed in the file or flags but apply only from the
    /// next start: the node keeps running with the values it started with.
    pub restart: Vec<&'static str>,
}

#[cfg(test)]
mod tests;
