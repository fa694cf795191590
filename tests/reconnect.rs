//! The MQTT adapter survives a broker restart: nodes reconnect with
//! backoff, resubscribe, announce their state again (the new broker has no
//! retained messages), and commits resume with agreeing ledgers.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn commits_resume_after_a_broker_restart() {
    let mut broker = Mosquitto::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let url = broker.url();
    let lab = lab("r", 3, dir.path(), "12..14");
    let genesis = lab.arg();
    let args = ["--genesis", &genesis, "--threads", "1", "--broker", &url];
    let mut nodes = start_cluster("r", 3, dir.path(), &args);
    let height = |nodes: &[Node]| nodes.iter().map(ledger_len).min().unwrap_or(0);
    assert!(
        wait_until(Duration::from_secs(60), || height(&nodes) >= 2),
        "{}",
        logs(&nodes)
    );

    broker = broker.restart();
    let before = nodes.iter().map(ledger_len).max().unwrap_or(0);
    assert!(
        wait_until(Duration::from_secs(90), || height(&nodes) >= before + 3),
        "no commits after the broker restart:\n{}",
        logs(&nodes)
    );
    let noticed = nodes.iter().all(|n| {
        std::fs::read_to_string(&n.log)
            .unwrap_or_default()
            .contains("lost the broker")
    });
    assert!(noticed, "every node noticed the outage:\n{}", logs(&nodes));
    stop_and_compare(&mut nodes, before + 3);
    drop(broker);
}
