//! Why a connection to the broker failed, in words a lab user can act on,
//! and whether trying again can help.
//!
//! rumqttc reports a refused password, an untrusted certificate and a port
//! with nothing behind it all as one error type whose text names the layer
//! ("TLS: I/O: invalid peer certificate: UnknownIssuer"), not the cause or
//! the fix. This module walks the error's causes (through `io::Error`s,
//! which hide theirs from `source()`) to the rustls or socket error inside.
//!
//! A definite answer that will not change by itself (the broker refused the
//! username or password, its certificate is not signed by our CA, it refused
//! our client certificate) is fatal: the node stops with the message. Anything
//! else (nothing listening yet, a timeout, a broker restarting, a clock not
//! yet set) is retried with backoff.

use std::error::Error as StdError;
use std::io;
use std::path::PathBuf;

use rumqttc::{ConnectReturnCode, ConnectionError, StateError};
use rustls::{AlertDescription, CertificateError};

/// What the message may mention about our side of the connection.
#[derive(Clone, Debug)]
pub struct Context {
    /// `host:port` as configured.
    pub addr: String,
    pub host: String,
    pub port: u16,
    /// The CA file when the connection is TLS.
    pub ca_file: Option<PathBuf>,
    /// The username we logged in with, if any (never the password).
    pub username: Option<String>,
    /// Whether we offer a TLS client certificate.
    pub client_cert: bool,
}

/// What went wrong, for the log or the exit message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnosis {
    pub message: String,
    /// The broker gave a definite answer: do not retry.
    pub fatal: bool,
    /// A short name of the kind of failure, to log each kind once.
    pub kind: &'static str,
}

fn fatal(kind: &'static str, message: String) -> Diagnosis {
    Diagnosis {
        message,
        fatal: true,
        kind,
    }
}

fn transient(kind: &'static str, message: String) -> Diagnosis {
    Diagnosis {
        message,
        fatal: false,
        kind,
    }
}

