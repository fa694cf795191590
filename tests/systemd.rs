//! A node as systemd runs it: started (READY=1) without waiting for its
//! broker, a status line that follows each transaction, SIGHUP as a reload
//! that never stops the node, and exit code 78 for a setting the running
//! node finds unusable. Real processes, a real Mosquitto, and a
//! notification socket bound here as systemd's would be.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A notification socket, as systemd's `NOTIFY_SOCKET`.
struct Notify {
    sock: UnixDatagram,
    path: String,
}

impl Notify {
    fn bind(dir: &Path) -> Notify {
        let path = dir.join("notify");
        let sock = UnixDatagram::bind(&path).expect("bind the notification socket");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        Notify {
            sock,
            path: path.to_str().expect("utf-8 path").to_owned(),
        }
    }

    /// Every notification within `limit`.
    fn all(&self, limit: Duration) -> Vec<String> {
        let started = Instant::now();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while started.elapsed() < limit {
            if let Ok(len) = self.sock.recv(&mut buf) {
                seen.push(String::from_utf8_lossy(&buf[..len]).into_owned());
            }
        }
        seen
    }

    /// Notifications until one satisfies `want` (bounded); returns that one.
    fn until(&self, limit: Duration, want: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while started.elapsed() < limit {
            if let Ok(len) = self.sock.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..len]).into_owned();
                if want(&text) {
                    return text;
                }
                seen.push(text);
            }
        }
        panic!("no such notification in {limit:?}; got {seen:#?}");
    }
}

/// The status line of a notification, if it has one.
fn status_of(m: &str) -> Option<&str> {
    m.lines().find_map(|l| l.strip_prefix("STATUS="))
}

/// A Mosquitto on `port` (which may already be named in a node's flags).
fn mosquitto_on(port: u16) -> Mosquitto {
    let dir = tempfile::tempdir().expect("temp dir");
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nuser root\npersistence false\n"),
    )
    .expect("write mosquitto.conf");
    Mosquitto::start_with_config(dir, port, &conf)
}

#[test]
fn started_without_its_broker_and_the_status_says_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let notify = Notify::bind(dir.path());
    // Nobody listens on this port yet.
    let port = free_port();
    let url = format!("mqtt://127.0.0.1:{port}");
    let lab = make_lab(dir.path(), "nb", &["nb"], "8..10", &[]);
    let genesis = lab.arg();
    let args = ["--genesis", &genesis, "--threads", "1", "--broker", &url];
    let env = [("NOTIFY_SOCKET", notify.path.as_str())];
    let mut node = Node::start_with_env("nb", &dir.path().join("nb"), &args, &env);

    let ready = notify.until(Duration::from_secs(10), |m| m.contains("READY=1"));
    let status = status_of(&ready).expect("a status with READY=1");
    assert!(status.starts_with("connecting to the broker; "), "{status}");
    assert!(
        !node.log_text().contains("init: connected to the broker"),
        "started before any broker answered:\n{}",
        node.log_tail(20)
    );

    // The broker comes up: the node connects and the status line says so
    // well before the next 5-second refresh would.
    let _broker = mosquitto_on(port);
    assert!(
        wait_until(Duration::from_secs(30), || node
            .log_text()
            .contains("init: connected to the broker")),
        "{}",
        node.log_tail(20)
    );
    let connected = Instant::now();
    let line = notify.until(Duration::from_secs(10), |m| {
        status_of(m).is_some_and(|s| !s.starts_with("connecting"))
    });
    assert!(
        connected.elapsed() < Duration::from_secs(3),
        "the status line took {:?} to follow the broker: {line}",
        connected.elapsed()
    );
    assert!(node.stop(), "clean exit");
}

#[test]
fn the_status_line_follows_each_transaction() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let notify = Notify::bind(dir.path());
    let url = broker.url();
    let lab = make_lab(dir.path(), "fast", &["fast"], "6..8", &[]);
    let genesis = lab.arg();
    let args = ["--genesis", &genesis, "--threads", "1", "--broker", &url];
    // No watchdog: the periodic refresh is every 5 seconds.
    let env = [("NOTIFY_SOCKET", notify.path.as_str())];
    let mut node = Node::start_with_env("fast", &dir.path().join("fast"), &args, &env);
    notify.until(Duration::from_secs(30), |m| {
        status_of(m).is_some_and(|s| s.contains("leader fast"))
    });
    let from = ledger_len(&node);
    let lines = notify.all(Duration::from_millis(4500));
    let to = ledger_len(&node);
    let mut txs: Vec<&str> = lines
        .iter()
        .filter_map(|m| status_of(m))
        .filter_map(|s| s.split(", ").find(|p| p.contains("tx ")))
        .collect();
    txs.dedup();
    assert!(
        to >= from + 3,
        "the cluster committed only {} transactions in 4.5 s:\n{}",
        to - from,
        node.log_tail(20)
    );
    // A refresh every 5 s would show at most two; one a second at most
    // shows four or five.
    assert!(
        (3..=6).contains(&txs.len()),
        "{} commits, status lines showed {txs:?}",
        to - from
    );
    assert!(node.stop(), "clean exit");
}

