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
//! A clean close ([`Link::close`]) goes through the same queue, after what
//! is already in it: the goodbye messages, then an unsubscribe from every
//! subscription. Once the broker has acknowledged both (it answers in
//! order, so every earlier publish is acknowledged too) the client sends
//! DISCONNECT and waits for the broker to close the connection. Dropping
//! the socket any earlier loses messages: the broker keeps sending to a
//! node that has closed, the node's kernel answers with a reset, and the
//! broker drops whatever it had received but not yet read (Mosquitto 2.0
//! logs it as "disconnected due to out of memory" and publishes the will).
//!
//! `mqtts://` URLs connect over TLS (`tls`), with a username and password
//! when given. Failures are explained by `diagnose`: each new kind is logged
//! once as a warning, and a definite refusal (bad credentials, a certificate
//! our CA did not sign) ends the connection for good with
//! [`Event::Fatal`] instead of retrying for ever.

pub mod diagnose;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use rand_core::{OsRng, RngCore};
use rumqttc::{
    AsyncClient, Broker, ClientBuildError, ClientError, EventLoop, LastWill, MqttOptions,
    NetworkOptions, Packet, PublishOptions, QoS, TlsConfiguration, Transport,
};
use tokio::sync::{mpsc, watch};
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
// The largest certificate any roster can produce fits one packet, with
// room for the topic and the packet's headers.
const _: () = assert!(crate::wire::MAX_CERT_MESSAGE + 1024 <= MAX_PACKET as usize);

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
    #[error("MQTT client options: {0}")]
    Options(#[from] ClientBuildError),
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

/// What the publisher task takes from the outbound queue.
enum Queued {
    Publish(Outgoing),
    /// Publish these last, unsubscribe and stop: the link is closing.
    Close(Vec<Outgoing>),
}

/// A handle to publish; cheap to clone.
#[derive(Clone)]
pub struct Link {
    out: mpsc::Sender<Queued>,
    poll: Arc<std::sync::Mutex<Option<JoinHandle<()>>>>,
}

impl Link {
    /// Queues a QoS 1 publish without blocking. Returns false if dropped.
    pub fn publish(&self, msg: Outgoing) -> bool {
        match self.out.try_send(Queued::Publish(msg)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(q)) => {
                if let Queued::Publish(m) = q {
                    warn!(topic = %m.topic, "mqtt: outbound queue full; dropping a message");
                }
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Publishes `goodbye` after everything already queued, waits for the
    /// broker to acknowledge it, disconnects and waits for the connection
    /// to close: all within `timeout`, after which the connection is cut.
    pub async fn close(self, goodbye: Vec<Outgoing>, timeout: Duration) {
        let mut handle = self.poll.lock().ok().and_then(|mut h| h.take());
        let work = async {
            // The publisher is gone only if the event loop is: nothing to close.
            if self.out.send(Queued::Close(goodbye)).await.is_err() {
                return;
            }
            if let Some(h) = handle.as_mut() {
                let _ = h.await;
            }
        };
        if tokio::time::timeout(timeout, work).await.is_err() {
            debug!("mqtt: the broker did not confirm the goodbye in time; cutting the connection");
            if let Some(h) = handle {
                h.abort();
            }
        }
    }
}

/// Connects (in the background) and returns the publish handle and events.
pub fn start(
    cfg: &BrokerConfig,
    subscriptions: Vec<String>,
    last_will: Option<Outgoing>,
) -> Result<(Link, mpsc::Receiver<Event>), MqttError> {
    let (opts, ctx) = options(cfg, last_will)?;
    let (client, eventloop) = AsyncClient::builder(opts).try_build()?;
    let (out_tx, out_rx) = mpsc::channel(OUTBOUND);
    let (ev_tx, ev_rx) = mpsc::channel(INBOUND);
    let (closing_tx, closing_rx) = watch::channel(false);
    tokio::spawn(publisher(
        client.clone(),
        out_rx,
        subscriptions.clone(),
        closing_tx,
    ));
    let poll = tokio::spawn(poll(
        eventloop,
        client,
        subscriptions,
        ev_tx,
        closing_rx,
        ctx,
    ));
    Ok((
        Link {
            out: out_tx,
            poll: Arc::new(std::sync::Mutex::new(Some(poll))),
        },
        ev_rx,
    ))
}

/// Connects once, without retrying, and disconnects: `Ok` when the broker
/// accepted the connection within `timeout`, else why not (see
/// [`diagnose`]). For `edgeminer doctor`; the node's connection is
/// [`start`]'s.
pub async fn probe(cfg: &BrokerConfig, timeout: Duration) -> Result<(), String> {
    let (opts, ctx) = options(cfg, None).map_err(|e| e.to_string())?;
    let (client, mut eventloop) = AsyncClient::builder(opts)
        .try_build()
        .map_err(|e| e.to_string())?;
    let connect = async {
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(diagnose::diagnose(&e, &ctx, true).message),
            }
        }
    };
    let answer = tokio::time::timeout(timeout, connect)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "{}: no answer to MQTT's CONNECT within {} s (a firewall dropping packets, or no MQTT broker on that port: a TLS port given as mqtt://?)",
                ctx.addr,
                timeout.as_secs()
            ))
        });
    if answer.is_ok() {
        let _ = client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_secs(1), eventloop.poll()).await;
    }
    answer
}

