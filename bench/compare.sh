#!/usr/bin/env bash
# Mining speed against OpenSSL's SHA-1, in one run on one machine.
#
#   bench/compare.sh [SECONDS]          (default 3 s per measurement)
#   EDGEMINER=path/to/edgeminer bench/compare.sh
#
# Measures, one after the other:
#   1. `openssl speed -evp sha1` with 16 KiB buffers: one stream's block rate
#      (a 64-byte block is one SHA-1 compression, as one candidate is);
#   2. the same with `-multi N` (N = cores): how this machine itself scales;
#   3. `edgeminer bench` with 1 thread and with N threads (fastest engine);
#   4. N single-thread `edgeminer bench` processes at once: the machine's
#      best for N independent miners, to tell the pool's own losses from the
#      machine's (shared cores, hyper-threads, CPU quotas).
# and prints the ratios the performance goals are stated in.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-3}
n=$(nproc)
bin=${EDGEMINER:-}
if [ -z "$bin" ]; then
    cargo build --release --quiet
    bin=${CARGO_TARGET_DIR:-target}/release/edgeminer
fi
command -v openssl >/dev/null || { echo "openssl is needed (apt-get install openssl)"; exit 1; }

# Field `name` of a one-line JSON object.
field() { sed -n "s/.*\"$1\":\\([0-9.e+-]*\\).*/\\1/p"; }
# OpenSSL's bytes per second for the 16 KiB column ("1631887.77k").
openssl_rate() {
    awk '/^sha1 / { v = $NF; sub(/k$/, "", v); printf "%.0f\n", v * 1000 }'
}

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $n cores"
echo "edgeminer: $("$bin" --version)"
echo

ssl1=$(openssl speed -evp sha1 -bytes 16384 -seconds "$secs" 2>/dev/null | openssl_rate)
ssln=$(openssl speed -multi "$n" -evp sha1 -bytes 16384 -seconds "$secs" 2>/dev/null | openssl_rate)
one=$("$bin" bench --threads 1 --seconds "$secs" --json)
all=$("$bin" bench --threads "$n" --seconds "$secs" --json)
sep=0
pids=()
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
for i in $(seq 1 "$n"); do
    "$bin" bench --threads 1 --seconds "$secs" --json >"$dir/$i" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
for i in $(seq 1 "$n"); do
    sep=$(awk -v a="$sep" -v b="$(field hashes_per_second <"$dir/$i")" 'BEGIN { printf "%.0f", a + b }')
done

engine=$(echo "$one" | sed -n 's/.*"engine":"\([^"]*\)".*/\1/p')
r1=$(echo "$one" | field hashes_per_second)
rn=$(echo "$all" | field hashes_per_second)
stop=$(echo "$all" | field stop_ms)
stopmax=$(echo "$all" | field stop_ms_max)

awk -v ssl1="$ssl1" -v ssln="$ssln" -v r1="$r1" -v rn="$rn" -v sep="$sep" -v n="$n" \
    -v engine="$engine" -v stop="$stop" -v stopmax="$stopmax" 'BEGIN {
    b1 = ssl1 / 64; bn = ssln / 64
    printf "%-44s %10.2f M blocks/s\n", "openssl sha1, 16 KiB, one stream", b1 / 1e6
    printf "%-44s %10.2f M blocks/s\n", "openssl sha1, 16 KiB, " n " streams", bn / 1e6
    printf "%-44s %10.2f M candidates/s\n", "edgeminer " engine ", 1 thread", r1 / 1e6
    printf "%-44s %10.2f M candidates/s\n", "edgeminer " engine ", " n " threads", rn / 1e6
    printf "%-44s %10.2f M candidates/s\n", "edgeminer, " n " one-thread processes at once", sep / 1e6
    printf "%-44s %10.2f ms median, %.2f ms worst\n", "stop to all threads idle", stop, stopmax
    print ""
    printf "1 thread / openssl one stream:           %6.2f  (goal >= 3.9)\n", r1 / b1
    printf "%d threads / (%d x 1 thread):              %6.2f  (goal >= 0.95)\n", n, n, rn / (n * r1)
    printf "  the machine: openssl %d / (%d x 1):        %6.2f\n", n, n, bn / (n * b1)
    printf "  the pool: %d threads / %d processes:       %6.2f\n", n, n, rn / sep
}'
