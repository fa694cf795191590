#!/usr/bin/env bash
# Runs the Ansible playbook (deploy/ansible) against a lab of booted Debian
# bookworm containers (scripts/bookworm.sh): a broker and three boards on
# the bridge emtest0, the boards' apt knowing only the lab's repository
# (deploy/apt-repo.sh), served from this host. It checks that
#
#   1. the first run installs, configures and starts every board, and the
#      three nodes commit transactions (read from each board's ledger);
#   2. a second run changes nothing (changed=0 on every board);
#   3. a new metrics address reloads the nodes, which serve metrics without
#      a restart; a new thread count restarts them, a batch at a time, each
#      taking part again before the next;
#   4. after a newer package is published, a run upgrades every board in
#      batches, each node restarts on the new binary with the same node id
#      and ledger, and the cluster commits again;
#   5. a run refuses to write a new genesis while the boards run one, and
#      to install another genesis over the boards'.
#
#   usage: deploy/test-fleet.sh path/to/edgeminer_VERSION_amd64.deb
#
# Runs as root (systemd-nspawn), in about five minutes; not part of CI.
# Installs what it needs: apt-utils, gnupg, systemd-container and
# debootstrap with apt-get, and ansible-core (with ansible-lint) into a
# virtualenv under EDGEMINER_BOOKWORM_CACHE (default
# /var/cache/edgeminer-test). The containers are named fleet-*, at
# FLEET_NET.FLEET_FIRST (the broker) and the next three addresses (default
# 10.77.0.60 to .63); they are stopped at the end, failure or not. The
# repository is served on FLEET_NET.1, port FLEET_PORT (default 8690, or
# the next free one). FLEET_ANSIBLE_VENV names another virtualenv with
# ansible-core (e.g. an older release; ansible-lint runs when it has it).
# FLEET_KEEP=1 keeps the playbook's logs (the work
# directory) after a pass too.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD

deb=${1:?usage: $0 path/to/edgeminer_VERSION_amd64.deb}
[ -f "$deb" ] || { echo "test-fleet: no such file: $deb" >&2; exit 2; }
deb=$(realpath "$deb")
[ "$(id -u)" = 0 ] || { echo "test-fleet: run as root (systemd-nspawn)" >&2; exit 2; }

cache=${EDGEMINER_BOOKWORM_CACHE:-/var/cache/edgeminer-test}
net=${FLEET_NET:-10.77.0}
first=${FLEET_FIRST:-60}
port=${FLEET_PORT:-8690}
boards=(pi-01 pi-02 pi-03)
bw=$src/scripts/bookworm.sh
venv=$cache/ansible
work=$(mktemp -d /tmp/edgeminer-fleet.XXXXXX)
http_pid=""
started=$SECONDS

say() { echo "test-fleet: [$((SECONDS - started)) s] $*"; }
fail() {
    echo "test-fleet: FAIL: $*" >&2
    exit 1
}
on_board() {
    local b=$1
    shift
    "$bw" run "fleet-$b" "$@"
}