/// An `edgeminer run` without `RUST_LOG` (the configuration file sets the
/// level), its log in `log`.
fn spawn_node(state: &Path, log: &Path, args: &[&str], notify: &str) -> Child {
    std::fs::create_dir_all(state).expect("state dir");
    let file = std::fs::File::create(log).expect("log file");
    Command::new(BIN)
        .arg("run")
        .args(["--name", "hup", "--state-dir"])
        .arg(state)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .env("NOTIFY_SOCKET", notify)
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("start edgeminer run")
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -{sig}");
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// The body of `GET /metrics` on `port`, if anything answers there.
fn scrape(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn sighup_reloads_what_can_change_and_never_stops_the_node() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let notify = Notify::bind(dir.path());
    let sensor = dir.path().join("temp");
    set_temp(&sensor, 50_000);
    let (port_a, port_b) = (free_port(), free_port());
    let config = dir.path().join("config.toml");
    let write = |text: String| std::fs::write(&config, text).expect("write config");
    let first = format!(
        "log_level = \"info\"\nthermal_soft_c = 70\nthermal_interval_ms = 100\n\
         metrics_addr = \"127.0.0.1:{port_a}\"\nthreads = 2\n"
    );
    write(first.clone());
    let url = broker.url();
    let lab = make_lab(dir.path(), "hup", &["hup"], "8..10", &[]);
    let genesis = lab.arg();
    let args = [
        "--genesis",
        &genesis,
        "--broker",
        &url,
        "--config",
        config.to_str().expect("utf-8 path"),
        "--thermal-path",
        sensor.to_str().expect("utf-8 path"),
    ];
    let log = dir.path().join("hup.log");
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    let mut child = spawn_node(&dir.path().join("hup"), &log, &args, &notify.path);
    struct Kill<'a>(&'a mut Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let limit = Duration::from_secs(30);
    notify.until(limit, |m| m.contains("READY=1"));
    assert!(wait_until(limit, || scrape(port_a).is_some()), "{}", text());

    // Nothing changed: a reload says so, and systemd sees it start and end.
    signal(&child, "HUP");
    notify.until(limit, |m| {
        m.contains("RELOADING=1") && m.contains("MONOTONIC_USEC=")
    });
    notify.until(limit, |m| m.contains("READY=1"));
    assert!(
        wait_until(limit, || text().contains("reload: nothing changed")),
        "{}",
        text()
    );
    assert!(!text().contains("DEBUG"), "info level:\n{}", text());

    // New limits, level and address, and a setting that needs a restart.
    write(format!(
        "log_level = \"debug\"\nthermal_soft_c = 60\nthermal_interval_ms = 100\n\
         metrics_addr = \"127.0.0.1:{port_b}\"\nthreads = 3\n"
    ));
    signal(&child, "HUP");
    notify.until(limit, |m| m.contains("READY=1"));
    let reloaded = |s: &str| text().contains(s);
    for line in [
        "reload: log level debug",
        "reload: thermal: reading",
        "fewer threads above 60 °C",
        &format!("reload: serving metrics on http://127.0.0.1:{port_b}/metrics"),
        "running with the values it started with: threads",
    ] {
        assert!(
            wait_until(limit, || reloaded(line)),
            "no `{line}`:\n{}",
            text()
        );
    }
    // The new level logs debug lines; the new address serves the metrics,
    // the old one nothing.
    assert!(wait_until(limit, || text().contains("DEBUG")), "{}", text());
    let body = scrape(port_b).expect("metrics on the new address");
    assert!(body.contains("edgeminer_"), "{body}");
    assert!(scrape(port_a).is_none(), "the old address still answers");
    // The new soft limit applies: 65 °C is now above it (one thread of
    // the two it started with).
    set_temp(&sensor, 65_000);
    assert!(
        wait_until(limit, || reloaded(
            "thermal: 65.0 °C above soft limit 60 °C"
        )),
        "{}",
        text()
    );

    // An invalid file changes nothing, and the node carries on.
    write("log_level = \"loud\"\n".into());
    signal(&child, "HUP");
    assert!(
        wait_until(limit, || reloaded(
            "reload: the configuration is invalid, nothing changed"
        )),
        "{}",
        text()
    );
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "SIGHUP stopped the node:\n{}",
        text()
    );
    assert!(scrape(port_b).is_some(), "metrics kept");

    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(10));
    let _kill = Kill(&mut child);
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}:\n{}",
        text()
    );
}

#[test]
fn a_metrics_address_it_cannot_serve_is_a_configuration_problem() {
    let dir = tempfile::tempdir().expect("temp dir");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let lab = make_lab(dir.path(), "m", &["m"], "8..8", &[]);
    let g = lab.arg();
    let out = edgeminer(&[
        "run",
        "--genesis",
        &g,
        "--state-dir",
        dir.path().join("m").to_str().expect("utf-8"),
        "--broker",
        "mqtt://127.0.0.1:9",
        "--metrics-addr",
        &addr,
        "--no-thermal",
    ]);
    // EX_CONFIG: the unit does not restart it into its start limit.
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&addr) && err.contains("metrics_addr"), "{err}");
}
