//! The doctor's look at the systemd unit: installed, enabled, running, or
//! failed and why. Asks `systemctl show` (the only place the doctor runs
//! another program); on a machine whose init is not systemd it says so.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Finding, Level};

const UNIT: &str = "edgeminer.service";
const PROPERTIES: &str =
    "LoadState,ActiveState,SubState,Result,UnitFileState,ExecMainStatus,StatusText";

/// The unit's state, from `systemctl show`.
pub fn service() -> Finding {
    if !Path::new("/run/systemd/system").exists() {
        return Finding::new("service", Level::Note, "systemd does not run this machine");
    }
    let out = Command::new("systemctl")
        .args(["show", UNIT, "-p", PROPERTIES])
        .output();
    match out {
        Ok(o) if o.status.success() => judge(&String::from_utf8_lossy(&o.stdout)),
        Ok(o) => Finding::new(
            "service",
            Level::Skip,
            format!(
                "systemctl show: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
        ),
        Err(e) => Finding::new("service", Level::Skip, format!("systemctl: {e}")),
    }
}

/// Where the unit's `LoadCredential=ID:PATH` takes credential `id` from
/// (the unit and its drop-ins, as `systemctl cat` prints them; the last
/// line for an id wins, as in systemd).
pub fn credential_source(id: &str) -> Option<PathBuf> {
    if !Path::new("/run/systemd/system").exists() {
        return None;
    }
    let out = Command::new("systemctl")
        .args(["cat", UNIT])
        .output()
        .ok()?;
    source_in(&String::from_utf8_lossy(&out.stdout), id)
}

fn source_in(unit: &str, id: &str) -> Option<PathBuf> {
    unit.lines()
        .filter_map(|l| l.trim().strip_prefix("LoadCredential="))
        .filter_map(|v| v.split_once(':'))
        .filter(|(name, _)| *name == id)
        .map(|(_, path)| PathBuf::from(path))
        .next_back()
}

/// The finding for `systemctl show`'s `KEY=value` lines.
pub fn judge(show: &str) -> Finding {
    let get = |key: &str| {
        show.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or("")
    };
    if get("LoadState") == "not-found" {
        return Finding::new(
            "service",
            Level::Note,
            format!("no {UNIT} here (not installed from the package)"),
        );
    }
    let enabled = get("UnitFileState");
    let (active, sub, result) = (get("ActiveState"), get("SubState"), get("Result"));
    let status = get("StatusText");
    let state = format!("{active} ({sub}), {enabled}");
    match active {
        "active" | "reloading" => {
            let f = Finding::new("service", Level::Ok, format!("{state}: {status}"));
            if enabled == "enabled" {
                f
            } else {
                Finding {
                    level: Level::Warn,
                    ..f
                }
                .fix("it will not start at boot: sudo systemctl enable edgeminer")
            }
        }
        "failed" => {
            let code = get("ExecMainStatus");
            let why = match (result, code) {
                ("exit-code", "78") => {
                    "exit 78: a configuration problem, not restarted".to_string()
                }
                ("start-limit-hit", _) => {
                    "start-limit-hit: it failed too often in a minute".to_string()
                }
                (r, c) => format!("{r}, exit status {c}"),
            };
            Finding::new("service", Level::Fail, format!("{state}: {why}")).fix(
                "`journalctl -u edgeminer -n 20` says why; fix it, then `sudo systemctl reset-failed edgeminer && sudo systemctl restart edgeminer`",
            )
        }
        _ if enabled == "enabled" => {
            Finding::new("service", Level::Note, format!("{state}: starts at boot"))
                .fix("sudo systemctl start edgeminer")
        }
        _ => Finding::new(
            "service",
            Level::Note,
            format!("{state}: not running, not started at boot"),
        )
        .fix("once the checks above pass: sudo systemctl enable --now edgeminer"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(active: &str, sub: &str, result: &str, enabled: &str, status: &str) -> String {
        format!(
            "LoadState=loaded\nActiveState={active}\nSubState={sub}\nResult={result}\nUnitFileState={enabled}\nExecMainStatus={status}\nStatusText=mining, tx 12\n"
        )
    }

    #[test]
    fn each_state_of_the_unit_reads_as_an_admin_needs_it() {
        let f = judge(&show("active", "running", "success", "enabled", "0"));
        assert_eq!(f.level, Level::Ok);
        assert_eq!(f.text, "active (running), enabled: mining, tx 12");
        let f = judge(&show("active", "running", "success", "disabled", "0"));
        assert_eq!(f.level, Level::Warn);
        assert!(f.fix.is_some_and(|x| x.contains("systemctl enable")));
        let f = judge(&show("failed", "failed", "exit-code", "enabled", "78"));
        assert_eq!(f.level, Level::Fail);
        assert!(f.text.contains("configuration problem"), "{}", f.text);
        assert!(f.fix.is_some_and(|x| x.contains("journalctl -u edgeminer")));
        let f = judge(&show("failed", "failed", "start-limit-hit", "enabled", "1"));
        assert!(f.text.contains("start-limit-hit"), "{}", f.text);
        let f = judge(&show("inactive", "dead", "success", "disabled", "0"));
        assert_eq!(f.level, Level::Note);
        assert!(f.fix.is_some_and(|x| x.contains("enable --now")));
        let f = judge("LoadState=not-found\nActiveState=inactive\n");
        assert_eq!(f.level, Level::Note);
    }

    #[test]
    fn a_credential_comes_from_the_last_load_credential_line_for_it() {
        let unit = "# /lib/systemd/system/edgeminer.service\n# see LoadCredential= in deploy/config.toml\n[Service]\nLoadCredential=broker.credentials:/old\n# /etc/systemd/system/edgeminer.service.d/override.conf\n[Service]\nLoadCredential=broker.credentials:/etc/edgeminer/broker.credentials\nLoadCredential=other:/etc/x\n";
        assert_eq!(
            source_in(unit, "broker.credentials"),
            Some(PathBuf::from("/etc/edgeminer/broker.credentials"))
        );
        assert_eq!(source_in(unit, "other"), Some(PathBuf::from("/etc/x")));
        assert_eq!(source_in(unit, "client.key"), None);
    }
}
