//! `edgeminer prune` on a stopped node: the ledger keeps its newest
//! transactions and a base record, `verify` and `ledger` say what was
//! pruned, the archive holds the whole old ledger, and the node starts on
//! the pruned ledger, resumes from its last certificate and goes on
//! agreeing with the others. A running node's ledger is never pruned.

mod common;

use std::time::Duration;

use common::*;

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_pruned_node_keeps_a_checkable_head_and_goes_on() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let url = broker.url();
    let lab = lab("p", 3, dir.path(), "10..10");
    let genesis = lab.arg();
    let args = ["--genesis", &genesis, "--threads", "1", "--broker", &url];
    let mut nodes = start_cluster("p", 3, dir.path(), &args);
    assert!(
        wait_until(Duration::from_secs(60), || nodes
            .iter()
            .all(|n| ledger_len(n) >= 8)),
        "{}",
        logs(&nodes)
    );
    let state = nodes[2].state.clone();
    let s = state.to_str().expect("utf-8");

    let busy = edgeminer(&["prune", "--state-dir", s, "--keep", "3"]);
    assert!(!busy.status.success(), "pruned a running node's ledger");
    assert!(text(&busy).contains("in use"), "{}", text(&busy));

    assert!(nodes[2].stop());
    let before = ledger(&state);
    let height = before.last().expect("rows").transaction;
    let archive = dir.path().join("archive.bin");
    let a = archive.to_str().expect("utf-8");
    let out = edgeminer(&["prune", "--state-dir", s, "--keep", "3", "--archive", a]);
    assert!(out.status.success(), "{}", text(&out));
    let upto = height - 3;
    assert!(
        text(&out).contains(&format!("dropped transactions 1..={upto}")),
        "{}",
        text(&out)
    );
    let again = edgeminer(&["prune", "--state-dir", s, "--keep", "3"]);
    assert!(text(&again).contains("nothing to drop"), "{}", text(&again));

    let out = edgeminer(&["verify", "--state-dir", s]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("1..={upto} were pruned")),
        "{}",
        text(&out)
    );
    let kept = ledger(&state);
    assert_eq!(
        kept,
        before[upto as usize..],
        "the kept rows are the newest"
    );

    // The archive is the whole old ledger.
    let whole = dir.path().join("whole");
    std::fs::create_dir(&whole).expect("mkdir");
    std::fs::copy(&archive, whole.join("ledger.bin")).expect("copy");
    assert_eq!(ledger(&whole), before);

    // The node goes on from its pruned ledger.
    let name = nodes[2].name.clone();
    nodes[2] = Node::start(&name, &state, &args);
    assert!(
        wait_until(Duration::from_secs(60), || ledger_len(&nodes[2]) >= 3 + 5),
        "{}",
        logs(&nodes)
    );
    let log = nodes[2].log_text();
    assert!(
        log.contains(&format!("resumed the ledger at tx {height} from")),
        "{log}"
    );
    let log = logs(&nodes);
    for n in nodes.iter_mut() {
        assert!(n.stop(), "{} did not stop:\n{log}", n.name);
    }
    let pruned = ledger(&state);
    let full = ledger(&nodes[0].state);
    let common = pruned.len().min(full.len() - upto as usize);
    assert!(common >= 8, "{common} common rows");
    assert_eq!(
        pruned[..common],
        full[upto as usize..upto as usize + common]
    );
}
