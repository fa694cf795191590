//! The command line's contract: bench JSON, keygen and id, and empty ledgers.

mod common;

use common::edgeminer;

#[test]
fn bench_json_has_the_agreed_fields() {
    let out = edgeminer(&["bench", "--threads", "1", "--seconds", "1", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert!(v["engine"].is_string());
    assert_eq!(v["threads"], 1);
    assert!(v["hashes_per_second"].as_f64().expect("number") > 0.0);
}

#[test]
fn keygen_never_overwrites() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().to_str().expect("utf-8");
    let first = edgeminer(&["keygen", "--state-dir", d]);
    assert!(first.status.success());
    let key = std::fs::read(dir.path().join("node.key")).expect("key written");
    let id = String::from_utf8_lossy(&first.stdout).trim().to_string();
    assert_eq!(id.len(), 16);
    let shown = edgeminer(&["id", "--state-dir", d]);
    assert!(shown.status.success());
    assert_eq!(
        String::from_utf8_lossy(&shown.stdout).trim(),
        id,
        "id shows the key's id"
    );
    let second = edgeminer(&["keygen", "--state-dir", d]);
    assert!(!second.status.success());
    assert_eq!(
        std::fs::read(dir.path().join("node.key")).expect("key kept"),
        key
    );
}

#[test]
fn empty_state_dir_has_an_empty_ledger() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().to_str().expect("utf-8");
    let csv = edgeminer(&["ledger", "--state-dir", d, "--format", "csv"]);
    assert!(csv.status.success());
    assert_eq!(
        String::from_utf8_lossy(&csv.stdout),
        "transaction,round,difficulty,leader,winner,seed,preimage,sha1\n"
    );
    assert!(edgeminer(&["verify", "--state-dir", d]).status.success());
}

#[test]
fn bad_settings_are_refused_clearly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().to_str().expect("utf-8");
    let out = edgeminer(&["run", "--cluster", "a/b", "--nodes", "3", "--state-dir", d]);
    // EX_CONFIG: the systemd unit does not restart a node on it.
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cluster name"));
    let out = edgeminer(&[
        "run",
        "--cluster",
        "lab",
        "--nodes",
        "4",
        "--quorum",
        "2",
        "--state-dir",
        d,
    ]);
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("quorum"));
    let conf = dir.path().join("config.toml");
    std::fs::write(&conf, "cluster = \"lab\"\nnodes = 3\nthreads = \"four\"\n").expect("write");
    let c = conf.to_str().expect("utf-8");
    let out = edgeminer(&["run", "--config", c, "--state-dir", d, "--no-thermal"]);
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid configuration") && err.contains("threads"),
        "{err}"
    );
}

#[test]
fn verify_names_a_tampered_entry() {
    // A real ledger from the demo's machinery is not at hand here; instead
    // write a cluster record and a garbage commit through the ledger format.
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut f, _) = edgeminer::ledger::LedgerFile::open(dir.path()).expect("open");
    let meta = edgeminer::chain::Meta {
        version: 1,
        cluster: "lab".into(),
        nodes: 3,
        quorum: 2,
        difficulty_lo: 8,
        difficulty_hi: 8,
    };
    f.append(&minicbor::to_vec(&meta).expect("encode"))
        .expect("append");
    f.append(b"\x84\x40\x40\x80\x80").expect("append");
    drop(f);
    let out = edgeminer(&["verify", "--state-dir", dir.path().to_str().expect("utf-8")]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("transaction 1"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
