//! `edgeminer doctor` on a board's setup: a healthy one (also beside its
//! running node) has nothing to fix, and each broken setup an admin meets
//! is named, on its own line, with what to do: a missing or exposed key,
//! a state directory of another cluster, a node no member of its roster,
//! an invalid configuration, a CA file that is not one, a broker that is
//! down or refuses the login, a hot board. Loopback only.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

fn s(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// A config file for the node in `state`.
fn config(
    dir: &Path,
    name: &str,
    genesis: &Path,
    state: &Path,
    broker: &str,
    extra: &str,
) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "genesis = \"{}\"\nstate_dir = \"{}\"\nbroker = \"{broker}\"\n{extra}",
            s(genesis),
            s(state)
        ),
    )
    .expect("write config");
    path
}

/// Runs the doctor; its exit code and report.
fn doctor(config: &Path, extra: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(["doctor", "--config", s(config), "--timeout", "3"])
        .args(extra)
        .output()
        .expect("run edgeminer doctor");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    (out.status.code().unwrap_or(-1), text)
}

/// Runs the doctor on a setup that must fail (exit 1); its report.
fn failing(config: &Path) -> String {
    let (code, report) = doctor(config, &[]);
    assert_eq!(code, 1, "{report}");
    report
}

/// The report's line for `what`, and the fix under it if any.
fn line(report: &str, what: &str) -> String {
    let mut lines = report.lines();
    let mut found = String::new();
    while let Some(l) = lines.next() {
        if l.get(6..)
            .is_some_and(|rest| rest.starts_with(&format!("{what} ")))
        {
            found = l.to_string();
            // Its further lines and its fix are indented.
            for next in lines.by_ref().take_while(|n| n.starts_with("      ")) {
                found.push('\n');
                found.push_str(next);
            }
            break;
        }
    }
    assert!(!found.is_empty(), "no '{what}' line in:\n{report}");
    found
}

fn assert_line(report: &str, what: &str, level: &str, words: &[&str]) {
    let l = line(report, what);
    assert!(l.starts_with(level), "'{what}' is not {level}:\n{report}");
    for w in words {
        assert!(
            l.contains(w),
            "'{what}' does not say '{w}':\n{l}\n\nwhole report:\n{report}"
        );
    }
}

#[test]
fn a_healthy_board_has_nothing_to_fix_also_beside_its_running_node() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lab = make_lab(dir.path(), "doc", &["pi-01"], "8..10", &[]);
    let state = dir.path().join("pi-01");
    let broker = Mosquitto::start();
    let sensor = dir.path().join("temp");
    set_temp(&sensor, 45_000);
    let extra = format!("thermal_path = \"{}\"\nthreads = 1\n", s(&sensor));
    let cfg = config(
        dir.path(),
        "pi-01",
        &lab.genesis,
        &state,
        &broker.url(),
        &extra,
    );

    let (code, report) = doctor(&cfg, &[]);
    assert_eq!(code, 0, "{report}");
    assert!(!report.contains("FAIL"), "{report}");
    assert_line(&report, "config", "ok", &[&broker.url()]);
    assert_line(&report, "genesis", "ok", &["cluster 'doc'", "1 member,"]);
    assert_line(&report, "state", "ok", &["mode 700"]);
    assert_line(&report, "key", "ok", &[&lab.ids[0]]);
    assert_line(&report, "ledger", "ok", &["none yet"]);
    assert_line(&report, "member", "ok", &["pi-01", &lab.ids[0]]);
    assert_line(&report, "broker", "ok", &["accepted a connection"]);
    assert_line(&report, "thermal", "ok", &["45.0 °C"]);
    assert_line(&report, "engine", "ok", &["MH/s"]);

    // Beside the running node: the ledger is found in use, and the doctor
    // did not push the node off the broker (its own client id).
    let mut node = Node::start("pi-01", &state, &["--config", s(&cfg)]);
    assert!(
        wait_until(Duration::from_secs(60), || ledger_len(&node) >= 2),
        "the node did not commit:\n{}",
        node.log_tail(30)
    );
    let (code, report) = doctor(&cfg, &[]);
    assert_eq!(code, 0, "{report}");
    assert_line(
        &report,
        "ledger",
        "ok",
        &["cluster 'doc'", "in use by a running node"],
    );
    assert_line(&report, "member", "ok", &["as of tx 0"]);
    let before = ledger_len(&node);
    assert!(
        wait_until(Duration::from_secs(30), || ledger_len(&node) > before),
        "the node stopped committing after the doctor's visit:\n{}",
        node.log_tail(30)
    );
    assert!(
        !node.log_text().contains("lost the broker"),
        "{}",
        node.log_tail(30)
    );
    node.stop();

    // Hot: a warning with the fix, not a failure.
    set_temp(&sensor, 75_000);
    let (code, report) = doctor(&cfg, &[]);
    assert_eq!(code, 0, "{report}");
    assert_line(
        &report,
        "thermal",
        "warn",
        &["75.0 °C", "fewer threads", "->"],
    );
}

