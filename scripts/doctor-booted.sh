#!/usr/bin/env bash
# `edgeminer doctor` on a board with a real systemd: installs the package in
# a booted Debian bookworm container (scripts/bookworm.sh), sets up a
# one-member cluster on the container's own Mosquitto, and checks what the
# doctor says before the service is enabled, while it runs, and after a
# configuration mistake stopped it (exit 78). Not run in CI (it boots a
# container); run as root:
#
#   scripts/doctor-booted.sh target/debian/edgeminer_VERSION_amd64.deb
set -euo pipefail
cd "$(dirname "$0")/.."

deb=${1:?usage: $0 path/to/edgeminer_VERSION_amd64.deb}
name=doctor-board
box=scripts/bookworm.sh
trap '$box stop "$name"' EXIT

fail() {
    echo "doctor-booted: FAIL: $*" >&2
    exit 1
}
# Runs the doctor in the container; its report in $report, its exit code in $code.
doctor() {
    code=0
    report=$($box run "$name" edgeminer doctor) || code=$?
    printf '    %s\n' "${report//$'\n'/$'\n'    }"
}
expect() {
    grep -Eq "$1" <<<"$report" || fail "the report lacks /$1/"
}

$box boot "$name"
cp "$deb" "$($box root "$name")/root/edgeminer.deb"
# shellcheck disable=SC2016 # expanded inside the container
$box run "$name" sh -ec '
    apt-get install -y -q /root/edgeminer.deb >/dev/null
    systemctl start mosquitto
    id=$(sudo -u edgeminer edgeminer keygen --state-dir /var/lib/edgeminer)
    edgeminer genesis --cluster lab --difficulty 8..10 --member "$id=board" \
        --out /etc/edgeminer/genesis.toml 2>/dev/null
    sed -i "s|^#\? *broker = .*|broker = \"mqtt://127.0.0.1:1883\"|" /etc/edgeminer/config.toml'

echo "== installed and configured, service not enabled"
doctor
[ "$code" = 0 ] || fail "exit $code on a good setup"
expect '^ok +key +/var/lib/edgeminer/node.key'
expect '^ok +member +board '
expect '^ok +broker +mqtt://127.0.0.1:1883 accepted'
expect '^note +service +inactive .*disabled'
expect 'enable --now edgeminer'

echo "== enabled and running"
$box run "$name" systemctl enable --now edgeminer
sleep 4
doctor
[ "$code" = 0 ] || fail "exit $code beside the running node"
expect '^ok +ledger +.*in use by a running node'
expect '^ok +service +active \(running\), enabled: '
[ "$($box run "$name" systemctl is-active edgeminer)" = active ] ||
    fail "the doctor's broker connection stopped the node"

echo "== a configuration mistake: exit 78, not restarted"
$box run "$name" sh -c 'echo "thermal_soft_c = 85" >>/etc/edgeminer/config.toml; systemctl restart edgeminer' || true
sleep 2
doctor
[ "$code" = 1 ] || fail "exit $code with a broken configuration"
expect '^FAIL +config +thermal_soft_c = 85 must be below thermal_hard_c'
expect '^FAIL +service +failed .*exit 78: a configuration problem'
expect 'journalctl -u edgeminer'
echo "== a broker login handed over by systemd (LoadCredential=), checked at its source"
# shellcheck disable=SC2016 # expanded inside the container
$box run "$name" sh -ec '
    sed -i "/^thermal_soft_c = 85/d" /etc/edgeminer/config.toml
    id=$(edgeminer id --state-dir /var/lib/edgeminer)
    mosquitto_passwd -c -b /etc/mosquitto/passwd "$id" right
    chown mosquitto: /etc/mosquitto/passwd
    printf "listener 1883\nallow_anonymous false\npassword_file /etc/mosquitto/passwd\n" \
        >/etc/mosquitto/conf.d/edgeminer.conf
    systemctl restart mosquitto
    printf "username = %s\npassword = wrong\n" "$id" >/etc/edgeminer/broker.credentials
    chmod 600 /etc/edgeminer/broker.credentials
    echo "credentials_file = \"/run/credentials/edgeminer.service/broker.credentials\"" \
        >>/etc/edgeminer/config.toml
    mkdir -p /etc/systemd/system/edgeminer.service.d
    printf "[Service]\nLoadCredential=broker.credentials:/etc/edgeminer/broker.credentials\n" \
        >/etc/systemd/system/edgeminer.service.d/override.conf
    systemctl daemon-reload
    systemctl reset-failed edgeminer'
doctor
[ "$code" = 1 ] || fail "exit $code with a wrong password"
expect '^note +login +/run/credentials/edgeminer.service/broker.credentials exists while the service runs: checked its source /etc/edgeminer/broker.credentials'
expect "^FAIL +broker +.*refused user"
$box run "$name" sed -i 's/^password = wrong/password = right/' /etc/edgeminer/broker.credentials
doctor
[ "$code" = 0 ] || fail "exit $code with the right password"
expect '^ok +broker +mqtt://127.0.0.1:1883 accepted a connection as '
$box run "$name" systemctl start edgeminer
sleep 3
doctor
[ "$code" = 0 ] || fail "exit $code beside the service with its handed-over login"
expect '^ok +login +username '
expect '^ok +service +active \(running\)'
echo "doctor-booted: ok"
