//! How committed transactions are shown: a table for people, CSV and JSON for
//! scripts. The `preimage` column is the exact string that was hashed, so
//! `printf '%s' PREIMAGE | sha1sum` checks a seed without this program.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::identity::NodeId;
use crate::pow;
use crate::protocol::Committed;
use crate::wire::hex;

/// One ledger row, as CSV and JSON show it.
#[derive(Debug, Serialize)]
pub struct Row {
    pub transaction: u64,
    pub round: u32,
    pub difficulty: u8,
    pub leader: String,
    pub winner: String,
    pub seed: String,
    pub preimage: String,
    pub sha1: String,
}

impl Row {
    pub fn of(c: &Committed) -> Row {
        let t = pow::Template::new(&c.salt, &c.winner.0);
        Row {
            transaction: c.tx,
            round: c.round,
            difficulty: c.difficulty,
            leader: c.leader.to_string(),
            winner: c.winner.to_string(),
            seed: pow::seed_hex(c.seed),
            preimage: t.preimage(c.seed),
            sha1: hex(&t.digest(c.seed)),
        }
    }
}

pub const CSV_HEADER: &str = "transaction,round,difficulty,leader,winner,seed,preimage,sha1";

pub fn csv(commits: &[Committed]) -> String {
    let mut s = String::from(CSV_HEADER);
    s.push('\n');
    for c in commits {
        let r = Row::of(c);
        // Every field is digits, hex or [A-Za-z0-9_-]: nothing to quote.
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{}",
            r.transaction, r.round, r.difficulty, r.leader, r.winner, r.seed, r.preimage, r.sha1
        );
    }
    s
}

pub fn json(commits: &[Committed]) -> String {
    let rows: Vec<Row> = commits.iter().map(Row::of).collect();
    serde_json::to_string_pretty(&rows).unwrap_or_else(|_| "[]".into())
}

/// A table for people; node ids are replaced by names where known.
pub fn table(commits: &[Committed], names: &HashMap<NodeId, String>) -> String {
    let name = |id: NodeId| names.get(&id).cloned().unwrap_or_else(|| id.to_string());
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>4}  {:>5}  {:>4}  {:<16}  {:<16}  {:<16}  sha1",
        "tx", "round", "diff", "leader", "winner", "seed"
    );
    for c in commits {
        let r = Row::of(c);
        let _ = writeln!(
            s,
            "{:>4}  {:>5}  {:>4}  {:<16}  {:<16}  {:<16}  {}",
            c.tx,
            c.round,
            c.difficulty,
            name(c.leader),
            name(c.winner),
            r.seed,
            r.sha1
        );
    }
    s
}
