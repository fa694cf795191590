#!/usr/bin/env bash
# How a node starts on a long ledger, against one on an empty ledger.
#
#   bench/longevity.sh [SIZES="0 10000 100000"] [REPS=5] [WEAR_SECONDS=20]
#   EDGEMINER=path/to/edgeminer bench/longevity.sh
#
# 1. For each size N in SIZES, the state directories of a four-member
#    cluster whose ledger holds N transactions, made by
#    `examples/longevity_ledger.rs` (real certificates, difficulty 1) and
#    checked once with `edgeminer verify`. They are kept in
#    ${CARGO_TARGET_DIR:-target}/longevity/ledger-N (LONGEVITY_DIR= to put
#    them elsewhere) and reused by later runs; LONGEVITY_REBUILD=1 makes
#    them again.
# 2. REPS times, for each N in turn: a copy of member n1's state directory,
#    a fresh private Mosquitto on a free loopback port, and one
#    `edgeminer run` on them (alone: the others stay off, so it waits for
#    them and commits nothing). Start time: from the spawn to the log line
#    "init: connected to the broker" (the ledger is open and checked, the
#    core built, the broker connection up), and, of that, the time to the
#    "init: node ..." line, printed once the ledger is read and checked
#    (with the process start, the engine choice and the key before it).
#    Memory: VmRSS SETTLE seconds (default 2) after the connected line, and
#    VmHWM, the peak, from /proc. The table gives medians and their ratios
#    to the empty ledger's, and the ledger's bytes per transaction.
# 3. For WEAR_SECONDS, all four members of the empty-ledger cluster (one
#    mining thread each, warnings only in the log) commit at difficulty 1
#    on one Mosquitto; per member and transaction: bytes handed to write()
#    (wchar in /proc/PID/io) and bytes the process sent towards the storage
#    device (write_bytes: whole pages, each time a synced page is dirtied
#    again; the file system's journal comes on top), and the ledger's
#    growth. WEAR_SECONDS=0 skips this part.
# The page cache is not dropped: a start reads a ledger the copy has just
# brought into memory, as a node restarted on a running board does.
set -Eeuo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."

sizes=${1:-0 10000 100000}
reps=${2:-5}
wear_secs=${3:-20}
settle=${SETTLE:-2}
# The longest wait for one node to start, and for one to stop.
start_limit=${START_LIMIT:-900}
stop_limit=20
unset JOURNAL_STREAM

target=${CARGO_TARGET_DIR:-target}
cache=${LONGEVITY_DIR:-$target/longevity}
bin=${EDGEMINER:-}
if [ -z "$bin" ]; then
    cargo build --release --quiet --bin edgeminer
    bin=$target/release/edgeminer
