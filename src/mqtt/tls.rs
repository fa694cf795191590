//! TLS to the broker: a rustls client configuration with the ring provider,
//! built from PEM files.
//!
//! The files are read and checked once, when the node starts, so a missing
//! or malformed CA certificate or client key stops it with a message naming
//! the file instead of failing at every reconnect. The provider is passed
//! explicitly (no process-wide default): ring cross-compiles for the boards
//! with a plain C compiler, where aws-lc needs much more.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::credentials;

/// Where the TLS material is (PEM files).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificate(s) that signed the broker's certificate.
    pub ca_file: PathBuf,
    /// A client certificate and its private key, for brokers that ask for
    /// one (mutual TLS).
    pub client: Option<ClientCert>,
}

/// A client certificate chain and its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate(PathBuf),
    #[error("{path}: not a usable PEM certificate: {reason}")]
    BadCertificate { path: PathBuf, reason: String },
    #[error("{0}: no PEM private key in it (PKCS#8, SEC1 or PKCS#1)")]
    NoKey(PathBuf),
    #[error(transparent)]
    ExposedKey(#[from] credentials::CredentialsError),
    #[error("client certificate {cert} with key {key}: {source}")]
    ClientAuth {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("setting up TLS: {0}")]
    Setup(rustls::Error),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificate {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_path_buf()));
    }
    Ok(certs)
}

/// Builds the client configuration: the CA file as the only trust anchor,
/// TLS 1.2 and 1.3, and the client certificate when given.
pub fn client_config(files: &TlsFiles) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(&files.ca_file)? {
        roots.add(cert).map_err(|e| TlsError::BadCertificate {
            path: files.ca_file.clone(),
            reason: e.to_string(),
        })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Setup)?
        .with_root_certificates(roots);
    let config = match &files.client {
        None => builder.with_no_client_auth(),
        Some(c) => {
            let chain = certificates(&c.cert)?;
            credentials::check_private(&c.key)?;
            let key = PrivateKeyDer::from_pem_slice(&read(&c.key)?)
                .map_err(|_| TlsError::NoKey(c.key.clone()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|source| TlsError::ClientAuth {
                    cert: c.cert.clone(),
                    key: c.key.clone(),
                    source,
                })?
        }
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_files_are_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = dir.path().join("ca.crt");
        let files = TlsFiles {
            ca_file: ca.clone(),
            client: None,
        };
        let err = client_config(&files).expect_err("missing");
        assert!(err.to_string().contains("ca.crt"), "{err}");
        std::fs::write(&ca, "not a certificate\n").expect("write");
        let err = client_config(&files).expect_err("no PEM");
        assert!(matches!(err, TlsError::NoCertificate(_)), "{err}");
    }
}
