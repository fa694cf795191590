//! Shared helpers for the integration tests: a private Mosquitto on a free
//! loopback port, `edgeminer` child processes with their logs, and ledger
//! reading through the CLI. Every wait is bounded and every process is
//! stopped on drop, also when a test fails.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_edgeminer");

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn find_mosquitto() -> PathBuf {
    for p in [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    if let Ok(out) = Command::new("sh")
        .args(["-c", "command -v mosquitto"])
        .output()
    {
        let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !s.is_empty() {
            return PathBuf::from(s);
        }
    }
    panic!("mosquitto is not installed: `sudo apt-get install -y mosquitto` (the tests start their own on a free port)");
}

fn wait_port(port: u16, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A private Mosquitto broker on 127.0.0.1.
pub struct Mosquitto {
    pub port: u16,
    child: Child,
    pub dir: tempfile::TempDir,
    /// Whether it keeps retained messages in `dir` across a restart.
    pub persistent: bool,
}

/// The database a persistent broker writes in its directory.
pub const MOSQUITTO_DB: &str = "mosquitto.db";

impl Mosquitto {
    pub fn start() -> Mosquitto {
        Self::start_on(tempfile::tempdir().expect("temp dir"), free_port(), false)
    }

    /// A broker that saves its retained messages in its directory (on a
    /// clean stop, and every second) and reloads them when restarted.
    pub fn start_persistent() -> Mosquitto {
        Self::start_on(tempfile::tempdir().expect("temp dir"), free_port(), true)
    }

    /// Stops this broker and starts another on the same port. Without
    /// persistence it is killed and the new one starts empty (retained
    /// messages are gone). A persistent broker is stopped with SIGTERM, so
    /// that it saves its database, and the new one reloads it from the same
    /// directory.
    pub fn restart(self) -> Mosquitto {
        let (port, persistent) = (self.port, self.persistent);
        let mut old = self;
        if persistent {
            let _ = Command::new("kill")
                .args(["-TERM", &old.child.id().to_string()])
                .status();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = old.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = old.child.kill();
        let _ = old.child.wait();
        let dir = std::mem::replace(&mut old.dir, tempfile::tempdir().expect("temp dir"));
        drop(old);
        std::thread::sleep(Duration::from_millis(500));
        Self::start_on(dir, port, persistent)
    }

    fn start_on(dir: tempfile::TempDir, port: u16, persistent: bool) -> Mosquitto {
        let conf = dir.path().join("mosquitto.conf");
        let persistence = if persistent {
            format!(
                "persistence true\npersistence_location {}/\npersistence_file {MOSQUITTO_DB}\nautosave_interval 1\n",
                dir.path().display()
            )
        } else {
            "persistence false\n".to_string()
        };
        // Started as root, Mosquitto would switch to the `mosquitto` user,
        // which cannot write its log or database in our private directory:
        // `user root` keeps it as whoever started it (ignored for others).
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\nuser root\nset_tcp_nodelay true\n{persistence}log_dest file {}\n",
                dir.path().join("mosquitto.log").display()
            ),
        )
        .expect("write mosquitto.conf");
        Self::spawn(dir, port, persistent, &conf, Stdio::null(), Stdio::null())
    }

    /// Runs Mosquitto on a configuration file of the caller's that listens
    /// on `port`; its output (and its complaints about the file, which
    /// are shown if it does not start) goes to `mosquitto.out` in `dir`.
    pub fn start_with_config(dir: tempfile::TempDir, port: u16, conf: &Path) -> Mosquitto {
        let out = std::fs::File::create(dir.path().join("mosquitto.out")).expect("mosquitto.out");
        let err = out.try_clone().expect("mosquitto.out");
        Self::spawn(dir, port, false, conf, Stdio::from(out), Stdio::from(err))
    }

    /// Runs Mosquitto as Debian's package does, with `dropin` (which must
    /// listen on `port`) as `conf.d/edgeminer.conf`: the main file makes the
    /// settings of Debian 12's /etc/mosquitto/mosquitto.conf (pid_file,
    /// persistence on, persistence_location, log_dest file, include_dir),
    /// with this broker's directory for Debian's paths, plus `user root`
    /// (see `start_on`). Like the packaged broker, Mosquitto refuses a
    /// drop-in that makes one of those settings again, and this does not
    /// start.
    pub fn start_debian(dir: tempfile::TempDir, port: u16, dropin: &str) -> Mosquitto {
        let d = dir.path();
        let conf_d = d.join("conf.d");
        std::fs::create_dir(&conf_d).expect("conf.d");
        std::fs::write(conf_d.join("edgeminer.conf"), dropin).expect("write the drop-in");
        let main = d.join("mosquitto.conf");
        std::fs::write(
            &main,
            format!(
                "user root\npid_file {}\npersistence true\npersistence_location {}/\nlog_dest file {}\ninclude_dir {}\n",
                d.join("mosquitto.pid").display(),
                d.display(),
                d.join("mosquitto.log").display(),
                conf_d.display()
            ),
        )
        .expect("write mosquitto.conf");
        Self::start_with_config(dir, port, &main)
    }

    fn spawn(
        dir: tempfile::TempDir,
        port: u16,
        persistent: bool,
        conf: &Path,
        out: Stdio,
        err: Stdio,
    ) -> Mosquitto {
        let child = Command::new(find_mosquitto())
            .arg("-c")
            .arg(conf)
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start mosquitto");
        let m = Mosquitto {
            port,
            child,
            dir,
            persistent,
        };
        assert!(
            wait_port(port, Duration::from_secs(10)),
            "mosquitto did not listen on {port}:\n{}",
            std::fs::read_to_string(m.dir.path().join("mosquitto.out")).unwrap_or_default()
        );
        m
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `edgeminer run` process.
pub struct Node {
    pub name: String,
    pub state: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Node {
    pub fn start(name: &str, state: &Path, args: &[&str]) -> Node {
        Node::start_logging(name, state, args, "edgeminer=info")
    }

    /// [`Node::start`] with a `RUST_LOG` filter of the caller's choice.
    pub fn start_logging(name: &str, state: &Path, args: &[&str], filter: &str) -> Node {
        Node::start_with_env(name, state, args, &[("RUST_LOG", filter)])
    }

    /// [`Node::start`] with environment variables of the caller's choice
    /// (`RUST_LOG` is `edgeminer=info` unless given). Thermal care is off
    /// (`--no-thermal`), so that no test reads this machine's sensor, unless
    /// `args` name a `--thermal-path`.
    pub fn start_with_env(name: &str, state: &Path, args: &[&str], env: &[(&str, &str)]) -> Node {
        std::fs::create_dir_all(state).expect("state dir");
        let log = state.with_extension("log");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let thermal_off = (!args.contains(&"--thermal-path")).then_some("--no-thermal");
        let child = Command::new(BIN)
            .arg("run")
            .args(["--name", name, "--state-dir"])
            .arg(state)
            .args(args)
            .args(thermal_off)
            // Never systemd's notification socket of whoever runs the tests.
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .env("RUST_LOG", "edgeminer=info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start edgeminer run");
        Node {
            name: name.into(),
            state: state.to_path_buf(),
            log,
            child: Some(child),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGTERM, then wait (bounded); returns whether it exited cleanly.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Waits (at most `limit`) for the process to end by itself.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Everything the node logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no goodbye, no clean shutdown.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A cluster as its operator sets it up: a key in each board's state
/// directory (`edgeminer keygen`), then one genesis that lists them all
/// (`edgeminer genesis`).
pub struct Lab {
    /// The genesis file every node is given.
    pub genesis: PathBuf,
    pub cluster: String,
    /// The cluster id `edgeminer genesis` printed.
    pub cluster_id: String,
    /// Each member's id, in the order of the names given.
    pub ids: Vec<String>,
}

impl Lab {
    /// `--genesis FILE`, as node arguments.
    pub fn arg(&self) -> String {
        self.genesis.to_str().expect("utf-8 path").to_string()
    }
}

/// Creates the key of the node with state directory `state`; its id.
pub fn keygen(state: &Path) -> String {
    let out = edgeminer(&["keygen", "--state-dir", state.to_str().expect("utf-8 path")]);
    assert!(
        out.status.success(),
        "keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

/// Keys for the nodes `names` (state directories `dir/<name>`) and a
/// genesis of cluster `cluster` at `dir/<cluster>.genesis.toml` listing
/// them with their names, plus `extra` arguments of `edgeminer genesis`
/// (more `--member`s, `--quorum`, `--admin-key`).
pub fn make_lab(
    dir: &Path,
    cluster: &str,
    names: &[&str],
    difficulty: &str,
    extra: &[&str],
) -> Lab {
    let ids: Vec<String> = names.iter().map(|n| keygen(&dir.join(n))).collect();
    let genesis = dir.join(format!("{cluster}.genesis.toml"));
    let mut args: Vec<String> = ["genesis", "--cluster", cluster, "--difficulty", difficulty]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for (id, name) in ids.iter().zip(names) {
        args.push("--member".into());
        args.push(format!("{id}={name}"));
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push("--out".into());
    args.push(genesis.to_str().expect("utf-8 path").into());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = edgeminer(&argv);
    assert!(
        out.status.success(),
        "genesis: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cluster_id = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string();
    assert_eq!(cluster_id.len(), 32, "a cluster id: {cluster_id}");
    Lab {
        genesis,
        cluster: cluster.to_string(),
        cluster_id,
        ids,
    }
}

/// The lab of `start_cluster`: nodes `<prefix>1..=n` in `dir`, a cluster
/// named after the prefix and this process.
pub fn lab(prefix: &str, n: usize, dir: &Path, difficulty: &str) -> Lab {
    let names: Vec<String> = (1..=n).map(|i| format!("{prefix}{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let cluster = format!("{prefix}-{}", std::process::id());
    make_lab(dir, &cluster, &refs, difficulty, &[])
}

/// Starts `n` nodes named `<prefix>1..` in `dir`, all with `args`.
pub fn start_cluster(prefix: &str, n: usize, dir: &Path, args: &[&str]) -> Vec<Node> {
    (1..=n)
        .map(|i| {
            let name = format!("{prefix}{i}");
            Node::start(&name, &dir.join(&name), args)
        })
        .collect()
}

/// Committed transactions in a node's ledger (0 before it has one).
pub fn ledger_len(n: &Node) -> usize {
    if n.state.join("ledger.bin").exists() {
        ledger(&n.state).len()
    } else {
        0
    }
}

/// The last lines of every node's log, for failure messages.
pub fn logs(nodes: &[Node]) -> String {
    nodes
        .iter()
        .map(|n| format!("--- {} ---\n{}\n", n.name, n.log_tail(30)))
        .collect()
}

/// Stops every node, checks the ledgers share a prefix of at least
/// `min_len` identical rows, and returns them.
pub fn stop_and_compare(nodes: &mut [Node], min_len: usize) -> Vec<Vec<Row>> {
    let log = logs(nodes);
    for n in nodes.iter_mut() {
        assert!(
            n.stop(),
            "{} did not stop cleanly on SIGTERM:\n{log}",
            n.name
        );
    }
    let ledgers: Vec<Vec<Row>> = nodes.iter().map(|n| ledger(&n.state)).collect();
    let common_len = ledgers.iter().map(Vec::len).min().unwrap_or(0);
    assert!(
        common_len >= min_len,
        "only {common_len} common transactions:\n{log}"
    );
    for (n, l) in nodes.iter().zip(&ledgers) {
        assert_eq!(
            l[..common_len],
            ledgers[0][..common_len],
            "{} disagrees:\n{log}",
            n.name
        );
    }
    ledgers
}

pub fn edgeminer(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run edgeminer")
}

/// One row of `ledger --format csv`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub transaction: u64,
    pub round: u32,
    pub difficulty: u32,
    pub leader: String,
    pub winner: String,
    pub seed: String,
    pub preimage: String,
    pub sha1: String,
}

pub fn ledger(state: &Path) -> Vec<Row> {
    let out = edgeminer(&[
        "ledger",
        "--format",
        "csv",
        "--state-dir",
        state.to_str().expect("utf-8 path"),
    ]);
    assert!(
        out.status.success(),
        "ledger failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8 csv");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("transaction,round,difficulty,leader,winner,seed,preimage,sha1")
    );
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 8, "csv row: {l}");
            Row {
                transaction: f[0].parse().expect("transaction"),
                round: f[1].parse().expect("round"),
                difficulty: f[2].parse().expect("difficulty"),
                leader: f[3].into(),
                winner: f[4].into(),
                seed: f[5].into(),
                preimage: f[6].into(),
                sha1: f[7].into(),
            }
        })
        .collect()
}

/// Checks a row's proof of work with the `sha1` crate, independently of
/// edgeminer's own code.
pub fn check_row(r: &Row) {
    use sha1::{Digest, Sha1};
    let p = r.preimage.as_bytes();
    assert_eq!(p.len(), 53, "preimage length: {}", r.preimage);
    assert!(
        p.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_'),
        "preimage charset: {}",
        r.preimage
    );
    assert_eq!(&r.preimage[..3], "em-");
    assert_eq!(&r.preimage[19..20], "-");
    assert_eq!(
        &r.preimage[20..36],
        r.winner,
        "the winner's id is in the preimage"
    );
    assert_eq!(&r.preimage[36..37], "-");
    assert_eq!(&r.preimage[37..], r.seed, "the seed ends the preimage");
    let d = Sha1::digest(p);
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, r.sha1);
    let mut zeros = 0;
    for b in d.iter() {
        if *b == 0 {
            zeros += 8;
        } else {
            zeros += b.leading_zeros();
            break;
        }
    }
    assert!(
        zeros >= r.difficulty,
        "tx {}: {zeros} zero bits < difficulty {}",
        r.transaction,
        r.difficulty
    );
}

/// Polls until `cond` holds or `limit` passes.
/// Writes a fake temperature sensor file (millidegrees Celsius, as the
/// kernel's thermal zones give it) for `--thermal-path`. Write then rename,
/// so that a node never reads a half-written file.
pub fn set_temp(path: &Path, millidegrees: u32) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, format!("{millidegrees}\n")).expect("write temperature");
    std::fs::rename(&tmp, path).expect("rename temperature");
}

pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    cond()
}

/// A tmux server of our own (its own socket), killed on drop.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// A server on a socket named after the test and this process.
    pub fn new(test: &str) -> Tmux {
        Tmux {
            socket: format!("edgeminer-{test}-{}", std::process::id()),
        }
    }

    /// Runs `cmd` in a new detached session of 150 by 40 characters.
    pub fn start(&self, session: &str, cmd: &str) {
        let out = self.cmd(&[
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "150",
            "-y",
            "40",
            cmd,
        ]);
        assert!(out.status.success(), "tmux new-session: {out:?}");
    }

    /// The text of a pane, as a person would see it.
    pub fn capture(&self, target: &str) -> String {
        let out = self.cmd(&["capture-pane", "-p", "-t", target]);
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    pub fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .env("TERM", "xterm-256color")
            .output()
            .expect("tmux is not installed: `sudo apt-get install -y tmux` (.ci/run does)")
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}
