//! Tests of the configuration: flags over the file, refusals that name
//! the setting, thermal care's keys, and the shipped `deploy/config.toml`.

use super::*;

#[test]
fn difficulty_ranges() {
    assert_eq!(parse_difficulty("16..20").expect("valid"), (16, 20));
    assert_eq!(parse_difficulty("16..=20").expect("valid"), (16, 20));
    assert_eq!(parse_difficulty("18").expect("valid"), (18, 18));
    assert!(parse_difficulty("20..16").is_err());
    assert!(parse_difficulty("0..4").is_err());
    assert!(parse_difficulty("1..200").is_err());
    assert!(parse_difficulty("x").is_err());
}

#[test]
fn unknown_keys_are_refused() {
    assert!(toml::from_str::<FileConfig>("clustr = \"x\"").is_err());
    let f: FileConfig = toml::from_str("threads = 5").expect("valid file");
    assert_eq!(f.threads, Some(5));
}

/// A genesis file of three members, written once for the tests.
fn genesis_path() -> &'static str {
    static DIR: std::sync::OnceLock<(tempfile::TempDir, String)> = std::sync::OnceLock::new();
    let (_, path) = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let members = (1..=3u8)
            .map(|b| crate::wire::roster::Entry {
                id: crate::identity::NodeId([b; 8]),
                name: format!("pi-0{b}"),
            })
            .collect();
        let g = Genesis::new("lab".into(), members, 2, (16, 20), None, None).expect("valid");
        let path = dir.path().join("genesis.toml");
        crate::genesis_file::write_new(&path, &g).expect("write the genesis");
        let s = path.to_str().expect("utf-8 temp path").to_string();
        (dir, s)
    });
    path
}

#[test]
fn settings_of_the_genesis_are_refused_with_a_pointer_to_it() {
    for flag in [
        &["--nodes", "3"][..],
        &["--cluster", "lab"],
        &["--quorum", "2"],
        &["--difficulty", "8..9"],
    ] {
        let e = refusal(flag);
        assert!(e.contains("genesis"), "{flag:?}: {e}");
    }
    assert!(refusal(&["--ephemeral-key"]).contains("demo"));
    for key in [
        "nodes = 3",
        "cluster = \"lab\"",
        "quorum = 2",
        "difficulty = \"8..9\"",
    ] {
        let e = format!("{:#}", with_file(key, &[]).expect_err(key));
        assert!(e.contains("fixed in its genesis"), "{key}: {e}");
    }
    let no_genesis = {
        use clap::Parser;
        let argv = ["edgeminer", "run", "--state-dir", "/nonexistent/edgeminer"];
        match crate::cli::Cli::try_parse_from(argv)
            .expect("valid flags")
            .command
        {
            crate::cli::Command::Run(a) => *a,
            other => panic!("`run` parsed as {other:?}"),
        }
    };
    let e = format!(
        "{:#}",
        NodeConfig::from_args(&no_genesis).expect_err("refused")
    );
    assert!(e.contains("--genesis FILE"), "{e}");
}

fn run_args(extra: &[&str]) -> RunArgs {
    use clap::Parser;
    let mut argv = vec!["edgeminer", "run", "--genesis", genesis_path()];
    argv.extend_from_slice(&["--state-dir", "/nonexistent/edgeminer"]);
    argv.extend_from_slice(extra);
    match crate::cli::Cli::try_parse_from(argv)
        .expect("valid flags")
        .command
    {
        crate::cli::Command::Run(a) => *a,
        other => panic!("`run` parsed as {other:?}"),
    }
}

fn refusal(extra: &[&str]) -> String {
    format!(
        "{:#}",
        NodeConfig::from_args(&run_args(extra)).expect_err("refused")
    )
}

#[test]
fn tls_settings_match_the_url() {
    assert!(refusal(&["--broker", "mqtts://b"]).contains("--ca-file"));
    assert!(refusal(&["--broker", "mqtt://b", "--ca-file", "ca.crt"]).contains("mqtts://"));
    let e = refusal(&[
        "--broker",
        "mqtts://b",
        "--ca-file",
        "c",
        "--client-cert",
        "x",
    ]);
    assert!(e.contains("--client-key"), "{e}");
    let cfg = NodeConfig::from_args(&run_args(&["--broker", "mqtts://b", "--ca-file", "c"]))
        .expect("valid");
    assert_eq!(cfg.broker.tls.expect("tls").ca_file, PathBuf::from("c"));
}

#[test]
fn a_password_in_the_configuration_file_needs_a_private_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("edgeminer.toml");
    std::fs::write(&path, "username = \"n1\"\npassword = \"hunter2\"\n").expect("write");
    let flag = ["--config", path.to_str().expect("utf-8 temp path")];
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let e = refusal(&flag);
    assert!(e.contains("chmod 600") && !e.contains("hunter2"), "{e}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let cfg = NodeConfig::from_args(&run_args(&flag)).expect("private file");
    let creds = cfg.broker.credentials.clone().expect("credentials");
    assert_eq!(
        (creds.username.as_str(), creds.password.expose()),
        ("n1", "hunter2")
    );
    assert!(!format!("{cfg:?}").contains("hunter2"));
    std::fs::write(&path, "credentials_file = \"c\"\nusername = \"n1\"\n").expect("write");
    assert!(refusal(&flag).contains("keep one"));
}

