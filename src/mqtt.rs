//! The MQTT adapter: the only module that talks to rumqttc.
//!
//! It owns the known rumqttc pitfalls so nothing else has to:
//! - the task that polls the event loop never awaits a publish into the
//!   client's own request channel (that deadlocks, rumqtt #263/#1025):
//!   publishes go through a bounded queue (4096) drained by a separate task,
//!   and a full queue drops the message with a warning (the protocol
//!   tolerates loss and re-announces its state on reconnect);
//! - rumqttc does not back off between reconnects (#703): the poll task
//!   sleeps with capped exponential backoff and jitter after an error;
//! - with a clean session the broker forgets subscriptions (#250): every
//!   ConnAck resubscribes, and the node is told to re-announce.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand_core::{OsRng, RngCore};
use rumqttc::{AsyncClient, EventLoop, LastWill, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

const OUTBOUND: usize = 4096;
const INBOUND: usize = 1024;
const MAX_PACKET: usize = 64 * 1024;

#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// `mqtt://host:port` (port 1883 when omitted).
    pub url: String,
    pub client_id: String,
    pub keep_alive_secs: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

#[derive(Debug)]
pub enum Event {
    Connected,
    Disconnected,
    Message {
        topic: String,
        payload: Vec<u8>,
        retained: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("broker URL '{0}': expected mqtt://HOST[:PORT]")]
    BadUrl(String),
}

/// Parses `mqtt://host[:port]` (also `tcp://`, or no scheme).
pub fn parse_url(url: &str) -> Result<(String, u16), MqttError> {
    let bad = || MqttError::BadUrl(url.to_string());
    let rest = match url.split_once("://") {
        Some(("mqtt" | "tcp", rest)) => rest,
        Some(_) => return Err(bad()),
        None => url,
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if after.is_empty() => 1883,
            None => return Err(bad()),
        };
        (h.to_string(), port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad())?),
            None => (rest.to_string(), 1883),
        }
    };
    if host.is_empty() || host.contains('/') {
        return Err(bad());
    }
    Ok((host, port))
}

/// A handle to publish; cheap to clone.
#[derive(Clone)]
pub struct Link {
    out: mpsc::Sender<Outgoing>,
    client: AsyncClient,
    closing: Arc<AtomicBool>,
    poll: Arc<std::sync::Mutex<Option<JoinHandle<()>>>>,
}

