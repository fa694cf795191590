//! The secured broker as shipped: `deploy/mosquitto/make-credentials.sh`
//! makes a CA, the broker's certificate and one login per node, Mosquitto
//! runs `deploy/mosquitto/secure.conf` with `edgeminer.acl` as a `conf.d`
//! drop-in of Debian's packaged configuration, and
//!
//! - three real nodes commit over TLS, each with its own login, while the
//!   broker refuses an anonymous client and a node writing another node's
//!   retained key;
//! - a wrong password, no login, a CA that did not sign the broker's
//!   certificate, TLS to a plain port, plain MQTT to the TLS port and a port
//!   with nothing behind it each get a message that says so, and the
//!   definite refusals stop the node;
//! - with client certificates (the config's mutual TLS lines switched on)
//!   a node logs in by certificate alone.
//!
//! Needs mosquitto, mosquitto_passwd, mosquitto_pub/sub and openssl (which
//! `.ci/run` installs). Loopback only; each test has its own broker.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::*;

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/mosquitto");

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// Runs the shipped script with this build's `edgeminer`.
fn make_credentials(out: &Path, extra: &[&str], nodes: &[&Path]) {
    let result = Command::new("bash")
        .arg(format!("{DEPLOY}/make-credentials.sh"))
        .arg("-o")
        .arg(out)
        .args(extra)
        .args(nodes)
        .env("EDGEMINER", BIN)
        .output()
        .expect("run make-credentials.sh");
    assert!(
        result.status.success(),
        "make-credentials.sh failed:\n{}{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
}

/// The username and password in a credentials file the script wrote.
fn login(file: &Path) -> (String, String) {
    let text = std::fs::read_to_string(file).expect("credentials file");
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {}", file.display()))
            .to_string()
    };
    (value("username = "), value("password = "))
}

/// Mosquitto on `secure.conf` as shipped, installed as the guide installs
/// it: a drop-in in `conf.d/` of a main file with Debian's settings
/// (`Mosquitto::start_debian`), with only these lines rewritten: the
/// listener (a free loopback port instead of 8883 on every interface) and
/// the file paths (this test's files instead of /etc/mosquitto/edgeminer/,
/// and the repository's own ACL). `switch_on` uncomments lines of the
/// file, such as its mutual TLS settings.
fn secure_broker(out: &Path, switch_on: &[&str]) -> Mosquitto {
    let port = free_port();
    let dir = tempfile::tempdir().expect("temp dir");
    let shipped = std::fs::read_to_string(format!("{DEPLOY}/secure.conf")).expect("secure.conf");
    let file = |name: &str| out.join(name).display().to_string();
    let mut conf = String::new();
    let mut rewritten = 0;
    for line in shipped.lines() {
        let mut words = line.split_whitespace();
        let value = match words.next().unwrap_or("") {
            "listener" => format!("{port} 127.0.0.1"),
            "certfile" => file("server.crt"),
            "keyfile" => file("server.key"),
            "cafile" => file("ca.crt"),
            "password_file" => file("passwd"),
            "acl_file" => format!("{DEPLOY}/edgeminer.acl"),
            _ => {
                let on = switch_on.iter().find(|s| line == format!("#{s}"));
                conf.push_str(on.copied().unwrap_or(line));
                conf.push('\n');
                continue;
            }
        };
        rewritten += 1;
        let key = line.split_whitespace().next().unwrap_or_default();
        conf.push_str(&format!("{key} {value}\n"));
    }
    assert_eq!(rewritten, 6, "secure.conf lost a line this test rewrites");
    Mosquitto::start_debian(dir, port, &conf)
}

/// `mosquitto_sub` or `mosquitto_pub` over TLS to the broker.
fn client(tool: &str, broker: &Mosquitto, ca: &Path, args: &[&str]) -> Output {
    Command::new(tool)
        .args([
            "-h",
            "localhost",
            "-p",
            &broker.port.to_string(),
            "--cafile",
        ])
        .arg(ca)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool} (mosquitto-clients): {e}"))
}

/// The retained message on `topic`, read by a fresh subscription.
fn retained(broker: &Mosquitto, ca: &Path, (user, pw): &(String, String), topic: &str) -> Vec<u8> {
    let sub = client(
        "mosquitto_sub",
        broker,
        ca,
        &[
            "-u",
            user,
            "-P",
            pw,
            "-t",
            topic,
            "-C",
            "1",
            "-W",
            "10",
            "--retained-only",
        ],
    );
    assert!(
        sub.status.success(),
        "reading {topic}: {}",
        String::from_utf8_lossy(&sub.stderr)
    );
    sub.stdout
}

