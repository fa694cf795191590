//! `run --metrics-addr` against a live cluster of three real processes on a
//! real Mosquitto: scraped with a real HTTP client (ureq), the body parsed
//! as the Prometheus text exposition format (and as OpenMetrics), and the
//! figures checked against what the cluster did: commits, elections,
//! candidates, phase, members, temperature, a refused message, a reconnect.
//! The Grafana dashboard and docs/METRICS.md are checked against the names
//! a node really exports, `promtool check metrics` (Debian's `prometheus`
//! package) lints a live scrape, and the standard process metrics are
//! checked against `ps`. tests/prometheus.rs runs the dashboard's queries in
//! a real Prometheus.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;

/// One sample: its series name, labels and value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed exposition: families (name → type) and their samples.
#[derive(Debug, Default)]
struct Exposition {
    types: BTreeMap<String, String>,
    help: BTreeSet<String>,
    samples: Vec<Sample>,
}

fn valid_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

/// Parses `{a="x",b="y"}` (escapes \\ \" \n); returns the labels and the
/// rest of the line.
fn labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut out = BTreeMap::new();
    let mut rest = s.strip_prefix('{').ok_or("no {")?;
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((out, r));
        }
        let (name, r) = rest.split_once("=\"").ok_or(format!("no =\" in {rest}"))?;
        if !valid_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        let mut value = String::new();
        let mut chars = r.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".into()),
            }
        };
        if out.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} twice"));
        }
        rest = &r[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => v.parse().map_err(|_| format!("bad value {v:?}")),
    }
}

/// Parses the text format strictly: every sample belongs to a family whose
/// TYPE came before it, each family is typed once, values are numbers.
/// With `openmetrics`, the body must end in `# EOF` (and may have UNIT).
fn parse(text: &str, openmetrics: bool) -> Result<Exposition, String> {
    let mut e = Exposition::default();
    let mut eof = false;
    for line in text.lines() {
        if eof {
            return Err(format!("a line after # EOF: {line}"));
        }
        if line == "# EOF" && openmetrics {
            eof = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kw, name) = (parts.next(), parts.next().ok_or("no name")?);
            if !valid_name(name) {
                return Err(format!("bad family name in {line}"));
            }
            match kw {
                Some("TYPE") => {
                    let t = parts.next().ok_or("no type")?;
                    let known = [
                        "counter",
                        "gauge",
                        "histogram",
                        "summary",
                        "untyped",
                        "info",
                        "stateset",
                        "unknown",
                    ];
                    if !known.contains(&t) {
                        return Err(format!("unknown type {t}"));
                    }
                    if e.types.insert(name.to_string(), t.to_string()).is_some() {
                        return Err(format!("{name} typed twice"));
                    }
                }
                Some("HELP") => {
                    e.help.insert(name.to_string());
                }
                Some("UNIT") if openmetrics => {}
                _ => return Err(format!("unknown comment {line}")),
            }
            continue;
        }
        if line.is_empty() {
            return Err("an empty line".into());
        }
        let cut = line.find(['{', ' ']).ok_or(format!("no value: {line}"))?;
        let name = &line[..cut];
        let (labels, rest) = if line[cut..].starts_with('{') {
            labels(&line[cut..])?
        } else {
            (BTreeMap::new(), &line[cut..])
        };
        let mut fields = rest.split_whitespace();
        let value = parse_value(fields.next().ok_or(format!("no value: {line}"))?)?;
        if fields.count() > 1 {
            return Err(format!("extra fields: {line}"));
        }
        // OpenMetrics names counter families without `_total` and info
        // families without `_info`.
        [
            name,
            name.trim_end_matches("_total"),
            name.trim_end_matches("_info"),
        ]
        .into_iter()
        .find(|f| e.types.contains_key(*f))
        .ok_or(format!("a sample before its TYPE: {line}"))?;
        e.samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    if openmetrics && !eof {
        return Err("no # EOF".into());
    }
    Ok(e)
}

