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
    let cluster = format!("rc-{}", std::process::id());
    let url = broker.url();
    let mut nodes: Vec<Node> = (1..=3)
        .map(|i| {
            let name = format!("r{i}");
            Node::start(
                &name,
                &dir.path().join(&name),
                &[
                    "--cluster",
                    &cluster,
                    "--nodes",
                    "3",
                    "--threads",
                    "1",
                    "--difficulty",
                    "12..14",
                    "--broker",
                    &url,
                ],
            )
        })
        .collect();
    let height = |nodes: &[Node]| {
        nodes
            .iter()
            .map(|n| {
                if n.state.join("ledger.bin").exists() {
                    ledger(&n.state).len()
                } else {
                    0
                }
            })
            .min()
            .unwrap_or(0)
    };
    let logs = |nodes: &[Node]| -> String {
        nodes
            .iter()
            .map(|n| format!("--- {} ---\n{}\n", n.name, n.log_tail(25)))
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(60), || height(&nodes) >= 2),
        "{}",
        logs(&nodes)
    );

    broker = broker.restart();
    let before = nodes
        .iter()
        .map(|n| ledger(&n.state).len())
        .max()
        .unwrap_or(0);
    assert!(
        wait_until(Duration::from_secs(90), || height(&nodes) >= before + 3),
        "no commits after the broker restart:\n{}",
        logs(&nodes)
    );
    for n in &mut nodes {
        assert!(n.stop());
    }
    let ledgers: Vec<Vec<Row>> = nodes.iter().map(|n| ledger(&n.state)).collect();
    let common_len = ledgers.iter().map(Vec::len).min().unwrap_or(0);
    for l in &ledgers {
        assert_eq!(l[..common_len], ledgers[0][..common_len]);
    }
    let reconnected = nodes.iter().all(|n| {
        std::fs::read_to_string(&n.log)
            .unwrap_or_default()
            .contains("lost the broker")
    });
    assert!(
        reconnected,
        "every node noticed the outage:\n{}",
        logs(&nodes)
    );
    drop(broker);
}
