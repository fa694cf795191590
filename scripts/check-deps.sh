#!/usr/bin/env bash
# Checks the dependency trees with cargo-deny (deny.toml): security
# advisories, unmaintained and yanked crates, licences, banned crates and
# crate sources. Offline: the RustSec advisory database is the copy kept in
# .ci/advisory-db.tar.gz (or the archive given as the first argument), not
# fetched. Needs cargo-deny on the PATH and is run from anywhere in the
# repository.
set -euo pipefail
cd "$(dirname "$0")/.."
archive=$(realpath "${1:-.ci/advisory-db.tar.gz}")

# Where cargo-deny looks for the default database (https://github.com/RustSec/advisory-db)
# under deny.toml's db-path: the name ends with a hash of that URL.
db=target/advisory-dbs/advisory-db-3157b0e258782691
rm -rf "$db"
mkdir -p "$db"
tar -xzf "$archive" -C "$db" --strip-components=1
[ -d "$db/crates" ] || { echo "$archive: not an advisory database (no crates/ in it)"; exit 1; }

# cargo-deny takes the database's age from its last git commit or the time
# .git/HEAD was written, whichever is later (and refuses one older than
# deny.toml's maximum-db-staleness): the copy becomes a repository of one
# commit, both dated with its newest advisory.
newest=$(grep -rhoE '^date = "[0-9]{4}-[0-9]{2}-[0-9]{2}"' "$db/crates" "$db/rust" |
    cut -d'"' -f2 | sort | tail -n 1)
count=$(find "$db/crates" "$db/rust" -name 'RUSTSEC-*.md' | wc -l)
echo "advisory database: $count advisories, the newest of $newest"
git -C "$db" init -q
git -C "$db" add -A
GIT_AUTHOR_DATE="${newest}T00:00:00Z" GIT_COMMITTER_DATE="${newest}T00:00:00Z" \
    git -C "$db" -c user.name=advisory-db -c user.email=advisory-db@localhost \
    -c commit.gpgsign=false commit -q -m "advisory database copy of $newest"
touch -d "${newest}T00:00:00Z" "$db/.git/HEAD"

# --offline also keeps cargo metadata off the network: the crates of every
# target deny.toml names must be in cargo's cache first.
cargo fetch --locked -q
cargo deny --locked --offline check
# The fuzz crate has a lock file of its own; it ships nowhere, but a
# vulnerable crate in it is still reported.
cargo fetch --locked -q --manifest-path fuzz/Cargo.toml
cargo deny --locked --offline --manifest-path fuzz/Cargo.toml check advisories sources
