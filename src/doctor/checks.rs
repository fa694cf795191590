//! The local checks of `edgeminer doctor`: each looks at one thing and
//! gives one finding (or a few), with the command that fixes it.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Finding, Level};
use crate::config::{BrokerSettings, FileConfig, NodeConfig};
use crate::credentials;
use crate::identity::{Identity, NodeId};
use crate::mqtt::tls;
use crate::pow::engine;
use crate::protocol::Genesis;
use crate::store::{ledger, records};
use crate::thermal;

/// The system clock: not behind this program's build (a board without a
/// real-time clock boots at its last shutdown's time, or 1970), and
/// synchronised.
pub fn clock() -> Finding {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let built = std::env::current_exe()
        .and_then(std::fs::metadata)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs());
    clock_finding(now, built, ntp_synchronised())
}

/// [`clock`]'s judgement, from the time now, the binary's time and the
/// kernel's synchronisation flag.
pub fn clock_finding(now: u64, built: Option<u64>, synced: Option<bool>) -> Finding {
    let shown = utc(now);
    if built.is_some_and(|b| now + 86_400 < b) {
        return Finding::new(
            "clock",
            Level::Fail,
            format!("{shown}: earlier than this program was built ({})", utc(built.unwrap_or(0))),
        )
        .fix("set the clock: `sudo timedatectl set-ntp true` (systemd-timesyncd), or `sudo date -s ...`; TLS refuses certificates that are not valid yet");
    }
    match synced {
        Some(false) => Finding::new(
            "clock",
            Level::Warn,
            format!("{shown}, not synchronised (the kernel's NTP flag is off)"),
        )
        .fix("`sudo timedatectl set-ntp true`, and check `timedatectl timesync-status`: a clock that drifts makes TLS and the logs wrong"),
        Some(true) => Finding::new("clock", Level::Ok, format!("{shown}, synchronised")),
        None => Finding::new("clock", Level::Ok, shown),
    }
}

/// Whether the kernel says the clock is synchronised (what `timedatectl`
/// shows as "System clock synchronized").
fn ntp_synchronised() -> Option<bool> {
    // SAFETY: adjtimex with modes 0 only reads into the zeroed struct.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut tx) };
    (state >= 0).then_some(state != libc::TIME_ERROR)
}

/// `YYYY-MM-DD HH:MM:SS UTC` for seconds since 1970 (civil from days,
/// after Howard Hinnant's algorithm).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub fn genesis(g: &Genesis) -> Finding {
    let (lo, hi) = g.difficulty();
    let admin = if g.admin().is_some() {
        "an admin key"
    } else {
        "no admin key (the members never change)"
    };
    Finding::new(
        "genesis",
        Level::Ok,
        format!(
            "cluster '{}' ({}): {}, quorum {}, difficulty {lo}..{hi}, {admin}",
            g.cluster(),
            g.id(),
            members(g.members().len()),
            g.quorum()
        ),
    )
}

fn members(n: usize) -> String {
    if n == 1 {
        "1 member".to_string()
    } else {
        format!("{n} members")
    }
}

/// The name of user `uid` in /etc/passwd.
fn user_name(uid: u32) -> Option<String> {
    passwd().find(|(_, u)| *u == uid).map(|(n, _)| n)
}

fn uid_of(name: &str) -> Option<u32> {
    passwd().find(|(n, _)| n == name).map(|(_, u)| u)
}

fn passwd() -> impl Iterator<Item = (String, u32)> {
    let text = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let users: Vec<(String, u32)> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?.to_string();
            let uid = f.nth(1)?.parse().ok()?;
            Some((name, uid))
        })
        .collect();
    users.into_iter()
}

/// The state directory: there, private, and owned by the service's user
/// when the package made one.
pub fn state_dir(dir: &Path) -> Finding {
    let shown = dir.display();
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Finding::new("state", Level::Note, format!("{shown} does not exist yet"))
                .fix(format!("the service makes it at its first start (StateDirectory=); a key made before the genesis goes there: `sudo -u edgeminer edgeminer keygen --state-dir {shown}`"));
        }
        Err(e) => {
            return Finding::new("state", Level::Fail, format!("{shown}: {e}"))
                .fix("run as root (`sudo edgeminer doctor`) or as the node's user")
        }
    };
    if !meta.is_dir() {
        return Finding::new("state", Level::Fail, format!("{shown} is not a directory"));
    }
    let mode = meta.permissions().mode() & 0o777;
    let owner = user_name(meta.uid()).unwrap_or_else(|| meta.uid().to_string());
    let text = format!("{shown}: owner {owner}, mode {mode:o}");
    if mode & 0o077 != 0 {
        return Finding::new(
            "state",
            Level::Warn,
            format!("{text}: others can read the node's key and ledger"),
        )
        .fix(format!("sudo chmod 700 {shown}"));
    }
    match uid_of("edgeminer") {
        Some(uid) if uid != meta.uid() && meta.uid() != 0 => Finding::new(
            "state",
            Level::Warn,
            format!("{text}, but the service runs as edgeminer"),
        )
        .fix(format!("sudo chown -R edgeminer:edgeminer {shown}")),
        _ => Finding::new("state", Level::Ok, text),
    }
}

