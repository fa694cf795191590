#!/usr/bin/env bash
# Installs the amd64 package in booted Debian bookworm containers (systemd
# 252, as on Raspberry Pi OS bookworm; scripts/bookworm.sh) and checks what
# only a real systemd shows:
#  - a fresh install prints no adduser warning, and the first start logs no
#    DynamicUser migration;
#  - the node starts (READY) on a one-member cluster with the container's
#    Mosquitto as its broker; `systemctl reload` (SIGHUP) and
#    `systemctl kill -s HUP` leave it running, the same process;
#  - with its broker stopped it is still `active`, its status "connecting",
#    and `journalctl -p warning` shows the warning about it;
#  - a configuration error exits 78 and is not restarted;
#  - an install of OLD_DEB (an earlier package, whose unit had
#    DynamicUser=yes) upgraded to NEW_DEB keeps its key and ledger;
#  - purge removes the state and the files the guide put in /etc/edgeminer,
#    and the drop-in, and leaves other files.
#
#   usage: deploy/test-package-booted.sh OLD_DEB NEW_DEB
#
# Runs as root, where scripts/bookworm.sh can (systemd-nspawn, debootstrap);
# a few minutes. Not run by CI. The containers are pkg-fresh and
# pkg-upgrade; they are stopped and deleted at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

old_deb=$(realpath "${1:?usage: $0 OLD_DEB NEW_DEB}")
new_deb=$(realpath "${2:?usage: $0 OLD_DEB NEW_DEB}")
bookworm=scripts/bookworm.sh

fail() { echo "test-package-booted: FAIL: $*" >&2; exit 1; }
ok() { echo "test-package-booted: ok: $*"; }
inside() { "$bookworm" run "$@"; }
cleanup() { "$bookworm" stop pkg-fresh || true; "$bookworm" stop pkg-upgrade || true; }
trap cleanup EXIT

# Waits up to $3 seconds for `systemctl show -p $2` of edgeminer to match
# the pattern $4 (grep -E) in container $1; prints the last value.
wait_for() {
    local c=$1 prop=$2 secs=$3 pattern=$4 value=""
    for _ in $(seq $((secs * 2))); do
        value=$(inside "$c" systemctl show -p "$prop" --value edgeminer)
        if echo "$value" | grep -Eq "$pattern"; then echo "$value"; return 0; fi
        sleep 0.5
    done
    echo "$value"
    return 1
}

# Boots container $1 with the package $2 installed; prints dpkg's output.
boot_with() {
    local c=$1 deb=$2
    "$bookworm" boot "$c" >&2
    cp "$deb" "$("$bookworm" root "$c")/root/edgeminer.deb"
    inside "$c" dpkg -i /root/edgeminer.deb 2>&1
}

# A one-member cluster of this node, on the container's Mosquitto (the
# shipped config.toml's broker, mqtt://localhost:1883). The debootstrapped
# rootfs has no /etc/hosts, which every installed system has (Raspberry Pi
# OS's names localhost and the board): without it localhost resolves to
# nothing and the node would only ever be connecting.
configure() {
    local c=$1 id
    inside "$c" sh -c "[ -e /etc/hosts ] || printf '127.0.0.1 localhost\n::1 localhost\n127.0.1.1 $c\n' >/etc/hosts"
    inside "$c" systemctl start mosquitto
    id=$(inside "$c" sudo -u edgeminer edgeminer keygen --state-dir /var/lib/edgeminer | tail -n 1)
    inside "$c" edgeminer genesis --cluster booted --difficulty 12..14 --member "$id=$c" \
        --out /root/genesis.toml >/dev/null 2>&1
    inside "$c" install -m 644 /root/genesis.toml /etc/edgeminer/genesis.toml
    echo "$id"
}

indent() { printf '%s\n' "$2" | sed "s/^/$1/"; }
# A status once the broker answers: the phase first, no "connecting to the
# broker; " or "lost the broker, reconnecting; " before it.
connected='^(waiting for members|electing|mining|voting), tx [0-9]+'
journal() { inside "$1" journalctl -q --no-pager -u edgeminer "${@:2}"; }

echo "== a fresh install of $(basename "$new_deb")"
out=$(boot_with pkg-fresh "$new_deb")
indent "  dpkg: " "$out"
if echo "$out" | grep -qi 'warn'; then fail "the install warns"; fi
ok "installed without a warning"
inside pkg-fresh getent passwd edgeminer | grep -q ':/var/lib/edgeminer:' || fail "no system user edgeminer"
[ "$(inside pkg-fresh stat -c '%U %a' /var/lib/edgeminer)" = "edgeminer 700" ] ||
    fail "/var/lib/edgeminer is $(inside pkg-fresh stat -c '%U %a' /var/lib/edgeminer)"