cleanup() {
    local rc=$?
    set +e
    if [ "$rc" != 0 ]; then
        for b in "${boards[@]}"; do
            echo "== journal of $b" >&2
            on_board "$b" journalctl -u edgeminer -n 25 --no-pager >&2 2>/dev/null
        done
        echo "test-fleet: the playbook's logs and the inventory stay in $work" >&2
    fi
    [ -z "$http_pid" ] || kill "$http_pid" 2>/dev/null
    [ ! -d "$work/signing" ] || gpgconf --homedir "$work/signing" --kill gpg-agent 2>/dev/null
    say "stopping the containers"
    for c in broker "${boards[@]}"; do
        "$bw" stop "fleet-$c" >/dev/null 2>&1 &
    done
    wait
    say "stopped"
    [ "$rc" != 0 ] || [ -n "${FLEET_KEEP:-}" ] || rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- tools ---------------------------------------------------------------

need=()
command -v apt-ftparchive >/dev/null || need+=(apt-utils)
command -v gpg >/dev/null || need+=(gnupg)
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
command -v debootstrap >/dev/null || need+=(debootstrap)
/usr/bin/python3 -c 'import ensurepip' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    apt-get install -y "${need[@]}" >/dev/null 2>&1 ||
        { apt-get update >/dev/null && apt-get install -y "${need[@]}" >/dev/null; }
fi
if [ -n "${FLEET_ANSIBLE_VENV:-}" ]; then
    venv=$FLEET_ANSIBLE_VENV
    [ -x "$venv/bin/ansible-playbook" ] || fail "no ansible-playbook in $venv"
elif [ ! -x "$venv/bin/ansible-playbook" ] || [ ! -x "$venv/bin/ansible-lint" ]; then
    say "installing ansible-core and ansible-lint into $venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install -q 'ansible-core>=2.16,<2.19' 'ansible-lint>=24' >&2
fi
export PATH=$venv/bin:$PATH
export ANSIBLE_CONFIG=$src/deploy/ansible/ansible.cfg ANSIBLE_NOCOLOR=1
export ANSIBLE_HOME=$work/ansible-home ANSIBLE_LOCAL_TEMP=$work/ansible-tmp
say "$(ansible-playbook --version | sed -n 1p)"

say "checking the playbook's syntax, and ansible-lint"
ansible-playbook -i deploy/ansible/inventory.example/hosts.yml deploy/ansible/site.yml --syntax-check >/dev/null ||
    fail "ansible-playbook --syntax-check"
if [ -x "$venv/bin/ansible-lint" ]; then
    (cd deploy/ansible && ansible-lint --offline -q site.yml) || fail "ansible-lint"
fi

# ---- the repository --------------------------------------------------------

say "publishing $(basename "$deb") in the lab's apt repository"
deploy/apt-repo.sh -r "$work/repo" -k "$work/signing" "$deb" 2>"$work/apt-repo.log" ||
    { cat "$work/apt-repo.log" >&2; fail "apt-repo.sh"; }
version1=$(dpkg-deb -f "$deb" Version)

# ---- the lab: a broker and three boards ------------------------------------

ssh-keygen -q -t ed25519 -N '' -C fleet-test -f "$work/id"
"$bw" rootfs >/dev/null
"$bw" boot fleet-broker "$net.$first/24"
i=$first
for b in "${boards[@]}"; do
    i=$((i + 1))
    "$bw" boot "fleet-$b" "$net.$i/24"
done
for c in broker "${boards[@]}"; do
    "$bw" run "fleet-$c" sh -c 'install -d -m 700 /root/.ssh &&
        cat >/root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys &&
        systemctl enable --now ssh >/dev/null 2>&1' <"$work/id.pub"
done
# These containers reach no Debian mirror: the boards' apt is to know the
# lab's repository only (the rootfs already holds the package's
# dependencies).
for b in "${boards[@]}"; do
    on_board "$b" sh -c ': >/etc/apt/sources.list'
done

# The broker: one login per board, whose file the playbook installs and
# hands to the node through LoadCredential=.
mkdir -p "$work/credentials"
{
    echo "listener 1883"
    echo "allow_anonymous false"
    echo "password_file /etc/mosquitto/fleet.passwd"
} | "$bw" run fleet-broker sh -c 'cat >/etc/mosquitto/conf.d/fleet.conf'
"$bw" run fleet-broker sh -c 'install -m 600 -o mosquitto /dev/null /etc/mosquitto/fleet.passwd'
for b in "${boards[@]}"; do
    pw=$(openssl rand -hex 16)
    "$bw" run fleet-broker mosquitto_passwd -b /etc/mosquitto/fleet.passwd "$b" "$pw"
    (umask 077 && printf 'username = %s\npassword = %s\n' "$b" "$pw" >"$work/credentials/$b")
done
"$bw" run fleet-broker systemctl enable --now mosquitto >/dev/null 2>&1
"$bw" run fleet-broker systemctl is-active --quiet mosquitto || fail "mosquitto does not run on the broker"

# The repository over HTTP on the bridge, for as long as the test may take.
while :; do
    timeout 900 /usr/bin/python3 -m http.server --bind "$net.1" --directory "$work/repo" "$port" \
        >"$work/http.log" 2>&1 &
    http_pid=$!
    sleep 1
    kill -0 "$http_pid" 2>/dev/null && break
    http_pid=""
    port=$((port + 1))
    [ "$port" -lt $((${FLEET_PORT:-8690} + 20)) ] || fail "no free port to serve the repository on"
done
say "the repository is at http://$net.1:$port/"

# ---- the inventory -----------------------------------------------------------

mkdir -p "$work/inv/group_vars" "$work/control"
dpkg-deb -x "$deb" "$work/control"
{
    echo "all:"
    echo "  children:"
    echo "    boards:"
    echo "      hosts:"
    i=$first
    for b in "${boards[@]}"; do
        i=$((i + 1))
        echo "        $b: {ansible_host: $net.$i}"
    done
    echo "      vars:"
    echo "        ansible_user: root"
    echo "        ansible_ssh_private_key_file: $work/id"
    echo "        ansible_ssh_common_args: -o UserKnownHostsFile=$work/known_hosts -o StrictHostKeyChecking=accept-new"
} >"$work/inv/hosts.yml"
cat >"$work/inv/group_vars/boards.yml" <<EOF
---
edgeminer_apt_repo_url: http://$net.1:$port/
edgeminer_apt_key_file: $work/repo/edgeminer-archive-keyring.gpg
edgeminer_control_binary: $work/control/usr/bin/edgeminer
edgeminer_cluster: fleet
edgeminer_difficulty: "24..26"
edgeminer_broker: mqtt://$net.$first:1883
edgeminer_credentials_file: "$work/credentials/{{ inventory_hostname }}"
edgeminer_threads: 1
EOF

# Runs the playbook; prints its recap and checks that every board is in
# it, reachable and without failure.
playbook() {
    local n=$1 b line
    shift
    say "run $n of the playbook $*"
    if ! ansible-playbook -i "$work/inv/hosts.yml" deploy/ansible/site.yml "$@" >"$work/run-$n.log" 2>&1; then
        tail -n 60 "$work/run-$n.log" >&2
        fail "run $n of the playbook failed (log: $work/run-$n.log)"
    fi
    sed -n '/^PLAY RECAP/,$p' "$work/run-$n.log" | sed '/^$/d'
    for b in "${boards[@]}"; do
        line=$(grep -E "^$b +: ok=" "$work/run-$n.log") || fail "run $n: $b is not in the recap"
        [[ $line == *" unreachable=0 "* && $line == *" failed=0 "* ]] || fail "run $n: $line"
    done
}
changed() { grep -E "^$2 +: ok=" "$work/run-$1.log" | sed -E 's/.* changed=([0-9]+) .*/\1/'; }
commits() { on_board "$1" edgeminer ledger --state-dir /var/lib/edgeminer --format csv | tail -n +2 | grep -c . || true; }
mainpid() { on_board "$1" systemctl show --property MainPID --value edgeminer; }
# shellcheck disable=SC2016 # a dpkg-query format, not a shell expansion
version() { on_board "$1" dpkg-query -W -f '${Version}' edgeminer; }
# Waits until every board's ledger holds at least $1 transactions.
wait_commits() {
    local want=$1 b n deadline=$((SECONDS + 240))
    for b in "${boards[@]}"; do
        while n=$(commits "$b") && [ "$n" -lt "$want" ]; do
            [ "$SECONDS" -lt "$deadline" ] || fail "$b has $n transactions in its ledger, not $want"
            sleep 2
        done
        say "$b: $n transactions committed"
    done
}

# ---- 1. the first run ----------------------------------------------------------

playbook 1
[ -f "$work/inv/genesis.toml" ] || fail "the first run wrote no genesis"
grep -q "^cluster = \"fleet\"" "$work/inv/genesis.toml" || fail "the genesis is not cluster fleet's"
for b in "${boards[@]}"; do
    [ "$(changed 1 "$b")" -gt 0 ] || fail "run 1 changed nothing on $b"
    id=$(on_board "$b" edgeminer id --state-dir /var/lib/edgeminer)
    grep -q "id = \"$id\"" "$work/inv/genesis.toml" || fail "$b's node $id is not in the genesis"
    [ "$(on_board "$b" stat -c %a /etc/edgeminer/broker.credentials)" = 600 ] ||
        fail "$b: /etc/edgeminer/broker.credentials is not mode 600"
    on_board "$b" systemctl cat edgeminer | grep -q '^LoadCredential=broker.credentials:/etc/edgeminer/broker.credentials$' ||
        fail "$b: the unit has no LoadCredential= for the broker login"
    on_board "$b" systemctl is-enabled --quiet edgeminer || fail "$b: edgeminer is not enabled"
    on_board "$b" systemctl is-active --quiet edgeminer || fail "$b: edgeminer is not running"
    [ "$(version "$b")" = "$version1" ] ||
        fail "$b does not have edgeminer $version1"
done
genesis_sum=$(sha256sum <"$work/inv/genesis.toml")
wait_commits 3

# ---- 2. idempotence ---------------------------------------------------------------

playbook 2
for b in "${boards[@]}"; do
    [ "$(changed 2 "$b")" = 0 ] || fail "run 2 changed $(changed 2 "$b") things on $b (see $work/run-2.log)"
done
say "run 2: changed=0 on every board"

# ---- 3. a reload, then a restart ------------------------------------------------

# A metrics address is taken by a reload: the node serves metrics at once,
# and keeps running.
declare -A pid
for b in "${boards[@]}"; do pid[$b]=$(mainpid "$b"); done
metrics=(-e edgeminer_metrics_addr=127.0.0.1:9848)
playbook 3 "${metrics[@]}"
grep -q 'RUNNING HANDLER \[edgeminer : Reload edgeminer\]' "$work/run-3.log" || fail "run 3 reloaded no node"
! grep -q 'RUNNING HANDLER \[edgeminer : Restart the node\]' "$work/run-3.log" || fail "run 3 restarted a node for metrics_addr"
for b in "${boards[@]}"; do
    [ "$(changed 3 "$b")" = 2 ] || fail "run 3 changed $(changed 3 "$b") things on $b, not the settings and a reload"
    [ "$(mainpid "$b")" = "${pid[$b]}" ] || fail "$b's node was restarted for a metrics address"
    m=$(on_board "$b" curl -sf http://127.0.0.1:9848/metrics || true)
    grep -q '^edgeminer_' <<<"$m" || fail "$b's node serves no metrics after the reload"
done
say "run 3: metrics_addr taken by a reload on every board (same pid, metrics served)"

# Threads wait for a restart: the nodes restart, batch by batch, and each
# takes part again before the next goes.
settings=("${metrics[@]}" -e edgeminer_threads=2)
playbook 4 "${settings[@]}"
for b in "${boards[@]}"; do
    [ "$(mainpid "$b")" != "${pid[$b]}" ] || fail "$b's node was not restarted for a new thread count"
    st=$(on_board "$b" systemctl show --property StatusText --value edgeminer)
    [[ $st == *"on 2 threads"* ]] || fail "$b's node does not mine on 2 threads: $st"
done
[ "$(grep -c 'RUNNING HANDLER \[edgeminer : Wait for the node to take part\]' "$work/run-4.log")" = "${#boards[@]}" ] ||
    fail "run 4 did not wait for each restarted node in its own batch"
say "run 4: threads changed by a restart on every board, one batch at a time"

# ---- 4. an upgrade, with the same settings ---------------------------------------------------------------

# A newer version of the same package: its control file's Version raised
# (dpkg-deb), the contents unchanged, as a rebuild with a new Debian
# revision would be.
version2=$version1+upgrade1
dpkg --compare-versions "$version2" gt "$version1" || fail "$version2 is not newer than $version1"
dpkg-deb -R "$deb" "$work/pkg2"
sed -i "s/^Version: .*/Version: $version2/" "$work/pkg2/DEBIAN/control"
dpkg-deb --root-owner-group -b "$work/pkg2" "$work/edgeminer_${version2}_amd64.deb" >/dev/null
deploy/apt-repo.sh -r "$work/repo" -k "$work/signing" "$work/edgeminer_${version2}_amd64.deb" 2>>"$work/apt-repo.log" ||
    { cat "$work/apt-repo.log" >&2; fail "apt-repo.sh with the new version"; }

declare -A node before
for b in "${boards[@]}"; do
    node[$b]=$(on_board "$b" edgeminer id --state-dir /var/lib/edgeminer)
    pid[$b]=$(mainpid "$b")
    on_board "$b" edgeminer ledger --state-dir /var/lib/edgeminer --format csv >"$work/ledger-$b.csv"
    before[$b]=$(($(wc -l <"$work/ledger-$b.csv") - 1))
    say "$b before the upgrade: edgeminer $(version "$b"), node ${node[$b]}, pid ${pid[$b]}, ${before[$b]} transactions"
done

playbook 5 "${settings[@]}"
# The upgrade, batch by batch: the package task and the handlers that ran.
awk '/^PLAY \[Install edgeminer/ { n++; p = 1 } /^PLAY \[/ && !/^PLAY \[Install edgeminer/ { p = 0 }
     p && /^(TASK \[edgeminer : Install or upgrade|RUNNING HANDLER)/ { sub(/^[^[]*\[edgeminer : /, ""); sub(/\] \**$/, ""); t = $0; next }
     p && t != "" && /^(changed|ok|skipping): / { printf "test-fleet: run 5, batch %d: %s: %s %s\n", n, t, $1, $2; t = "" }' "$work/run-5.log"
batches=$(grep -c '^PLAY \[Install edgeminer and read each board' "$work/run-5.log" || true)
[ "$batches" = "${#boards[@]}" ] || fail "run 5 upgraded in $batches batches, not one board at a time"
most=0
for b in "${boards[@]}"; do
    v=$(version "$b")
    [ "$v" = "$version2" ] || fail "$b has edgeminer $v after the upgrade, not $version2"
    [ "$(changed 5 "$b")" = 1 ] || fail "run 5 changed $(changed 5 "$b") things on $b, not the package alone"
    on_board "$b" systemctl is-active --quiet edgeminer || fail "$b: edgeminer is not running after the upgrade"
    p=$(mainpid "$b")
    [ "$p" != "${pid[$b]}" ] || fail "$b's node was not restarted by the upgrade (pid $p)"
    exe=$(on_board "$b" readlink "/proc/$p/exe")
    [ "$exe" = /usr/bin/edgeminer ] || fail "$b's node runs $exe, not the new /usr/bin/edgeminer"
    id=$(on_board "$b" edgeminer id --state-dir /var/lib/edgeminer)
    [ "$id" = "${node[$b]}" ] || fail "$b's node id changed from ${node[$b]} to $id"
    on_board "$b" edgeminer ledger --state-dir /var/lib/edgeminer --format csv >"$work/ledger2-$b.csv"
    head -n $((before[$b] + 1)) "$work/ledger2-$b.csv" | cmp -s - "$work/ledger-$b.csv" ||
        fail "$b's ledger lost or changed transactions of before the upgrade"
    on_board "$b" edgeminer verify --state-dir /var/lib/edgeminer >/dev/null ||
        fail "$b's ledger does not verify after the upgrade"
    [ "$(sha256sum <"$work/inv/genesis.toml")" = "$genesis_sum" ] || fail "the genesis changed"
    n=$(($(wc -l <"$work/ledger2-$b.csv") - 1))
    say "$b after the upgrade: edgeminer $v, node $id, pid $p, kept its ${before[$b]} transactions, now $n"
    [ "$n" -le "$most" ] || most=$n
done
wait_commits $((most + 3))

# ---- 5. the genesis is never written again ------------------------------------

# Runs the playbook, which must fail saying $2.
playbook_refuses() {
    local n=$1 why=$2
    shift 2
    say "run $n of the playbook $*, which must refuse"
    ! ansible-playbook -i "$work/inv/hosts.yml" deploy/ansible/site.yml "$@" >"$work/run-$n.log" 2>&1 ||
        fail "run $n of the playbook did not fail (log: $work/run-$n.log)"
    grep -q "$why" "$work/run-$n.log" || {
        tail -n 30 "$work/run-$n.log" >&2
        fail "run $n failed, but not saying '$why'"
    }
}
# The control machine lost its genesis: no new one while the boards run one.
mv "$work/inv/genesis.toml" "$work/genesis.kept"
playbook_refuses 6 'already run a cluster from one' "${settings[@]}"
[ ! -e "$work/inv/genesis.toml" ] || fail "run 6 wrote a new genesis"
# Another genesis here: the boards' is not overwritten.
"$work/control/usr/bin/edgeminer" genesis --cluster other --difficulty 24..26 \
    --member "${node[pi-01]}=pi-01" --out "$work/inv/genesis.toml" >/dev/null 2>&1
playbook_refuses 7 'has another genesis' "${settings[@]}"
for b in "${boards[@]}"; do
    on_board "$b" cat /etc/edgeminer/genesis.toml | cmp -s - "$work/genesis.kept" ||
        fail "$b's genesis was changed"
done
mv "$work/genesis.kept" "$work/inv/genesis.toml"
say "runs 6 and 7: no genesis written or installed over the cluster's"

say "PASS: ${#boards[@]} boards installed, configured and started by the playbook, committing; a second run changed nothing; a reload for metrics_addr, a rolling restart for threads; upgraded from $version1 to $version2 one board at a time, with their ids and ledgers, committing again; the genesis never rewritten"
