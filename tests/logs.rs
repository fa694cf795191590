//! The log's contract, on the real binary running a short demo: one line
//! per phase event naming the phase, the transaction and the round; JSON
//! lines with `--log-format json`; no timestamps and no colours under
//! journald, where each line carries its priority instead; only warnings
//! with `-q`; a closed log pipe stops nothing.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `edgeminer <flags> demo --rounds 2 --difficulty 8..10` (four nodes on
/// the embedded broker), with the default log filter, at most 60 s.
fn demo(flags: &[&str], env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(common::BIN)
        .args(flags)
        .args(["demo", "--rounds", "2", "--difficulty", "8..10"])
        .args(["--threads", "1"])
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start demo");
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("demo did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    assert!(
        out.status.success(),
        "demo failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// (tx, round, rest) of "PHASE: tx T round R<rest>".
fn tx_round<'a>(message: &'a str, phase: &str) -> Option<(u64, u32, &'a str)> {
    let rest = message.strip_prefix(phase)?.strip_prefix(": tx ")?;
    let (tx, rest) = rest.split_once(" round ")?;
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    Some((tx.parse().ok()?, rest[..end].parse().ok()?, &rest[end..]))
}

#[test]
fn json_lines_carry_level_message_and_node() {
    let out = demo(&["--log-format", "json"], &[]);
    let stderr = String::from_utf8(out.stderr).expect("utf-8 log");
    let mut messages = Vec::new();
    for line in stderr.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["timestamp"].is_string(), "{line}");
        let level = v["level"].as_str().unwrap_or_else(|| panic!("{line}"));
        assert!(["INFO", "WARN", "ERROR"].contains(&level), "{line}");
        let message = v["fields"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message: {line}"));
        let node = v["span"]["node"].as_str().unwrap_or_default();
        assert!(node.starts_with("node-"), "no node name: {line}");
        if level == "INFO" {
            messages.push(message.to_string());
        }
    }
    // Every node logs its election result with the leader's votes out of
    // the four configured nodes (the quorum is 3).
    let elections: Vec<_> = messages
        .iter()
        .filter_map(|m| tx_round(m, "election"))
        .filter(|(tx, _, rest)| *tx == 1 && rest.starts_with(", leader node-"))
        .collect();
    assert_eq!(elections.len(), 4, "{messages:#?}");
    for (_, _, rest) in &elections {
        let (_, votes) = rest.split_once(" with ").expect("a vote count");
        let (n, _) = votes.split_once(" of 4 votes").expect("out of 4 nodes");
        assert!(
            (3..=4).contains(&n.parse::<u32>().expect("a number")),
            "{rest}"
        );
    }
    // The phase lines of a transaction all name its tx and round.
    for phase in ["challenge", "solution", "voting"] {
        let lines: Vec<_> = messages
            .iter()
            .filter(|m| m.starts_with(&format!("{phase}: ")))
            .collect();
        assert!(!lines.is_empty(), "no {phase} lines: {messages:#?}");
        for m in lines {
            assert!(tx_round(m, phase).is_some(), "no tx and round: {m}");
        }
    }
    let committed = messages
        .iter()
        .filter_map(|m| tx_round(m, "voting"))
        .filter(|(tx, _, rest)| *tx == 2 && rest.starts_with(" committed: seed "))
        .count();
    assert_eq!(committed, 4, "every node commits tx 2: {messages:#?}");
}

/// Under journald every line starts with its priority (`<6>` info, `<4>`
/// warning, `<3>` error), which journald turns into the entry's priority,
/// then the text: no time, no colour, no level word, no leading space.
#[test]
fn journald_lines_have_no_time_and_no_colour() {
    let out = demo(&[], &[("JOURNAL_STREAM", "1:1")]);
    let stderr = String::from_utf8(out.stderr).expect("utf-8 log");
    assert!(!stderr.contains('\u{1b}'), "ANSI escapes:\n{stderr}");
    let mut info = 0;
    for line in stderr.lines() {
        let Some(text) = ["<6>", "<4>", "<3>"]
            .iter()
            .find_map(|p| line.strip_prefix(p))
        else {
            panic!("no priority: {line}");
        };
        assert!(
            !text.starts_with(|c: char| c.is_ascii_digit() || c.is_whitespace()),
            "a timestamp or a space: {line}"
        );
        assert!(!text.starts_with("INFO"), "a level word: {line}");
        info += usize::from(line.starts_with("<6>"));
    }
    assert!(info > 0, "no info lines:\n{stderr}");
    assert!(stderr.contains(": election: tx 1 round "), "{stderr}");
}

#[test]
fn quiet_shows_no_info() {
    for format in ["text", "json"] {
        let out = demo(&["-q", "--log-format", format], &[]);
        let stderr = String::from_utf8(out.stderr).expect("utf-8 log");
        assert!(!stderr.contains("INFO"), "{format}:\n{stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("agreement: ok"), "{stdout}");
    }
}

#[test]
fn a_failure_is_a_json_line_too() {
    let out = Command::new(common::BIN)
        .args(["--log-format", "json", "run"])
        .args(["--config", "/nonexistent/edgeminer.toml"])
        .env_remove("RUST_LOG")
        .output()
        .expect("run edgeminer");
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).expect("utf-8 log");
    let last = stderr.lines().last().expect("an error line");
    let v: serde_json::Value = serde_json::from_str(last).expect("a JSON line");
    assert_eq!(v["level"], "ERROR", "{last}");
    let message = v["fields"]["message"].as_str().expect("a message");
    assert!(message.starts_with("edgeminer: "), "{message}");
}

/// A log nobody reads any more (`edgeminer ... 2>&1 | head -1`, a full
/// disk under a redirected log) never stops the program: its lines are
/// dropped and it runs to its end.
#[test]
fn a_closed_log_pipe_stops_nothing() {
    let mut child = Command::new(common::BIN)
        .args(["demo", "--rounds", "3", "--difficulty", "8..10"])
        .args(["--threads", "1"])
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start demo");
    drop(child.stderr.take());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("demo did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}