id=$(configure pkg-fresh)
inside pkg-fresh systemctl start edgeminer
status=$(wait_for pkg-fresh StatusText 30 "$connected") ||
    fail "the node did not get going: $status"
[ "$(inside pkg-fresh systemctl is-active edgeminer)" = active ] || fail "not active after start"
ok "node $id started: $status"
if journal pkg-fresh | grep -Ei 'migrat|DynamicUser|private/edgeminer'; then
    fail "the first start logs a DynamicUser migration"
fi
ok "no DynamicUser migration in the journal"
[ "$(inside pkg-fresh stat -c %U /var/lib/edgeminer/node.key)" = edgeminer ] || fail "the key is not the service user's"

pid=$(inside pkg-fresh systemctl show -p MainPID --value edgeminer)
inside pkg-fresh systemctl reload edgeminer
[ "$(inside pkg-fresh systemctl is-active edgeminer)" = active ] || fail "not active after reload"
[ "$(inside pkg-fresh systemctl show -p MainPID --value edgeminer)" = "$pid" ] || fail "reload replaced the process"
reloads=$(journal pkg-fresh -g 'reload: SIGHUP received' | wc -l)
[ "$reloads" -ge 1 ] || fail "the journal shows no reload"
ok "systemctl reload: still pid $pid, $(journal pkg-fresh -g 'reload: ' | tail -n 1)"
# systemctl signals the main process, then the unit's other processes
# through the cgroup tree, which in a container on a cgroup v1 host it
# cannot reach (EIO): its exit status says nothing about the node.
if ! out=$(inside pkg-fresh systemctl kill -s HUP edgeminer 2>&1); then
    echo "  systemctl kill: $out"
fi
sleep 2
[ "$(journal pkg-fresh -g 'reload: SIGHUP received' | wc -l)" -gt "$reloads" ] || fail "the node got no SIGHUP"
[ "$(inside pkg-fresh systemctl is-active edgeminer)" = active ] || fail "not active after SIGHUP"
[ "$(inside pkg-fresh systemctl show -p MainPID --value edgeminer)" = "$pid" ] || fail "SIGHUP stopped the process"
ok "systemctl kill -s HUP: still active, pid $pid"

inside pkg-fresh systemctl stop mosquitto
inside pkg-fresh systemctl restart edgeminer
[ "$(inside pkg-fresh systemctl is-active edgeminer)" = active ] || fail "not active without its broker"
status=$(wait_for pkg-fresh StatusText 10 'connecting') || fail "status without its broker: $status"
ok "broker stopped: is-active says $(inside pkg-fresh systemctl is-active edgeminer), status '$status'"
# The journal has each line's priority: the broker's absence is a warning
# (`-p warning` shows it), the phase lines are not, and no line carries a
# level word or a leading space of its own.
warned=$(journal pkg-fresh -p warning -o cat -g 'mqtt: ')
[ -n "$warned" ] || fail "journalctl -p warning shows no warning about the broker"
if journal pkg-fresh -p warning -o cat | grep -q '^init: node '; then fail "info lines have warning priority"; fi
if journal pkg-fresh -o cat | grep -Eq '^ |^(INFO|WARN|ERROR) '; then fail "journal lines carry a level word or a space"; fi
ok "journalctl -p warning: $(echo "$warned" | tail -n 1)"
inside pkg-fresh systemctl start mosquitto

inside pkg-fresh cp /etc/edgeminer/config.toml /root/config.toml
inside pkg-fresh sh -c 'echo "thermal_soft_c = 85" >>/etc/edgeminer/config.toml'
inside pkg-fresh systemctl restart edgeminer 2>/dev/null || true
wait_for pkg-fresh ActiveState 10 '^failed$' >/dev/null || fail "a configuration error did not fail the service"
sleep 7 # longer than RestartSec=5s
code=$(inside pkg-fresh systemctl show -p ExecMainStatus --value edgeminer)
restarts=$(inside pkg-fresh systemctl show -p NRestarts --value edgeminer)
state=$(inside pkg-fresh systemctl is-active edgeminer || true)
[ "$code" = 78 ] || fail "a configuration error exited with $code"
if [ "$restarts" != 0 ] || [ "$state" != failed ]; then
    fail "a configuration error was restarted ($restarts restarts, $state)"
fi
ok "configuration error: exit $code, $restarts restarts, $state: $(journal pkg-fresh -g 'thermal_soft_c' | tail -n 1)"
inside pkg-fresh cp /root/config.toml /etc/edgeminer/config.toml