impl Link {
    /// Queues a QoS 1 publish without blocking. Returns false if dropped.
    pub fn publish(&self, msg: Outgoing) -> bool {
        match self.out.try_send(msg) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(m)) => {
                warn!(topic = %m.topic, "mqtt: outbound queue full; dropping a message");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Publishes `goodbye`, disconnects, and waits (at most `timeout`) for
    /// the connection to close.
    pub async fn close(self, goodbye: Vec<Outgoing>, timeout: Duration) {
        let client = self.client.clone();
        let work = async move {
            for m in goodbye {
                let _ = client
                    .publish(m.topic, QoS::AtLeastOnce, m.retain, m.payload)
                    .await;
            }
            self.closing.store(true, Ordering::Release);
            let _ = client.disconnect().await;
            let handle = self.poll.lock().ok().and_then(|mut h| h.take());
            if let Some(h) = handle {
                let _ = h.await;
            }
        };
        let _ = tokio::time::timeout(timeout, work).await;
    }
}

/// Connects (in the background) and returns the publish handle and events.
pub fn start(
    cfg: &BrokerConfig,
    subscriptions: Vec<String>,
    last_will: Option<Outgoing>,
) -> Result<(Link, mpsc::Receiver<Event>), MqttError> {
    let (host, port) = parse_url(&cfg.url)?;
    let mut opts = MqttOptions::new(cfg.client_id.clone(), host, port);
    opts.set_keep_alive(Duration::from_secs(u64::from(cfg.keep_alive_secs.max(1))));
    opts.set_clean_session(true);
    opts.set_max_packet_size(MAX_PACKET, MAX_PACKET);
    opts.set_request_channel_capacity(OUTBOUND);
    opts.set_inflight(100);
    if let Some(w) = last_will {
        opts.set_last_will(LastWill::new(
            w.topic,
            w.payload,
            QoS::AtLeastOnce,
            w.retain,
        ));
    }
    let (client, eventloop) = AsyncClient::new(opts, OUTBOUND);
    let (out_tx, out_rx) = mpsc::channel(OUTBOUND);
    let (ev_tx, ev_rx) = mpsc::channel(INBOUND);
    let closing = Arc::new(AtomicBool::new(false));
    tokio::spawn(publisher(client.clone(), out_rx));
    let poll = tokio::spawn(poll(
        eventloop,
        client.clone(),
        subscriptions,
        ev_tx,
        closing.clone(),
    ));
    Ok((
        Link {
            out: out_tx,
            client,
            closing,
            poll: Arc::new(std::sync::Mutex::new(Some(poll))),
        },
        ev_rx,
    ))
}

/// Drains the outbound queue into the client (may await; never polls).
async fn publisher(client: AsyncClient, mut rx: mpsc::Receiver<Outgoing>) {
    while let Some(m) = rx.recv().await {
        if client
            .publish(m.topic, QoS::AtLeastOnce, m.retain, m.payload)
            .await
            .is_err()
        {
            return;
        }
    }
}

async fn poll(
    mut eventloop: EventLoop,
    client: AsyncClient,
    subscriptions: Vec<String>,
    events: mpsc::Sender<Event>,
    closing: Arc<AtomicBool>,
) {
    let mut backoff = Duration::from_millis(200);
    let mut connected = false;
    loop {
        match eventloop.poll().await {
            Ok(rumqttc::Event::Incoming(Packet::ConnAck(_))) => {
                connected = true;
                backoff = Duration::from_millis(200);
                // Subscribing from here would await into our own request
                // channel: hand it to a task.
                let (c, subs) = (client.clone(), subscriptions.clone());
                tokio::spawn(async move {
                    for s in subs {
                        if c.subscribe(s, QoS::AtLeastOnce).await.is_err() {
                            return;
                        }
                    }
                });
                if events.send(Event::Connected).await.is_err() {
                    return;
                }
            }
            Ok(rumqttc::Event::Incoming(Packet::Publish(p))) => {
                let ev = Event::Message {
                    topic: p.topic,
                    payload: p.payload.to_vec(),
                    retained: p.retain,
                };
                if events.send(ev).await.is_err() {
                    return;
                }
            }
            Ok(rumqttc::Event::Outgoing(rumqttc::Outgoing::Disconnect))
                if closing.load(Ordering::Acquire) =>
            {
                return
            }
            Ok(_) => {}
            Err(e) => {
                if closing.load(Ordering::Acquire) {
                    return;
                }
                if connected {
                    connected = false;
                    if events.send(Event::Disconnected).await.is_err() {
                        return;
                    }
                }
                debug!("mqtt: {e}; retrying in {} ms", backoff.as_millis());
                let jitter = 0.8 + (OsRng.next_u32() % 400) as f64 / 1000.0;
                tokio::time::sleep(backoff.mul_f64(jitter)).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("mqtt://127.0.0.1:1884").expect("ok"),
            ("127.0.0.1".into(), 1884)
        );
        assert_eq!(
            parse_url("mqtt://broker").expect("ok"),
            ("broker".into(), 1883)
        );
        assert_eq!(
            parse_url("localhost:2000").expect("ok"),
            ("localhost".into(), 2000)
        );
        assert_eq!(
            parse_url("mqtt://[::1]:1900").expect("ok"),
            ("::1".into(), 1900)
        );
        assert!(parse_url("http://x").is_err());
        assert!(parse_url("mqtt://:12").is_err());
        assert!(parse_url("mqtt://x:notaport").is_err());
    }
}