/// The chain of causes, looking inside `io::Error`s too.
fn causes<'a>(e: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut out = Vec::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        out.push(err);
        cur = if let Some(io) = err.downcast_ref::<io::Error>() {
            io.get_ref()
                .map(|inner| inner as &(dyn StdError + 'static))
                .or_else(|| err.source())
        } else if let Some(StateError::Deserialization(inner)) = err.downcast_ref::<StateError>() {
            // Not marked as its source: a TLS alert read in the middle of
            // a packet surfaces here (MQTT 5 client).
            Some(inner as &(dyn StdError + 'static))
        } else {
            err.source()
        };
        if out.len() > 16 {
            break;
        }
    }
    out
}

/// Explains a failed connection attempt (or a lost connection).
/// `connecting` says whether it failed before the broker's CONNACK.
pub fn diagnose(err: &ConnectionError, ctx: &Context, connecting: bool) -> Diagnosis {
    let addr = &ctx.addr;
    if let ConnectionError::ConnectionRefused(code) = err {
        return refused(*code, ctx);
    }
    let chain = causes(err);
    if let Some(tls) = chain.iter().find_map(|e| e.downcast_ref::<rustls::Error>()) {
        return tls_error(tls, ctx);
    }
    let io_kind = chain
        .iter()
        .find_map(|e| e.downcast_ref::<io::Error>())
        .map(io::Error::kind);
    let in_handshake = matches!(err, ConnectionError::Tls(_));
    match io_kind {
        Some(io::ErrorKind::ConnectionRefused) => {
            return transient(
                "refused",
                format!(
                    "nothing is listening at {addr} (connection refused): is the broker running, and is {} its port?",
                    ctx.port
                ),
            )
        }
        Some(io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset)
            if in_handshake =>
        {
            return transient(
                "tls-to-plain",
                format!(
                    "the broker at {addr} closed the connection during the TLS handshake: \
                     if {} is a plain MQTT port, use mqtt://{}:{} (or the broker's TLS port, usually 8883)",
                    ctx.port, ctx.host, ctx.port
                ),
            )
        }
        _ => {}
    }
    if let Some(d) = network(&chain, addr, connecting) {
        return d;
    }
    if matches!(err, ConnectionError::Timeout(_)) {
        return transient("timeout", format!("no answer from {addr} in time"));
    }
    let before_connack_garbled = matches!(
        err,
        ConnectionError::NotConnAck(_) | ConnectionError::MqttState(_) | ConnectionError::Io(_)
    );
    if connecting && ctx.ca_file.is_none() && before_connack_garbled {
        return transient(
            "plain-to-tls",
            format!(
                "the broker at {addr} closed the connection without answering the MQTT \
                 CONNECT: if {} is a TLS port, use mqtts://{}:{} with --ca-file ({err})",
                ctx.port, ctx.host, ctx.port
            ),
        );
    }
    transient("other", format!("{addr}: {err}"))
}

/// The network under the connection failed: no route, no network, no
/// answer, or (once connected) a reset. Said as what it is, never guessed
/// to be a plain client at a TLS port. A reset while connecting is left to
/// that guess: a TLS listener that reads an MQTT CONNECT closes on it.
fn network(chain: &[&(dyn StdError + 'static)], addr: &str, connecting: bool) -> Option<Diagnosis> {
    let e = chain.iter().find_map(|e| e.downcast_ref::<io::Error>())?;
    /// EHOSTDOWN, which `io::ErrorKind` does not name.
    const HOST_DOWN: i32 = 112;
    let d = match e.kind() {
        _ if e.raw_os_error() == Some(HOST_DOWN) => transient(
            "unreachable",
            format!("{addr} is down ({e}): is the broker's machine on?"),
        ),
        io::ErrorKind::HostUnreachable => transient(
            "unreachable",
            format!(
                "no route to {addr} ({e}): is the broker's machine up, and this board's link to it?"
            ),
        ),
        io::ErrorKind::NetworkUnreachable | io::ErrorKind::NetworkDown => transient(
            "no-network",
            format!("no network to reach {addr} ({e}): is this board's network up?"),
        ),
        io::ErrorKind::TimedOut => transient(
            "timeout",
            format!("no answer from {addr} ({e}): a cut link, or packets dropped on the way?"),
        ),
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted if !connecting => {
            transient(
                "reset",
                format!(
                    "the connection to {addr} was reset ({e}): a broker restart, or a link cut?"
                ),
            )
        }
        _ => return None,
    };
    Some(d)
}

fn refused(code: ConnectReturnCode, ctx: &Context) -> Diagnosis {
    let addr = &ctx.addr;
    let why = match code {
        ConnectReturnCode::BadUserNamePassword => "bad username or password",
        ConnectReturnCode::NotAuthorized => "not authorised",
        ConnectReturnCode::Banned => "banned",
        ConnectReturnCode::BadAuthenticationMethod => "bad authentication method",
        ConnectReturnCode::BadClientId | ConnectReturnCode::ClientIdentifierNotValid => {
            return fatal(
                "client-id",
                format!("the broker at {addr} refused our client id"),
            )
        }
        ConnectReturnCode::RefusedProtocolVersion
        | ConnectReturnCode::UnsupportedProtocolVersion => {
            return fatal(
                "protocol",
                format!("the broker at {addr} does not accept MQTT 5 (Mosquitto does since 1.6)"),
            )
        }
        other => {
            return transient(
                "unavailable",
                format!("the broker at {addr} refused the connection for now ({other:?})"),
            )
        }
    };
    match &ctx.username {
        Some(user) => fatal(
            "credentials",
            format!(
                "the broker at {addr} refused user '{user}': {why}{}",
                if code == ConnectReturnCode::NotAuthorized {
                    " (a wrong password, or a user it does not know or allow: \
                     Mosquitto answers all of these alike)"
                } else {
                    ""
                }
            ),
        ),
        None => fatal(
            "credentials",
            format!(
                "the broker at {addr} refused an anonymous connection ({why}): give a username \
                 and password with --credentials-file FILE (or `username` and `password` in \
                 the configuration file)"
            ),
        ),
    }
}

fn tls_error(e: &rustls::Error, ctx: &Context) -> Diagnosis {
    let addr = &ctx.addr;
    let ca = ctx
        .ca_file
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => fatal(
                "certificate",
                format!(
                    "the broker's certificate at {addr} is not signed by the CA in --ca-file {ca} \
                     (give the CA certificate that signed the broker's)"
                ),
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                fatal(
                    "certificate",
                    format!(
                        "the broker's certificate at {addr} is not valid for the name '{}': connect \
                         by a name or address its certificate lists (subjectAltName)",
                        ctx.host
                    ),
                )
            }
            // A board without a clock battery starts in 1970 until NTP
            // answers: worth waiting for.
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => transient(
                "certificate-time",
                format!(
                    "the broker's certificate at {addr} is not valid at this time ({c:?}): \
                     is this machine's clock set?"
                ),
            ),
            other => fatal(
                "certificate",
                format!("the broker's certificate at {addr} is refused: {other:?}"),
            ),
        },
        rustls::Error::AlertReceived(
            alert @ (AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::AccessDenied),
        ) if !ctx.client_cert => fatal(
            "client-certificate",
            format!(
                "the broker at {addr} wants a TLS client certificate ({alert:?}): give one \
                 signed by its CA with --client-cert and --client-key"
            ),
        ),
        rustls::Error::AlertReceived(
            alert @ (AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::AccessDenied),
        ) => fatal(
            "client-certificate",
            format!(
                "the broker at {addr} refused our TLS client certificate ({alert:?}): it wants \
                 one signed by its CA (--client-cert and --client-key)"
            ),
        ),
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            transient(
                "tls-to-plain",
                format!(
                    "the broker at {addr} does not speak TLS ({e}): if {} is a plain MQTT port, \
                     use mqtt://{}:{}",
                    ctx.port, ctx.host, ctx.port
                ),
            )
        }
        other => transient("tls", format!("TLS with {addr}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(user: Option<&str>) -> Context {
        Context {
            addr: "broker:8883".into(),
            host: "broker".into(),
            port: 8883,
            ca_file: Some("/etc/edgeminer/ca.crt".into()),
            username: user.map(str::to_string),
            client_cert: false,
        }
    }

    fn inside_tls(e: rustls::Error) -> ConnectionError {
        let io = io::Error::new(io::ErrorKind::InvalidData, e);
        ConnectionError::Tls(rumqttc::TlsError::Io(io))
    }

    #[test]
    fn refusals_name_the_user_and_stop() {
        let d = diagnose(
            &ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized),
            &ctx(Some("0123456789abcdef")),
            true,
        );
        assert!(d.fatal);
        assert!(
            d.message.contains("refused user '0123456789abcdef'"),
            "{}",
            d.message
        );
        let d = diagnose(
            &ConnectionError::ConnectionRefused(ConnectReturnCode::BadUserNamePassword),
            &ctx(None),
            true,
        );
        assert!(
            d.fatal && d.message.contains("--credentials-file"),
            "{}",
            d.message
        );
        let d = diagnose(
            &ConnectionError::ConnectionRefused(ConnectReturnCode::ServiceUnavailable),
            &ctx(None),
            true,
        );
        assert!(!d.fatal);
    }

    #[test]
    fn an_unknown_ca_names_the_ca_file() {
        let e = inside_tls(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ));
        let d = diagnose(&e, &ctx(None), true);
        assert!(d.fatal);
        assert!(
            d.message
                .contains("not signed by the CA in --ca-file /etc/edgeminer/ca.crt"),
            "{}",
            d.message
        );
        let e = inside_tls(rustls::Error::InvalidCertificate(CertificateError::Expired));
        assert!(
            !diagnose(&e, &ctx(None), true).fatal,
            "a clock may be wrong"
        );
    }

    #[test]
    fn nothing_listening_is_retried() {
        let e = ConnectionError::Io(io::Error::from(io::ErrorKind::ConnectionRefused));
        let d = diagnose(&e, &ctx(None), true);
        assert!(!d.fatal);
        assert!(
            d.message.contains("nothing is listening at broker:8883"),
            "{}",
            d.message
        );
    }

    /// A cut link is not a TLS mix-up: each failure of the network says
    /// what it is, and the error's own text appears once.
    #[test]
    fn network_failures_say_what_happened() {
        let plain = Context {
            ca_file: None,
            ..ctx(None)
        };
        let cases = [
            (
                io::Error::from_raw_os_error(113),
                true,
                "no route to broker:8883",
            ),
            (
                io::Error::from_raw_os_error(112),
                true,
                "broker:8883 is down",
            ),
            (
                io::Error::from_raw_os_error(101),
                true,
                "no network to reach",
            ),
            (
                io::Error::from_raw_os_error(110),
                true,
                "no answer from broker:8883",
            ),
            (io::Error::from_raw_os_error(104), false, "was reset"),
        ];
        for (e, connecting, want) in cases {
            let text = e.to_string();
            let d = diagnose(&ConnectionError::Io(e), &plain, connecting);
            assert!(!d.fatal, "{d:?}");
            assert!(d.message.contains(want), "{want}: {}", d.message);
            assert!(!d.message.contains("mqtts://"), "{}", d.message);
            assert_eq!(d.message.matches(&text).count(), 1, "{}", d.message);
        }
        // A reset while connecting, at a port that may be TLS: the guess.
        let reset = ConnectionError::Io(io::Error::from_raw_os_error(104));
        let d = diagnose(&reset, &plain, true);
        assert_eq!(d.kind, "plain-to-tls", "{d:?}");
    }

    #[test]
    fn an_alert_read_after_the_handshake_is_still_understood() {
        // TLS 1.3 lets the broker refuse a missing client certificate after
        // the handshake: the alert then arrives while reading a packet.
        let alert = rustls::Error::AlertReceived(AlertDescription::CertificateRequired);
        let io = io::Error::new(io::ErrorKind::InvalidData, alert);
        let e = ConnectionError::MqttState(StateError::Deserialization(
            rumqttc::mqttbytes::Error::Io(io),
        ));
        let d = diagnose(&e, &ctx(None), true);
        assert!(d.fatal, "{d:?}");
        assert!(d.message.contains("certificate"), "{}", d.message);
    }
}
