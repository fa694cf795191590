//! The layering that `src/lib.rs` declares holds: a module names only
//! modules of its own layer or of a layer listed before it (the core never
//! reaches into storage, adapters, the driver or the applications).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Module → layer index, from the `// Layer.` comments and `pub mod`
/// lines of `src/lib.rs`.
fn layers(lib: &str) -> BTreeMap<String, usize> {
    let mut layer = 0;
    let mut seen_any = false;
    let mut out = BTreeMap::new();
    for line in lib.lines().map(str::trim) {
        if line.starts_with("// ") && line.ends_with('.') {
            if seen_any {
                layer += 1;
            }
            seen_any = false;
        } else if let Some(m) = line
            .strip_prefix("pub mod ")
            .and_then(|m| m.strip_suffix(';'))
        {
            out.insert(m.to_string(), layer);
            seen_any = true;
        }
    }
    out
}

fn sources(root: &Path, module: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let file = root.join(format!("{module}.rs"));
    if file.exists() {
        files.push(file);
    }
    let mut dirs = vec![root.join(module)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.map(|e| e.expect("a directory entry").path()) {
            if e.is_dir() {
                dirs.push(e);
            } else if e.extension().is_some_and(|x| x == "rs") {
                files.push(e);
            }
        }
    }
    files
}

/// The crate modules a source file names (`crate::x`).
fn named(text: &str) -> Vec<String> {
    text.match_indices("crate::")
        .map(|(i, _)| {
            text[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                .collect()
        })
        .collect()
}

#[test]
fn no_module_names_a_later_layer() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(root.join("lib.rs")).expect("src/lib.rs");
    let layer = layers(&lib);
    assert!(layer.len() > 20 && layer["wire"] == 0 && layer["sim"] > layer["node"]);
    let mut wrong = Vec::new();
    for (module, &at) in &layer {
        let files = sources(&root, module);
        assert!(!files.is_empty(), "no source for module {module}");
        for f in files {
            let text = std::fs::read_to_string(&f).expect("a source file");
            for other in named(&text) {
                if layer.get(&other).is_some_and(|&l| l > at) {
                    wrong.push(format!("{} ({module}) names crate::{other}", f.display()));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