/// The node's key: present, private, loadable. Its id when it is.
pub fn key(dir: &Path, out: &mut Vec<Finding>) -> Option<NodeId> {
    let path = dir.join("node.key");
    let shown = path.display();
    let missing = match std::fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            out.push(
                Finding::new("key", Level::Skip, format!("{shown}: {e}"))
                    .fix("run as root (`sudo edgeminer doctor`) or as the node's user"),
            );
            return None;
        }
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        Ok(_) => false,
    };
    if missing {
        out.push(
            Finding::new("key", Level::Fail, format!("no {shown}"))
                .fix(format!("a key made at the first start is in no genesis: make it first, `sudo -u edgeminer edgeminer keygen --state-dir {}`, and put the id it prints in the cluster's genesis (or add it with `edgeminer roster add`)", dir.display())),
        );
        return None;
    }
    if let Err(e) = credentials::check_private(&path) {
        out.push(Finding::new("key", Level::Fail, e.to_string()));
        return None;
    }
    match Identity::load(&path) {
        Ok(id) => {
            out.push(Finding::new(
                "key",
                Level::Ok,
                format!("{shown}: node id {}", id.id),
            ));
            Some(id.id)
        }
        Err(e) => {
            out.push(Finding::new("key", Level::Fail, format!("{shown}: {e}")));
            None
        }
    }
}

/// The ledger's cluster against the genesis, and whether a node runs on it.
/// [`ledger::peek`]'s answer for the state directory.
type Peeked = Result<Option<ledger::Peek>, ledger::LedgerError>;

pub fn ledger(dir: &Path, genesis: &Genesis, peek: &Peeked) -> Finding {
    let peek = match peek {
        Ok(Some(p)) => p,
        Ok(None) => return Finding::new("ledger", Level::Ok, "none yet (made at the first start)"),
        Err(ledger::LedgerError::Ledger(records::RecordError::Io { error, .. }))
            if error.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            return Finding::new("ledger", Level::Skip, "cannot read it")
                .fix("run as root (`sudo edgeminer doctor`) or as the node's user")
        }
        Err(e) => {
            return Finding::new("ledger", Level::Fail, e.to_string()).fix(format!(
                "`edgeminer verify --state-dir {}` says which record",
                dir.display()
            ))
        }
    };
    let found = &peek.genesis;
    if found.id() != genesis.id() {
        return Finding::new(
            "ledger",
            Level::Fail,
            format!(
                "{} holds the ledger of cluster '{}' ({}), not of this genesis's '{}' ({})",
                dir.display(),
                found.cluster(),
                found.id(),
                genesis.cluster(),
                genesis.id()
            ),
        )
        .fix(format!("use the genesis that made this ledger, or start this board anew: stop the node, then `sudo mv {0}/ledger.bin {0}/ledger.old`", dir.display()));
    }
    let running = if records::in_use(dir) {
        ", in use by a running node"
    } else {
        ""
    };
    Finding::new(
        "ledger",
        Level::Ok,
        format!(
            "cluster '{}', {:.1} MB{running}",
            found.cluster(),
            peek.bytes as f64 / 1e6
        ),
    )
}

/// Whether this node is in the roster in force: the rosters file's when
/// the node has one, else the genesis's.
pub fn member(genesis: &Genesis, id: Option<NodeId>, peek: &Peeked) -> Finding {
    let Some(id) = id else {
        return Finding::new("member", Level::Skip, "needs the node's key");
    };
    let (roster, since) = match peek {
        Ok(Some(ledger::Peek {
            genesis: g,
            roster: Some(Ok((height, r))),
            ..
        })) if g.id() == genesis.id() => (r.clone(), format!("as of tx {height}")),
        _ => (genesis.roster(), "of the genesis".to_string()),
    };
    if let Some(name) = roster.name(id) {
        return Finding::new(
            "member",
            Level::Ok,
            format!(
                "{name} ({id}) is in the roster ({since}): {}, quorum {}",
                members(roster.len()),
                roster.quorum()
            ),
        );
    }
    let names: Vec<_> = roster.entries().into_iter().map(|e| e.name).collect();
    let text = format!(
        "this node ({id}) is not in cluster '{}''s roster {since} (members: {})",
        genesis.cluster(),
        names.join(", ")
    );
    let fix = format!(
        "with the admin key: `edgeminer roster add {id}`; or this board has the wrong genesis file"
    );
    // With an admin key the members may have changed since; without one
    // they never do.
    let level = if genesis.admin().is_some() {
        Level::Warn
    } else {
        Level::Fail
    };
    Finding::new("member", level, text).fix(fix)
}

