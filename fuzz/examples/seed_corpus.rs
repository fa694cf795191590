//! Writes seed corpora for both fuzz targets: real messages of every kind
//! (from a cluster run on fixed choices) and the cluster's genesis record
//! for `decode`, and those choices for `cluster`.
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --example seed_corpus

use std::path::Path;

use edgeminer_fuzz::{Cluster, NODES};

/// Input length of every cluster seed (the `-max_len` of the README).
const LEN: usize = 4096;

/// Eight "deliver the oldest message to all" (node 0, kind 0, index 0 0)
/// followed by `tail`, and then a short time step and a finished mining.
fn pattern(tail: &[u8]) -> Vec<u8> {
    let mut p = [0u8, 0, 0, 0, 0].repeat(8);
    p.extend_from_slice(tail);
    p.extend([0, 6, 6, 5, 0, 0, 7, 0]);
    p.iter().copied().cycle().take(LEN).collect()
}

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let (decode, cluster) = (root.join("decode"), root.join("cluster"));
    for dir in [&decode, &cluster] {
        // Seeds of an older version of the choices mean nothing now.
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        std::fs::create_dir_all(dir)?;
    }
    // Choices that take a cluster through every phase: mostly "deliver to
    // all", with time steps and finished mining, plus one other kind of
    // choice each, in a repeating pattern.
    let mut seeds: Vec<(String, Vec<u8>)> = [
        // Deliveries, time and mining only.
        &[][..],
        // Deliveries to one node (kept: duplicates later).
        &[0, 0, 2, 0, 0, 0, 1, 2, 0, 0],
        // The rogue re-signs altered copies.
        &[0, 0, 5, 0, 3, 1, 0, 0],
        // Bit-flipped, cut and extended copies; raw bytes on any topic.
        &[0, 0, 3, 0, 0, 0, 7, 0, 0, 0, 4, 0, 1, 6, 3, 1, 2, 3],
    ]
    .iter()
    .enumerate()
    .map(|(i, tail)| (format!("pattern-{i}"), pattern(tail)))
    .collect();

    // Halfway through the first pattern, the admin removes the rogue and
    // node 2, quorum 2 of the 2 left: node 0 (0 0), a change request (8)
    // on its roster (200), dropping their places among the members in id
    // order (a bit each), adding nobody (0), quorum 2 (0 2). Where a step
    // starts depends on the state, so look for an offset where the change
    // is committed and node 2 stops.
    let c = Cluster::new();
    let roster: Vec<_> = c.nodes[0].roster().ids().collect();
    let place = |id| roster.iter().position(|&r| r == id).expect("a member");
    let drop = (1u8 << place(c.ids[NODES].id)) | (1u8 << place(c.ids[2].id));
    std::fs::write(decode.join("genesis"), c.cfg.genesis.encode())?;
    let base = pattern(&[]);
    let change = (LEN / 2..LEN / 2 + 60).find_map(|at| {
        let mut input = base[..at].to_vec();
        input.extend([0, 0, 8, 200, drop, 0, 0, 2]);
        input.extend_from_slice(&base[at..]);
        let mut c = Cluster::new();
        c.run(&input);
        (c.ledger.roster().version() == 1 && !c.up[2]).then_some(input)
    });
    match change {
        Some(input) => seeds.push(("change".into(), input)),
        None => println!("no offset commits the roster change: no change seed"),
    }

    let mut kinds = std::collections::BTreeSet::new();
    for (name, input) in &seeds {
        let mut c = Cluster::new();
        c.run(input);
        println!(
            "{name}: {} commits, roster version {}, {} messages published",
            c.commits.len(),
            c.ledger.roster().version(),
            c.published.len()
        );
        std::fs::write(cluster.join(name), input)?;
        for p in &c.published {
            // One file per message kind and size class is plenty.
            let kind = edgeminer::wire::Envelope::decode(p, usize::MAX)
                .ok()
                .and_then(|e| edgeminer::wire::Body::decode(&e.body).ok())
                .map(|b| format!("{:?}", b.kind()));
            let key = (kind, p.len() / 256);
            if kinds.insert(key) {
                std::fs::write(decode.join(format!("msg-{}", kinds.len())), p)?;
            }
        }
    }
    println!("{} decode seeds in {}", kinds.len() + 1, decode.display());
    Ok(())
}
