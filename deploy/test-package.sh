#!/usr/bin/env bash
# Checks an amd64 edgeminer .deb: its control fields, its maintainer
# scripts, the files it installs (man pages, shell completions, changelog,
# copyright), and the binary unpacked into a scratch directory, run from
# there with the configuration the package ships.
#
#   usage: deploy/test-package.sh path/to/edgeminer_VERSION_amd64.deb
#
# Needs dpkg-deb, man and bash; checks the unit with systemd-analyze, and
# the zsh and fish completions, when those are there. lintian is run by
# .ci/run; deploy/test-package-booted.sh installs the package in a booted
# container.
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
field Maintainer | grep -Eq '^[^<>]*[^<> ] <[^<>@ ]+@[^<>@ ]+>$' ||
    fail "the Maintainer has no address: $(field Maintainer)"
ok "control fields (Version $(field Version), Depends $(field Depends))"

dpkg-deb -e "$deb" "$scratch/control"
grep -qx '/etc/edgeminer/config.toml' "$scratch/control/conffiles" ||
    fail "the configuration is not a conffile: $(cat "$scratch/control/conffiles" 2>/dev/null)"
grep -q 'adduser --system' "$scratch/control/postinst" || fail "postinst creates no system user"
grep -q '/var/lib/edgeminer' "$scratch/control/postinst" || fail "postinst creates no state directory"
grep -q 'purge' "$scratch/control/postrm" || fail "postrm does not purge the state"
# adduser warns about a home directory that does not exist yet.
mkdir_line=$(grep -n 'mkdir .*/var/lib/edgeminer' "$scratch/control/postinst" | head -n 1 | cut -d: -f1)
adduser_line=$(grep -n 'adduser --system' "$scratch/control/postinst" | head -n 1 | cut -d: -f1)
if [ -z "$mkdir_line" ] || [ -z "$adduser_line" ] || [ "$mkdir_line" -gt "$adduser_line" ]; then
    fail "postinst does not make /var/lib/edgeminer before the user whose home it is"
fi
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
# One user: the static one postinst makes, not a dynamic one as well.
grep -qx 'User=edgeminer' "$unit" || fail "the unit does not run as the user postinst makes (User=edgeminer)"
if grep -q '^DynamicUser=yes' "$unit"; then
    fail "the unit asks for DynamicUser=yes while postinst makes a static user"
fi
ok "the unit runs as the static user edgeminer"

# Purge removes what the guides tell the admin to put in /etc/edgeminer
# (besides config.toml, a conffile dpkg purges itself), and the drop-in of
# `systemctl edit edgeminer`.
doc=$root/usr/share/doc/edgeminer
guided=$(grep -ohE '/etc/edgeminer/[A-Za-z0-9._-]*[A-Za-z0-9]' "$doc/LAB.md" "$doc/README.md" \
    "$doc/mosquitto/README.md" "$root/etc/edgeminer/config.toml" | sort -u | grep -vx /etc/edgeminer/config.toml)
[ -n "$guided" ] || fail "the guides name no file under /etc/edgeminer (the pattern no longer finds them)"
for f in $guided override.conf credentials.conf; do
    grep -qF "$f" "$scratch/control/postrm" || fail "purge leaves $f, which the guides tell the admin to put there"
done
ok "purge removes $(echo "$guided" | wc -l) files the guides name under /etc/edgeminer and the unit's drop-in"

# The documentation around the program: changelog, copyright, man pages,
# shell completions.
version=$(field Version)
gzip -dc "$doc/changelog.Debian.gz" >"$scratch/changelog" || fail "no changelog.Debian.gz"
head -n 1 "$scratch/changelog" | grep -qF "edgeminer ($version) " ||
    fail "the changelog's latest entry is not for $version: $(head -n 1 "$scratch/changelog")"
grep -qF " -- $(field Maintainer)  " "$scratch/changelog" || fail "the changelog entry is not signed by the Maintainer"
ok "changelog.Debian.gz: $(head -n 1 "$scratch/changelog")"
grep -qx 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/' "$doc/copyright" ||
    fail "the copyright file is not machine-readable (DEP-5)"
grep -Eq '^Copyright: .*[0-9]{4}.*[A-Za-z]' "$doc/copyright" || fail "the copyright file has no notice (a year and a holder)"
for l in MIT Apache-2.0; do
    grep -qx "License: $l" "$doc/copyright" || fail "the copyright file does not give the $l licence"
done
ok "copyright: $(grep -m 1 '^Copyright: ' "$doc/copyright")"

man_dir=$root/usr/share/man/man1
pages=("$man_dir/edgeminer.1.gz")
# A page per subcommand the binary lists in its help (nested ones too).
commands() { "$bin" "$@" --help | sed -n '/^Commands:/,/^$/s/^  \([a-z][a-z-]*\) .*/\1/p' | grep -vx help; }
for c in $(commands); do
    pages+=("$man_dir/edgeminer-$c.1.gz")
    for sub in $(commands "$c"); do pages+=("$man_dir/edgeminer-$c-$sub.1.gz"); done
done
for page in "${pages[@]}"; do
    [ -f "$page" ] || fail "no man page $page"
    out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" 2>"$scratch/man.err") || fail "man -l $page"
    [ ! -s "$scratch/man.err" ] || { cat "$scratch/man.err"; fail "man -l $page warns"; }
    name=$(basename "$page" .1.gz)
    echo "$out" | grep -Eq "^ *$name +- " || fail "$page has no NAME line for $name"
done
LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$man_dir/edgeminer-run.1.gz" | grep -q -- '--genesis' ||
    fail "edgeminer-run(1) does not describe --genesis"
ok "${#pages[@]} man pages render, one per command"

bash_completion=$root/usr/share/bash-completion/completions/edgeminer
bash -n "$bash_completion" || fail "the bash completion does not parse"
# What bash offers after `edgeminer ` and after `edgeminer run --gen`.
offered=$(bash -c '. "$1"; COMP_WORDS=(edgeminer ""); COMP_CWORD=1; COMP_LINE="edgeminer "; COMP_POINT=10
    _edgeminer edgeminer "" edgeminer; printf "%s\n" "${COMPREPLY[@]}"' _ "$bash_completion")
for c in run genesis roster status; do
    echo "$offered" | grep -qx "$c" || fail "the bash completion does not offer '$c' after 'edgeminer ': $offered"
done
offered=$(bash -c '. "$1"; COMP_WORDS=(edgeminer run --gen); COMP_CWORD=2; COMP_LINE="edgeminer run --gen"; COMP_POINT=19
    _edgeminer edgeminer --gen run; printf "%s\n" "${COMPREPLY[@]}"' _ "$bash_completion")
echo "$offered" | grep -qx -- '--genesis' || fail "the bash completion does not complete 'edgeminer run --gen': $offered"
zsh_completion=$root/usr/share/zsh/vendor-completions/_edgeminer
fish_completion=$root/usr/share/fish/vendor_completions.d/edgeminer.fish
grep -q '^#compdef edgeminer' "$zsh_completion" || fail "no zsh completion for edgeminer"
grep -q '^complete -c edgeminer ' "$fish_completion" || fail "no fish completion for edgeminer"
if command -v zsh >/dev/null 2>&1; then zsh -n "$zsh_completion" || fail "the zsh completion does not parse"; fi
if command -v fish >/dev/null 2>&1; then fish -n "$fish_completion" || fail "the fish completion does not parse"; fi
ok "completions: bash offers the subcommands and their flags; zsh and fish present"
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
