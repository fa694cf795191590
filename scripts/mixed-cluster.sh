#!/usr/bin/env bash
# A cluster of mixed architectures on one Mosquitto: two native nodes and
# one ARM node under qemu user-mode emulation must commit at least
# TX transactions with identical ledgers, each of which verifies. This is
# what a lab with a laptop and a few boards runs: the keys, the genesis and
# its cluster id, the wire format, signatures and proof of work must agree
# across architectures. Each node makes its key with its own build; the
# native build writes the genesis that lists all three.
#
#   usage: scripts/mixed-cluster.sh NATIVE_BIN ARM_BIN [TX=3]
#
# ARM_BIN is an aarch64 or armv7 build (deploy/cross-build.sh, or the one
# scripts/qemu-test.sh builds); it runs with qemu-aarch64 -L
# /usr/aarch64-linux-gnu (qemu-arm -L /usr/arm-linux-gnueabihf). Needs
# mosquitto and qemu-user. The broker listens on a free loopback port;
# everything stops by itself after at most 300 s.
set -euo pipefail
native=$(realpath "${1:?usage: $0 NATIVE_BIN ARM_BIN [TX]}")
arm=$(realpath "${2:?usage: $0 NATIVE_BIN ARM_BIN [TX]}")
want=${3:-3}

# The ELF header's machine field: 0xb7 is aarch64, 0x28 32-bit ARM.
case "$(od -An -tx1 -j18 -N1 "$arm" | tr -d ' ')" in
b7) emulate=(qemu-aarch64 -L /usr/aarch64-linux-gnu) ;;
28) emulate=(qemu-arm -L /usr/arm-linux-gnueabihf) ;;
*)
    echo "mixed-cluster: $arm is neither an aarch64 nor an ARM binary" >&2
    exit 2
    ;;
esac
mosq=$(command -v mosquitto || echo /usr/sbin/mosquitto)
work=$(mktemp -d)
pids=()
mpid=""
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    [ -z "$mpid" ] || { kill "$mpid" 2>/dev/null || true; wait "$mpid" 2>/dev/null || true; }
    rm -rf "$work"
}
trap cleanup EXIT

# A free port: try random ones until mosquitto keeps running on one.
for _ in $(seq 1 20); do
    port=$((20000 + RANDOM % 40000))
    printf 'listener %s 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\npersistence false\n' "$port" >"$work/m.conf"
    "$mosq" -c "$work/m.conf" >"$work/mosquitto.log" 2>&1 &
    mpid=$!
    sleep 0.5
    if kill -0 "$mpid" 2>/dev/null; then break; fi
    wait "$mpid" 2>/dev/null || true
    mpid=""
done
[ -n "$mpid" ] || { echo "mixed-cluster: mosquitto did not start" >&2; cat "$work/mosquitto.log" >&2; exit 1; }

# Each node makes its key with its own build (the ARM node's under qemu),
# and one genesis lists the three ids: every node, ARM or not, must derive
# the same cluster id from it.
members=()
for n in native-1 native-2; do
    members+=(--member "$("$native" keygen --state-dir "$work/$n")=$n")
done
members+=(--member "$("${emulate[@]}" "$arm" keygen --state-dir "$work/arm-1")=arm-1")
"$native" genesis --cluster mixed --difficulty 12..14 "${members[@]}" \
    --out "$work/genesis.toml" >/dev/null

common=(run --genesis "$work/genesis.toml" --threads 1 --no-thermal
    --broker "mqtt://127.0.0.1:$port")
"$native" "${common[@]}" --state-dir "$work/native-1" 2>"$work/native-1.log" &
pids+=($!)
"$native" "${common[@]}" --state-dir "$work/native-2" 2>"$work/native-2.log" &
pids+=($!)
"${emulate[@]}" "$arm" "${common[@]}" --state-dir "$work/arm-1" 2>"$work/arm-1.log" &
pids+=($!)
echo "mixed-cluster: native-1, native-2 and arm-1 (${emulate[0]}) on mqtt://127.0.0.1:$port"

committed() { "$native" ledger --state-dir "$work/$1" --format csv 2>/dev/null | tail -n +2 | wc -l; }
start=$SECONDS
done=""
while [ $((SECONDS - start)) -lt 300 ]; do
    sleep 2
    n1=$(committed native-1) n2=$(committed native-2) a1=$(committed arm-1)
    if [ "$n1" -ge "$want" ] && [ "$n2" -ge "$want" ] && [ "$a1" -ge "$want" ]; then
        done=1
        break
    fi
    for i in 0 1 2; do
        kill -0 "${pids[$i]}" 2>/dev/null || { echo "mixed-cluster: a node exited early" >&2; break 2; }
    done
done
elapsed=$((SECONDS - start))
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
pids=()
if [ -z "$done" ]; then
    echo "mixed-cluster: fewer than $want commits on some node after ${elapsed} s" >&2
    for n in native-1 native-2 arm-1; do echo "--- $n" >&2; tail -n 15 "$work/$n.log" >&2; done
    exit 1
fi

for n in native-1 native-2 arm-1; do
    # sed reads to the end: `head` would close the pipe early on a long
    # ledger, and pipefail would fail the script with SIGPIPE (141).
    "$native" ledger --state-dir "$work/$n" --format csv | sed -n "2,$((want + 1))p" >"$work/$n.csv"
    "$native" verify --state-dir "$work/$n" >/dev/null
done
# The ARM node checks its own ledger with its own code too.
"${emulate[@]}" "$arm" verify --state-dir "$work/arm-1" >/dev/null
if ! { cmp -s "$work/native-1.csv" "$work/native-2.csv" && cmp -s "$work/native-1.csv" "$work/arm-1.csv"; }; then
    echo "mixed-cluster: ledgers differ" >&2
    head -n 50 "$work"/*.csv >&2
    exit 1
fi
echo "mixed-cluster: $want transactions committed in ${elapsed} s, identical ledgers on all three nodes, each verified:"
sed 's/^/   /' "$work/native-1.csv"
grep -h " committed: " "$work/arm-1.log" | head -n "$want" | sed "s/^[^ ]* */   arm-1: /" || true
