//! `edgeminer status` against a live cluster of three real processes on a
//! real Mosquitto: its JSON (nodes, leader, open transaction, commits), its
//! plain text when stdout is no terminal, and what a person sees of
//! `--watch` in a terminal (a tmux pane, captured as text).

mod common;

use std::time::{Duration, Instant};

use common::*;

fn status(url: &str, genesis: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "status",
        "--broker",
        url,
        "--genesis",
        genesis,
        "--wait",
        "2",
    ];
    args.extend_from_slice(extra);
    edgeminer(&args)
}

#[test]
fn status_shows_a_live_cluster() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let url = broker.url();
    let lab = lab("s", 3, dir.path(), "19..21");
    let genesis = lab.arg();
    // One node reads a fake sensor, so that a temperature shows.
    let sensor = dir.path().join("temp");
    set_temp(&sensor, 48_500);
    let sensor = sensor.to_str().expect("utf-8 path").to_string();
    // The difficulty (19..21) is slow enough (a second or so per commit)
    // that the statuses, sent within a second of a change, name the open
    // transaction's leader.
    let args = ["--genesis", &genesis, "--threads", "1", "--broker", &url];
    let with_sensor: Vec<&str> = args
        .iter()
        .copied()
        .chain(["--thermal-path", &sensor])
        .collect();
    let nodes = vec![
        Node::start("s1", &dir.path().join("s1"), &with_sensor),
        Node::start("s2", &dir.path().join("s2"), &args),
        Node::start("s3", &dir.path().join("s3"), &args),
    ];
    let names = ["s1", "s2", "s3"];
    assert!(
        wait_until(Duration::from_secs(150), || nodes
            .iter()
            .all(|n| ledger_len(n) >= 2)),
        "no two commits:\n{}",
        logs(&nodes)
    );

    // --json, until every node has reported a hash rate (its second status,
    // about 10 s after its start).
    let committed = nodes.iter().map(ledger_len).min().unwrap_or(0) as u64;
    let start = Instant::now();
    let (json, last) = loop {
        let out = status(&url, &genesis, &["--json"]);
        assert!(
            out.status.success(),
            "status --json failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let v: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON object");
        let ready = v["nodes"].as_array().is_some_and(|n| {
            n.len() == 3 && n.iter().all(|n| n["hashrate"].as_u64().unwrap_or(0) > 0)
        }) && v["leader"].is_object();
        if ready || start.elapsed() > Duration::from_secs(60) {
            break (v, text);
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    let list = json["nodes"].as_array().expect("a nodes array");
    assert_eq!(list.len(), 3, "{last}");
    let mut ids = Vec::new();
    for (n, name) in list.iter().zip(names) {
        assert_eq!(n["name"], name, "{last}");
        assert_eq!(n["online"], true, "{last}");
        assert!(n["hashrate"].as_u64().unwrap_or(0) > 0, "{last}");
        assert!(n["cores"].as_u64().unwrap_or(0) >= 1, "{last}");
        assert_eq!(n["threads"], 1, "{last}");
        let id = n["id"].as_str().expect("an id").to_string();
        assert!(
            id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{last}"
        );
        ids.push(id);
    }
    assert_eq!(list[0]["temperature_c"], 48.5, "{last}");
    assert!(list[1]["temperature_c"].is_null(), "{last}");
    let leader = json["leader"]["id"].as_str().expect("a leader");
    assert!(
        ids.iter().any(|i| i == leader),
        "leader {leader} is no node: {last}"
    );
    let open = &json["open_transaction"];
    let tx = open["tx"].as_u64().expect("an open transaction");
    assert!(
        tx > committed,
        "open tx {tx}, {committed} committed: {last}"
    );
    assert!(
        json["committed"].as_u64().unwrap_or(0) >= committed,
        "{last}"
    );
    let commits = json["commits"].as_array().expect("commits");
    let newest = commits.first().expect("a commit");
    assert!(newest["tx"].as_u64().unwrap_or(0) >= committed, "{last}");
    assert!(names.iter().any(|n| newest["winner"] == *n), "{last}");
    assert_eq!(newest["seed"].as_str().map(str::len), Some(16), "{last}");

    // Plain text, no terminal codes, when stdout is a pipe.
    let out = status(&url, &genesis, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && !text.contains('\x1b'), "{text}");
    for want in [
        "cluster s-",
        lab.cluster_id.as_str(),
        "3 of 3 members online",
        "roster: version 0, 3 members, quorum 2",
        "leader: ",
        "open: tx ",
        "s1",
        "s3",
        "48.5 °C",
    ] {
        assert!(text.contains(want), "no {want:?} in\n{text}");
    }

    // --watch in a terminal: what a person would see.
    let tmux = Tmux::new("status");
    let watch = format!("{BIN} status --watch --broker {url} --genesis {genesis}");
    tmux.start("status", &watch);
    let wanted = [
        "every 1 s",
        "3 of 3 members online",
        "leader: s",
        "open: tx ",
        "difficulty 1",
        "expected ",
        "s1",
        "s2",
        "s3",
        "48.5 °C",
        "last commits:",
    ];
    let mut pane = String::new();
    let seen = wait_until(Duration::from_secs(30), || {
        pane = tmux.capture("status");
        wanted.iter().all(|w| pane.contains(w))
    });
    assert!(seen, "the pane shows:\n{pane}");
    // Redrawn in place: the header shows once, at the top.
    assert_eq!(pane.matches("edgeminer status").count(), 1, "{pane}");
    assert!(pane.starts_with("edgeminer status"), "{pane}");
    drop(tmux);

    // s3 leaves cleanly: offline, its last status (the second message of
    // its goodbye) says "left", and its rate is out of the sum.
    let mut nodes = nodes;
    assert!(nodes[2].stop(), "s3 stops cleanly");
    let out = status(&url, &genesis, &["--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let s3 = &v["nodes"][2];
    assert_eq!(
        (s3["name"].as_str(), s3["online"].as_bool()),
        (Some("s3"), Some(false)),
        "{v}"
    );
    assert_eq!(s3["phase"], "left", "{v}");
    assert_eq!(s3["hashrate"], 0, "{v}");
    let online: u64 = v["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["hashrate"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(v["hashrate"].as_u64(), Some(online), "{v}");
}
