//! Two rooms, two Mosquitto brokers joined by `deploy/mosquitto/bridge.conf`
//! as shipped (only its address rewritten): three boards on room A's broker
//! and two on room B's make one cluster of five (quorum 3). They commit and
//! agree; the bridge goes down (a partition between the rooms: room A keeps
//! committing, room B, short of a quorum, waits) and comes back (room B
//! catches up); then room B's broker restarts, without its retained
//! messages, and the cluster goes on.
//!
//! The bridge reaches room B through a small TCP relay in this test, so the
//! link between the rooms can be cut and restored without touching either
//! broker.

mod common;

use std::io::ErrorKind;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use common::*;

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/mosquitto");

/// A TCP relay from a loopback port to `127.0.0.1:target` that can be cut
/// (every connection closed, new ones refused) and restored.
struct Link {
    port: u16,
    up: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<JoinHandle<()>>,
}

impl Link {
    fn start(target: u16) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
        listener.set_nonblocking(true).expect("non-blocking");
        let port = listener.local_addr().expect("an address").port();
        let up = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (u, s, o) = (up.clone(), stop.clone(), open.clone());
        let accept = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) if u.load(Ordering::Relaxed) => relay(client, target, &o),
                    Ok(_) => {} // cut: dropped, so closed at once
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Link {
            port,
            up,
            stop,
            open,
            accept: Some(accept),
        }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::Relaxed);
        for s in self.open.lock().expect("not poisoned").drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::Relaxed);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cut();
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Copies both ways between `client` and a new connection to `target`;
/// each copy ends when either side closes.
fn relay(client: TcpStream, target: u16, open: &Mutex<Vec<TcpStream>>) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
        return;
    };
    let _ = client.set_nonblocking(false);
    let pairs = [
        (client.try_clone(), server.try_clone()),
        (server.try_clone(), client.try_clone()),
    ];
    for pair in pairs {
        if let (Ok(mut from), Ok(mut to)) = pair {
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from, &mut to);
                let _ = to.shutdown(Shutdown::Both);
                let _ = from.shutdown(Shutdown::Both);
            });
        }
    }
    let mut o = open.lock().expect("not poisoned");
    o.push(client);
    o.push(server);
}

/// Room A's broker: the tests' plain listener plus the shipped bridge.conf
/// with its address pointed at `link`.
fn room_a(link: &Link) -> Mosquitto {
    let port = free_port();
    let dir = tempfile::tempdir().expect("temp dir");
    let shipped = std::fs::read_to_string(format!("{DEPLOY}/bridge.conf")).expect("bridge.conf");
    let mut conf = format!(
        "listener {port} 127.0.0.1\nallow_anonymous true\nuser root\nset_tcp_nodelay true\npersistence false\nlog_dest file {}\n",
        dir.path().join("mosquitto.log").display()
    );
    let mut rewritten = 0;
    for line in shipped.lines() {
        if line.starts_with("address ") {
            conf.push_str(&format!("address 127.0.0.1:{}\n", link.port));
            rewritten += 1;
        } else {
            conf.push_str(line);
            conf.push('\n');
        }
    }
    assert_eq!(rewritten, 1, "bridge.conf has one address");
    let path = dir.path().join("a.conf");
    std::fs::write(&path, conf).expect("write a.conf");
    Mosquitto::start_with_config(dir, port, &path)
}

fn heights(nodes: &[Node]) -> Vec<usize> {
    nodes.iter().map(ledger_len).collect()
}

#[test]
fn two_rooms_bridged_commit_partition_and_heal() {
    let room_b = Mosquitto::start();
    let link = Link::start(room_b.port);
    let broker_a = room_a(&link);
    let dir = tempfile::tempdir().expect("temp dir");
    let lab = lab("r", 5, dir.path(), "8..10");
    let genesis = lab.arg();
    let (url_a, url_b) = (broker_a.url(), room_b.url());
    let mut nodes: Vec<Node> = (1..=5)
        .map(|i| {
            let name = format!("r{i}");
            let url = if i <= 3 { &url_a } else { &url_b };
            let args = ["--genesis", &genesis, "--threads", "1", "--broker", url];
            Node::start(&name, &dir.path().join(&name), &args)
        })
        .collect();

    // Both rooms commit together.
    let both = wait_until(Duration::from_secs(90), || {
        heights(&nodes).iter().all(|&h| h >= 3)
    });
    assert!(both, "the rooms did not commit together:\n{}", logs(&nodes));

    // The link between the rooms goes down: room A (three of five, a
    // quorum) goes on, room B waits.
    link.cut();
    std::thread::sleep(Duration::from_secs(1));
    let cut_at = heights(&nodes);
    let a_on = wait_until(Duration::from_secs(60), || {
        heights(&nodes)[..3].iter().all(|&h| h >= cut_at[0] + 3)
    });
    assert!(a_on, "room A stopped without room B:\n{}", logs(&nodes));
    let b = heights(&nodes);
    assert!(
        b[3] <= cut_at[3] + 1 && b[4] <= cut_at[4] + 1,
        "room B committed without a quorum: {cut_at:?} then {b:?}"
    );

    // The link comes back: room B catches up and both go on.
    link.restore();
    let top = *heights(&nodes).iter().max().expect("nodes");
    let healed = wait_until(Duration::from_secs(90), || {
        heights(&nodes).iter().all(|&h| h >= top + 2)
    });
    assert!(healed, "room B did not catch up:\n{}", logs(&nodes));

    // Room B's broker restarts, empty: its boards reconnect, the bridge
    // too, and the cluster goes on.
    let room_b = room_b.restart();
    let top = *heights(&nodes).iter().max().expect("nodes");
    let after = wait_until(Duration::from_secs(90), || {
        heights(&nodes).iter().all(|&h| h >= top + 2)
    });
    assert!(
        after,
        "no commits after room B's broker restarted:\n{}",
        logs(&nodes)
    );
    stop_and_compare(&mut nodes, top + 2);
    drop(room_b);
}
