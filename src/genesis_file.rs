//! The genesis file: a cluster's genesis as TOML, for people to read and
//! copy to every board (`genesis = "FILE"` in a node's configuration).
//!
//! The file is a view of the genesis record, not the record itself: the
//! record is the canonical CBOR encoding of the values read here (see
//! [`crate::protocol::genesis`]), so comments and layout change nothing,
//! while any edit of a value makes another cluster, with another id.
//! `edgeminer genesis` writes the file; the cluster id in its header is
//! there for people to compare, and is not read back.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::config::parse_difficulty;
use crate::identity::NodeId;
use crate::protocol::genesis::{Parent, FORMAT};
use crate::protocol::Genesis;
use crate::wire::roster::Entry;
use crate::wire::{self, ClusterId};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    format: u8,
    cluster: String,
    quorum: usize,
    difficulty: String,
    admin: Option<String>,
    parent: Option<ParentFile>,
    #[serde(default)]
    member: Vec<MemberFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ParentFile {
    cluster: String,
    height: u64,
    head: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberFile {
    id: String,
    #[serde(default)]
    name: String,
}

fn hex_array<const N: usize>(s: &str, what: &str) -> Result<[u8; N]> {
    wire::unhex(s)
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("{what} '{s}': expected {} lowercase hex characters", 2 * N))
}

/// Parses a genesis file's text.
pub fn parse(text: &str) -> Result<Genesis> {
    let f: File = toml::from_str(text)?;
    if f.format != FORMAT {
        bail!(
            "format {}: this version reads genesis format {FORMAT}",
            f.format
        );
    }
    let mut members = Vec::with_capacity(f.member.len());
    for m in f.member {
        let id: NodeId = m
            .id
            .parse()
            .map_err(|_| anyhow::anyhow!("member id '{}': expected 16 lowercase hex characters (`edgeminer keygen` prints it)", m.id))?;
        members.push(Entry { id, name: m.name });
    }
    let admin = match &f.admin {
        Some(a) => Some(hex_array::<33>(a, "admin key")?),
        None => None,
    };
    let parent = match &f.parent {
        Some(p) => Some(Parent {
            cluster: ClusterId(hex_array::<16>(&p.cluster, "parent cluster id")?),
            height: p.height,
            head: hex_array::<16>(&p.head, "parent head")?,
        }),
        None => None,
    };
    let difficulty = parse_difficulty(&f.difficulty)?;
    Ok(Genesis::new(
        f.cluster, members, f.quorum, difficulty, admin, parent,
    )?)
}

/// Reads and checks a genesis file.
pub fn load(path: &Path) -> Result<Genesis> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the genesis file {}", path.display()))?;
    parse(&text).with_context(|| format!("in the genesis file {}", path.display()))
}

/// The file's text: a header that says what it is and the cluster id, then
/// the values.
pub fn render(g: &Genesis) -> String {
    let mut s = String::new();
    // Writing into a String cannot fail.
    let _ = writeln!(
        s,
        "# The genesis of edgeminer cluster \"{}\", written by `edgeminer genesis`.",
        g.cluster()
    );
    s.push_str(
        "# Copy this file unchanged to every board (`genesis = \"/etc/edgeminer/genesis.toml\"`\n\
         # in its configuration). It fixes the cluster's members, quorum and difficulty;\n\
         # editing a value makes another cluster, which the nodes of this one refuse.\n\
         # Members change later only by commit: `edgeminer roster add|remove|quorum`.\n",
    );
    let _ = writeln!(s, "#\n# cluster id: {}\n", g.id());
    let _ = writeln!(s, "format = {FORMAT}");
    let _ = writeln!(s, "cluster = \"{}\"", g.cluster());
    let _ = writeln!(s, "quorum = {}", g.quorum());
    let (lo, hi) = g.difficulty();
    let _ = writeln!(s, "difficulty = \"{lo}..{hi}\"");
    match (g.admin(), g.admin_id()) {
        (Some(key), Some(id)) => {
            let _ = writeln!(
                s,
                "# The key that signs roster changes (admin id {id}).\nadmin = \"{}\"",
                wire::hex(key)
            );
        }
        _ => s.push_str("# No admin key: the roster can never change.\n"),
    }
    if let Some(p) = g.parent() {
        let _ = writeln!(
            s,
            "\n# This cluster continues the ledger of cluster {} after its tx {}.\n[parent]\ncluster = \"{}\"\nheight = {}\nhead = \"{}\"",
            p.cluster,
            p.height,
            p.cluster,
            p.height,
            wire::hex(&p.head)
        );
    }
    for m in g.members() {
        let _ = writeln!(s, "\n[[member]]\nid = \"{}\"", m.id);
        if !m.name.is_empty() {
            let _ = writeln!(s, "name = \"{}\"", m.name);
        }
    }
    s
}

/// Writes a new genesis file; never overwrites one.
pub fn write_new(path: &Path, g: &Genesis) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| {
            format!(
                "creating {} (an existing genesis file is never overwritten)",
                path.display()
            )
        })?;
    f.write_all(render(g).as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// Parses `ID` or `ID=NAME` (a member on the command line).
pub fn parse_member(s: &str) -> Result<Entry> {
    let (id, name) = s.split_once('=').unwrap_or((s, ""));
    let id: NodeId = id.trim().parse().map_err(|_| {
        anyhow::anyhow!(
            "member '{s}': expected ID or ID=NAME, the id being the 16 hex characters `edgeminer keygen` printed"
        )
    })?;
    let name = name.trim().to_string();
    if !crate::protocol::genesis::valid_member_name(&name) {
        bail!(
            "member name '{name}': use at most {} printable characters, without \" \\ or =",
            crate::protocol::genesis::MAX_NAME
        );
    }
    Ok(Entry { id, name })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_files_read_back_as_the_same_cluster() {
        let admin = crate::identity::Identity::ephemeral(&mut rand_core::OsRng);
        let g = Genesis::new(
            "lab".into(),
            vec![
                parse_member("0102030405060708=pi-01").expect("member"),
                parse_member("1112131415161718").expect("member"),
            ],
            2,
            (16, 20),
            Some(admin.public),
            None,
        )
        .expect("valid");
        let text = render(&g);
        assert!(text.contains(&g.id().to_string()), "{text}");
        let back = parse(&text).expect("reads back");
        assert_eq!(back.id(), g.id());
        // Comments and layout are not the genesis; values are.
        let reflowed = text
            .replace("quorum = 2", "quorum   =   2 # two")
            .replace("# The", "#The");
        assert_eq!(parse(&reflowed).expect("reads").id(), g.id());
        let edited = text.replace("name = \"pi-01\"", "name = \"pi-1\"");
        assert_ne!(parse(&edited).expect("reads").id(), g.id());
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let err = |t: &str| format!("{:#}", parse(t).expect_err("refused"));
        let base = "format = 1\ncluster = \"lab\"\nquorum = 1\ndifficulty = \"8..8\"\n";
        assert!(err(base).contains("members"), "{}", err(base));
        let bad_id = format!("{base}[[member]]\nid = \"xyz\"\n");
        assert!(err(&bad_id).contains("16 lowercase hex"));
        let unknown = format!("{base}nodes = 3\n[[member]]\nid = \"0102030405060708\"\n");
        assert!(err(&unknown).contains("nodes"));
        assert!(parse_member("0102030405060708=a=b").is_err());
        assert!(parse_member("01020304").is_err());
    }
}
