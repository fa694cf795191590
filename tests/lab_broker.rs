//! The plain broker as shipped: `deploy/mosquitto/lab.conf` installed as
//! the lab guide (deploy/README.md, section 3) installs it, a `conf.d`
//! drop-in of Debian's packaged configuration, with only its listener
//! rewritten (a free loopback port instead of 1883 on every interface).
//! The broker starts (the drop-in makes none of Debian's settings again)
//! and three nodes commit on it. `deploy/test-guide.sh` runs the guide's
//! own commands on booted Debian machines; this is the part CI can run.

mod common;

use std::time::Duration;

use common::*;

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/mosquitto");

#[test]
fn three_nodes_commit_on_lab_conf_as_a_debian_drop_in() {
    let port = free_port();
    let shipped = std::fs::read_to_string(format!("{DEPLOY}/lab.conf")).expect("lab.conf");
    let mut conf = String::new();
    let mut rewritten = 0;
    for line in shipped.lines() {
        if line.starts_with("listener ") {
            conf.push_str(&format!("listener {port} 127.0.0.1\n"));
            rewritten += 1;
        } else {
            conf.push_str(line);
            conf.push('\n');
        }
    }
    assert_eq!(rewritten, 1, "lab.conf has one listener");
    let broker = Mosquitto::start_debian(tempfile::tempdir().expect("temp dir"), port, &conf);

    let dir = tempfile::tempdir().expect("temp dir");
    let lab = lab("p", 3, dir.path(), "10..12");
    let genesis = lab.arg();
    let url = broker.url();
    let mut nodes = start_cluster(
        "p",
        3,
        dir.path(),
        &["--genesis", &genesis, "--broker", &url, "--threads", "1"],
    );
    assert!(
        wait_until(Duration::from_secs(120), || nodes
            .iter()
            .all(|n| ledger_len(n) >= 2)),
        "no two commits on lab.conf:\n{}",
        logs(&nodes)
    );
    stop_and_compare(&mut nodes, 2);
    drop(broker);
}
