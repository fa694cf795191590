//! The HTTP side of the metrics: the only module that talks to `tiny_http`.
//!
//! One thread answers `GET /metrics` with the registry in the Prometheus
//! text format (0.0.4), or in OpenMetrics 1.0 when the scraper's `Accept`
//! header asks for it (Prometheus itself does). `/` says where the metrics
//! are; anything else is 404, any method but GET and HEAD 405. The server
//! stops when [`Server`] is dropped.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::registry::Registry;
use tracing::{debug, warn};

/// How often the serving thread looks at the stop flag.
const POLL: Duration = Duration::from_millis(250);

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, thiserror::Error)]
#[error("cannot serve metrics on {addr}: {why}")]
pub struct ServeError {
    pub addr: SocketAddr,
    pub why: String,
}

/// The registry as exposition text.
pub fn encode(registry: &Registry, openmetrics: bool) -> String {
    let mut out = String::new();
    let done = if openmetrics {
        text::encode(&mut out, registry)
    } else {
        prometheus_text::encode(&mut out, registry)
    };
    if let Err(e) = done {
        // Only a failing `fmt::Write` can fail, and a String's never does.
        warn!("metrics: encoding failed: {e}");
    }
    out
}

/// A running metrics endpoint; dropping it stops it.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Listens on `addr` and serves `registry` until dropped.
    pub fn start(addr: SocketAddr, registry: Arc<Registry>) -> Result<Server, ServeError> {
        let http = tiny_http::Server::http(addr).map_err(|e| ServeError {
            addr,
            why: e.to_string(),
        })?;
        let bound = http.server_addr().to_ip().unwrap_or(addr);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || serve(&http, &registry, &flag))
            .map_err(|e| ServeError {
                addr,
                why: format!("cannot start its thread: {e}"),
            })?;
        Ok(Server {
            addr: bound,
            stop,
            thread: Some(thread),
        })
    }

    /// The address it listens on (the port the system chose for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(http: &tiny_http::Server, registry: &Registry, stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        match http.recv_timeout(POLL) {
            Ok(Some(req)) => answer(req, registry),
            Ok(None) => {}
            Err(e) => {
                // A failed accept (out of file descriptors, say): keep going.
                debug!("metrics: {e}");
                std::thread::sleep(POLL);
            }
        }
    }
}

fn header(name: &str, value: &str) -> Option<tiny_http::Header> {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

fn answer(req: tiny_http::Request, registry: &Registry) {
    use tiny_http::{Method, Response};
    let path = req.url().split('?').next().unwrap_or("");
    let wants_openmetrics = req.headers().iter().any(|h| {
        h.field.equiv("Accept") && h.value.as_str().contains("application/openmetrics-text")
    });
    let (status, body, content_type) = match (req.method(), path) {
        (Method::Get | Method::Head, "/metrics") => {
            let body = encode(registry, wants_openmetrics);
            let ct = if wants_openmetrics {
                OPENMETRICS
            } else {
                prometheus_text::CONTENT_TYPE
            };
            (200, body, ct)
        }
        (Method::Get | Method::Head, "/") => (
            200,
            "edgeminer node: metrics at /metrics\n".to_string(),
            "text/plain; charset=utf-8",
        ),
        (Method::Get | Method::Head, _) => (404, "not found: try /metrics\n".into(), "text/plain"),
        _ => (405, "only GET and HEAD\n".into(), "text/plain"),
    };
    let mut resp = Response::from_string(body).with_status_code(status);
    if let Some(h) = header("Content-Type", content_type) {
        resp = resp.with_header(h);
    }
    if status == 405 {
        if let Some(h) = header("Allow", "GET, HEAD") {
            resp = resp.with_header(h);
        }
    }
    if let Err(e) = req.respond(resp) {
        debug!("metrics: answering a scrape failed: {e}");
    }
}