#[test]
fn each_broken_setup_is_named_with_its_fix() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lab = make_lab(dir.path(), "doc", &["pi-01", "pi-02"], "8..10", &[]);
    let other = make_lab(dir.path(), "elsewhere", &["pi-09"], "8..10", &[]);
    let broker = Mosquitto::start();
    let url = broker.url();
    let state = dir.path().join("pi-01");

    // Nothing listening on the broker's port.
    let down = format!("mqtt://127.0.0.1:{}", free_port());
    let cfg = config(dir.path(), "down", &lab.genesis, &state, &down, "");
    let report = failing(&cfg);
    assert_line(&report, "broker", "FAIL", &["nothing is listening"]);
    assert_line(&report, "key", "ok", &[]);

    // An exposed key: refused with the chmod to run.
    let key = state.join("node.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let cfg = config(dir.path(), "ok", &lab.genesis, &state, &url, "");
    let report = failing(&cfg);
    assert_line(&report, "key", "FAIL", &["chmod 600"]);
    assert_line(&report, "member", "skip", &[]);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    // No key at all: made first, then put in the genesis.
    let fresh = dir.path().join("fresh");
    std::fs::create_dir(&fresh).expect("mkdir");
    std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let cfg = config(dir.path(), "fresh", &lab.genesis, &fresh, &url, "");
    let report = failing(&cfg);
    assert_line(&report, "key", "FAIL", &["no ", "keygen"]);

    // A board given another cluster's genesis: its key is no member.
    let cfg = config(dir.path(), "stranger", &other.genesis, &state, &url, "");
    let report = failing(&cfg);
    assert_line(
        &report,
        "member",
        "FAIL",
        &["not in cluster 'elsewhere'", "pi-09", "wrong genesis"],
    );

    // A state directory holding another cluster's ledger.
    let mut node = Node::start(
        "pi-09",
        &dir.path().join("pi-09"),
        &["--genesis", &other.arg(), "--broker", &url],
    );
    assert!(
        wait_until(Duration::from_secs(60), || ledger_len(&node) >= 1),
        "pi-09 did not commit:\n{}",
        node.log_tail(30)
    );
    node.stop();
    let cfg = config(
        dir.path(),
        "mixed",
        &lab.genesis,
        &dir.path().join("pi-09"),
        &url,
        "",
    );
    let report = failing(&cfg);
    assert_line(
        &report,
        "ledger",
        "FAIL",
        &[
            "cluster 'elsewhere'",
            "not of this genesis's 'doc'",
            "ledger.bin",
        ],
    );

    // An invalid configuration: named, and what needs it is skipped.
    let cfg = config(
        dir.path(),
        "typo",
        &lab.genesis,
        &state,
        &url,
        "thread = 2\n",
    );
    let report = failing(&cfg);
    assert_line(&report, "config", "FAIL", &["thread"]);
    assert_line(&report, "broker", "skip", &["configuration"]);

    // A CA file that holds no certificate.
    let ca = dir.path().join("ca.crt");
    std::fs::write(&ca, "not a certificate\n").expect("write ca");
    let tls = format!("ca_file = \"{}\"\n", s(&ca));
    let cfg = config(
        dir.path(),
        "tls",
        &lab.genesis,
        &state,
        "mqtts://127.0.0.1:8883",
        &tls,
    );
    let report = failing(&cfg);
    assert_line(&report, "tls", "FAIL", &[s(&ca)]);

    // A broker that refuses the login.
    let guarded = guarded_broker(dir.path());
    let creds = dir.path().join("broker.credentials");
    std::fs::write(&creds, "username = pi-01\npassword = wrong\n").expect("write credentials");
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let login = format!("credentials_file = \"{}\"\n", s(&creds));
    let cfg = config(
        dir.path(),
        "login",
        &lab.genesis,
        &state,
        &guarded.url(),
        &login,
    );
    let report = failing(&cfg);
    assert_line(&report, "login", "ok", &["pi-01"]);
    assert_line(&report, "broker", "FAIL", &["refused"]);
}

/// A broker that takes only the logins of its password file (one user,
/// `pi-01`, whose password is not `wrong`).
fn guarded_broker(dir: &Path) -> Mosquitto {
    let home = tempfile::tempdir_in(dir).expect("temp dir");
    let passwd = home.path().join("passwd");
    let made = Command::new("mosquitto_passwd")
        .args(["-c", "-b", s(&passwd), "pi-01", "right"])
        .output()
        .expect("run mosquitto_passwd");
    assert!(
        made.status.success(),
        "mosquitto_passwd: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let port = free_port();
    let conf = home.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\nuser root\n",
            s(&passwd)
        ),
    )
    .expect("write mosquitto.conf");
    Mosquitto::start_with_config(home, port, &conf)
}
