//! The node's identity: a persistent P-256 key and the id derived from it.
//!
//! The id is the first 8 bytes of SHA-256 of the compressed public key, so a
//! key announced under someone else's id is visibly false. The key file is
//! PKCS#8 PEM, created owner-only (never readable by others, even for an
//! instant), and a node refuses to start with a key that others can read.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use p256::ecdsa::SigningKey;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use sha2::{Digest, Sha256};

/// The file in the state directory that holds the private key.
pub const KEY_FILE: &str = "node.key";

/// A node id: 8 bytes derived from the public key, shown as 16 hex chars.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NodeId(pub [u8; 8]);

impl NodeId {
    pub fn from_public_key(compressed_sec1: &[u8; 33]) -> NodeId {
        let h = Sha256::digest(compressed_sec1);
        let mut id = [0u8; 8];
        id.copy_from_slice(&h[..8]);
        NodeId(id)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::wire::hex(&self.0))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for NodeId {
    type Err = ();
    fn from_str(s: &str) -> Result<NodeId, ()> {
        let b = s.as_bytes();
        if b.len() != 16 {
            return Err(());
        }
        let nib = |c: u8| -> Result<u8, ()> {
            match c {
                b'0'..=b'9' => Ok(c - b'0'),
                b'a'..=b'f' => Ok(c - b'a' + 10),
                _ => Err(()),
            }
        };
        let mut id = [0u8; 8];
        for (i, out) in id.iter_mut().enumerate() {
            *out = nib(b[2 * i])? << 4 | nib(b[2 * i + 1])?;
        }
        Ok(NodeId(id))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is readable by other users; a node key must be private: run `chmod 600 {0}`")]
    Exposed(PathBuf),
    #[error("{0} is not a PKCS#8 P-256 private key")]
    BadKey(PathBuf),
    #[error("{0} exists already; refusing to overwrite a node key")]
    Exists(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IdentityError + '_ {
    move |source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A node's key, compressed public key and id.
#[derive(Clone)]
pub struct Identity {
    pub key: SigningKey,
    pub public: [u8; 33],
    pub id: NodeId,
}

impl Identity {
    pub fn from_key(key: SigningKey) -> Identity {
        let point = key.verifying_key().to_encoded_point(true);
        let mut public = [0u8; 33];
        // A compressed SEC1 P-256 point is always 33 bytes.
        public.copy_from_slice(point.as_bytes());
        Identity {
            id: NodeId::from_public_key(&public),
            key,
            public,
        }
    }

    /// A throw-away key (the original lab's behaviour).
    pub fn ephemeral(rng: &mut impl rand_core::CryptoRngCore) -> Identity {
        Identity::from_key(SigningKey::random(rng))
    }

    /// Loads `<dir>/node.key`, or creates it when missing.
    pub fn load_or_create(dir: &Path) -> Result<(Identity, bool), IdentityError> {
        let path = dir.join(KEY_FILE);
        if path.exists() {
            return Ok((Self::load(&path)?, false));
        }
        Ok((Self::create_new(dir)?, true))
    }

    /// Loads `<dir>/node.key`, which must exist.
    pub fn load_existing(dir: &Path) -> Result<Identity, IdentityError> {
        Self::load(&dir.join(KEY_FILE))
    }

    /// Loads a key file (the node's, or the admin key of `edgeminer
    /// roster`); refused when others can read it.
    pub fn load(path: &Path) -> Result<Identity, IdentityError> {
        let meta = fs::metadata(path).map_err(io(path))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(IdentityError::Exposed(path.to_path_buf()));
        }
        let pem = fs::read_to_string(path).map_err(io(path))?;
        let key = SigningKey::from_pkcs8_pem(&pem)
            .map_err(|_| IdentityError::BadKey(path.to_path_buf()))?;
        Ok(Identity::from_key(key))
    }

    /// Creates a new key; never overwrites one.
    pub fn create_new(dir: &Path) -> Result<Identity, IdentityError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
        Self::create_file(&dir.join(KEY_FILE))
    }

    /// Creates a new key file at `path` (owner-only); never overwrites one.
    pub fn create_file(path: &Path) -> Result<Identity, IdentityError> {
        let path = path.to_path_buf();
        let id = Identity::ephemeral(&mut rand_core::OsRng);
        let pem = id
            .key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|_| IdentityError::BadKey(path.clone()))?;
        let mut f = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(IdentityError::Exists(path))
            }
            Err(e) => return Err(io(&path)(e)),
        };
        f.write_all(pem.as_bytes()).map_err(io(&path))?;
        f.sync_all().map_err(io(&path))?;
        Ok(id)
    }
}

/// The machine's hostname, trimmed to 32 characters of `[A-Za-z0-9._-]`, or
/// "node" when it cannot be read.
pub fn hostname() -> String {
    let raw = fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let name: String = raw
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(32)
        .collect();
    if name.is_empty() {
        "node".into()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_then_load_is_the_same_node() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (a, created) = Identity::load_or_create(dir.path()).expect("create");
        assert!(created);
        let (b, created) = Identity::load_or_create(dir.path()).expect("load");
        assert!(!created);
        assert_eq!(a.id, b.id);
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(
            Identity::create_new(dir.path()),
            Err(IdentityError::Exists(_))
        ));
    }

    #[test]
    fn exposed_key_is_refused_with_a_fix() {
        let dir = tempfile::tempdir().expect("temp dir");
        Identity::create_new(dir.path()).expect("create");
        let path = dir.path().join(KEY_FILE);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = Identity::load_or_create(dir.path()).err().expect("refused");
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn id_is_the_hash_of_the_key() {
        let id = Identity::ephemeral(&mut rand_core::OsRng);
        let h = Sha256::digest(id.public);
        assert_eq!(&id.id.0[..], &h[..8]);
        assert_eq!(id.id.to_string().parse::<NodeId>(), Ok(id.id));
        assert!("xyz".parse::<NodeId>().is_err());
    }
}