/// The client options for `cfg` (TLS, login, packet limits, the last
/// will), and what a failure's explanation may say about our side.
fn options(
    cfg: &BrokerConfig,
    last_will: Option<Outgoing>,
) -> Result<(MqttOptions, diagnose::Context), MqttError> {
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
    let mut opts = MqttOptions::new(cfg.client_id.clone(), Broker::tcp(ep.host, ep.port));
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
        opts.set_credentials(c.username.clone(), c.password.expose().to_owned());
    }
    opts.set_keep_alive(cfg.keep_alive_secs.max(1));
    opts.set_clean_start(true);
    opts.set_max_packet_size(Some(MAX_PACKET));
    opts.set_request_channel_capacity(OUTBOUND);
    opts.set_outgoing_inflight_upper_limit(100);
    // Each message is small and most answer the one before: with Nagle's
    // algorithm on, a publish waits for the broker's delayed ACK (about
    // 40 ms a hop on Linux).
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    opts.set_network_options(net);
    if let Some(w) = last_will {
        opts.set_last_will(LastWill::new(
            w.topic,
            w.payload,
            QoS::AtLeastOnce,
            w.retain,
            None,
        ));
    }
    Ok((opts, ctx))
}

async fn publish(client: &AsyncClient, m: Outgoing) -> Result<(), ClientError> {
    let options = PublishOptions::at_least_once().retain(m.retain);
    client.publish(m.topic, m.payload, options).await
}

/// Drains the outbound queue into the client (may await; never polls).
/// On [`Queued::Close`] it tells the poll task, publishes the goodbye and
/// unsubscribes: the poll task disconnects once the broker has answered.
async fn publisher(
    client: AsyncClient,
    mut rx: mpsc::Receiver<Queued>,
    subscriptions: Vec<String>,
    closing: watch::Sender<bool>,
) {
    while let Some(q) = rx.recv().await {
        match q {
            Queued::Publish(m) => {
                if publish(&client, m).await.is_err() {
                    return;
                }
            }
            Queued::Close(goodbye) => {
                closing.send_replace(true);
                for m in goodbye {
                    if publish(&client, m).await.is_err() {
                        return;
                    }
                }
                if subscriptions.is_empty() {
                    // No unsubscribe to wait for: disconnect right away.
                    let _ = client.disconnect().await;
                }
                for s in subscriptions {
                    if client.unsubscribe(s).await.is_err() {
                        return;
                    }
                }
                return;
            }
        }
    }
}

/// Hands an event to the node. Once the link is closing the node reads no
/// more: the event is dropped, also if it was waiting for room.
async fn forward(
    events: &mpsc::Sender<Event>,
    ev: Event,
    closing: &mut watch::Receiver<bool>,
) -> bool {
    if *closing.borrow() {
        return true;
    }
    tokio::select! {
        sent = events.send(ev) => sent.is_ok(),
        _ = closing.wait_for(|c| *c) => true,
    }
}

async fn poll(
    mut eventloop: EventLoop,
    client: AsyncClient,
    subscriptions: Vec<String>,
    events: mpsc::Sender<Event>,
    mut closing: watch::Receiver<bool>,
    ctx: diagnose::Context,
) {
    let mut backoff = Duration::from_millis(200);
    let mut connected = false;
    // The kind of the last failure logged as a warning: a broker that stays
    // away is reported once, not at every retry.
    let mut reported: Option<&'static str> = None;
    // Closing: unsubscriptions the broker has confirmed, and whether the
    // DISCONNECT is on its way.
    let mut unsubscribed = 0;
    let mut disconnecting = false;
    loop {
        match eventloop.poll().await {
            Ok(rumqttc::Event::Incoming(Packet::ConnAck(_))) => {
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
                if !forward(&events, Event::Connected, &mut closing).await {
                    return;
                }
            }
            Ok(rumqttc::Event::Incoming(Packet::Publish(p))) => {
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
                if !forward(&events, ev, &mut closing).await {
                    return;
                }
            }
            // Only a closing link unsubscribes.
            Ok(rumqttc::Event::Incoming(Packet::UnsubAck(_))) => unsubscribed += 1,
            Ok(_) => {}
            Err(e) => {
                if *closing.borrow() {
                    // After our DISCONNECT, the broker closing the
                    // connection; before it, the goodbye is lost either way.
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
        // The unsubscriptions were queued after the goodbye, and the broker
        // answers in order: with every one confirmed and nothing in flight,
        // all our publishes have arrived.
        let flushed = !subscriptions.is_empty()
            && unsubscribed >= subscriptions.len()
            && eventloop.state.inflight() == 0;
        if flushed && !disconnecting && *closing.borrow() {
            disconnecting = true;
            // The request channel is nearly empty now (the publisher has
            // stopped); if it is not, cut the connection.
            if client.try_disconnect().is_err() {
                return;
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
