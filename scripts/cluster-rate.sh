#!/usr/bin/env bash
# Measures the commit rate of a real cluster: a private Mosquitto on a free
# loopback port and N `edgeminer run` processes (default threads), for S
# seconds. Each node gets its key with `edgeminer keygen`, and one
# `edgeminer genesis` lists them all (cluster "rate", difficulty range D).
# Prints commits per minute and whether the ledgers agree.
# EDGEMINER=path runs that binary instead of building this checkout's
# (to compare two builds on one machine in one sitting).
#   usage: scripts/cluster-rate.sh [NODES=4] [SECONDS=60] [DIFFICULTY=16..20]
set -euo pipefail
nodes=${1:-4}
secs=${2:-60}
difficulty=${3:-16..20}
cd "$(dirname "$0")/.."
bin=${EDGEMINER:-}
if [ -z "$bin" ]; then
    cargo build --release -q --bin edgeminer
    bin=${CARGO_TARGET_DIR:-target}/release/edgeminer
fi
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'listener %s 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\npersistence false\n' "$port" > "$work/m.conf"
mosq=$(command -v mosquitto || echo /usr/sbin/mosquitto)
"$mosq" -c "$work/m.conf" >/dev/null 2>&1 &
mpid=$!
pids=()
cleanup() {
    if [ ${#pids[@]} -gt 0 ]; then kill -TERM "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true; fi
    kill "$mpid" 2>/dev/null || true
    wait "$mpid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The cluster: every node's id, then one genesis naming them all.
members=()
for i in $(seq 1 "$nodes"); do
    id=$("$bin" keygen --state-dir "$work/n$i")
    members+=(--member "$id=n$i")
done
"$bin" genesis --cluster rate --difficulty "$difficulty" "${members[@]}" \
    --out "$work/genesis.toml" >/dev/null

sleep 0.5
for i in $(seq 1 "$nodes"); do
    "$bin" run --genesis "$work/genesis.toml" --state-dir "$work/n$i" \
        --broker "mqtt://127.0.0.1:$port" 2>"$work/n$i.log" &
    pids+=($!)
done
sleep "$secs"
for i in $(seq 1 "$nodes"); do
    kill -0 "${pids[$((i - 1))]}" 2>/dev/null || {
        echo "cluster-rate: node n$i exited early:" >&2
        tail -n 15 "$work/n$i.log" >&2
        exit 1
    }
done
kill -TERM "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true; pids=()
for i in $(seq 1 "$nodes"); do
    "$bin" ledger --state-dir "$work/n$i" --format csv | tail -n +2 > "$work/n$i.csv"
done
min=$(wc -l < "$work/n1.csv")
for i in $(seq 2 "$nodes"); do l=$(wc -l < "$work/n$i.csv"); [ "$l" -lt "$min" ] && min=$l; done
agree=yes
for i in $(seq 2 "$nodes"); do
    cmp -s <(head -n "$min" "$work/n1.csv") <(head -n "$min" "$work/n$i.csv") || agree=no
done
awk -v n="$min" -v s="$secs" -v nodes="$nodes" -v a="$agree" -v d="$difficulty" \
    'BEGIN { printf "%d nodes, difficulty %s, %d s: %d transactions committed by all, %.1f commits per minute, ledgers agree: %s\n", nodes, d, s, n, n * 60 / s, a }'
