//! The demo's broker: rumqttd inside the process, on a free loopback port,
//! so that `edgeminer demo` needs nothing installed.

use std::net::TcpListener;

use anyhow::{bail, Context, Result};

/// Starts the embedded broker on a free loopback port; its URL.
pub fn start() -> Result<String> {
    let port = free_port()?;
    start_broker(port)?;
    Ok(format!("mqtt://127.0.0.1:{port}"))
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(l.local_addr()?.port())
}

/// Without the embedded broker, the demo needs `--broker`.
#[cfg(not(feature = "embedded-broker"))]
fn start_broker(_port: u16) -> Result<()> {
    bail!("this build has no embedded broker (built without the `embedded-broker` feature): pass --broker mqtt://HOST:PORT")
}

/// Starts rumqttd on 127.0.0.1:`port` in a background thread.
#[cfg(feature = "embedded-broker")]
fn start_broker(port: u16) -> Result<()> {
    use rumqttd::{Config, ConnectionSettings, RouterConfig, ServerSettings};
    use std::collections::HashMap;
    use std::net::{SocketAddr, TcpStream};
    use std::time::{Duration, Instant};
    let listen: SocketAddr = ([127, 0, 0, 1], port).into();
    let server = ServerSettings {
        name: "demo".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 5_000,
            max_payload_size: 64 * 1024,
            // rumqttd hands retained messages only to free outgoing slots:
            // with the default limits a late subscriber misses some keys.
            max_inflight_count: 1_000,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 1_000,
            max_outgoing_packet_count: 10_000,
            max_segment_size: 16 * 1024 * 1024,
            max_segment_count: 10,
            ..Default::default()
        },
        v5: Some(HashMap::from([("demo".to_string(), server)])),
        ..Default::default()
    };
    std::thread::Builder::new()
        .name("broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!("demo: the embedded broker stopped: {e}");
            }
        })
        .context("starting the embedded broker")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(listen).is_err() {
        if Instant::now() > deadline {
            bail!("the embedded broker did not open {listen} within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
