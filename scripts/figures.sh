#!/usr/bin/env bash
# Prints the figures README.md gives about the build, so that they can be
# refreshed after a dependency changes: the crates in the dependency tree
# and the size of the stripped release binary, with the embedded demo
# broker (the default features) and without it (the board build).
#
#   scripts/figures.sh
#
# Crates are the distinct packages `cargo tree` lists for the host (normal
# and build dependencies, edgeminer itself included). Sizes are of this
# machine's architecture; the board builds differ a little
# (deploy/cross-build.sh prints theirs).
set -euo pipefail
cd "$(dirname "$0")/.."

crates() {
    cargo tree -q -e normal,build --prefix none "$@" | sed 's/ (\*)$//; s/ (proc-macro)$//' | sort -u | wc -l
}

stripped_mb() {
    local tmp
    tmp=$(mktemp)
    strip -o "$tmp" "$1"
    awk -v b="$(stat -c %s "$tmp")" 'BEGIN { printf "%.2f", b / 1e6 }'
    rm -f "$tmp"
}

# Where cargo builds: CARGO_TARGET_DIR when set, as cargo itself reads it.
target_dir=${CARGO_TARGET_DIR:-target}
full_crates=$(crates)
board_crates=$(crates --no-default-features)
cargo build -q --release --bin edgeminer
cargo build -q --release --no-default-features --bin edgeminer --target-dir "$target_dir/board-features"
full_mb=$(stripped_mb "$target_dir/release/edgeminer")
board_mb=$(stripped_mb "$target_dir/board-features/release/edgeminer")
arch=$(uname -m)
echo "crates: $full_crates with the demo broker, $board_crates without (--no-default-features)"
echo "stripped $arch binary: $full_mb MB with the demo broker, $board_mb MB without"