impl Exposition {
    fn get(&self, name: &str, want: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && want
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
    }
    fn names(&self) -> BTreeSet<String> {
        self.samples.iter().map(|s| s.name.clone()).collect()
    }
}

/// The body of a scrape in the Prometheus text format, unparsed.
fn scrape_text(port: u16) -> Result<String, String> {
    let mut resp = ureq::get(&format!("http://127.0.0.1:{port}/metrics"))
        .call()
        .map_err(|e| e.to_string())?;
    resp.body_mut().read_to_string().map_err(|e| e.to_string())
}

/// Debian's `prometheus` package installs promtool in /usr/bin.
fn find_promtool() -> std::path::PathBuf {
    for p in ["/usr/bin/promtool", "/usr/local/bin/promtool"] {
        if std::path::Path::new(p).exists() {
            return p.into();
        }
    }
    if let Ok(out) = std::process::Command::new("sh")
        .args(["-c", "command -v promtool"])
        .output()
    {
        let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !s.is_empty() {
            return s.into();
        }
    }
    panic!("promtool is not installed: `sudo apt-get install -y prometheus` (.ci/run does)");
}

/// `promtool check metrics` on an exposition: its exit code and output.
fn promtool_check(text: &str) -> (Option<i32>, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(find_promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    child
        .stdin
        .take()
        .expect("promtool's stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool's output");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), said)
}