#[test]
fn three_nodes_commit_over_tls_and_the_acl_holds() {
    let lab = tempfile::tempdir().expect("temp dir");
    let out = lab.path().join("broker");
    let states: Vec<PathBuf> = (1..=3).map(|i| lab.path().join(format!("s{i}"))).collect();
    let state_refs: Vec<&Path> = states.iter().map(PathBuf::as_path).collect();
    // The script writes the genesis too, and names it in each node's
    // broker.toml: `--config` is all a node needs.
    let cluster = format!("tls-{}", std::process::id());
    make_credentials(&out, &["-g", &cluster, "-d", "12..14"], &state_refs);
    let broker = secure_broker(&out, &[]);
    let ca = out.join("ca.crt");
    let url = format!("mqtts://localhost:{}", broker.port);
    let mut nodes: Vec<Node> = states
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let config = s.join("broker.toml");
            let args = [
                "--config",
                path_str(&config),
                "--broker",
                &url,
                "--threads",
                "1",
            ];
            Node::start(&format!("t{}", i + 1), s, &args)
        })
        .collect();
    assert!(
        wait_until(Duration::from_secs(120), || nodes
            .iter()
            .all(|n| ledger_len(n) >= 2)),
        "no two commits over TLS:\n{}",
        logs(&nodes)
    );

    // (a) No login, no access.
    let anonymous = client(
        "mosquitto_sub",
        &broker,
        &ca,
        &["-t", "edgeminer/#", "-C", "1", "-W", "5"],
    );
    assert!(!anonymous.status.success());
    assert!(
        String::from_utf8_lossy(&anonymous.stderr).contains("not authorised"),
        "{}",
        String::from_utf8_lossy(&anonymous.stderr)
    );

    // (b) Node 1's login cannot overwrite node 2's retained key.
    let observer = login(&out.join("observer.credentials"));
    let (id1, pw1) = login(&states[0].join("broker.credentials"));
    let (id2, _) = login(&states[1].join("broker.credentials"));
    let topic = format!("edgeminer/{cluster}/pubkey/{id2}");
    let before = retained(&broker, &ca, &observer, &topic);
    assert!(before.len() > 33, "node 2's key is retained");
    let forged = client(
        "mosquitto_pub",
        &broker,
        &ca,
        &[
            "-u", &id1, "-P", &pw1, "-t", &topic, "-m", "forged", "-r", "-q", "1",
        ],
    );
    // MQTT 3.1.1 has no way to refuse a publish: the broker acknowledges
    // it and drops it.
    assert!(
        forged.status.success(),
        "{}",
        String::from_utf8_lossy(&forged.stderr)
    );
    assert_eq!(
        retained(&broker, &ca, &observer, &topic),
        before,
        "node 2's retained key was overwritten"
    );

    stop_and_compare(&mut nodes, 2);
    drop(broker);
}

/// Starts `edgeminer run` for one node of `genesis` with `args`.
fn node(name: &str, state: &Path, genesis: &str, broker: &str, args: &[&str]) -> Node {
    let mut all = vec!["--genesis", genesis, "--threads", "1"];
    all.extend_from_slice(&["--broker", broker]);
    all.extend_from_slice(args);
    Node::start(name, state, &all)
}

