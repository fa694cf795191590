//! The command line's contract: bench JSON, keygen and id, and empty ledgers.

mod common;

use common::*;

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
fn bench_signatures_reports_p256_costs() {
    let out = edgeminer(&["bench", "--signatures", "--seconds", "0.2", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    for field in [
        "sign_us",
        "verify_us",
        "signs_per_second",
        "verifies_per_second",
    ] {
        assert!(v[field].as_f64().expect("number") > 0.0, "{field}");
    }
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
    let missing = dir.path().join("none.toml");
    let out = edgeminer(&[
        "run",
        "--genesis",
        missing.to_str().expect("utf-8"),
        "--state-dir",
        d,
    ]);
    // EX_CONFIG: the systemd unit does not restart a node on it.
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("reading the genesis file"));
    // The settings of earlier versions point to the genesis.
    let out = edgeminer(&["run", "--nodes", "3", "--state-dir", d]);
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("genesis"));
    // A genesis whose quorum two halves could each reach.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "format = 1\ncluster = \"lab\"\nquorum = 1\ndifficulty = \"8..8\"\n\
         [[member]]\nid = \"0102030405060708\"\n[[member]]\nid = \"1112131415161718\"\n",
    )
    .expect("write");
    let out = edgeminer(&[
        "run",
        "--genesis",
        bad.to_str().expect("utf-8"),
        "--state-dir",
        d,
    ]);
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("quorum 1 of 2 members"), "{err}");
    let lab = make_lab(dir.path(), "lab", &["a"], "8..8", &[]);
    let conf = dir.path().join("config.toml");
    std::fs::write(&conf, "threads = \"four\"\n").expect("write");
    let c = conf.to_str().expect("utf-8");
    let g = lab.arg();
    let out = edgeminer(&[
        "run",
        "--genesis",
        &g,
        "--config",
        c,
        "--state-dir",
        d,
        "--no-thermal",
    ]);
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid configuration") && err.contains("threads"),
        "{err}"
    );
}

#[test]
fn verify_names_a_tampered_entry() {
    // A genesis record and a garbage commit, through the ledger format.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut f = edgeminer::store::records::RecordFile::open(dir.path()).expect("open");
    let members = vec![edgeminer::wire::roster::Entry {
        id: edgeminer::identity::NodeId([1; 8]),
        name: "a".into(),
    }];
    let g = edgeminer::protocol::Genesis::new("lab".into(), members, 1, (8, 8), None, None)
        .expect("valid");
    f.append(&g.encode()).expect("append");
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

#[test]
fn genesis_writes_the_file_and_prints_the_cluster_id() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lab = make_lab(
        dir.path(),
        "lab",
        &["pi-01", "pi-02", "pi-03"],
        "16..20",
        &[],
    );
    let text = std::fs::read_to_string(&lab.genesis).expect("the genesis file");
    assert!(text.contains(&lab.cluster_id), "{text}");
    for (id, name) in lab.ids.iter().zip(["pi-01", "pi-02", "pi-03"]) {
        assert!(
            text.contains(&format!("id = \"{id}\"\nname = \"{name}\"")),
            "{text}"
        );
    }
    assert!(text.contains("quorum = 2") && text.contains("the roster can never change"));
    // Never overwritten; bad members refused, naming them.
    let g = lab.arg();
    let again = edgeminer(&[
        "genesis",
        "--cluster",
        "lab",
        "--difficulty",
        "8",
        "--member",
        &lab.ids[0],
        "--out",
        &g,
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("never overwritten"));
    let out = dir.path().join("x.toml");
    let bad = edgeminer(&[
        "genesis",
        "--cluster",
        "lab",
        "--difficulty",
        "8",
        "--member",
        "pi-01",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("member 'pi-01'"));
    // With an admin key: created owner-only, named in the file.
    let admin = dir.path().join("admin.key");
    let out = dir.path().join("admin.toml");
    let made = edgeminer(&[
        "genesis",
        "--cluster",
        "lab",
        "--difficulty",
        "8",
        "--member",
        &lab.ids[0],
        "--admin-key",
        admin.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert!(made.status.success(), "{made:?}");
    let admin_id = edgeminer(&["id", "--key-file", admin.to_str().expect("utf-8")]);
    let admin_id = String::from_utf8_lossy(&admin_id.stdout).trim().to_string();
    let text = std::fs::read_to_string(&out).expect("written");
    assert!(text.contains(&format!("admin id {admin_id}")), "{text}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&admin).expect("key").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_node_not_in_a_fixed_roster_refuses_to_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lab = make_lab(dir.path(), "lab", &["a", "b", "c"], "8..8", &[]);
    let extra = dir.path().join("extra");
    let id = keygen(&extra);
    let g = lab.arg();
    let out = edgeminer(&[
        "run",
        "--genesis",
        &g,
        "--state-dir",
        extra.to_str().expect("utf-8"),
        "--broker",
        "mqtt://127.0.0.1:9",
        "--no-thermal",
    ]);
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&id) && err.contains(&lab.cluster_id), "{err}");
    assert!(err.contains("names no admin"), "{err}");
    // A member's state directory given another cluster's genesis.
    let other = make_lab(dir.path(), "other", &["z"], "8..8", &[]);
    let og = other.arg();
    let a = dir.path().join("a");
    let mut node = Node::start(
        "a",
        &a,
        &["--genesis", &g, "--broker", "mqtt://127.0.0.1:9"],
    );
    assert!(wait_until(std::time::Duration::from_secs(20), || a
        .join("ledger.bin")
        .exists()));
    node.stop();
    let out = edgeminer(&[
        "run",
        "--genesis",
        &og,
        "--state-dir",
        a.to_str().expect("utf-8"),
        "--broker",
        "mqtt://127.0.0.1:9",
        "--no-thermal",
    ]);
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("belongs to cluster 'lab'"), "{err}");
}
