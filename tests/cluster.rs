//! Four real `edgeminer run` processes on a real Mosquitto commit at least
//! five transactions, with identical ledgers whose every proof of work is
//! checked here with the `sha1` crate.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::*;

#[test]
fn four_processes_commit_five_identical_transactions() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = format!("it-{}", std::process::id());
    let url = broker.url();
    let mut nodes: Vec<Node> = (1..=4)
        .map(|i| {
            let name = format!("n{i}");
            Node::start(
                &name,
                &dir.path().join(&name),
                &[
                    "--cluster",
                    &cluster,
                    "--nodes",
                    "4",
                    "--threads",
                    "1",
                    "--difficulty",
                    "14..16",
                    "--broker",
                    &url,
                ],
            )
        })
        .collect();

    let done = wait_until(Duration::from_secs(150), || {
        nodes
            .iter()
            .all(|n| n.state.join("ledger.bin").exists() && ledger(&n.state).len() >= 5)
    });
    let logs: String = nodes
        .iter()
        .map(|n| format!("--- {} ---\n{}\n", n.name, n.log_tail(30)))
        .collect();
    assert!(done, "not every node committed 5 transactions:\n{logs}");
    for n in &mut nodes {
        assert!(
            n.stop(),
            "{} did not stop cleanly on SIGTERM:\n{logs}",
            n.name
        );
    }

    let ledgers: Vec<Vec<Row>> = nodes.iter().map(|n| ledger(&n.state)).collect();
    let common_len = ledgers.iter().map(Vec::len).min().unwrap_or(0);
    assert!(common_len >= 5, "{logs}");
    for (n, l) in nodes.iter().zip(&ledgers) {
        assert_eq!(
            l[..common_len],
            ledgers[0][..common_len],
            "{} disagrees:\n{logs}",
            n.name
        );
    }
    for (i, r) in ledgers[0].iter().enumerate() {
        assert_eq!(r.transaction, i as u64 + 1);
        assert!((14..=16).contains(&r.difficulty));
        check_row(r);
    }
    for n in &nodes {
        let out = edgeminer(&["verify", "--state-dir", n.state.to_str().expect("utf-8")]);
        assert!(
            out.status.success(),
            "verify {}: {}",
            n.name,
            String::from_utf8_lossy(&out.stdout)
        );
        let mode = std::fs::metadata(n.state.join("node.key"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{} key mode", n.name);
    }
}
