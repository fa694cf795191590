//! `edgeminer demo` runs a whole cluster on its embedded broker and reports
//! agreement.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn demo_commits_and_agrees() {
    let mut child = Command::new(common::BIN)
        .args([
            "demo",
            "--nodes",
            "3",
            "--rounds",
            "3",
            "--difficulty",
            "12..14",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start demo");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("demo did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().expect("output");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(status.success(), "demo failed:\n{text}");
    assert!(
        text.lines().any(|l| l.starts_with("agreement: ok")),
        "{text}"
    );
    let rows = text
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|w| w.parse::<u64>().is_ok())
        })
        .count();
    assert!(rows >= 3, "{text}");
}

#[test]
fn demo_runs_on_an_external_broker() {
    let broker = common::Mosquitto::start();
    let url = broker.url();
    let out = Command::new(common::BIN)
        .args([
            "demo",
            "--nodes",
            "3",
            "--rounds",
            "2",
            "--difficulty",
            "10..12",
            "--broker",
            &url,
        ])
        .stderr(Stdio::null())
        .output()
        .expect("run demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed:\n{text}");
    assert!(text.contains(&url), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("agreement: ok")),
        "{text}"
    );
}
