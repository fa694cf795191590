#!/usr/bin/env bash
# Builds the Debian packages: amd64 natively, arm64 and armhf for the boards
# (through deploy/cross-build.sh: `cross` with Docker, or Debian's cross
# compilers). Prints the path of each .deb.
#
#   usage: deploy/package.sh [amd64] [arm64] [armhf]      (default: all three)
#
# Needs cargo-deb (`cargo install cargo-deb --locked`); the package's
# contents are set in Cargo.toml under [package.metadata.deb]. The board
# packages leave out the embedded demo broker, as board builds do
# (`edgeminer demo --broker URL` still works). EDGEMINER_DEB_PROFILE=dev
# builds unoptimised binaries, for a quick check of the packaging itself.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-deb >/dev/null 2>&1 || {
    echo "package: cargo-deb not found: cargo install cargo-deb --locked" >&2
    exit 1
}
profile=${EDGEMINER_DEB_PROFILE:-release}
target_dir=${CARGO_TARGET_DIR:-target}
out_dir=$target_dir/debian
mkdir -p "$out_dir"

# The glibc the packages depend on (Cargo.toml, [package.metadata.deb]):
# no binary may need a newer one.
glibc=2.34

archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(amd64 arm64 armhf)

for arch in "${archs[@]}"; do
    case "$arch" in
    amd64)
        cargo build --profile "$profile" --bin edgeminer >&2
        bin_dir=release
        [ "$profile" = dev ] && bin_dir=debug
        scripts/check-glibc.sh "$target_dir/$bin_dir/edgeminer" "$glibc" >&2
        cargo deb --no-build --profile "$profile" --output "$out_dir" >&2
        # shellcheck disable=SC2012 # our own file names: edgeminer_<version>_<arch>.deb
        deb=$(ls -t "$out_dir"/edgeminer_*_amd64.deb | head -n 1)
        ;;
    arm64 | armhf)
        [ "$profile" = release ] || {
            echo "package: board packages are built with the release profile only" >&2
            exit 2
        }
        triple=aarch64-unknown-linux-gnu
        [ "$arch" = armhf ] && triple=armv7-unknown-linux-gnueabihf
        deploy/cross-build.sh "$triple" >/dev/null
        scripts/check-glibc.sh "$target_dir/$triple/release/edgeminer" "$glibc" >&2
        cargo deb --no-build --target "$triple" --output "$out_dir" >&2
        # shellcheck disable=SC2012 # our own file names: edgeminer_<version>_<arch>.deb
        deb=$(ls -t "$out_dir"/edgeminer_*_"$arch".deb | head -n 1)
        ;;
    *)
        echo "usage: $0 [amd64] [arm64] [armhf]" >&2
        exit 2
        ;;
    esac
    echo "$deb"
done
