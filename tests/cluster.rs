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
    let url = broker.url();
    let lab = lab("n", 4, dir.path(), "14..16");
    let genesis = lab.arg();
    let args = ["--genesis", &genesis, "--threads", "1", "--broker", &url];
    let mut nodes = start_cluster("n", 4, dir.path(), &args);

    let done = wait_until(Duration::from_secs(150), || {
        nodes.iter().all(|n| ledger_len(n) >= 5)
    });
    assert!(
        done,
        "not every node committed 5 transactions:\n{}",
        logs(&nodes)
    );
    let ledgers = stop_and_compare(&mut nodes, 5);

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