# What the guide has the admin put in place, and a file of the admin's own.
inside pkg-fresh sh -c 'printf "username = x\npassword = y\n" >/etc/edgeminer/broker.credentials &&
    chmod 600 /etc/edgeminer/broker.credentials && touch /etc/edgeminer/broker-ca.crt /etc/edgeminer/notes.txt &&
    mkdir -p /etc/systemd/system/edgeminer.service.d &&
    printf "[Service]\nLoadCredential=broker.credentials:/etc/edgeminer/broker.credentials\n" \
        >/etc/systemd/system/edgeminer.service.d/override.conf && systemctl daemon-reload'
inside pkg-fresh systemctl stop edgeminer
inside pkg-fresh dpkg --purge edgeminer 2>&1 | sed 's/^/  dpkg: /'
for f in /var/lib/edgeminer /etc/edgeminer/config.toml /etc/edgeminer/genesis.toml \
    /etc/edgeminer/broker.credentials /etc/edgeminer/broker-ca.crt \
    /etc/systemd/system/edgeminer.service.d; do
    if inside pkg-fresh test -e "$f"; then fail "purge left $f"; fi
done
inside pkg-fresh test -e /etc/edgeminer/notes.txt || fail "purge removed a file the guides never named"
inside pkg-fresh getent passwd edgeminer >/dev/null || fail "purge removed the system user"
ok "purge removed the state, config.toml, genesis, login, CA and drop-in; kept notes.txt and the user"
"$bookworm" stop pkg-fresh

echo "== $(basename "$old_deb") (DynamicUser=yes) upgraded to $(basename "$new_deb")"
boot_with pkg-upgrade "$old_deb" | sed 's/^/  dpkg (old): /'
id=$(configure pkg-upgrade)
inside pkg-upgrade systemctl start edgeminer
wait_for pkg-upgrade StatusText 60 "$connected" >/dev/null || fail "the old package's node did not connect"
wait_for pkg-upgrade StatusText 60 'tx ([3-9]|[1-9][0-9]+) ' >/dev/null || fail "the old package's node committed nothing"
journal pkg-upgrade -g 'migrat' | sed 's/^/  journal (old): /' || true
inside pkg-upgrade test -L /var/lib/edgeminer || fail "the old package did not make the DynamicUser layout"
inside pkg-upgrade systemctl stop edgeminer
before=$(inside pkg-upgrade edgeminer ledger --state-dir /var/lib/edgeminer --format csv | tail -n +2 | wc -l)
[ "$before" -gt 0 ] || fail "no ledger before the upgrade"
ok "old package: node $id, $before transactions, $(inside pkg-upgrade ls -ld /var/lib/edgeminer | awk '{print $9, $10, $11}')"
inside pkg-upgrade systemctl start edgeminer
cp "$new_deb" "$("$bookworm" root pkg-upgrade)/root/edgeminer-new.deb"
out=$(inside pkg-upgrade dpkg -i /root/edgeminer-new.deb 2>&1)
indent "  dpkg (new): " "$out"
if echo "$out" | grep -qi 'warn'; then fail "the upgrade warns"; fi
inside pkg-upgrade systemctl restart edgeminer
status=$(wait_for pkg-upgrade StatusText 30 "$connected") || fail "after the upgrade: $status"
inside pkg-upgrade test -d /var/lib/edgeminer || fail "no /var/lib/edgeminer after the upgrade"
if inside pkg-upgrade test -L /var/lib/edgeminer; then fail "/var/lib/edgeminer is still a link into /var/lib/private"; fi
journal pkg-upgrade --since "-60s" -g 'migrat|private' | sed 's/^/  journal (new): /' || true
[ "$(inside pkg-upgrade edgeminer id --state-dir /var/lib/edgeminer)" = "$id" ] || fail "the upgrade changed the node's key"
[ "$(inside pkg-upgrade stat -c %U /var/lib/edgeminer/node.key)" = edgeminer ] || fail "the key is not the service user's"
inside pkg-upgrade systemctl stop edgeminer
after=$(inside pkg-upgrade edgeminer ledger --state-dir /var/lib/edgeminer --format csv | tail -n +2 | wc -l)
[ "$after" -ge "$before" ] || fail "the ledger lost transactions: $before before, $after after"
ok "upgraded: same node $id, $after transactions, $(inside pkg-upgrade stat -c '%F %U %a' /var/lib/edgeminer), status was '$status'"
inside pkg-upgrade dpkg --purge edgeminer >/dev/null 2>&1
for f in /var/lib/edgeminer /var/lib/private/edgeminer; do
    if inside pkg-upgrade test -e "$f"; then fail "purge left $f"; fi
done
ok "purge after the upgrade removed /var/lib/edgeminer and /var/lib/private/edgeminer"
echo "test-package-booted: passed"
