#!/usr/bin/env bash
# The protocol's cost as the cluster grows, in one run on one machine.
#
#   bench/scale.sh [PROCESSES="4 8 16"] [SECONDS=30] [IN_PROCESS="4 8 16 32 64"]
#   EDGEMINER=path/to/edgeminer bench/scale.sh
#
# With a trivial proof of work (difficulty 8), so that what is measured is
# the protocol, not mining:
#   1. for each N in PROCESSES: N `edgeminer run` processes (one mining
#      thread each) on a private Mosquitto on loopback, for SECONDS. From
#      the nodes' logs, per transaction: the time from the first valid
#      solution (the first "found seed") to the commit at the last node, and
#      from the first commit to the next challenge (p50 and p99); from
#      /proc, each node's CPU time per transaction and its peak RSS; from the
#      broker's $SYS topics (when mosquitto_sub is installed), messages and
#      bytes through the broker per transaction;
#   2. for each N in IN_PROCESS: `edgeminer demo` (N nodes and the embedded
#      broker in one process) committing 10 transactions: commits per minute
#      and the process's peak RSS.
# Signature checks per node and transaction are counted by the protocol
# tests (`cargo test per_node_cost -- --nocapture`); docs/PERFORMANCE.md
# has the table and the figures of this script.
set -euo pipefail
cd "$(dirname "$0")/.."

processes=${1:-4 8 16}
secs=${2:-30}
in_process=${3:-4 8 16 32 64}
bin=${EDGEMINER:-}
if [ -z "$bin" ]; then
    cargo build --release --quiet --bin edgeminer
    bin=${CARGO_TARGET_DIR:-target}/release/edgeminer
fi
mosq=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$mosq" ] || { echo "scale: mosquitto is needed (apt-get install mosquitto)" >&2; exit 1; }
work=$(mktemp -d)
pids=()
mpid=
cleanup() {
    if [ ${#pids[@]} -gt 0 ]; then kill -TERM "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true; fi
    [ -z "$mpid" ] || { kill "$mpid" 2>/dev/null || true; wait "$mpid" 2>/dev/null || true; }
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The broker's cumulative $SYS counters: "messages bytes" received by it.
broker_counters() {
    command -v mosquitto_sub >/dev/null || { echo "- -"; return; }
    # shellcheck disable=SC2016 # $SYS is a topic, not a variable
    mosquitto_sub -p "$1" -W 5 -C 2 -v \
        -t '$SYS/broker/messages/received' -t '$SYS/broker/bytes/received' 2>/dev/null |
        sort | awk '{print $2}' | tr '\n' ' '
}

echo "Real processes on one Mosquitto, difficulty 8, ${secs} s each:"
printf '%-6s %-8s %-22s %-20s %-14s %-14s %-12s %-10s\n' nodes commits "solution->all (p50/p99)" "commit->chal (p50/p99)" "msgs/tx" "bytes/tx" "cpu ms/tx" "max RSS"
for n in $processes; do
    dir="$work/p$n"
    mkdir -p "$dir"
    port=$(free_port)
    printf 'listener %s 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\npersistence false\nsys_interval 1\nmax_queued_messages 100000\n' "$port" >"$dir/m.conf"
    "$mosq" -c "$dir/m.conf" >/dev/null 2>&1 &
    mpid=$!
    members=()
    for i in $(seq 1 "$n"); do
        id=$("$bin" keygen --state-dir "$dir/n$i")
        members+=(--member "$id=n$i")
    done
    "$bin" genesis --cluster scale --difficulty 8..8 "${members[@]}" --out "$dir/genesis.toml" >/dev/null 2>&1
    sleep 0.5
    before=$(broker_counters "$port")
    for i in $(seq 1 "$n"); do
        "$bin" run --genesis "$dir/genesis.toml" --state-dir "$dir/n$i" --threads 1 \
            --no-thermal --broker "mqtt://127.0.0.1:$port" 2>"$dir/n$i.log" &
        pids+=($!)
    done
    sleep "$secs"
    after=$(broker_counters "$port")
    cpu=0
    rss=0
    for p in "${pids[@]}"; do
        t=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)
        cpu=$((cpu + t))
        r=$(awk '/VmHWM/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        [ "$r" -gt "$rss" ] && rss=$r
    done
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
    pids=()
    kill "$mpid" 2>/dev/null || true
    wait "$mpid" 2>/dev/null || true
    mpid=
    python3 - "$dir" "$n" "$cpu" "$(getconf CLK_TCK)" "$rss" "$before" "$after" <<'EOF'
import re, sys, glob, statistics
from datetime import datetime
d, n, cpu, tck, rss = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
before, after = sys.argv[6].split(), sys.argv[7].split()
found, committed, issued = {}, {}, {}
line = re.compile(r'^(\S+Z)\s+\w+\s+(.*)$')
def at(ts):
    return datetime.strptime(ts[:26], '%Y-%m-%dT%H:%M:%S.%f').timestamp()
for f in glob.glob(f'{d}/n*.log'):
    for l in open(f, errors='replace'):
        m = line.match(l)
        if not m:
            continue
        t, text = at(m.group(1)), m.group(2)
        if (x := re.search(r'solution: tx (\d+) round \d+, found seed', text)):
            tx = int(x.group(1)); found[tx] = min(found.get(tx, t), t)
        elif (x := re.search(r'voting: tx (\d+) round \d+ committed', text)):
            committed.setdefault(int(x.group(1)), []).append(t)
        elif (x := re.search(r'challenge: tx (\d+) round \d+, issuing', text)):
            tx = int(x.group(1)); issued[tx] = min(issued.get(tx, t), t)
done = sorted(tx for tx, ts in committed.items() if len(ts) == n)
lat = [1e3 * (max(committed[tx]) - found[tx]) for tx in done if tx in found]
gap = [1e3 * (issued[tx + 1] - min(committed[tx])) for tx in done if tx + 1 in issued]
def p(v, q):
    return statistics.quantiles(v, n=100)[q - 1] if len(v) >= 2 else (v[0] if v else float('nan'))
per = max(len(done), 1)
msgs = bytes_ = '-'
if len(before) == 2 and len(after) == 2 and '-' not in before + after:
    # sorted by topic: bytes/received, messages/received
    bytes_ = f'{(int(after[0]) - int(before[0])) / per:.0f}'
    msgs = f'{(int(after[1]) - int(before[1])) / per:.0f}'
print(f'{n:<6} {len(done):<8} {p(lat,50):6.1f} / {p(lat,99):6.1f} ms      {p(gap,50):6.1f} / {p(gap,99):6.1f} ms    '
      f'{msgs:<14} {bytes_:<14} {1e3 * cpu / tck / n / per:<12.2f} {rss / 1024:.1f} MB')
EOF
done

echo
echo "In one process (edgeminer demo, embedded broker), difficulty 8, 10 transactions:"
printf '%-6s %-40s %-10s\n' nodes result "max RSS"
for n in $in_process; do
    # The demo's last line, then its peak RSS in KiB (from the kernel).
    python3 -c 'import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print((r.stdout.strip().splitlines() or ["no output"])[-1])
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' \
        "$bin" demo --nodes "$n" --rounds 10 --difficulty 8..8 >"$work/demo.out" || true
    out=$(head -n 1 "$work/demo.out")
    rss=$(tail -n 1 "$work/demo.out")
    printf '%-6s %-40s %-10s\n' "$n" "${out#agreement: }" "$((${rss:-0} / 1024)) MB"
done
