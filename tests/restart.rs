//! A node killed with SIGKILL and started again on the same state directory
//! keeps its identity, reloads and re-verifies its ledger, fetches every
//! commit it missed, and ends with the same ledger as the others.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn killed_node_restarts_and_catches_up() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = format!("rs-{}", std::process::id());
    let url = broker.url();
    let args = [
        "--cluster",
        &cluster,
        "--nodes",
        "4",
        "--threads",
        "1",
        "--difficulty",
        "12..14",
        "--broker",
        &url,
    ];
    let mut nodes: Vec<Node> = (1..=4)
        .map(|i| {
            let name = format!("k{i}");
            Node::start(&name, &dir.path().join(&name), &args)
        })
        .collect();
    let len = |n: &Node| {
        if n.state.join("ledger.bin").exists() {
            ledger(&n.state).len()
        } else {
            0
        }
    };
    let logs = |nodes: &[Node]| -> String {
        nodes
            .iter()
            .map(|n| format!("--- {} ---\n{}\n", n.name, n.log_tail(25)))
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(60), || nodes
            .iter()
            .all(|n| len(n) >= 2)),
        "{}",
        logs(&nodes)
    );

    nodes[3].kill9();
    let at_kill = len(&nodes[3]);
    // The other three (a quorum of 4) carry on without it.
    assert!(
        wait_until(Duration::from_secs(60), || nodes[..3]
            .iter()
            .all(|n| len(n) >= at_kill + 10)),
        "no progress without k4:\n{}",
        logs(&nodes)
    );
    let name = nodes[3].name.clone();
    let state = nodes[3].state.clone();
    nodes[3] = Node::start(&name, &state, &args);
    assert!(
        wait_until(Duration::from_secs(60), || {
            let others = nodes[..3].iter().map(len).min().unwrap_or(0);
            len(&nodes[3]) >= others && others > at_kill + 10
        }),
        "k4 did not catch up:\n{}",
        logs(&nodes)
    );
    for n in &mut nodes {
        assert!(n.stop(), "{} did not stop cleanly", n.name);
    }
    let ledgers: Vec<Vec<Row>> = nodes.iter().map(|n| ledger(&n.state)).collect();
    let common_len = ledgers.iter().map(Vec::len).min().unwrap_or(0);
    assert!(common_len > at_kill + 10);
    for l in &ledgers {
        assert_eq!(l[..common_len], ledgers[0][..common_len]);
    }
    let out = edgeminer(&["verify", "--state-dir", state.to_str().expect("utf-8")]);
    assert!(out.status.success());
}