/// `ps -o FIELD= -p PID`, as a number.
fn ps(pid: u32, field: &str) -> f64 {
    let out = std::process::Command::new("ps")
        .args(["-o", &format!("{field}="), "-p", &pid.to_string()])
        .output()
        .expect("ps (package procps)");
    let s = String::from_utf8_lossy(&out.stdout);
    s.trim()
        .parse()
        .unwrap_or_else(|_| panic!("ps -o {field}: {s:?}"))
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

#[test]
fn promtool_sees_what_it_lints() {
    // promtool itself: a unit that is no base unit is a problem (exit 3),
    // and a clean exposition passes, so that the check below can fail.
    let (code, said) = promtool_check("# HELP x_bits Bits.\n# TYPE x_bits gauge\nx_bits 1\n");
    assert_eq!(code, Some(3), "{said}");
    assert!(said.contains("base unit"), "{said}");
    let (code, said) = promtool_check("# HELP x_bytes Bytes.\n# TYPE x_bytes gauge\nx_bytes 1\n");
    assert_eq!(code, Some(0), "{said}");
}

fn scrape(port: u16, openmetrics: bool) -> Result<Exposition, String> {
    let mut req = ureq::get(&format!("http://127.0.0.1:{port}/metrics"));
    if openmetrics {
        req = req.header(
            "Accept",
            "application/openmetrics-text;version=1.0.0,*/*;q=0.1",
        );
    }
    let mut resp = req.call().map_err(|e| e.to_string())?;
    let text = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    parse(&text, openmetrics).map_err(|e| format!("{e}\n{text}"))
}

#[test]
fn the_parser_refuses_what_prometheus_would() {
    assert!(parse("# TYPE a counter\na_total 1\n", false).is_ok());
    assert!(parse("a 1\n", false).is_err(), "no TYPE");
    assert!(parse("# TYPE a gauge\na{x=\"1} 1\n", false).is_err());
    assert!(parse("# TYPE a gauge\na one\n", false).is_err());
    assert!(parse("# TYPE a gauge\n# TYPE a gauge\n", false).is_err());
    assert!(parse("# TYPE a gauge\na 1\n", true).is_err(), "no EOF");
    let e = parse("# TYPE a gauge\na{x=\"q\\\"\\n\"} 2\n", false).expect("valid");
    assert_eq!(e.get("a", &[("x", "q\"\n")]), Some(2.0));
}

#[test]
fn metrics_of_a_live_cluster() {
    let broker = Mosquitto::start_persistent();
    let dir = tempfile::tempdir().expect("temp dir");
    let url = broker.url();
    let lab = lab("m", 3, dir.path(), "12..14");
    let (cluster, genesis) = (lab.cluster.clone(), lab.arg());
    let sensor = dir.path().join("temp");
    set_temp(&sensor, 51_250);
    let ports = [free_port(), free_port(), free_port()];
    let started = unix_now();
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let args = |i: usize| -> Vec<String> {
        let mut a: Vec<String> = [
            "--genesis",
            &genesis,
            "--threads",
            "1",
            "--broker",
            &url,
            "--metrics-addr",
            &addrs[i],
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if i == 0 {
            a.extend(["--thermal-path".into(), sensor.display().to_string()]);
        }
        a
    };
    let mut nodes: Vec<Node> = (0..3)
        .map(|i| {
            let a = args(i);
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            let name = format!("m{}", i + 1);
            Node::start(&name, &dir.path().join(&name), &a)
        })
        .collect();

    // Commits show in every node's metrics.
    let mut last = BTreeMap::new();
    let ok = wait_until(Duration::from_secs(60), || {
        ports.iter().all(|&p| match scrape(p, false) {
            Ok(e) => {
                let done = e.get("edgeminer_commits_total", &[]).unwrap_or(0.0) >= 3.0;
                last.insert(p, e);
                done
            }
            Err(_) => false,
        })
    });
    assert!(ok, "no commits in the metrics:\n{}", logs(&nodes));

    let first = &last[&ports[0]];
    for (k, v) in first.types.iter() {
        // The standard process metrics have no prefix, as in every exporter.
        assert!(
            k.starts_with("edgeminer_") || k.starts_with("process_"),
            "{k}"
        );
        assert!(first.help.contains(k), "{k} has no HELP");
        assert!(["counter", "gauge"].contains(&v.as_str()), "{k}: {v}");
    }
    let info = [
        ("cluster", cluster.as_str()),
        ("cluster_id", lab.cluster_id.as_str()),
        ("node", "m1"),
    ];
    assert_eq!(first.get("edgeminer_node_info", &info), Some(1.0));
    let commits = first.get("edgeminer_commits_total", &[]).unwrap_or(0.0);
    let height = first.get("edgeminer_ledger_height", &[]).unwrap_or(0.0);
    assert!(height >= commits && commits >= 3.0, "{commits} {height}");
    // The genesis record, then at least one certificate per transaction.
    let bytes = first.get("edgeminer_ledger_bytes", &[]).unwrap_or(0.0);
    assert!(
        bytes > 300.0 * height,
        "{bytes} B for {height} transactions"
    );
    let written = first
        .get("edgeminer_disk_written_bytes_total", &[])
        .unwrap_or(0.0);
    assert!(
        written > 300.0 * commits,
        "{written} B written for {commits} commits"
    );
    let elections = first.get("edgeminer_elections_total", &[]).unwrap_or(0.0);
    assert!(
        elections >= commits,
        "{elections} elections, {commits} commits"
    );
    let in_phase: Vec<&Sample> = first
        .samples
        .iter()
        .filter(|s| s.name == "edgeminer_phase")
        .collect();
    let phases: BTreeSet<&str> = in_phase
        .iter()
        .filter_map(|s| s.labels.get("phase").map(String::as_str))
        .collect();
    assert_eq!(
        phases,
        BTreeSet::from(["election", "init", "learner", "mining", "voting"])
    );
    assert_eq!(in_phase.iter().map(|s| s.value).sum::<f64>(), 1.0);
    assert_eq!(first.get("edgeminer_members_online", &[]), Some(3.0));
    assert_eq!(first.get("edgeminer_broker_connected", &[]), Some(1.0));
    assert_eq!(first.get("edgeminer_cluster_nodes", &[]), Some(3.0));
    assert_eq!(first.get("edgeminer_cluster_quorum", &[]), Some(2.0));
    assert_eq!(first.get("edgeminer_roster_version", &[]), Some(0.0));
    for (id, name) in lab.ids.iter().zip(["m1", "m2", "m3"]) {
        let member = [("id", id.as_str()), ("member", name)];
        assert_eq!(first.get("edgeminer_member_online", &member), Some(1.0));
    }
    assert_eq!(first.get("edgeminer_mining_threads", &[]), Some(1.0));
    // Only the node with a sensor reports a temperature (read at start).
    assert_eq!(first.get("edgeminer_temperature_celsius", &[]), Some(51.25));
    let second = &last[&ports[1]];
    assert_eq!(second.get("edgeminer_temperature_celsius", &[]), None);

    // The pool's counter grows and the hash rate shows it.
    let before = first.get("edgeminer_candidates_total", &[]).unwrap_or(0.0);
    let ok = wait_until(Duration::from_secs(20), || {
        scrape(ports[0], false).is_ok_and(|e| {
            e.get("edgeminer_candidates_total", &[]).unwrap_or(0.0) > before
                && e.get("edgeminer_hashrate", &[]).unwrap_or(0.0) > 0.0
        })
    });
    assert!(ok, "candidates do not grow past {before}");

    // A refused message is counted by phase and reason.
    let garbage = std::process::Command::new("mosquitto_pub")
        .args(["-p", &broker.port.to_string(), "-h", "127.0.0.1"])
        .args([
            "-t",
            &format!("edgeminer/{cluster}/election/0123456789abcdef"),
        ])
        .args(["-m", "not a signed message"])
        .status()
        .expect("mosquitto_pub (package mosquitto-clients)");
    assert!(garbage.success());
    let refused = [("phase", "election"), ("reason", "undecodable")];
    let ok = wait_until(Duration::from_secs(10), || {
        ports.iter().all(|&p| {
            scrape(p, false)
                .is_ok_and(|e| e.get("edgeminer_rejected_messages_total", &refused) == Some(1.0))
        })
    });
    assert!(ok, "the refused message is not counted:\n{}", logs(&nodes));
    // A well-signed key of a node no roster lists: refused as no member.
    let stranger = edgeminer::identity::Identity::ephemeral(&mut rand_core::OsRng);
    let body = edgeminer::wire::Body {
        sender: stranger.id,
        tx: 0,
        round: 0,
        payload: edgeminer::wire::Payload::PubKey(edgeminer::wire::PubKey {
            key: stranger.public,
            name: "stranger".into(),
            cluster: lab.cluster_id.parse().expect("a cluster id"),
        }),
    };
    let id = lab.cluster_id.parse().expect("a cluster id");
    let key = edgeminer::wire::sign(&id, &stranger.key, body.encode());
    let file = dir.path().join("stranger.key.msg");
    std::fs::write(&file, key).expect("write");
    let sent = std::process::Command::new("mosquitto_pub")
        .args(["-p", &broker.port.to_string(), "-h", "127.0.0.1"])
        .args(["-t", &format!("edgeminer/{cluster}/pubkey/{}", stranger.id)])
        .arg("-f")
        .arg(&file)
        .status()
        .expect("mosquitto_pub");
    assert!(sent.success());
    let refused = [("phase", "pubkey"), ("reason", "not_a_member")];
    let ok = wait_until(Duration::from_secs(10), || {
        ports.iter().all(|&p| {
            scrape(p, false)
                .is_ok_and(|e| e.get("edgeminer_rejected_messages_total", &refused) == Some(1.0))
        })
    });
    assert!(ok, "the stranger's key is not counted:\n{}", logs(&nodes));

    // Every family is there now (the temperature and refusals too):
    // promtool's lint finds no problem in any node's scrape.
    for &p in &ports {
        let text = scrape_text(p).expect("a scrape");
        if p == ports[0] {
            assert!(text.contains("\nedgeminer_temperature_celsius "), "{text}");
        }
        assert!(
            text.contains("\nedgeminer_rejected_messages_total{"),
            "{text}"
        );
        let (code, said) = promtool_check(&text);
        assert_eq!(code, Some(0), "promtool check metrics: {said}\n{text}");
    }

    // The standard process metrics, against what `ps` says of the process.
    let pid = nodes[0].pid();
    let e = scrape(ports[0], false).expect("a scrape");
    let get = |n: &str| e.get(n, &[]).unwrap_or_else(|| panic!("no {n}"));
    let rss = get("process_resident_memory_bytes");
    let ps_rss = ps(pid, "rss") * 1024.0;
    assert!(
        (rss - ps_rss).abs() <= (ps_rss / 4.0).max(4e6),
        "resident {rss} B, ps says {ps_rss} B"
    );
    let vsz = get("process_virtual_memory_bytes");
    let ps_vsz = ps(pid, "vsz") * 1024.0;
    assert!(
        (vsz - ps_vsz).abs() <= ps_vsz / 4.0,
        "virtual {vsz} B, ps says {ps_vsz} B"
    );
    let start = get("process_start_time_seconds");
    assert!(
        start >= started - 5.0 && start <= unix_now() + 5.0,
        "started at {start}, the test started it at {started}"
    );
    // ps -o times: the CPU seconds the process used, whole.
    let cpu = get("process_cpu_seconds_total");
    let ps_cpu = ps(pid, "times");
    assert!(
        cpu > 0.0 && (cpu - ps_cpu).abs() <= 2.0 + ps_cpu / 10.0,
        "CPU {cpu} s, ps says {ps_cpu} s"
    );
    let (open, max) = (get("process_open_fds"), get("process_max_fds"));
    // stdin, stdout, the log, the broker connection, the metrics socket.
    assert!(open >= 5.0 && open < max, "{open} open of {max}");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .expect("Max open files");
    assert_eq!(soft.parse::<f64>().ok(), Some(max), "{limits}");

    // OpenMetrics for scrapers that ask for it (Prometheus does).
    let om = scrape(ports[0], true).expect("OpenMetrics");
    assert!(om.names().contains("edgeminer_commits_total"));
    assert_eq!(
        om.types.get("edgeminer_commits").map(String::as_str),
        Some("counter")
    );

    // Every name the Grafana dashboard queries is exported, and
    // docs/METRICS.md lists every family.
    let exported = scrape(ports[0], false).expect("a scrape").names();
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/grafana/edgeminer.json"
    ))
    .expect("deploy/grafana/edgeminer.json");
    let dash: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard JSON");
    let mut exprs = Vec::new();
    collect_exprs(&dash, &mut exprs);
    assert!(exprs.len() >= 8, "{exprs:?}");
    let mut queried = BTreeSet::new();
    for e in &exprs {
        for word in e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("edgeminer_") {
                queried.insert(word.to_string());
            }
        }
    }
    for q in &queried {
        assert!(
            exported.contains(q),
            "the dashboard queries {q}, not exported"
        );
    }
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/METRICS.md"))
        .expect("docs/METRICS.md");
    for family in first.types.keys() {
        assert!(
            doc.contains(&format!("`{family}`")),
            "docs/METRICS.md lacks {family}"
        );
    }

    // A broker restart is a reconnect.
    let broker = broker.restart();
    let ok = wait_until(Duration::from_secs(30), || {
        scrape(ports[1], false).is_ok_and(|e| {
            e.get("edgeminer_reconnects_total", &[]) == Some(1.0)
                && e.get("edgeminer_broker_connected", &[]) == Some(1.0)
        })
    });
    assert!(ok, "no reconnect counted:\n{}", logs(&nodes));

    for n in nodes.iter_mut() {
        assert!(n.stop(), "{} did not stop cleanly", n.name);
    }
    // The endpoint goes with the node.
    assert!(scrape(ports[0], false).is_err());
    drop(broker);
}

fn collect_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr" | "query", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}