/// A configuration file in a temp dir, and `--config` naming it.
fn with_file(text: &str, extra: &[&str]) -> Result<NodeConfig> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).expect("write");
    let mut flags = vec!["--config", path.to_str().expect("utf-8 temp path")];
    flags.extend_from_slice(extra);
    NodeConfig::from_args(&run_args(&flags))
}

#[test]
fn thermal_values_are_checked_by_name() {
    let cases = [
        (
            "thermal_soft_c = 85\nthermal_hard_c = 80",
            "thermal_soft_c = 85 must be below thermal_hard_c = 80",
        ),
        ("thermal_hard_c = 200", "thermal_hard_c = 200"),
        ("thermal_soft_c = -1", "thermal_soft_c = -1"),
        ("thermal_soft_c = nan", "thermal_soft_c = NaN"),
        (
            "thermal_hysteresis_c = 0",
            "thermal_hysteresis_c = 0: must be more than 0",
        ),
        ("thermal_interval_ms = 10", "thermal_interval_ms = 10"),
        ("thermal_dwell_ms = 99999999", "thermal_dwell_ms = 99999999"),
        ("thermal_soft_c = \"hot\"", "thermal_soft_c"),
        ("thermal = 1", "thermal"),
        ("thermal_sfot_c = 60", "unknown field `thermal_sfot_c`"),
    ];
    for (text, want) in cases {
        // Checked even with thermal care off.
        let e = format!("{:#}", with_file(text, &["--no-thermal"]).expect_err(text));
        assert!(e.contains(want), "{text}: {e}");
    }
}

/// A timer that would keep the cluster from deciding is refused by name
/// (an election timeout of 0 would end a round at every tick).
#[test]
fn protocol_timers_are_checked() {
    let cases = [
        ("election_timeout_ms = 0", "election_timeout_ms = 0"),
        (
            "election_timeout_ms = 99999999",
            "election_timeout_ms = 99999999",
        ),
        (
            "election_timeout_ms = 1000\nsolution_window_ms = 1000",
            "solution_window_ms = 1000",
        ),
        ("init_timeout_ms = 10", "init_timeout_ms = 10"),
    ];
    for (text, want) in cases {
        let e = format!("{:#}", with_file(text, &["--no-thermal"]).expect_err(text));
        assert!(e.contains(want), "{text}: {e}");
    }
    let fine = "election_timeout_ms = 1000\nsolution_window_ms = 0\ninit_timeout_ms = 1000";
    with_file(fine, &["--no-thermal"]).expect("the shortest settings that work");
}

#[test]
fn thermal_care_on_off_and_the_sensor_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sensor = dir.path().join("temp");
    let flag = ["--thermal-path", sensor.to_str().expect("utf-8 temp path")];
    // An explicit path that cannot be read is refused.
    let e = format!("{:#}", with_file("", &flag).expect_err("no sensor file"));
    assert!(
        e.contains("cannot read the temperature file") && e.contains("thermal_path"),
        "{e}"
    );
    let e = format!(
        "{:#}",
        with_file("thermal_path = \"/nonexistent/temp\"", &[]).expect_err("no file")
    );
    assert!(e.contains("/nonexistent/temp"), "{e}");

    std::fs::write(&sensor, "45000\n").expect("write");
    // Whole degrees may be written as integers.
    let cfg = with_file(
        "thermal_soft_c = 60\nthermal_hard_c = 75.5\nthermal_dwell_ms = 0",
        &flag,
    )
    .expect("valid");
    let t = cfg.mining.thermal.expect("thermal care on");
    assert_eq!(t.path, sensor);
    assert_eq!(
        (t.limits.soft_c, t.limits.hard_c, t.limits.hysteresis_c),
        (60.0, 75.5, 5.0)
    );
    assert_eq!((t.interval_ms, t.limits.dwell_ms), (5_000, 0));
    // The flag wins over `thermal = false`; --no-thermal and `thermal =
    // false` turn it off whatever the path.
    assert!(with_file("thermal = false", &flag)
        .expect("valid")
        .mining
        .thermal
        .is_some());
    let in_file = format!("thermal_path = {:?}", sensor.to_str().expect("utf-8"));
    assert!(with_file(&in_file, &["--no-thermal"])
        .expect("valid")
        .mining
        .thermal
        .is_none());
    let off = format!("{in_file}\nthermal = false");
    assert!(with_file(&off, &[])
        .expect("valid")
        .mining
        .thermal
        .is_none());
}

