//! Writes seed corpora for both fuzz targets: real messages of every kind
//! (from a cluster run on fixed choices) for `decode`, and those choices for
//! `cluster`.
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --example seed_corpus

use std::path::Path;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let (decode, cluster) = (root.join("decode"), root.join("cluster"));
    std::fs::create_dir_all(&decode)?;
    std::fs::create_dir_all(&cluster)?;
    // Choices that let a cluster go through every phase: mostly "deliver
    // to all", time steps and finished mining, in a repeating pattern.
    let mut kinds = std::collections::BTreeSet::new();
    for (i, pattern) in [
        &[0u8, 0, 0, 0, 0, 0, 6, 6, 50, 0, 0, 7, 0][..],
        &[0, 0, 0, 0, 1, 0, 0, 0, 6, 1, 200, 1, 0, 0, 0, 7, 0, 0, 0],
        &[
            0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 6, 2, 40, 0, 0, 7, 9,
        ],
    ]
    .iter()
    .enumerate()
    {
        let input: Vec<u8> = pattern.iter().copied().cycle().take(6000).collect();
        let mut c = edgeminer_fuzz::Cluster::new();
        c.run(&input);
        println!(
            "pattern {i}: {} commits, {} messages published",
            c.commits.len(),
            c.published.len()
        );
        std::fs::write(cluster.join(format!("pattern-{i}")), &input)?;
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
    println!("{} decode seeds in {}", kinds.len(), decode.display());
    Ok(())
}
