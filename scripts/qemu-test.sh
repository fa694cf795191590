#!/usr/bin/env bash
# Proves the ARM mining engines correct without a board: cross-builds
# edgeminer for a Raspberry Pi target and, under qemu user-mode emulation
# with several CPU models, runs
#   - the library's `pow::` tests (every engine the emulated CPU offers
#     against the `sha1` crate, on the same inputs), and
#   - `edgeminer bench --seconds 1` once for each engine offered.
# It checks that each CPU model offers the engines its features call for
# (the SHA-1 engine with the SHA-1 instructions, NEON without them).
# Emulated rates say nothing about a board's speed; they show the paths run.
#
#   usage: scripts/qemu-test.sh aarch64|armv7 [--no-bench]
#
# --no-bench builds and runs only the tests (quicker, when only the
# engines changed).
#
# Needs Debian's packages rustc-web and rust-web-src (a rustc with the
# standard library's sources, built here for the target with -Zbuild-std),
# gcc-aarch64-linux-gnu / gcc-arm-linux-gnueabihf (linkers and the C
# libraries qemu loads from /usr/<triple>) and qemu-user; cargo may be
# any recent one. Not the arm64/armhf multiarch libc packages: with them,
# threads hang under qemu.
#
# Why these flags: -Zbuild-std builds std for the target from source (no
# prebuilt target std is needed); RUSTC_BOOTSTRAP=1 lets a stable toolchain
# take -Z flags. The test harness always unwinds, so with the release
# profile's panic = "abort" cargo would build std twice and the test build
# fails with "duplicate lang item"; panic = "unwind" here builds std once
# for both the tests and the bench binary.
set -euo pipefail
cd "$(dirname "$0")/.."

bench=1
case "${2:-}" in
"") ;;
--no-bench) bench="" ;;
*)
    echo "usage: $0 aarch64|armv7 [--no-bench]" >&2
    exit 2
    ;;
esac

case "${1:-}" in
aarch64)
    triple=aarch64-unknown-linux-gnu
    qemu="qemu-aarch64"
    prefix=/usr/aarch64-linux-gnu
    # CPU model|what it stands for|engines it must offer|engines it must not.
    # Every aarch64 model of qemu has the SHA-1 instructions, so the Pi 4
    # run hides them (scripts/hide-arm-crypto.c), as its SoC leaves them out.
    runs=(
        "max|every feature qemu emulates|arm-sha1 arm-neon portable|"
        "cortex-a76|a Pi 5's core|arm-sha1 arm-neon portable|"
        "cortex-a72-nocrypto|a Pi 4's core, no crypto extension|arm-neon portable|arm-sha1"
    )
    ;;
armv7)
    triple=armv7-unknown-linux-gnueabihf
    qemu="qemu-arm"
    prefix=/usr/arm-linux-gnueabihf
    # 32-bit ARM has only the portable engines (the NEON intrinsics of
    # std::arch::arm are not stable Rust).
    runs=(
        "max|every feature qemu emulates|portable sha1-crate|"
        "cortex-a7|a Pi 2's core, like a Pi Zero 2 W on a 32-bit OS|portable sha1-crate|"
    )
    ;;
*)
    echo "usage: $0 aarch64|armv7 [--no-bench]" >&2
    exit 2
    ;;
esac

for tool in "$qemu" "${prefix##*/}-gcc" /usr/bin/rustc cargo; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "qemu-test: $tool not found (see the comment at the top of $0)" >&2
        exit 1
    }
done

export RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/qemu}
export QEMU_LD_PREFIX=$prefix
# Without the embedded broker: not needed for the engines, and the build is
# half as long. The panic override is explained above; no LTO and parallel
# code generation because this build proves the engines correct (their
# loops are single functions, compiled the same either way) and std is
# built from source here: it shortens the build.
flags=(--release --target "$triple" -Zbuild-std --no-default-features
    --config 'profile.release.panic="unwind"'
    --config 'profile.release.lto="off"' --config 'profile.release.codegen-units=16')

echo "== $triple: building (rustc: $($RUSTC --version))"
cargo test -q "${flags[@]}" --lib --no-run
[ -z "$bench" ] || cargo build -q "${flags[@]}" --bin edgeminer
bin=$CARGO_TARGET_DIR/$triple/release/edgeminer
if [ "$triple" = aarch64-unknown-linux-gnu ]; then
    hide=$(realpath "$CARGO_TARGET_DIR")/hide-arm-crypto.so
    "${prefix##*/}-gcc" -shared -fPIC -O2 -Wall -o "$hide" scripts/hide-arm-crypto.c
fi

# Sets QEMU_CPU (and the library that hides the crypto extension) for a
# model named in `runs`.
emulate() {
    case "$1" in
    *-nocrypto)
        export QEMU_CPU=${1%-nocrypto} QEMU_SET_ENV=LD_PRELOAD=$hide
        ;;
    *)
        export QEMU_CPU=$1
        unset QEMU_SET_ENV
        ;;
    esac
}

passed=0
for run in "${runs[@]}"; do
    IFS='|' read -r cpu what want refuse <<<"$run"
    emulate "$cpu"
    echo "== $triple, qemu -cpu $QEMU_CPU ($what)"
    if [ -n "$bench" ]; then
        # Every engine built in, whether this CPU runs it, which is chosen.
        list=$("$qemu" "$bin" bench --list)
        have=$(awk '$2 ~ /^available/ { printf "%s ", $1 }' <<<"$list")
        while IFS= read -r line; do echo "   $line"; done <<<"$list"
        for e in $want; do
            [[ " $have " == *" $e "* ]] || { echo "qemu-test: $cpu should offer $e" >&2; exit 1; }
        done
        for e in $refuse; do
            [[ " $have " != *" $e "* ]] || { echo "qemu-test: $cpu should not offer $e" >&2; exit 1; }
        done
    fi
    echo "-- pow:: tests (every engine offered against the sha1 crate)"
    # The runner in .cargo/config.toml is qemu; QEMU_CPU picks the model.
    cargo test -q "${flags[@]}" --lib pow::
    if [ -z "$bench" ]; then
        passed=$((passed + 1))
        continue
    fi
    echo "-- edgeminer bench --seconds 1 --threads 2 (emulated: not a board's speed)"
    # One word per engine name; qemu below reads this loop's stdin, so no
    # `while read` here.
    # shellcheck disable=SC2013
    for e in $(awk '{ print $1 }' <<<"$list"); do
        if [[ " $have " == *" $e "* ]]; then
            "$qemu" "$bin" bench --seconds 1 --threads 2 --engine "$e" |
                awk -v e="$e" '/^total:/ { printf "   %-11s %s %s %s\n", e, $2, $3, $4; n++ }
                    END { exit n ? 0 : 1 }'
        else
            printf '   %-11s not offered\n' "$e"
        fi
    done
    passed=$((passed + 1))
done
echo "qemu-test: $triple passed on ${passed} CPU models"