#[test]
fn every_failure_says_what_is_wrong() {
    let lab = tempfile::tempdir().expect("temp dir");
    let out = lab.path().join("broker");
    let state = lab.path().join("s1");
    make_credentials(&out, &[], &[&state]);
    let other = lab.path().join("other-ca");
    make_credentials(&other, &[], &[&lab.path().join("x")]);
    let broker = secure_broker(&out, &[]);
    let plain = Mosquitto::start();
    let ca = out.join("ca.crt");
    let creds = state.join("broker.credentials");
    let (id, password) = login(&creds);
    let wrong = lab.path().join("wrong.credentials");
    let exposed = lab.path().join("exposed.credentials");
    for (file, mode) in [(&wrong, 0o600), (&exposed, 0o644)] {
        std::fs::write(
            file,
            format!("username = {id}\npassword = not-{password}\n"),
        )
        .expect("write");
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    let tls = format!("mqtts://localhost:{}", broker.port);
    let tls_as_plain = format!("mqtt://127.0.0.1:{}", broker.port);
    let plain_as_tls = format!("mqtts://localhost:{}", plain.port);
    let unused = free_port();
    let nothing = format!("mqtt://127.0.0.1:{unused}");
    let (ca_s, creds_s, wrong_s) = (path_str(&ca), path_str(&creds), path_str(&wrong));
    let other_ca = other.join("ca.crt");
    let d = |n: &str| lab.path().join(n);
    // Members of one genesis, so that each gets as far as the broker.
    let names = ["a", "b", "c", "d", "e", "f", "g"];
    let errs = make_lab(lab.path(), "errs", &names, "12..14", &[]);
    let g = errs.arg();
    let node =
        |name: &str, state: &Path, broker: &str, args: &[&str]| node(name, state, &g, broker, args);

    // Definite refusals: the node stops with a message.
    let mut bad_password = node(
        "wrong-pw",
        &d("a"),
        &tls,
        &["--ca-file", ca_s, "--credentials-file", wrong_s],
    );
    let mut anonymous = node("anon", &d("b"), &tls, &["--ca-file", ca_s]);
    let mut wrong_ca = node(
        "wrong-ca",
        &d("c"),
        &tls,
        &[
            "--ca-file",
            path_str(&other_ca),
            "--credentials-file",
            creds_s,
        ],
    );
    let mut exposed_file = node(
        "exposed",
        &d("d"),
        &tls,
        &["--ca-file", ca_s, "--credentials-file", path_str(&exposed)],
    );
    // Retried with backoff, and explained once.
    let mut to_tls_port = node(
        "to-tls",
        &d("e"),
        &tls_as_plain,
        &["--credentials-file", creds_s],
    );
    let mut to_plain_port = node("to-plain", &d("f"), &plain_as_tls, &["--ca-file", ca_s]);
    let mut to_nothing = node("nothing", &d("g"), &nothing, &[]);

    // Exit code 78 (a configuration problem: the unit does not restart it)
    // for a refusal by the broker and for a file refused before any
    // connection.
    let stops_with = |code: i32, n: &mut Node, says: &[&str]| {
        let status = n.wait_exit(Duration::from_secs(30));
        let log = n.log_text();
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(code),
            "{} did not stop:\n{log}",
            n.name
        );
        for s in says {
            assert!(log.contains(s), "{}: no '{s}' in:\n{log}", n.name);
        }
        assert!(
            !log.contains(&password),
            "{} logged a password:\n{log}",
            n.name
        );
    };
    let stops = |n: &mut Node, says: &[&str]| stops_with(78, n, says);
    stops(
        &mut bad_password,
        &[&format!(
            "edgeminer: the broker at localhost:{} refused user '{id}': not authorised",
            broker.port
        )],
    );
    stops(
        &mut anonymous,
        &["refused an anonymous connection", "--credentials-file"],
    );
    stops(
        &mut wrong_ca,
        &[&format!(
            "is not signed by the CA in --ca-file {}",
            other_ca.display()
        )],
    );

    stops_with(
        78,
        &mut exposed_file,
        &[&format!("run `chmod 600 {}`", exposed.display())],
    );

    let explains = |n: &mut Node, says: &str| {
        assert!(
            wait_until(Duration::from_secs(30), || n.log_text().contains(says)),
            "{}: no '{says}' in:\n{}",
            n.name,
            n.log_text()
        );
        assert!(n.stop(), "{} still runs and stops cleanly", n.name);
    };
    explains(
        &mut to_tls_port,
        &format!("if {} is a TLS port, use mqtts://", broker.port),
    );
    explains(
        &mut to_plain_port,
        "closed the connection during the TLS handshake",
    );
    explains(
        &mut to_nothing,
        &format!("nothing is listening at 127.0.0.1:{unused}"),
    );
    drop((broker, plain));
}

#[test]
fn client_certificates_for_mutual_tls() {
    let lab = tempfile::tempdir().expect("temp dir");
    let out = lab.path().join("broker");
    let state = lab.path().join("m1");
    // With an admin key, so that m2 (no member) looks for a roster that
    // adds it, and so connects, rather than being refused at once.
    let admin = lab.path().join("admin.key");
    make_credentials(
        &out,
        &["-c", "-g", "mtls", "-d", "10..12", "-a", path_str(&admin)],
        &[&state],
    );
    let genesis = out.join("genesis.toml");
    let (admin_login, _) = login(&out.join("admin.credentials"));
    let admin_id = edgeminer(&["id", "--key-file", path_str(&admin)]);
    assert_eq!(
        String::from_utf8_lossy(&admin_id.stdout).trim(),
        admin_login
    );
    let broker = secure_broker(
        &out,
        &["require_certificate true", "use_identity_as_username true"],
    );
    let url = format!("mqtts://localhost:{}", broker.port);
    let ca = out.join("ca.crt");
    let (cert, key) = (state.join("client.crt"), state.join("client.key"));
    // The certificate is the login: no credentials file.
    let args = [
        "--broker",
        &url,
        "--ca-file",
        path_str(&ca),
        "--client-cert",
        path_str(&cert),
        "--client-key",
        path_str(&key),
        "--genesis",
        path_str(&genesis),
        "--threads",
        "1",
    ];
    let mut alone = Node::start("m1", &state, &args);
    // Without one, the broker ends the handshake and the node says why.
    let mut without = Node::start(
        "m2",
        &lab.path().join("m2"),
        &[
            "--broker",
            &url,
            "--ca-file",
            path_str(&ca),
            "--genesis",
            path_str(&genesis),
        ],
    );
    assert!(
        wait_until(Duration::from_secs(60), || ledger_len(&alone) >= 1),
        "no commit with a client certificate:\n{}",
        alone.log_tail(30)
    );
    assert!(alone.stop());
    let status = without.wait_exit(Duration::from_secs(30));
    // A configuration problem: exit code 78, not restarted by the unit.
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(78),
        "{}",
        without.log_text()
    );
    assert!(
        without
            .log_text()
            .contains("wants a TLS client certificate"),
        "{}",
        without.log_text()
    );
    drop(broker);
}
