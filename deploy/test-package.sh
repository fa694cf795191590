#!/usr/bin/env bash
# Checks an amd64 edgeminer .deb: its control fields, its maintainer
# scripts, the files it installs, and the binary unpacked into a scratch
# directory, run from there with the configuration the package ships.
#
#   usage: deploy/test-package.sh path/to/edgeminer_VERSION_amd64.deb
#
# Needs dpkg-deb; checks the unit with systemd-analyze when it is there.
set -euo pipefail

deb=${1:?usage: $0 path/to/edgeminer_VERSION_amd64.deb}
[ -f "$deb" ] || { echo "test-package: no such file: $deb" >&2; exit 2; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

fail() { echo "test-package: FAIL: $*" >&2; exit 1; }
ok() { echo "test-package: ok: $*"; }

echo "== dpkg-deb -I $deb"
dpkg-deb -I "$deb"
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = edgeminer ] || fail "Package is '$(field Package)'"
[ "$(field Architecture)" = amd64 ] || fail "Architecture is '$(field Architecture)'"
field Depends | grep -q 'libc6 (>= 2.34)' || fail "Depends does not name libc6 (>= 2.34): $(field Depends)"
field Depends | grep -q 'adduser' || fail "Depends names no adduser: $(field Depends)"
[ -n "$(field Version)" ] || fail "no Version"
ok "control fields (Version $(field Version), Depends $(field Depends))"

dpkg-deb -e "$deb" "$scratch/control"
grep -qx '/etc/edgeminer/config.toml' "$scratch/control/conffiles" ||
    fail "the configuration is not a conffile: $(cat "$scratch/control/conffiles" 2>/dev/null)"
grep -q 'adduser --system' "$scratch/control/postinst" || fail "postinst creates no system user"
grep -q '/var/lib/edgeminer' "$scratch/control/postinst" || fail "postinst creates no state directory"
grep -q 'purge' "$scratch/control/postrm" || fail "postrm does not purge the state"
grep -q 'systemctl.*daemon-reload\|deb-systemd-helper' "$scratch/control/postinst" ||
    fail "postinst does not tell systemd about the unit"
if grep -q 'deb-systemd-invoke start\|systemctl.*start' "$scratch/control/postinst"; then
    fail "postinst starts the service before it is configured"
fi
ok "conffiles and maintainer scripts"

echo "== dpkg-deb -c $deb"
dpkg-deb -c "$deb" | tee "$scratch/contents"
has() { grep -Eq "$1" "$scratch/contents" || fail "the package lacks $2"; }
has '^-rwxr-xr-x .* \./usr/bin/edgeminer$' "an executable /usr/bin/edgeminer"
has '^-rw-r--r-- .* \./etc/edgeminer/config\.toml$' "/etc/edgeminer/config.toml"
has ' \./(usr/)?lib/systemd/system/edgeminer\.service$' "the systemd unit"
has ' \./usr/share/doc/edgeminer/copyright$' "a copyright file"
has ' \./usr/share/doc/edgeminer/README\.md$' "the README"
has ' \./usr/share/doc/edgeminer/mosquitto/secure\.conf$' "the secured broker configuration"
has ' \./usr/share/doc/edgeminer/grafana/edgeminer\.json$' "the Grafana dashboard"
ok "contents"

echo "== unpacked into $scratch/root"
dpkg-deb -x "$deb" "$scratch/root"
root=$scratch/root
bin=$root/usr/bin/edgeminer
unit=""
for u in "$root"/usr/lib/systemd/system/edgeminer.service "$root"/lib/systemd/system/edgeminer.service; do
    [ -f "$u" ] && unit=$u && break
done
[ -n "$unit" ] || fail "no unit in the unpacked package"
grep -q '^ExecStart=/usr/bin/edgeminer run ' "$unit" || fail "the unit does not start /usr/bin/edgeminer: $(grep ExecStart "$unit")"
if command -v systemd-analyze >/dev/null 2>&1; then
    # verify needs the binary where ExecStart says: point it at the unpacked one.
    sed "s|^ExecStart=/usr/bin/edgeminer|ExecStart=$bin|" "$unit" >"$scratch/edgeminer.service"
    systemd-analyze verify "$scratch/edgeminer.service" || fail "systemd-analyze verify"
    ok "unit verifies"
fi

"$bin" --version | grep -q '^edgeminer ' || fail "--version"
"$bin" keygen --state-dir "$scratch/state" >/dev/null || fail "keygen"
[ "$(stat -c %a "$scratch/state/node.key")" = 600 ] ||
    fail "the key file is not owner-only"
id=$("$bin" id --state-dir "$scratch/state") || fail "id"
ok "the unpacked binary runs: $("$bin" --version), node id $id"

# The shipped configuration names the cluster's genesis, which no package
# ships: every cluster writes its own. Without it the node refuses to start
# and says which file is missing (exit 78, which the unit does not restart).
shipped_genesis=$(sed -n 's/^genesis = "\(.*\)"$/\1/p' "$root/etc/edgeminer/config.toml")
[ -n "$shipped_genesis" ] || fail "the shipped configuration names no genesis file"
if [ ! -e "$shipped_genesis" ]; then
    set +e
    timeout 10 "$bin" run --config "$root/etc/edgeminer/config.toml" --state-dir "$scratch/state" \
        >"$scratch/no-genesis.log" 2>&1
    code=$?
    set -e
    [ "$code" = 78 ] || { cat "$scratch/no-genesis.log"; fail "run without a genesis exited with $code, not 78"; }
    grep -qF "$shipped_genesis" "$scratch/no-genesis.log" ||
        { cat "$scratch/no-genesis.log"; fail "run without a genesis does not name $shipped_genesis"; }
    ok "without its genesis the shipped configuration stops with exit 78 naming $shipped_genesis"
fi

# A genesis that lists this node, written by the unpacked binary; with it
# the shipped configuration, as is, starts a node (it waits for its broker).
"$bin" genesis --cluster pkg --difficulty 16..20 --member "$id=pkg-1" \
    --out "$scratch/genesis.toml" >"$scratch/genesis.log" 2>&1 ||
    { cat "$scratch/genesis.log"; fail "genesis"; }
set +e
timeout 3 "$bin" run --config "$root/etc/edgeminer/config.toml" --genesis "$scratch/genesis.toml" \
    --state-dir "$scratch/state" >"$scratch/run.log" 2>&1
code=$?
set -e
[ "$code" = 124 ] || { cat "$scratch/run.log"; fail "run with the shipped config exited with $code"; }
grep -q 'init: node' "$scratch/run.log" || { cat "$scratch/run.log"; fail "run did not start a node"; }
ok "the shipped configuration starts a node (with --genesis $scratch/genesis.toml)"
echo "test-package: $deb passed"
