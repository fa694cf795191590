#!/usr/bin/env bash
# Checks that a binary needs no glibc newer than the boards have: Raspberry
# Pi OS bookworm ships glibc 2.36. Reads the versioned symbols the binary
# imports (objdump -T) and prints the newest.
#
#   usage: scripts/check-glibc.sh BINARY [MAX_VERSION=2.36]
#
# Uses the objdump of the binary's architecture (aarch64-linux-gnu-objdump,
# arm-linux-gnueabihf-objdump: they come with the cross gcc packages), or
# llvm-objdump, which reads them all.
set -euo pipefail
bin=${1:?usage: $0 BINARY [MAX_VERSION]}
max=${2:-2.36}

objdump=""
for o in objdump aarch64-linux-gnu-objdump arm-linux-gnueabihf-objdump llvm-objdump; do
    if command -v "$o" >/dev/null 2>&1 && "$o" -T "$bin" >/dev/null 2>&1; then
        objdump=$o
        break
    fi
done
[ -n "$objdump" ] || {
    echo "check-glibc: no objdump here reads $bin" >&2
    exit 1
}

needed=$("$objdump" -T "$bin" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -u -V)
[ -n "$needed" ] || {
    echo "check-glibc: $bin imports no versioned glibc symbol (static, or not a glibc binary?)" >&2
    exit 1
}
newest=$(tail -n 1 <<<"$needed")
too_new=$(printf '%s\n%s\n' "$max" "$newest" | sort -V | tail -n 1)
if [ "$too_new" != "$max" ]; then
    echo "check-glibc: $bin needs glibc $newest, newer than $max; symbols:" >&2
    "$objdump" -T "$bin" | grep -E "GLIBC_($newest)[^0-9.]" >&2 || true
    exit 1
fi
echo "$bin: newest glibc symbol version $newest (at most $max)"
