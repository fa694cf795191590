//! A node as a service, on real processes and a real Mosquitto: thermal
//! care driven by a fake temperature file, a clean and quick exit on
//! SIGTERM, and the sd_notify messages systemd would receive.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::*;

/// Waits (bounded) until the node's log contains `text`.
fn wait_log(node: &Node, text: &str, limit: Duration) {
    let seen = wait_until(limit, || node.log_text().contains(text));
    assert!(
        seen,
        "no `{text}` in {}'s log:\n{}",
        node.name,
        node.log_tail(40)
    );
}

/// Writes a temperature in millidegrees, as a thermal zone's file holds it.
#[test]
fn thermal_care_follows_the_temperature_file() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let sensor = dir.path().join("temp");
    set_temp(&sensor, 50_000);
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "thermal_soft_c = 70\nthermal_hard_c = 80\nthermal_hysteresis_c = 5\n\
         thermal_interval_ms = 100\nthermal_dwell_ms = 0\n",
    )
    .expect("write config");
    let url = broker.url();
    let lab = make_lab(dir.path(), "th", &["hot"], "8..10", &[]);
    let genesis = lab.arg();
    let args = [
        "--genesis",
        &genesis,
        "--threads",
        "2",
        "--broker",
        &url,
        "--config",
        config.to_str().expect("utf-8 path"),
        "--thermal-path",
        sensor.to_str().expect("utf-8 path"),
    ];
    let mut node = Node::start("hot", &dir.path().join("hot"), &args);
    let limit = Duration::from_secs(30);
    wait_log(&node, "thermal: reading", limit);
    assert!(
        wait_until(limit, || ledger_len(&node) >= 1),
        "a one-node cluster commits:\n{}",
        node.log_tail(40)
    );

    set_temp(&sensor, 71_200);
    wait_log(
        &node,
        "thermal: 71.2 °C above soft limit 70 °C, mining with 1 of 2 threads",
        limit,
    );
    set_temp(&sensor, 85_000);
    wait_log(
        &node,
        "thermal: 85.0 °C above hard limit 80 °C, mining paused",
        limit,
    );
    // Paused: nothing is mined, so nothing is committed.
    std::thread::sleep(Duration::from_millis(500));
    let paused_at = ledger_len(&node);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(ledger_len(&node), paused_at, "no commit while paused");

    // Inside the hysteresis band (65 to 70 °C): still paused.
    set_temp(&sensor, 67_000);
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !node.log_text().contains("resumed"),
        "{}",
        node.log_tail(10)
    );
    // A file that cannot be read changes nothing and is said once.
    std::fs::remove_file(&sensor).expect("remove temperature");
    wait_log(&node, "keeping 0 of 2 threads until it reads again", limit);
    set_temp(&sensor, 60_000);
    wait_log(
        &node,
        "60.0 °C below 65 °C (soft limit 70 °C less 5 °C hysteresis), mining resumed with 1 of 2 threads",
        limit,
    );
    wait_log(&node, "mining with 2 of 2 threads", limit);
    assert!(
        wait_until(limit, || ledger_len(&node) > paused_at),
        "commits again after resuming:\n{}",
        node.log_tail(40)
    );
    let log = node.log_text();
    assert_eq!(log.matches("cannot read the temperature file").count(), 1);
    assert!(log.contains("reading") && log.contains("again"));
    assert!(node.stop(), "clean exit");
}

#[test]
fn sigterm_leaves_within_two_seconds_with_a_loadable_ledger() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let url = broker.url();
    let lab = lab("t", 3, dir.path(), "10..12");
    let genesis = lab.arg();
    let args = ["--genesis", &genesis, "--threads", "1", "--broker", &url];
    let mut nodes = start_cluster("t", 3, dir.path(), &args);
    assert!(
        wait_until(Duration::from_secs(60), || nodes
            .iter()
            .all(|n| ledger_len(n) >= 1)),
        "{}",
        logs(&nodes)
    );

    // Mid-flight: the others keep mining and committing around it.
    let started = Instant::now();
    assert!(nodes[2].stop(), "t3 exits with status 0 on SIGTERM");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "t3 took {took:?} to leave");
    let log = nodes[2].log_text();
    assert!(log.contains("SIGTERM received") && log.contains("t3 leaving the cluster"));
    // Its goodbye reached the others: a clean disconnect makes the broker
    // drop the last will, so this is the goodbye itself.
    let gone = |n: &Node| {
        n.log_text()
            .lines()
            .any(|l| l.contains("init: t3 (") && l.ends_with("is gone"))
    };
    assert!(
        wait_until(Duration::from_secs(5), || gone(&nodes[0])
            && gone(&nodes[1])),
        "{}",
        logs(&nodes)
    );

    // Every ledger write it started was finished: the ledger loads and
    // verifies, and it agrees with the others.
    let state = nodes[2].state.to_str().expect("utf-8 path").to_owned();
    let out = edgeminer(&["verify", "--state-dir", &state]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mine = ledger(&nodes[2].state);
    assert!(!mine.is_empty());
    // The two others carry on (a quorum of 3); once they hold as many
    // transactions, its ledger must be a prefix of theirs.
    assert!(
        wait_until(Duration::from_secs(30), || nodes[..2]
            .iter()
            .all(|n| ledger_len(n) >= mine.len())),
        "{}",
        logs(&nodes)
    );
    stop_and_compare(&mut nodes[..2], mine.len());
    assert_eq!(ledger(&nodes[0].state)[..mine.len()], mine[..]);
    eprintln!("SIGTERM to exit: {took:?}");
}

/// Receives notifications until one satisfies `want` (bounded).
fn notification(sock: &UnixDatagram, limit: Duration, want: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit {
        if let Ok(len) = sock.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..len]).into_owned();
            if want(&text) {
                return text;
            }
            seen.push(text);
        }
    }
    panic!("no such notification in {limit:?}; got {seen:#?}");
}

#[test]
fn systemd_hears_ready_status_watchdog_and_stopping() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("notify");
    let sock = UnixDatagram::bind(&socket).expect("bind the notification socket");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("read timeout");
    let url = broker.url();
    let lab = make_lab(dir.path(), "sd", &["sd"], "10..12", &[]);
    let genesis = lab.arg();
    let args = ["--genesis", &genesis, "--threads", "1", "--broker", &url];
    // A watchdog of 1 s: pings (and status lines) every half second.
    let env = [
        ("NOTIFY_SOCKET", socket.to_str().expect("utf-8 path")),
        ("WATCHDOG_USEC", "1000000"),
    ];
    let mut node = Node::start_with_env("sd", &dir.path().join("sd"), &args, &env);
    let limit = Duration::from_secs(30);

    // Ready once it runs, whether connected yet or not (tests/systemd.rs
    // starts one without a broker).
    let ready = notification(&sock, limit, |m| m.contains("READY=1"));
    assert!(ready.contains("\nSTATUS="), "{ready}");
    let ping = notification(&sock, Duration::from_secs(3), |m| m.contains("WATCHDOG=1"));
    assert!(ping.starts_with("STATUS="), "{ping}");
    // A one-node cluster leads itself; the status names it and a rate.
    let status = notification(&sock, limit, |m| m.contains("leader sd"));
    assert!(status.contains("/s on 1 threads"), "{status}");
    assert!(node.stop(), "clean exit");
    let last = notification(&sock, Duration::from_secs(1), |m| m.contains("STOPPING=1"));
    assert!(last.contains("STATUS=leaving the cluster"), "{last}");
}