/// The TLS files and the login, when the broker is TLS or asks for one.
pub fn tls(broker: &BrokerSettings) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(files) = &broker.tls {
        let mut text = format!("CA {}", files.ca_file.display());
        if let Some(c) = &files.client {
            text.push_str(&format!(", client certificate {}", c.cert.display()));
        }
        out.push(match tls::client_config(files) {
            Ok(_) => Finding::new("tls", Level::Ok, format!("{text} load")),
            Err(e) => Finding::new("tls", Level::Fail, e.to_string()),
        });
    }
    if let Some(c) = &broker.credentials {
        out.push(Finding::new(
            "login",
            Level::Ok,
            format!("username {}", c.username),
        ));
    }
    out
}

/// The temperature sensor thermal care reads.
pub fn thermal(cfg: Option<&NodeConfig>, file: Option<&FileConfig>) -> Finding {
    let settings = cfg.and_then(|c| c.mining.thermal.as_ref());
    let Some(t) = settings else {
        let off = file.is_some_and(|f| f.thermal == Some(false));
        return if off {
            Finding::new(
                "thermal",
                Level::Note,
                "off (`thermal = false` in the configuration)",
            )
        } else if Path::new(thermal::DEFAULT_PATH).exists() {
            Finding::new("thermal", Level::Skip, "needs a valid configuration")
        } else {
            Finding::new(
                "thermal",
                Level::Note,
                format!(
                    "no sensor at {}: mining runs without thermal care",
                    thermal::DEFAULT_PATH
                ),
            )
        };
    };
    let (soft, hard) = (t.limits.soft_c, t.limits.hard_c);
    match thermal::read(&t.path) {
        Ok(c) if c >= soft => Finding::new(
            "thermal",
            Level::Warn,
            format!(
                "{c:.1} °C at {}: at or above {soft} °C, mining runs on fewer threads",
                t.path.display()
            ),
        )
        .fix("a heatsink or a fan; or raise thermal_soft_c / thermal_hard_c in the configuration"),
        Ok(c) => Finding::new(
            "thermal",
            Level::Ok,
            format!(
                "{c:.1} °C at {} (fewer threads above {soft} °C, none above {hard} °C)",
                t.path.display()
            ),
        ),
        Err(e) => Finding::new("thermal", Level::Fail, e.to_string())
            .fix("set thermal_path to this board's sensor, or `thermal = false`"),
    }
}

/// The mining engine this CPU gets, and its speed on one thread.
pub fn engine(cfg: Option<&NodeConfig>) -> Finding {
    let e = engine::best();
    let rate = engine::calibrate(e, std::time::Duration::from_millis(200));
    let threads = cfg.map(|c| c.mining.threads).unwrap_or_else(num_cpus::get);
    Finding::new(
        "engine",
        Level::Ok,
        format!(
            "{}: {:.1} MH/s on one thread, {threads} mining threads",
            e.name(),
            rate / 1e6
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_796_690_442), "2026-12-08 00:40:42 UTC");
    }

    #[test]
    fn a_clock_behind_the_build_fails_and_an_unsynchronised_one_warns() {
        let built = 1_796_690_442;
        let f = clock_finding(1_000, Some(built), Some(false));
        assert_eq!(f.level, Level::Fail);
        assert!(f.text.starts_with("1970-01-01"), "{}", f.text);
        assert!(f.fix.is_some_and(|x| x.contains("timedatectl")));
        // A day of slack: a package built in another time zone, or a board
        // a few hours behind, is not a stopped clock.
        assert_eq!(
            clock_finding(built - 3_600, Some(built), Some(true)).level,
            Level::Ok
        );
        assert_eq!(
            clock_finding(built + 9, Some(built), Some(false)).level,
            Level::Warn
        );
        assert_eq!(clock_finding(built + 9, None, None).level, Level::Ok);
    }
}
