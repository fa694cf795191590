//! The live progress line of `run` and `demo`: what a person sees in a
//! terminal (a tmux pane, captured as text), and nothing of it when stderr
//! is not a terminal.

mod common;

use std::time::Duration;

use common::*;

/// A progress line while mining: "tx 1 round 0 | mining 34 bits |
/// 12.3 MH/s | 1.0 G tried | expected 25 min, open 3.12 s".
fn is_mining_line(l: &str) -> bool {
    l.starts_with("tx 1 round 0 | mining 34 bits | ")
        && l.contains("H/s | ")
        && l.contains(" tried | expected ")
        && l.contains(", open ")
}

fn last_line(pane: &str) -> &str {
    pane.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("")
}

/// A demo whose one transaction takes minutes (34 bits): the line stays
/// at the bottom, below the log, and log lines above it are whole.
#[test]
fn demo_draws_a_live_line_below_the_log() {
    let tmux = Tmux::new("progress-demo");
    let cmd = format!("{BIN} demo --nodes 2 --rounds 1 --threads 1 --difficulty 34..34");
    let out = tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "demo",
        "-x",
        "150",
        "-y",
        "40",
        &cmd,
    ]);
    assert!(out.status.success(), "tmux: {out:?}");
    let mut pane = String::new();
    // Two readings of the line: it is redrawn (the time open moves on).
    let mut seen = Vec::new();
    let ok = wait_until(Duration::from_secs(30), || {
        pane = tmux.capture("demo");
        let last = last_line(&pane).to_string();
        if is_mining_line(&last) && seen.last() != Some(&last) {
            seen.push(last);
        }
        seen.len() >= 2
    });
    assert!(ok, "no live mining line at the bottom of the pane:\n{pane}");
    // Exactly one progress line on screen, and no log line carries any
    // of it.
    let progress: Vec<&str> = pane.lines().filter(|l| l.contains(" tried | ")).collect();
    assert_eq!(progress.len(), 1, "{pane}");
    assert!(pane.contains("challenge: tx 1 round 0"), "{pane}");
    for l in pane.lines().filter(|l| l.contains("INFO")) {
        assert!(
            !l.contains("H/s"),
            "a log line mixed with the progress line: {l}"
        );
    }
}

/// `run` in a terminal shows the line, and erases it when it stops.
#[test]
fn run_draws_the_line_and_erases_it_on_exit() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let tmux = Tmux::new("progress-run");
    let lab = make_lab(dir.path(), "progress", &["solo"], "34..34", &[]);
    let cmd = format!(
        "{BIN} run --genesis {} --threads 1 \
         --no-thermal --name solo --state-dir {} --broker {}; \
         echo exited $?; sleep 30",
        lab.arg(),
        dir.path().join("solo").display(),
        broker.url()
    );
    let out = tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "run",
        "-x",
        "150",
        "-y",
        "40",
        &cmd,
    ]);
    assert!(out.status.success(), "tmux: {out:?}");
    let mut pane = String::new();
    let ok = wait_until(Duration::from_secs(30), || {
        pane = tmux.capture("run");
        is_mining_line(last_line(&pane))
    });
    assert!(ok, "no live mining line:\n{pane}");

    tmux.cmd(&["send-keys", "-t", "run", "C-c", ""]);
    let ok = wait_until(Duration::from_secs(15), || {
        pane = tmux.capture("run");
        pane.contains("exited 0")
    });
    assert!(ok, "run did not stop on Ctrl-C:\n{pane}");
    assert!(!pane.contains(" tried | "), "the line stayed:\n{pane}");
    assert!(pane.contains("solo leaving the cluster"), "{pane}");
}

/// With stderr a pipe (a log file, the journal) there is no progress line
/// and no terminal control sequence at all.
#[test]
fn no_line_when_stderr_is_not_a_terminal() {
    let out = edgeminer(&[
        "demo",
        "--nodes",
        "2",
        "--rounds",
        "1",
        "--difficulty",
        "8..10",
    ]);
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains('\x1b') && !err.contains('\r'), "{err}");
    assert!(!err.contains(" tried"), "{err}");
}
