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
#
# The packages' Maintainer is whoever builds them, as with Debian's own
# tools: DEBFULLNAME and DEBEMAIL when set (or DEBEMAIL alone as
# "Name <address>"), otherwise git's user.name and user.email. The same
# name signs the package's changelog entry (changelog.Debian.gz), which
# names the version and the source revision the package was built from.
# The man pages and shell completions come from deploy/docgen, which runs
# on this machine whatever the package's architecture.
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

version=$(sed -n '/^\[package\]/,/^\[/s/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ -n "$version" ] || { echo "package: no version in Cargo.toml" >&2; exit 1; }
# cargo-deb's default Debian revision; the changelog entry names the same.
deb_version=$version-1

if [ -z "${DEBFULLNAME:-}" ] && [[ ${DEBEMAIL:-} == *"<"*">" ]]; then
    maintainer=$DEBEMAIL
elif [ -n "${DEBFULLNAME:-}" ] && [ -n "${DEBEMAIL:-}" ]; then
    maintainer="$DEBFULLNAME <$DEBEMAIL>"
else
    maintainer="$(git config user.name 2>/dev/null || true) <$(git config user.email 2>/dev/null || true)>"
fi
contact='^[^<>@]*[^<>@ ] <[^<>@ ]+@[^<>@ ]+>$'
[[ $maintainer =~ $contact ]] || {
    echo "package: the Maintainer '$maintainer' is not 'Name <address>': set DEBFULLNAME and DEBEMAIL, or git's user.name and user.email" >&2
    exit 1
}

# The man pages, the completions and the changelog entry, written into DIR.
# Cargo.toml's assets name DIR as target/release/package-files: cargo-deb
# reads target/release as the build's own directory, whatever the profile,
# the target and CARGO_TARGET_DIR.
package_files() {
    local dir=$1 revision date
    rm -rf "$dir"
    mkdir -p "$dir"
    cargo run -q -p edgeminer-docgen -- "$dir" >&2
    gzip -9n "$dir"/man/*.1
    revision=$(git describe --always --dirty 2>/dev/null || echo unknown)
    # The commit's date, so that one revision makes one file.
    date=$(date -R -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)")
    printf '%s\n' \
        "edgeminer ($deb_version) unstable; urgency=medium" \
        "" \
        "  * edgeminer $version, built by deploy/package.sh from revision" \
        "    $revision of its repository." \
        "" \
        " -- $maintainer  $date" >"$dir/changelog.Debian"
    gzip -9n "$dir/changelog.Debian"
}

archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(amd64 arm64 armhf)

for arch in "${archs[@]}"; do
    case "$arch" in
    amd64)
        cargo build --profile "$profile" --bin edgeminer >&2
        bin_dir=release
        [ "$profile" = dev ] && bin_dir=debug
        scripts/check-glibc.sh "$target_dir/$bin_dir/edgeminer" "$glibc" >&2
        package_files "$target_dir/$bin_dir/package-files"
        cargo deb --no-build --profile "$profile" --maintainer "$maintainer" --output "$out_dir" >&2
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
        package_files "$target_dir/$triple/release/package-files"
        cargo deb --no-build --target "$triple" --maintainer "$maintainer" --output "$out_dir" >&2
        ;;
    *)
        echo "usage: $0 [amd64] [arm64] [armhf]" >&2
        exit 2
        ;;
    esac
    deb=$out_dir/edgeminer_${deb_version}_$arch.deb
    [ -f "$deb" ] || { echo "package: cargo-deb made no $deb" >&2; exit 1; }
    echo "$deb"
done