fi
gen=$target/release/examples/longevity_ledger
mosq=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$mosq" ] || { echo "longevity: mosquitto is needed (apt-get install mosquitto)" >&2; exit 1; }
mkdir -p "$cache"
work=$(mktemp -d "$cache/run.XXXXXX")
pids=()
mpid=
stop_all() {
    local p
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do stop_one "$p"; done
    pids=()
    if [ -n "$mpid" ]; then
        kill "$mpid" 2>/dev/null || true
        wait "$mpid" 2>/dev/null || true
        mpid=
    fi
}
# Waits (bounded) for process $1, asked to stop, then kills it.
stop_one() {
    local i
    for ((i = 0; i < stop_limit * 10; i++)); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
cleanup() {
    stop_all
    rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "longevity: stopped by a failed command at line $LINENO" >&2' ERR

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Starts a private Mosquitto on a free loopback port; sets mpid and port.
broker() {
    port=$(free_port)
    printf 'listener %s 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\npersistence false\nmax_queued_messages 100000\n' "$port" >"$work/m.conf"
    "$mosq" -c "$work/m.conf" >/dev/null 2>&1 &
    mpid=$!
    local i
    for ((i = 0; i < 100; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "longevity: mosquitto did not listen on port $port" >&2
    exit 1
}

# Sets dir to the state directories of a cluster with a ledger of $1
# transactions, made when missing.
ledger_dir() {
    local n=$1
    dir=$cache/ledger-$1
    if [ "${LONGEVITY_REBUILD:-0}" = 1 ] && [ -e "$dir/generated.txt" ]; then rm -rf "$dir"; fi
    if [ ! -e "$dir/generated.txt" ]; then
        if [ ! -x "$gen" ] || [ -z "${generator_built:-}" ]; then
            cargo build --release --quiet --example longevity_ledger
            generator_built=1
        fi
        rm -rf "$dir.tmp" "$dir"
        echo "longevity: making a ledger of $n transactions in $dir (once; later runs reuse it)" >&2
        "$gen" --transactions "$n" --out "$dir.tmp" >"$work/generated.txt"
        "$bin" -q verify --state-dir "$dir.tmp/n1" >>"$work/generated.txt"
        mv "$work/generated.txt" "$dir.tmp/generated.txt"
        mv "$dir.tmp" "$dir"
    fi
    sed 's/^/  /' "$dir/generated.txt" >&2
}

# Seconds since the epoch of a text log line's timestamp.
stamp() { date -u -d "$(cut -d ' ' -f 1 <<<"$1")" +%s.%N; }

# One start of member n1 of the cluster in $1 with a ledger of $2
# transactions: appends "N start open rss hwm" (seconds, seconds, KiB, KiB)
# to $work/starts.
one_start() {
    local src=$1 log=$work/node.log state=$work/state
    rm -rf "$state"
    cp -a "$src/n1" "$state"
    # Empty before the spawn: the shell truncates it in the child, maybe
    # after the first look below.
    : >"$log"
    broker
    local t0 pid i ready=
    t0=$EPOCHREALTIME
    "$bin" run --genesis "$src/genesis.toml" --state-dir "$state" --threads 1 \
        --no-thermal --broker "mqtt://127.0.0.1:$port" 2>"$log" &
    pid=$!
    pids=("$pid")
    for ((i = 0; i < start_limit * 50; i++)); do
        ready=$(grep -m 1 'init: connected to the broker' "$log" || true)
        [ -n "$ready" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.02
    done
    if [ -z "$ready" ]; then
        echo "longevity: the node on $src did not connect:" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
    sleep "$settle"
    local opened rss hwm
    opened=$(grep -m 1 'init: node ' "$log")
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
    hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
    stop_all
    echo "$2 $(stamp "$ready") $(stamp "$opened") $t0 $rss $hwm" |
        awk '{printf "%s %.6f %.6f %s %s\n", $1, $2 - $4, $3 - $4, $5, $6}' >>"$work/starts"
}

declare -A dirs
for n in $sizes; do
    ledger_dir "$n"
    dirs[$n]=$dir
done

echo "Starts of one node (member n1 of 4, alone on a private Mosquitto), $reps each, $(nproc) cores:" >&2
: >"$work/starts"
for ((r = 1; r <= reps; r++)); do
    for n in $sizes; do
        one_start "${dirs[$n]}" "$n"
    done
done

: >"$work/sizes"
for n in $sizes; do
    echo "$n $(stat -c %s "${dirs[$n]}/n1/ledger.bin")" >>"$work/sizes"
done
python3 - "$work/starts" "$work/sizes" <<'EOF'
import sys, statistics
runs, size = {}, {}
for l in open(sys.argv[1]):
    n, start, opened, rss, hwm = l.split()
    runs.setdefault(int(n), []).append((float(start), float(opened), int(rss), int(hwm)))
for l in open(sys.argv[2]):
    n, b = l.split()
    size[int(n)] = int(b)
med = {n: [statistics.median(r[k] for r in v) for k in range(4)] for n, v in runs.items()}
base = med[min(med)]
empty = size[min(size)]
print(f'| transactions | start (median, min..max) | x empty | to the "init: node" line | VmRSS | x empty | VmHWM | x empty | ledger.bin | bytes per tx |')
print('|---|---|---|---|---|---|---|---|---|---|')
for n in sorted(med):
    s, o, rss, hwm = med[n]
    starts = [r[0] for r in runs[n]]
    per = f'{(size[n] - empty) / n:.0f}' if n else '-'
    print(f'| {n:,} | {1e3 * s:.0f} ms ({1e3 * min(starts):.0f}..{1e3 * max(starts):.0f}) | {s / base[0]:.2f} | {1e3 * o:.0f} ms '
          f'| {rss / 1024:.1f} MB | {rss / base[2]:.2f} | {hwm / 1024:.1f} MB | {hwm / base[3]:.2f} '
          f'| {size[n] / 1e6:.1f} MB | {per} |')
EOF

[ "$wear_secs" != 0 ] || exit 0
# The members of the smallest cluster commit for a while: what each writes.
src=${dirs[${sizes%% *}]}
broker
for i in 1 2 3 4; do
    rm -rf "$work/w$i"
    cp -a "$src/n$i" "$work/w$i"
done
before=$(stat -c %s "$work/w1/ledger.bin")
h0=$("$bin" ledger --state-dir "$work/w1" --format csv | tail -n +2 | wc -l)
for i in 1 2 3 4; do
    "$bin" -q run --genesis "$src/genesis.toml" --state-dir "$work/w$i" --threads 1 \
        --no-thermal --broker "mqtt://127.0.0.1:$port" 2>"$work/w$i.log" &
    pids+=($!)
done
sleep "$wear_secs"
: >"$work/io"
for p in "${pids[@]}"; do
    awk '/^(wchar|write_bytes):/ {printf "%s ", $2} END {print ""}' "/proc/$p/io" >>"$work/io"
done
stop_all
h1=$("$bin" ledger --state-dir "$work/w1" --format csv | tail -n +2 | wc -l)
after=$(stat -c %s "$work/w1/ledger.bin")
python3 - "$work/io" "$((h1 - h0))" "$((after - before))" "$wear_secs" <<'EOF'
import sys
io = [list(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
tx, grown, secs = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
print()
print(f'Writes: 4 members committing at difficulty 1 for {secs} s, {tx} transactions (member n1\'s ledger); per member and transaction:')
if tx == 0:
    print('no transaction committed')
    sys.exit(1)
wchar = sum(r[0] for r in io) / len(io) / tx
wbytes = sum(r[1] for r in io) / len(io) / tx
print(f'| ledger growth | bytes to write() (wchar) | bytes towards the device (write_bytes) |')
print('|---|---|---|')
print(f'| {grown / tx:.0f} B | {wchar:.0f} B | {wbytes:.0f} B |')
EOF
