//! Every input kept in the fuzz corpora, run through its target's check as
//! an ordinary test: what once found a bug, or seeds the search, keeps
//! passing without a fuzzer (`cargo test --manifest-path fuzz/Cargo.toml`).

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no inputs in {}", dir.display());
    files
}

fn each(target: &str, check: impl Fn(&[u8])) {
    for path in inputs(target) {
        let data = std::fs::read(&path).expect("a corpus file");
        eprintln!("{target}: {}", path.display());
        check(&data);
    }
}

#[test]
fn decode_corpus() {
    each("decode", edgeminer_fuzz::decode);
}

#[test]
fn cluster_corpus() {
    each("cluster", |data| edgeminer_fuzz::Cluster::new().run(data));
}
