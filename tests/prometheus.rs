//! The Grafana dashboard (deploy/grafana/edgeminer.json) against a real
//! Prometheus (Debian's `prometheus` package): a live cluster of two nodes
//! on a private Mosquitto, a Prometheus on a free loopback port scraping
//! them every second into a temporary directory, then every query of the
//! dashboard (its variables' and its panels') run through Prometheus's HTTP
//! API as Grafana would run it. Each must be accepted and return data, with
//! the labels its legend names.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// Debian's `prometheus` package installs it in /usr/bin.
fn find_prometheus() -> PathBuf {
    for p in ["/usr/bin/prometheus", "/usr/local/bin/prometheus"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    if let Ok(out) = Command::new("sh")
        .args(["-c", "command -v prometheus"])
        .output()
    {
        let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !s.is_empty() {
            return PathBuf::from(s);
        }
    }
    panic!("prometheus is not installed: `sudo apt-get install -y prometheus` (.ci/run does; the test starts its own on a free port)");
}

/// A private Prometheus on 127.0.0.1, scraping `targets` every second;
/// killed on drop.
struct Prometheus {
    port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(job: &str, targets: &[String]) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let list: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: {job}\n    static_configs:\n      - targets: [{}]\n",
                list.join(", ")
            ),
        )
        .expect("write prometheus.yml");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("a log file");
        let child = Command::new(find_prometheus())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let p = Prometheus { port, child, dir };
        let ready = wait_until(Duration::from_secs(30), || {
            ureq::get(&p.url("/-/ready")).call().is_ok()
        });
        assert!(ready, "prometheus is not ready:\n{}", p.log());
        p
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log(&self) -> String {
        let text =
            std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// GET an API path with query parameters; the JSON answer, whatever
    /// the HTTP status (Prometheus answers a bad query with 400 and JSON).
    fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let mut req = ureq::get(&self.url(path))
            .config()
            .http_status_as_error(false)
            .build();
        for (k, v) in params {
            req = req.query(*k, *v);
        }
        let mut resp = req.call().expect("an answer from prometheus");
        let body = resp.body_mut().read_to_string().expect("a body");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
    }

    /// The result of an instant query, which must succeed.
    fn instant(&self, q: &str) -> Vec<Value> {
        let v = self.api("/api/v1/query", &[("query", q)]);
        assert_eq!(v["status"], "success", "{q}: {v}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every panel's targets, nested rows included: (panel title, target).
fn targets<'a>(v: &'a Value, out: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Array(ts)) = m.get("targets") {
                let title = m["title"].as_str().unwrap_or("untitled").to_string();
                out.extend(ts.iter().map(|t| (title.clone(), t)));
            }
            for (k, v) in m {
                if k != "targets" {
                    targets(v, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| targets(v, out)),
        _ => {}
    }
}

/// Replaces Grafana's variables in `expr` (`$name`, `${name}`, `[[name]]`)
/// by their values; a variable not in `vars` fails the test.
fn substitute(expr: &str, vars: &BTreeMap<String, String>) -> String {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::new();
    let mut rest = expr;
    while let Some(i) = rest.find(['$', '[']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let (name, len) = if let Some(t) = tail.strip_prefix("${") {
            let end = t
                .find('}')
                .unwrap_or_else(|| panic!("unclosed ${{ in {expr}"));
            // ${name:format}: the formats change nothing for one value.
            (t[..end].split(':').next().unwrap_or(""), end + 3)
        } else if let Some(t) = tail.strip_prefix("[[") {
            let end = t
                .find("]]")
                .unwrap_or_else(|| panic!("unclosed [[ in {expr}"));
            (&t[..end], end + 4)
        } else if let Some(t) = tail.strip_prefix('$') {
            let end = t.find(|c| !is_name(c)).unwrap_or(t.len());
            (&t[..end], end + 1)
        } else {
            out.push('[');
            rest = &tail[1..];
            continue;
        };
        let v = vars
            .get(name)
            .unwrap_or_else(|| panic!("{expr}: the test does not know Grafana's ${name}"));
        out.push_str(v);
        rest = &tail[len..];
    }
    out.push_str(rest);
    out
}

#[test]
fn substitution_of_grafana_variables() {
    let vars: BTreeMap<String, String> = [("cluster", "lab"), ("__rate_interval", "4s")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(
        substitute(
            "rate(x{cluster=\"$cluster\"}[$__rate_interval]) + y{c=\"${cluster}\"}[5m] + [[cluster]]",
            &vars
        ),
        "rate(x{cluster=\"lab\"}[4s]) + y{c=\"lab\"}[5m] + lab"
    );
    let unknown = std::panic::catch_unwind(|| substitute("x{node=\"$node\"}", &vars));
    assert!(unknown.is_err(), "an unknown variable fails");
}

/// The values of a query variable: Grafana's `label_values(selector,
/// label)` (or `label_values(label)`) through the labels API.
fn variable_values(prom: &Prometheus, query: &str, vars: &BTreeMap<String, String>) -> Vec<String> {
    let query = substitute(query.trim(), vars);
    let inner = query
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
        .unwrap_or_else(|| panic!("a variable query the test does not know: {query}"));
    let (selector, label) = match inner.rsplit_once(',') {
        Some((s, l)) => (Some(s.trim()), l.trim()),
        None => (None, inner.trim()),
    };
    let path = format!("/api/v1/label/{label}/values");
    let params: Vec<(&str, &str)> = selector.map(|s| ("match[]", s)).into_iter().collect();
    let v = prom.api(&path, &params);
    assert_eq!(v["status"], "success", "{query}: {v}");
    v["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_dashboards_queries_in_a_real_prometheus() {
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/grafana/edgeminer.json"
    ))
    .expect("deploy/grafana/edgeminer.json");
    let dash: Value = serde_json::from_str(&dashboard).expect("dashboard JSON");

    // Two nodes; the first reads a (fake) temperature sensor, so that the
    // temperature panel has data.
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let lab = lab("g", 2, dir.path(), "12..14");
    let sensor = dir.path().join("temp");
    set_temp(&sensor, 48_500);
    let ports = [free_port(), free_port()];
    let url = broker.url();
    let genesis = lab.arg();
    let nodes: Vec<Node> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            let addr = format!("127.0.0.1:{port}");
            let sensor = sensor.display().to_string();
            let mut args = vec![
                "--genesis",
                &genesis,
                "--threads",
                "1",
                "--broker",
                &url,
                "--metrics-addr",
                &addr,
            ];
            if i == 0 {
                args.extend(["--thermal-path", &sensor]);
            }
            let name = format!("g{}", i + 1);
            Node::start(&name, &dir.path().join(&name), &args)
        })
        .collect();
    let up = wait_until(Duration::from_secs(60), || {
        ports.iter().all(|p| {
            ureq::get(&format!("http://127.0.0.1:{p}/metrics"))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_to_string().ok())
                .is_some_and(|t| {
                    t.contains("\nedgeminer_commits_total ")
                        && !t.contains("\nedgeminer_commits_total 0\n")
                })
        })
    });
    assert!(up, "the nodes do not commit:\n{}", logs(&nodes));

    // A refused message, so that the refusals panel has a series.
    let garbage = Command::new("mosquitto_pub")
        .args(["-p", &broker.port.to_string(), "-h", "127.0.0.1"])
        .args([
            "-t",
            &format!("edgeminer/{}/election/0123456789abcdef", lab.cluster),
        ])
        .args(["-m", "not a signed message"])
        .status()
        .expect("mosquitto_pub (package mosquitto-clients)");
    assert!(garbage.success());

    let targets_addr: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let prom = Prometheus::start("edgeminer", &targets_addr);

    // Both targets up (Prometheus asks for OpenMetrics and parses it), and
    // a few samples of every series the panels need.
    let mut health = Value::Null;
    let scraped = wait_until(Duration::from_secs(60), || {
        health = prom.api("/api/v1/targets", &[]);
        let active = health["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        active.len() == 2
            && active.iter().all(|t| t["health"] == "up")
            && prom
                .instant("count_over_time(edgeminer_commits_total[1m]) >= 4")
                .len()
                == 2
            && prom
                .instant("count_over_time(edgeminer_rejected_messages_total[1m]) >= 4")
                .len()
                == 2
            && prom
                .instant("count_over_time(edgeminer_temperature_celsius[1m]) >= 4")
                .len()
                == 1
    });
    assert!(
        scraped,
        "prometheus has no data of the nodes:\n{health}\n{}\n{}",
        prom.log(),
        logs(&nodes)
    );

    // Grafana's built-in variables, for a 1 s scrape interval, and the
    // dashboard's own, from their queries.
    let mut vars: BTreeMap<String, String> = [
        ("__rate_interval", "4s"),
        ("__interval", "1s"),
        ("__interval_ms", "1000"),
        ("__range", "1m"),
        ("__range_s", "60"),
        ("__range_ms", "60000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let variables = dash["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for var in &variables {
        let name = var["name"].as_str().expect("a variable's name").to_string();
        let value = match var["type"].as_str() {
            Some("query") => {
                let q = var["query"]["query"]
                    .as_str()
                    .or_else(|| var["query"].as_str())
                    .or_else(|| var["definition"].as_str())
                    .expect("a variable's query");
                let values = variable_values(&prom, q, &vars);
                // This Prometheus scrapes one cluster: the variable offers it.
                if name == "cluster" {
                    assert_eq!(values, vec![lab.cluster.clone()], "{q}");
                }
                values
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| panic!("variable {name} ({q}) has no value"))
            }
            Some("constant" | "textbox" | "custom") => var["query"]
                .as_str()
                .and_then(|q| q.split(',').next())
                .unwrap_or_default()
                .trim()
                .to_string(),
            other => panic!("variable {name}: a type the test does not know: {other:?}"),
        };
        vars.insert(name, value);
    }

    let mut all = Vec::new();
    targets(&dash, &mut all);
    assert!(all.len() >= 10, "{} targets", all.len());
    let end = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let (start, end) = ((end - 30).to_string(), end.to_string());
    let mut problems = Vec::new();
    let mut seen_titles = BTreeSet::new();
    for (title, target) in &all {
        seen_titles.insert(title.clone());
        let raw = target["expr"]
            .as_str()
            .unwrap_or_else(|| panic!("{title}: a target without expr"));
        let expr = substitute(raw, &vars);
        // As Grafana asks: an instant query for instant targets, else a
        // range query over the last 30 s.
        let instant = target["instant"].as_bool() == Some(true);
        let v = if instant {
            prom.api("/api/v1/query", &[("query", &expr), ("time", &end)])
        } else {
            prom.api(
                "/api/v1/query_range",
                &[
                    ("query", &expr),
                    ("start", &start),
                    ("end", &end),
                    ("step", "1"),
                ],
            )
        };
        if v["status"] != "success" {
            problems.push(format!("{title}: {expr}\n    {}", v["error"]));
            continue;
        }
        let result = v["data"]["result"].as_array().cloned().unwrap_or_default();
        if result.is_empty() {
            problems.push(format!("{title}: {expr}\n    no data"));
            continue;
        }
        // Every label the legend names is a label of every series.
        let legend = target["legendFormat"].as_str().unwrap_or("");
        for part in legend.split("{{").skip(1) {
            let label = part.split("}}").next().unwrap_or("").trim();
            for series in &result {
                if series["metric"].get(label).is_none() {
                    problems.push(format!(
                        "{title}: {expr}\n    legend {legend:?}: a series without {label}: {}",
                        series["metric"]
                    ));
                }
            }
        }
        // The phase table: one row per node, naming its phase.
        if title == "Nodes now" {
            let rows: BTreeSet<(String, String)> = result
                .iter()
                .map(|s| {
                    (
                        s["metric"]["node"].as_str().unwrap_or("").to_string(),
                        s["metric"]["phase"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect();
            let nodes: BTreeSet<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
            let phases = ["learner", "init", "election", "mining", "voting"];
            if result.len() != 2
                || nodes != BTreeSet::from(["g1", "g2"])
                || !rows.iter().all(|(_, p)| phases.contains(&p.as_str()))
            {
                problems.push(format!(
                    "{title}: {expr}\n    not one phase per node: {rows:?}"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {} dashboard queries fail in Prometheus:\n  {}",
        problems.len(),
        all.len(),
        problems.join("\n  ")
    );
    assert!(seen_titles.contains("Nodes now"), "{seen_titles:?}");
    // Prometheus, the nodes and the broker are killed on drop.
}
