#!/usr/bin/env bash
# Builds edgeminer for a Raspberry Pi and prints the path of the stripped
# binary.
#
#   usage: deploy/cross-build.sh TARGET [cargo build arguments...]
#
# TARGET is aarch64-unknown-linux-gnu (64-bit Raspberry Pi OS: Pi 3, 4, 5,
# Zero 2 W) or armv7-unknown-linux-gnueabihf (32-bit Raspberry Pi OS on a
# Pi 2 or later, Zero 2 W); arm64 and armhf are accepted as their Debian
# names. The board build leaves out the embedded demo broker; pass
# `--features embedded-broker` to keep `edgeminer demo`.
#
# Two routes, the same binary:
# - with Docker and `cross` (cargo install cross): `cross build`, in the
#   images pinned in Cross.toml (old enough that the binary needs no glibc
#   newer than the boards' 2.36);
# - otherwise Debian's packages, no Docker: rustc-web and rust-web-src (a
#   rustc with the standard library's sources, so std is built for the
#   target with -Zbuild-std), gcc-aarch64-linux-gnu or
#   gcc-arm-linux-gnueabihf (the linkers, set in .cargo/config.toml). Debian
#   12's glibc is 2.36, so the binary runs on bookworm boards. Install with
#     sudo apt-get install -y rustc-web rust-web-src gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf
#   (not the arm64/armhf multiarch libc packages: mixed with the cross
#   sysroot they make threads hang under qemu).
# EDGEMINER_CROSS=debian or =cross forces a route.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
aarch64 | arm64 | aarch64-unknown-linux-gnu)
    triple=aarch64-unknown-linux-gnu
    prefix=aarch64-linux-gnu
    ;;
armv7 | armhf | armv7-unknown-linux-gnueabihf)
    triple=armv7-unknown-linux-gnueabihf
    prefix=arm-linux-gnueabihf
    ;;
*)
    echo "usage: $0 aarch64-unknown-linux-gnu|armv7-unknown-linux-gnueabihf [cargo build arguments...]" >&2
    exit 2
    ;;
esac
shift

route=${EDGEMINER_CROSS:-}
if [ -z "$route" ]; then
    if command -v cross >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        route=cross
    else
        route=debian
    fi
fi

target_dir=${CARGO_TARGET_DIR:-target}
case "$route" in
cross)
    echo "cross-build: $triple with cross (images pinned in Cross.toml)" >&2
    cross build --release --target "$triple" --no-default-features "$@" >&2
    ;;
debian)
    for tool in /usr/bin/rustc "$prefix-gcc" cargo; do
        command -v "$tool" >/dev/null 2>&1 || {
            echo "cross-build: $tool not found; install rustc-web rust-web-src gcc-$prefix (see the top of $0)" >&2
            exit 1
        }
    done
    [ -d /usr/lib/rustlib/src/rust/library ] || {
        echo "cross-build: the standard library's sources are missing: install rust-web-src" >&2
        exit 1
    }
    echo "cross-build: $triple with Debian's rustc ($(/usr/bin/rustc --version)) and $prefix-gcc" >&2
    RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 cargo build --release --target "$triple" \
        -Zbuild-std=std,panic_abort --no-default-features "$@" >&2
    ;;
*)
    echo "cross-build: EDGEMINER_CROSS must be cross or debian, not '$route'" >&2
    exit 2
    ;;
esac

bin=$target_dir/$triple/release/edgeminer
out=$target_dir/$triple/release/edgeminer.stripped
if command -v "$prefix-strip" >/dev/null 2>&1; then
    "$prefix-strip" -o "$out" "$bin"
else
    # llvm-strip reads every architecture.
    llvm-strip -o "$out" "$bin"
fi
echo "$out"