/// Every key `FileConfig` accepts, from serde's own list (the refusal of
/// an unknown key names them all).
fn file_keys() -> Vec<String> {
    let e = toml::from_str::<FileConfig>("not_a_key = 1")
        .expect_err("refused")
        .to_string();
    let list = e
        .split_once("expected one of")
        .map(|(_, l)| l)
        .unwrap_or_default();
    let keys: Vec<String> = list
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    assert!(
        keys.len() > 20 && keys.iter().any(|k| k == "genesis"),
        "{e}"
    );
    keys
}

const SHIPPED: &str = include_str!("../../deploy/config.toml");

#[test]
fn the_shipped_configuration_file_parses_and_runs() {
    let f: FileConfig = toml::from_str(SHIPPED).expect("deploy/config.toml parses");
    assert!(f.password.is_none(), "no password in a world-readable file");
    // With only a state directory added it makes a valid node.
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, SHIPPED).expect("write");
    let args = RunArgs {
        config: Some(path),
        state_dir: Some(dir.path().join("state")),
        no_thermal: true,
        ..run_args(&[])
    };
    let args = RunArgs {
        genesis: Some(genesis_path().into()),
        ..args
    };
    let cfg = NodeConfig::from_args(&args).expect("valid");
    assert_eq!(cfg.protocol.genesis.cluster(), "lab");
    assert!(f.genesis.is_some(), "the shipped file names a genesis");
}

#[test]
fn the_shipped_configuration_file_documents_every_key() {
    let gone = ["cluster", "nodes", "quorum", "difficulty"];
    for key in file_keys()
        .into_iter()
        .filter(|k| !gone.contains(&k.as_str()))
    {
        let documented = SHIPPED.lines().any(|l| {
            let l = l.trim_start_matches('#').trim_start();
            l.strip_prefix(key.as_str())
                .is_some_and(|r| r.trim_start().starts_with('='))
        });
        assert!(
            documented,
            "deploy/config.toml does not show the key `{key}`"
        );
    }
}

#[test]
fn metrics_are_off_unless_an_address_is_given() {
    let on = |extra: &[&str]| {
        NodeConfig::from_args(&RunArgs {
            no_thermal: true,
            ..run_args(extra)
        })
        .map(|c| c.metrics_addr)
    };
    assert_eq!(on(&[]).expect("valid"), None);
    let addr = on(&["--metrics-addr", "127.0.0.1:9848"]).expect("valid");
    assert_eq!(addr, Some("127.0.0.1:9848".parse().expect("an address")));
    let v6 = on(&["--metrics-addr", "[::]:9848"]).expect("valid");
    assert_eq!(v6.map(|a| a.port()), Some(9848));
    for bad in ["9848", "localhost:9848", "0.0.0.0", "1.2.3.4:99999"] {
        let e = format!("{:#}", on(&["--metrics-addr", bad]).expect_err(bad));
        assert!(e.contains("IP:PORT"), "{bad}: {e}");
    }
}

#[test]
fn log_levels_by_name() {
    for name in ["warn", "info", "debug", "trace"] {
        let v = parse_log_level(name).expect("a level");
        assert_eq!(log_level_name(v), name);
    }
    let e = parse_log_level("verbose").expect_err("no such level");
    assert!(e.to_string().contains("log_level"), "{e}");
}

#[test]
fn a_reload_takes_what_can_change_and_names_the_rest() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config.toml");
    let sensor = dir.path().join("temp");
    std::fs::write(&sensor, "50000\n").expect("write");
    let write = |text: &str| std::fs::write(&path, text).expect("write");
    write("thermal_soft_c = 70\n");
    let p = path.to_str().expect("utf-8");
    let s = sensor.to_str().expect("utf-8");
    let mut cfg =
        NodeConfig::from_args(&run_args(&["--config", p, "--thermal-path", s])).expect("valid");
    let again = |cfg: &NodeConfig| cfg.reread().expect("flags kept").expect("valid");

    let same = again(&cfg);
    assert_eq!(cfg.reload(&same), Reload::default(), "nothing changed");

    write(
        "thermal_soft_c = 60\nlog_level = \"debug\"\nmetrics_addr = \"127.0.0.1:9848\"\n\
         threads = 999\nbroker = \"mqtt://10.0.0.1\"\nname = \"other\"\n",
    );
    let new = again(&cfg);
    let r = cfg.reload(&new);
    assert!(r.log_level && r.thermal && r.metrics, "{r:?}");
    assert_eq!(r.restart, ["name", "threads", "broker"]);
    assert_eq!(cfg.log_level, Some(Verbosity::Debug));
    assert_eq!(
        cfg.mining.thermal.as_ref().map(|t| t.limits.soft_c),
        Some(60.0)
    );
    assert_eq!(
        cfg.metrics_addr,
        Some("127.0.0.1:9848".parse().expect("addr"))
    );
    // What waits for a restart keeps the value the node started with, so
    // that the next reload names it again.
    assert_ne!(cfg.mining.threads, 999);
    assert_eq!(cfg.reload(&new).restart, ["name", "threads", "broker"]);

    // An invalid file is refused: the node keeps what it had.
    write("log_level = \"loud\"\n");
    assert!(cfg.reread().expect("flags kept").is_err());
}
