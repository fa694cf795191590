//! A node killed with SIGKILL and started again on the same state directory
//! keeps its identity, resumes its ledger from the last certificate (not
//! by checking every one again), fetches every commit it missed, and ends
//! with the same ledger as the others.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn killed_node_restarts_and_catches_up() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let url = broker.url();
    let lab = lab("k", 4, dir.path(), "12..14");
    let genesis = lab.arg();
    let args = ["--genesis", &genesis, "--threads", "1", "--broker", &url];
    let mut nodes = start_cluster("k", 4, dir.path(), &args);
    assert!(
        wait_until(Duration::from_secs(60), || nodes
            .iter()
            .all(|n| ledger_len(n) >= 2)),
        "{}",
        logs(&nodes)
    );

    nodes[3].kill9();
    let at_kill = ledger_len(&nodes[3]);
    // The other three (a quorum of 4) carry on without it.
    assert!(
        wait_until(Duration::from_secs(60), || nodes[..3]
            .iter()
            .all(|n| ledger_len(n) >= at_kill + 10)),
        "no progress without k4:\n{}",
        logs(&nodes)
    );
    let (name, state) = (nodes[3].name.clone(), nodes[3].state.clone());
    nodes[3] = Node::start(&name, &state, &args);
    assert!(
        wait_until(Duration::from_secs(60), || {
            let others = nodes[..3].iter().map(ledger_len).min().unwrap_or(0);
            ledger_len(&nodes[3]) >= others
        }),
        "k4 did not catch up:\n{}",
        logs(&nodes)
    );
    let log = nodes[3].log_text();
    assert!(
        log.contains(&format!("resumed the ledger at tx {at_kill} from"))
            || log.contains(&format!("resumed the ledger at tx {} from", at_kill - 1)),
        "{log}"
    );
    assert!(!log.contains("checked all"), "{log}");
    stop_and_compare(&mut nodes, at_kill + 10);
    let out = edgeminer(&["verify", "--state-dir", state.to_str().expect("utf-8")]);
    assert!(out.status.success());
}
