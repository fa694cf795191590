//! `edgeminer doctor`: on a board, one screen that says what is wrong with
//! its setup and what to do about it, before (or instead of) reading the
//! journal. Each check is a line: ok, note, warn or FAIL, with the fix
//! under it. Nothing is written: the state directory is looked at without
//! the lock or the files a starting node makes, so it is safe beside a
//! running node and as root.
//!
//! The checks follow what a node needs, in the order it needs it: a clock
//! (TLS certificates have validity dates), its configuration and genesis,
//! its state directory and key, membership of its cluster's roster, the
//! TLS files and login, the broker's answer, the thermal sensor, the
//! mining engine, and last the systemd unit. A check that needs an earlier
//! one's result is skipped when that one failed.

mod checks;
mod render;
mod service;

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{DoctorArgs, RunArgs};
use crate::config::{FileConfig, NodeConfig};
use crate::mqtt::{self, BrokerConfig};
use crate::store::ledger;

pub use render::{failed, render};

/// Where the packaged service keeps its state.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/edgeminer";

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    /// Worth knowing; nothing to do.
    Note,
    /// Works, but probably not as meant.
    Warn,
    /// The node cannot run (or cannot join) like this.
    Fail,
    /// Not checked: an earlier check failed.
    Skip,
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// What was checked, one word.
    pub what: &'static str,
    pub level: Level,
    pub text: String,
    /// What to do, when there is something to do.
    pub fix: Option<String>,
}

impl Finding {
    pub fn new(what: &'static str, level: Level, text: impl Into<String>) -> Finding {
        Finding {
            what,
            level,
            text: text.into(),
            fix: None,
        }
    }

    pub fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = Some(fix.into());
        self
    }
}

/// Runs every check; the findings in order.
pub async fn run(args: &DoctorArgs) -> Vec<Finding> {
    let mut out = vec![checks::clock()];
    let (config, file) = load_config(args, &mut out);
    let state_dir = state_dir(args, file.as_ref());
    if let Some(cfg) = &config {
        out.push(checks::genesis(&cfg.protocol.genesis));
    }
    // A file that does not parse may name another state directory.
    let key = if file.is_none() && args.state_dir.is_none() {
        for what in ["state", "key"] {
            out.push(Finding::new(
                what,
                Level::Skip,
                "needs the configuration's state_dir (or --state-dir)",
            ));
        }
        None
    } else {
        out.push(checks::state_dir(&state_dir));
        checks::key(&state_dir, &mut out)
    };
    match &config {
        Some(cfg) => {
            // Read once for both: the genesis record and the rosters file.
            let peek = ledger::peek(&state_dir);
            out.push(checks::ledger(&state_dir, &cfg.protocol.genesis, &peek));
            out.push(checks::member(&cfg.protocol.genesis, key, &peek));
            out.extend(checks::tls(&cfg.broker));
            out.push(broker(cfg, args.timeout).await);
        }
        None => {
            for what in ["ledger", "member", "broker"] {
                out.push(Finding::new(
                    what,
                    Level::Skip,
                    "needs a valid configuration",
                ));
            }
        }
    }
    out.push(checks::thermal(config.as_ref(), file.as_ref()));
    out.push(checks::engine(config.as_ref()));
    out.push(service::service());
    out
}

/// The state directory: the flag's, else the file's, else the packaged
/// service's.
fn state_dir(args: &DoctorArgs, file: Option<&FileConfig>) -> PathBuf {
    args.state_dir
        .clone()
        .or(file.and_then(|f| f.state_dir.clone()))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
}

/// The configuration as `edgeminer run` would read it with the unit's
/// flags; a finding either way.
fn load_config(
    args: &DoctorArgs,
    out: &mut Vec<Finding>,
) -> (Option<NodeConfig>, Option<FileConfig>) {
    let path = &args.config;
    if !path.exists() {
        out.push(
            Finding::new("config", Level::Fail, format!("no {}", path.display())).fix(
                "install the package (it ships /etc/edgeminer/config.toml), or name the file with --config FILE",
            ),
        );
        return (None, None);
    }
    let file = match FileConfig::load(path) {
        Ok(f) => f,
        Err(e) => {
            out.push(Finding::new("config", Level::Fail, format!("{e:#}")));
            return (None, None);
        }
    };
    let mut run = RunArgs {
        genesis: args.genesis.clone(),
        state_dir: Some(state_dir(args, Some(&file))),
        broker: args.broker.clone(),
        name: None,
        threads: None,
        config: Some(path.clone()),
        thermal_path: None,
        no_thermal: false,
        metrics_addr: None,
        gone: Default::default(),
    };
    if let Some(f) = handed_over(&file, args) {
        run.broker.credentials_file = Some(f.1.clone());
        out.push(Finding::new(
            "login",
            Level::Note,
            format!(
                "{} exists while the service runs: checked its source {} (LoadCredential=)",
                f.0.display(),
                f.1.display()
            ),
        ));
    }
    match NodeConfig::from_args(&run) {
        Ok(cfg) => {
            out.push(Finding::new(
                "config",
                Level::Ok,
                format!(
                    "{}: broker {}, {} mining threads",
                    path.display(),
                    cfg.broker.url,
                    cfg.mining.threads
                ),
            ));
            (Some(cfg), Some(file))
        }
        Err(e) => {
            let text = format!("{e:#}");
            let hint = text.contains("/run/credentials/").then_some(
                "files under /run/credentials/ exist while the service runs (systemd hands them over with LoadCredential=): start it, or run doctor with --credentials-file and the source file",
            );
            let mut f = Finding::new("config", Level::Fail, text);
            if let Some(h) = hint {
                f = f.fix(h);
            }
            out.push(f);
            (None, Some(file))
        }
    }
}

/// A credentials file systemd hands the service (under
/// /run/credentials/edgeminer.service/, there only while it runs) and the
/// file it comes from, when the doctor runs outside the service.
fn handed_over(file: &FileConfig, args: &DoctorArgs) -> Option<(PathBuf, PathBuf)> {
    let path = file.credentials_file.as_ref()?;
    let id = path
        .strip_prefix("/run/credentials/edgeminer.service")
        .ok()?
        .to_str()?;
    if args.broker.credentials_file.is_some() || path.exists() {
        return None;
    }
    Some((path.clone(), service::credential_source(id)?))
}

/// The broker's answer to one connection with the node's settings (its
/// own client id, so a running node is not pushed off).
async fn broker(cfg: &NodeConfig, timeout: f64) -> Finding {
    let settings = &cfg.broker;
    let probe = BrokerConfig {
        url: settings.url.clone(),
        client_id: format!("edgeminer-doctor-{}", std::process::id()),
        keep_alive_secs: 5,
        tls: settings.tls.clone(),
        credentials: settings.credentials.clone(),
    };
    let login = settings
        .credentials
        .as_ref()
        .map(|c| format!(" as {}", c.username))
        .unwrap_or_default();
    let started = std::time::Instant::now();
    let wait = Duration::from_secs_f64(timeout.clamp(0.5, 120.0));
    match mqtt::probe(&probe, wait).await {
        Ok(()) => Finding::new(
            "broker",
            Level::Ok,
            format!(
                "{} accepted a connection{login} in {} ms",
                settings.url,
                started.elapsed().as_millis()
            ),
        ),
        // The explanation names the fix (see mqtt::diagnose).
        Err(why) => Finding::new("broker", Level::Fail, format!("{}: {why}", settings.url)),
    }
}
