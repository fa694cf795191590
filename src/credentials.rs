//! Broker credentials: the username and password of the MQTT CONNECT.
//!
//! They come from the configuration file or from a credentials file, never
//! from a flag: flags show in `ps` and in shell history. A file that holds a
//! password must not be open to other users; such a file is refused with
//! the command that fixes it, as the node key is. The password never shows
//! in logs, errors or `Debug` output.
//!
//! A credentials file is two lines, `username = ...` and `password = ...`;
//! values may be bare or quoted as TOML strings, so a two-key TOML file is
//! one too. `#` starts a comment line.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A password; `Debug` shows `***`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A username and its password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is open to other users (mode {mode:03o}) but holds a secret: run `chmod 600 {path}`"
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error("{path}, line {line}: {reason}")]
    Syntax {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{path}: no `{key} = ...` line")]
    Missing { path: PathBuf, key: &'static str },
}

/// Refuses a file that anyone but its owner can access, as OpenSSH does
/// with a private key. A file systemd hands the service
/// (`LoadCredential=`, under `$CREDENTIALS_DIRECTORY`) is accepted as it
/// is: systemd makes it readable by the service's user alone.
pub fn check_private(path: &Path) -> Result<(), CredentialsError> {
    check_private_in(path, std::env::var_os("CREDENTIALS_DIRECTORY").as_deref())
}

fn check_private_in(path: &Path, credentials: Option<&OsStr>) -> Result<(), CredentialsError> {
    let mode = std::fs::metadata(path)
        .map_err(|source| CredentialsError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .permissions()
        .mode();
    let from_systemd = credentials.is_some_and(|d| path.starts_with(d));
    if mode & 0o077 != 0 && !from_systemd {
        return Err(CredentialsError::Exposed {
            path: path.to_path_buf(),
            mode: mode & 0o777,
        });
    }
    Ok(())
}

/// Reads a credentials file, after checking that it is private.
pub fn load(path: &Path) -> Result<Credentials, CredentialsError> {
    check_private(path)?;
    let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text).map_err(|e| match e {
        ParseError::Line(line, reason) => CredentialsError::Syntax {
            path: path.to_path_buf(),
            line,
            reason,
        },
        ParseError::Missing(key) => CredentialsError::Missing {
            path: path.to_path_buf(),
            key,
        },
    })
}

#[derive(Debug, PartialEq, Eq)]
enum ParseError {
    Line(usize, String),
    Missing(&'static str),
}

fn parse(text: &str) -> Result<Credentials, ParseError> {
    let (mut username, mut password) = (None, None);
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |reason: &str| ParseError::Line(i + 1, reason.to_string());
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| bad("expected `username = ...` or `password = ...`"))?;
        let value = unquote(value.trim()).ok_or_else(|| bad("unbalanced quotes"))?;
        let slot = match key.trim() {
            "username" => &mut username,
            "password" => &mut password,
            _ => {
                return Err(bad(
                    "unknown key; only `username` and `password` belong here",
                ))
            }
        };
        if slot.replace(value).is_some() {
            return Err(bad("given twice"));
        }
    }
    let username = username.ok_or(ParseError::Missing("username"))?;
    if username.is_empty() {
        return Err(ParseError::Missing("username"));
    }
    let password = password.ok_or(ParseError::Missing("password"))?;
    Ok(Credentials {
        username,
        password: Secret(password),
    })
}

/// A bare value, a TOML literal string `'...'`, or a TOML basic string
/// `"..."` with `\"` and `\\` escapes.
fn unquote(v: &str) -> Option<String> {
    if let Some(inner) = v.strip_prefix('\'') {
        return inner.strip_suffix('\'').map(str::to_string);
    }
    let Some(inner) = v.strip_prefix('"') else {
        return Some(v.to_string());
    };
    let inner = inner.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                e @ ('"' | '\\') => out.push(e),
                _ => return None,
            },
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn plain_and_toml_forms() {
        let c = parse("username = 0123456789abcdef\npassword = s3cret#x\n").expect("plain");
        assert_eq!(c.username, "0123456789abcdef");
        assert_eq!(c.password.expose(), "s3cret#x");
        let c = parse("# node 1\nusername = \"n1\"\npassword = 'a \"b\"'\n").expect("toml");
        assert_eq!(
            (c.username.as_str(), c.password.expose()),
            ("n1", "a \"b\"")
        );
        let c = parse("username=\"u\"\npassword=\"q\\\"\\\\\"").expect("escapes");
        assert_eq!(c.password.expose(), "q\"\\");
    }

    #[test]
    fn mistakes_name_the_line() {
        assert_eq!(
            parse("username = u\npasword = p"),
            Err(ParseError::Line(
                2,
                "unknown key; only `username` and `password` belong here".into()
            ))
        );
        assert_eq!(parse("username = u"), Err(ParseError::Missing("password")));
        assert!(matches!(
            parse("username = \"u\npassword = p"),
            Err(ParseError::Line(1, _))
        ));
        assert!(matches!(
            parse("username = u\nusername = v"),
            Err(ParseError::Line(2, _))
        ));
    }

    #[test]
    fn the_password_never_shows_in_debug() {
        let c = parse("username = u\npassword = hunter2").expect("valid");
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn a_file_others_can_read_is_refused_with_a_fix() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("broker.credentials");
        fs::write(&path, "username = u\npassword = hunter2\n").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = load(&path).expect_err("refused");
        let msg = err.to_string();
        assert!(msg.contains("chmod 600") && msg.contains("644"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
        let msg = load(&path).expect_err("group may not read").to_string();
        assert!(msg.contains("chmod 600") && msg.contains("640"), "{msg}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(load(&path).expect("owner only").username, "u");
        // What systemd's LoadCredential= hands the service is its alone.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o440)).expect("chmod");
        check_private_in(&path, Some(dir.path().as_os_str())).expect("a systemd credential");
        assert!(check_private_in(&path, Some(OsStr::new("/run/credentials/x"))).is_err());
    }
}
