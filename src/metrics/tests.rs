use super::*;

fn who() -> Identity {
    Identity {
        cluster: "lab".into(),
        cluster_id: "00112233445566778899aabbccddeeff".into(),
        node: "pi-01".into(),
        id: "0123456789abcdef".into(),
        engine: "portable",
        threads: 4,
    }
}

/// The value of the one sample line that starts with `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn every_name_has_the_prefix_help_and_type() {
    let m = Metrics::new(&who());
    let text = m.encode(false);
    let mut typed = 0;
    for line in text.lines() {
        let name = if let Some(rest) = line.strip_prefix("# TYPE ") {
            typed += 1;
            rest.split(' ').next()
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            rest.split(' ').next()
        } else {
            line.split(['{', ' ']).next()
        };
        let name = name.unwrap_or_default();
        // The standard process metrics have no prefix, as in every exporter.
        assert!(
            name.starts_with("edgeminer_") || name.starts_with("process_"),
            "{line}"
        );
    }
    assert!(typed >= 15, "{text}");
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(sample(&text, name).is_some(), "no {name}:\n{text}");
    }
    assert_eq!(sample(&text, "edgeminer_mining_threads"), Some(4.0));
    assert!(text.contains(r#"edgeminer_node_info{version="#), "{text}");
}

#[test]
fn counters_follow_the_protocol_totals() {
    let mut m = Metrics::new(&who());
    let mut c = Counters {
        elections: 2,
        ..Counters::default()
    };
    c.rejected.insert(("election", "bad_signature"), 3);
    m.counters(&c);
    c.elections = 5;
    c.rejected.insert(("election", "bad_signature"), 4);
    c.rejected.insert(("solution", "bad_proof_of_work"), 1);
    m.counters(&c);
    m.counters(&c);
    let text = m.encode(false);
    assert_eq!(sample(&text, "edgeminer_elections_total"), Some(5.0));
    assert_eq!(
        sample(
            &text,
            r#"edgeminer_rejected_messages_total{phase="election",reason="bad_signature"}"#
        ),
        Some(4.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"edgeminer_rejected_messages_total{phase="solution",reason="bad_proof_of_work"}"#
        ),
        Some(1.0)
    );
}

#[test]
fn mining_figures_and_connections() {
    let mut m = Metrics::new(&who());
    m.connected(false);
    m.disconnected();
    m.connected(true);
    m.h.commits.inc();
    m.mining(Mining {
        candidates: 1_000,
        hashrate: 250.5,
        active: 3,
    });
    m.temperature(61.25);
    m.mining(Mining {
        candidates: 3_000,
        hashrate: 2_000.0,
        active: 2,
    });
    let text = m.encode(false);
    assert_eq!(sample(&text, "edgeminer_candidates_total"), Some(3000.0));
    assert_eq!(sample(&text, "edgeminer_hashrate"), Some(2000.0));
    assert_eq!(sample(&text, "edgeminer_mining_threads_active"), Some(2.0));
    assert_eq!(sample(&text, "edgeminer_temperature_celsius"), Some(61.25));
    assert_eq!(sample(&text, "edgeminer_reconnects_total"), Some(1.0));
    assert_eq!(sample(&text, "edgeminer_broker_connected"), Some(1.0));
    assert_eq!(sample(&text, "edgeminer_commits_total"), Some(1.0));
}

#[test]
fn no_temperature_before_a_reading() {
    let mut m = Metrics::new(&who());
    m.mining(Mining::default());
    let text = m.encode(false);
    assert_eq!(
        sample(&text, "edgeminer_temperature_celsius"),
        None,
        "{text}"
    );
}

#[test]
fn openmetrics_ends_with_eof() {
    let m = Metrics::new(&who());
    let text = m.encode(true);
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(!m.encode(false).contains("# EOF"));
}

#[test]
fn the_server_answers_scrapes_and_nothing_else() {
    let m = Metrics::new(&who());
    m.h.commits.inc();
    let server = Server::start("127.0.0.1:0".parse().expect("an address"), m.registry())
        .expect("listening on loopback");
    let base = format!("http://{}", server.addr());
    let mut resp = ureq::get(&format!("{base}/metrics"))
        .call()
        .expect("a scrape");
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = resp.body_mut().read_to_string().expect("a body");
    assert_eq!(sample(&text, "edgeminer_commits_total"), Some(1.0));

    let mut om = ureq::get(&format!("{base}/metrics"))
        .header("Accept", "application/openmetrics-text;version=1.0.0")
        .call()
        .expect("a scrape");
    let text = om.body_mut().read_to_string().expect("a body");
    assert!(text.ends_with("# EOF\n"));

    match ureq::get(&format!("{base}/nothing")).call() {
        Err(ureq::Error::StatusCode(404)) => {}
        other => panic!("expected 404, got {other:?}"),
    }
    match ureq::post(&format!("{base}/metrics")).send("x") {
        Err(ureq::Error::StatusCode(405)) => {}
        other => panic!("expected 405, got {other:?}"),
    }
    let addr = server.addr();
    drop(server);
    // tiny_http's accept thread lets go of the socket a moment after the
    // drop returns: allow it up to five seconds.
    let closed = (0..100).any(|_| {
        let refused = std::net::TcpStream::connect(addr).is_err();
        if !refused {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        refused
    });
    assert!(closed, "the port is closed once the server is dropped");
}
