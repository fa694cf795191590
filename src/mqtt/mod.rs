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
//!
//! `mqtts://` URLs connect over TLS (`tls`), with a username and password
//! when given. Failures are explained by `diagnose`: each new kind is logged
//! once as a warning, and a definite refusal (bad credentials, a certificate
//! our CA did not sign) ends the connection for good with
//! [`Event::Fatal`] instead of retrying for ever.

pub mod diagnose;
pub mod tls;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand_core::{OsRng, RngCore};
use rumqttc::v5::mqttbytes::v5::{LastWill, Packet};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, EventLoop, MqttOptions};
use rumqttc::{TlsConfiguration, Transport};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::credentials::Credentials;
pub use tls::{ClientCert, TlsFiles};

const OUTBOUND: usize = 4096;
const INBOUND: usize = 1024;
/// The largest MQTT packet a node takes, announced to the broker at
/// connect (MQTT 5's Maximum Packet Size): the broker then drops larger
/// messages for this node instead of sending them. Over MQTT 3.1.1 the
/// client would have to take whatever comes, and a larger retained message
/// on the cluster's topics would cut every node off at every reconnect.
const MAX_PACKET: u32 = 64 * 1024;

#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// `mqtt://host[:1883]`, or `mqtts://host[:8883]` for TLS.
    pub url: String,
    pub client_id: String,
    pub keep_alive_secs: u16,
    /// The CA (and client certificate) for `mqtts://`; required there.
    pub tls: Option<TlsFiles>,
    pub credentials: Option<Credentials>,
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
    /// The broker refused us for good (see `diagnose`); nothing follows.
    Fatal(String),
}

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("broker URL '{0}': expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT]")]
    BadUrl(String),
    #[error("broker URL '{0}' is TLS (mqtts://): it needs a CA certificate (--ca-file FILE)")]
    NoCa(String),
    #[error("broker URL '{0}' is plain MQTT: a CA or client certificate needs an mqtts:// URL")]
    TlsWithoutMqtts(String),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// Where the broker is, and whether to speak TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

/// Parses `mqtt://host[:port]` (also `tcp://`, or no scheme; port 1883)
/// and `mqtts://host[:port]` (TLS; port 8883).
pub fn parse_url(url: &str) -> Result<Endpoint, MqttError> {
    let bad = || MqttError::BadUrl(url.to_string());
    let (rest, tls) = match url.split_once("://") {
        Some(("mqtt" | "tcp", rest)) => (rest, false),
        Some(("mqtts", rest)) => (rest, true),
        Some(_) => return Err(bad()),
        None => (url, false),
    };
    let default_port = if tls { 8883 } else { 1883 };
    let rest = rest.trim_end_matches('/');
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if after.is_empty() => default_port,
            None => return Err(bad()),
        };
        (h.to_string(), port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad())?),
            None => (rest.to_string(), default_port),
        }
    };
    if host.is_empty() || host.contains('/') {
        return Err(bad());
    }
    Ok(Endpoint { host, port, tls })
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
    let ep = parse_url(&cfg.url)?;
    let ctx = diagnose::Context {
        addr: if ep.host.contains(':') {
            format!("[{}]:{}", ep.host, ep.port)
        } else {
            format!("{}:{}", ep.host, ep.port)
        },
        host: ep.host.clone(),
        port: ep.port,
        ca_file: cfg.tls.as_ref().map(|t| t.ca_file.clone()),
        username: cfg.credentials.as_ref().map(|c| c.username.clone()),
        client_cert: cfg.tls.as_ref().is_some_and(|t| t.client.is_some()),
    };
    let mut opts = MqttOptions::new(cfg.client_id.clone(), ep.host, ep.port);
    match (&cfg.tls, ep.tls) {
        (Some(files), true) => {
            let config = tls::client_config(files)?;
            opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
        }
        (None, true) => return Err(MqttError::NoCa(cfg.url.clone())),
        (Some(_), false) => return Err(MqttError::TlsWithoutMqtts(cfg.url.clone())),
        (None, false) => {}
    }
    if let Some(c) = &cfg.credentials {
        opts.set_credentials(c.username.clone(), c.password.expose());
    }
    opts.set_keep_alive(Duration::from_secs(u64::from(cfg.keep_alive_secs.max(1))));
    opts.set_clean_start(true);
    opts.set_max_packet_size(Some(MAX_PACKET));
    opts.set_request_channel_capacity(OUTBOUND);
    opts.set_outgoing_inflight_upper_limit(100);
    if let Some(w) = last_will {
        opts.set_last_will(LastWill::new(
            w.topic,
            w.payload,
            QoS::AtLeastOnce,
            w.retain,
            None,
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
        ctx,
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
    ctx: diagnose::Context,
) {
    let mut backoff = Duration::from_millis(200);
    let mut connected = false;
    // The kind of the last failure logged as a warning: a broker that stays
    // away is reported once, not at every retry.
    let mut reported: Option<&'static str> = None;
    loop {
        match eventloop.poll().await {
            Ok(rumqttc::v5::Event::Incoming(Packet::ConnAck(_))) => {
                connected = true;
                reported = None;
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
            Ok(rumqttc::v5::Event::Incoming(Packet::Publish(p))) => {
                // Topics are UTF-8 by the MQTT rules; the broker checks.
                let Ok(topic) = String::from_utf8(p.topic.to_vec()) else {
                    debug!("mqtt: ignored a message whose topic is not UTF-8");
                    continue;
                };
                let ev = Event::Message {
                    topic,
                    payload: p.payload.to_vec(),
                    retained: p.retain,
                };
                if events.send(ev).await.is_err() {
                    return;
                }
            }
            Ok(rumqttc::v5::Event::Outgoing(rumqttc::Outgoing::Disconnect))
                if closing.load(Ordering::Acquire) =>
            {
                return
            }
            Ok(_) => {}
            Err(e) => {
                if closing.load(Ordering::Acquire) {
                    return;
                }
                let d = diagnose::diagnose(&e, &ctx, !connected);
                if d.fatal {
                    let _ = events.send(Event::Fatal(d.message)).await;
                    return;
                }
                if connected {
                    connected = false;
                    if events.send(Event::Disconnected).await.is_err() {
                        return;
                    }
                }
                if reported != Some(d.kind) {
                    reported = Some(d.kind);
                    warn!("mqtt: {} (retrying with backoff)", d.message);
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

    fn ep(host: &str, port: u16, tls: bool) -> Endpoint {
        Endpoint {
            host: host.into(),
            port,
            tls,
        }
    }

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("mqtt://127.0.0.1:1884").expect("ok"),
            ep("127.0.0.1", 1884, false)
        );
        assert_eq!(
            parse_url("mqtt://broker").expect("ok"),
            ep("broker", 1883, false)
        );
        assert_eq!(
            parse_url("localhost:2000").expect("ok"),
            ep("localhost", 2000, false)
        );
        assert_eq!(
            parse_url("mqtt://[::1]:1900").expect("ok"),
            ep("::1", 1900, false)
        );
        assert_eq!(
            parse_url("mqtts://broker").expect("ok"),
            ep("broker", 8883, true)
        );
        assert_eq!(
            parse_url("mqtts://[::1]").expect("ok"),
            ep("::1", 8883, true)
        );
        assert!(parse_url("http://x").is_err());
        assert!(parse_url("mqtt://:12").is_err());
        assert!(parse_url("mqtt://x:notaport").is_err());
    }
}
