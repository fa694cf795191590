#!/usr/bin/env bash
# Runs the lab guide's commands as written, on booted Debian bookworm
# containers (scripts/bookworm.sh): a PC with this repository, a broker,
# and three boards, pi-01 to pi-03, on the bridge emtest0. It passes when
# the three boards commit transactions, once on the plain broker and once
# on the secured one (TLS, a login per node, the ACL), each on fresh
# machines.
#
#   usage: deploy/test-guide.sh [-p plain|secured] [-k] [-d DEB] [GUIDE]
#
#   -p PATH   run one path only (default: plain, then secured)
#   -k        keep the containers when a path fails (default: stop them)
#   -d DEB    the amd64 package to install (default: the newest
#             target/debian/edgeminer_*_amd64.deb; deploy/package.sh amd64
#             builds it)
#   GUIDE     the guide (default: deploy/README.md)
#
# Which blocks run, and where: a comment on the line just above a ```sh
# fence, `<!-- on: MACHINE -->` or `<!-- on: MACHINE, plain|secured -->`,
# where MACHINE is `pc` (in the repository's directory), `broker`, `boards`
# (on each board in turn) or a board's name (in the home directory). A block
# named for one path runs on that path only. Every block without such a
# comment is skipped, and listed as skipped. Each block runs as a script of
# its own with `bash -e` (it stops at the first command that fails) and
# without a terminal.
#
# What differs from a lab, listed by the test as it goes: the machines are
# amd64 containers, so the amd64 package stands for the boards' arm64 one,
# and it is built before (deploy/package.sh amd64) rather than by the
# guide's build commands, which are skipped; the repository is copied onto
# the PC; host names are in every /etc/hosts; the PC reaches the others
# over SSH as root, with a key; the image has mosquitto installed but not
# started, so the test starts it where the guide installs it, as
# `apt-get install mosquitto` does on a fresh Debian. The containers'
# addresses are 10.77.0.160 to .164 (EDGEMINER_GUIDE_NET overrides
# "10.77.0.16"); they are named guide-*.
#
# Runs as root (systemd-nspawn); not run in CI: a whole run takes a few
# minutes.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
bookworm=$repo/scripts/bookworm.sh
net=${EDGEMINER_GUIDE_NET:-10.77.0.16}
paths=(plain secured)
keep=""
deb=""

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit "${1:-0}"; }
while getopts "p:kd:h" opt; do
    case "$opt" in
    p) paths=("$OPTARG") ;;
    k) keep=1 ;;
    d) deb=$OPTARG ;;
    h) usage 0 ;;
    *) usage 2 >&2 ;;
    esac
done
shift $((OPTIND - 1))
guide=${1:-$repo/deploy/README.md}
for p in "${paths[@]}"; do
    case "$p" in plain | secured) ;; *) usage 2 >&2 ;; esac
done
[ -r "$guide" ] || { echo "test-guide: no guide $guide" >&2; exit 2; }
if [ -z "$deb" ]; then
    # shellcheck disable=SC2012 # our own file names: edgeminer_<version>_amd64.deb
    deb=$(ls -t "${CARGO_TARGET_DIR:-$repo/target}"/debian/edgeminer_*_amd64.deb 2>/dev/null | head -n 1) || true
fi
if [ -z "$deb" ] || [ ! -r "$deb" ]; then
    echo "test-guide: no amd64 package: build one with deploy/package.sh amd64, or give -d DEB" >&2
    exit 2
fi
[ "$(id -u)" = 0 ] || { echo "test-guide: run as root (systemd-nspawn)" >&2; exit 2; }

work=$(mktemp -d)
boards=(pi-01 pi-02 pi-03)
machines=(pc broker "${boards[@]}")
declare -A addr=([pc]=${net}0 [broker]=${net}1 [pi-01]=${net}2 [pi-02]=${net}3 [pi-03]=${net}4)
declare -A host=([pc]=pc [broker]=broker.lab [pi-01]=pi-01.local [pi-02]=pi-02.local [pi-03]=pi-03.local)

say() { printf '\n== %s\n' "$*"; }
stop_all() { "$bookworm" stop-all guide- >/dev/null 2>&1 || true; }
failed=""
cleanup() {
    if [ -n "$failed" ] && [ -n "$keep" ]; then
        echo "test-guide: kept the containers (scripts/bookworm.sh run guide-pc bash; stop-all guide-)" >&2
    else
        stop_all
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the guide's blocks --------------------------------------------------

# Splits the guide into one file per marked block, and an index:
# number, line, machine, path (or "both"), file. Unmarked blocks go to
# skipped.txt as their line and first line.
awk -v dir="$work" '
    /^<!-- on: [a-z0-9-]+(, (plain|secured))? -->$/ {
        m = $0; sub(/^<!-- on: /, "", m); sub(/ -->$/, "", m)
        split(m, parts, ", "); machine = parts[1]; path = (2 in parts) ? parts[2] : "both"
        delete parts; marked = NR; next
    }
    !inside && /^```/ {
        inside = 1; start = NR; lang = substr($0, 4)
        if (marked == NR - 1 && (lang == "sh" || lang == "bash")) {
            n++; file = sprintf("%s/block-%02d.sh", dir, n)
            printf "%d\t%d\t%s\t%s\t%s\n", n, NR, machine, path, file > (dir "/index.tsv")
            printf "" > file; run = 1
        } else { run = 0; first = "" }
        next
    }
    inside && /^```/ {
        inside = 0
        if (run) close(file)
        else printf "line %d (%s): %s\n", start, (lang == "" ? "text" : lang), first > (dir "/skipped.txt")
        next
    }
    inside && run { print > file; next }
    inside && first == "" { first = $0 }
' "$guide"
touch "$work/index.tsv" "$work/skipped.txt"
[ -s "$work/index.tsv" ] || { echo "test-guide: no marked block in $guide" >&2; exit 1; }

say "the guide: $guide"
echo "blocks run ($(wc -l <"$work/index.tsv")):"
while IFS=$'\t' read -r _ line machine path _; do
    if [ "$path" = both ]; then path=""; else path=" ($path path only)"; fi
    echo "  line $line on $machine$path"
done <"$work/index.tsv"
echo "blocks skipped, no <!-- on: ... --> mark ($(wc -l <"$work/skipped.txt")):"
sed 's/^/  /' "$work/skipped.txt"

# Where the test machines differ from a lab: each rewrite is a sed
# expression on the block's lines, and is printed wherever it applies.
subst_why=(
    "the package was built before this test (deploy/package.sh amd64), not by the guide's build commands"
    "the package was built before this test (deploy/package.sh amd64), not by the guide's build commands"
    "the package was built before this test (deploy/package.sh amd64), not by the guide's build commands"
    "the test machines are amd64: the amd64 package stands for the boards' arm64 one"
)
subst_sed=(
    's/^\(sudo apt-get install -y rustc-web.*\)$/: skipped: \1/'
    's/^\(cargo install cargo-deb.*\)$/: skipped: \1/'
    's/^\(deploy\/package\.sh .*\)$/: skipped: \1/'
    's/_arm64\.deb/_amd64.deb/g'
)
say "substitutions"
while IFS=$'\t' read -r -u 3 _ line machine _ file; do
    for i in "${!subst_sed[@]}"; do
        before=$(cat "$file")
        sed -i "${subst_sed[$i]}" "$file"
        if [ "$before" != "$(cat "$file")" ]; then
            echo "  line $line ($machine): ${subst_why[$i]}:"
            diff <(printf '%s\n' "$before") "$file" | sed -n 's/^[<>] /    &/p' || true
        fi
    done
done 3<"$work/index.tsv"

# ---- the machines ------------------------------------------------------

run_in() { "$bookworm" run "guide-$1" "${@:2}"; }
root_of() { "$bookworm" root "guide-$1"; }

hosts_file() {
    echo "127.0.0.1 localhost"
    echo "127.0.1.1 ${1}"
    for m in "${machines[@]}"; do
        echo "${addr[$m]} ${host[$m]} $m"
    done
}

setup() {
    say "setup: five bookworm machines"
    stop_all
    for m in "${machines[@]}"; do
        "$bookworm" boot "guide-$m" "${addr[$m]}/24"
        r=$(root_of "$m")
        # The imager's host name (section 1) and names for every machine.
        echo "$m" >"$r/etc/hostname"
        run_in "$m" hostname "$m"
        hosts_file "$m" >"$r/etc/hosts"
    done
    echo "setup: host names in every /etc/hosts (${host[*]})"

    # SSH from the PC to every other machine, as root with a key.
    run_in pc ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/id_ed25519
    printf 'Host *\n    StrictHostKeyChecking accept-new\n    BatchMode yes\n' >"$(root_of pc)/root/.ssh/config"
    for m in broker "${boards[@]}"; do
        r=$(root_of "$m")
        install -d -m 700 "$r/root/.ssh"
        install -m 600 "$(root_of pc)/root/.ssh/id_ed25519.pub" "$r/root/.ssh/authorized_keys"
        run_in "$m" systemctl enable --now ssh >/dev/null 2>&1
    done
    for m in broker "${boards[@]}"; do
        run_in pc ssh "${host[$m]}" true
    done
    echo "setup: the PC reaches ${host[broker]} and the boards by ssh as root"

    # The repository on the PC, with the package where deploy/package.sh puts it.
    r=$(root_of pc)
    mkdir -p "$r/root/edgeminer"
    tar -C "$repo" --exclude=./target --exclude=./.git --exclude=./fuzz/target -cf - . | tar -C "$r/root/edgeminer" -xf -
    mkdir -p "$r/root/edgeminer/target/debian"
    cp "$deb" "$r/root/edgeminer/target/debian/"
    echo "setup: this repository copied to the PC's /root/edgeminer, and $(basename "$deb") into its target/debian/"
}

# Where `apt-get install mosquitto` would start the packaged broker on a
# fresh Debian, start it: the image has it installed but disabled.
fresh_mosquitto() {
    if grep -q 'apt-get install.*mosquitto' "$1" && [ "$(run_in "$2" systemctl is-enabled mosquitto 2>/dev/null)" != enabled ]; then
        run_in "$2" systemctl enable --now mosquitto >/dev/null 2>&1
        echo "(setup: mosquitto started on $2, as apt-get install does on a fresh Debian)"
    fi
}

run_block() {
    local line=$1 machine=$2 file=$3 m dir=/root
    local -a on=("$machine")
    [ "$machine" = boards ] && on=("${boards[@]}")
    [ "$machine" = pc ] && dir=/root/edgeminer
    for m in "${on[@]}"; do
        [ -n "${addr[$m]:-}" ] || { echo "test-guide: line $line: unknown machine '$m'" >&2; return 1; }
        say "line $line, on $m:"
        sed 's/^/    /' "$file"
        fresh_mosquitto "$file" "$m"
        cp "$file" "$(root_of "$m")/root/.guide-block.sh"
        if ! timeout 300 "$bookworm" run "guide-$m" bash -c "cd $dir && bash -e /root/.guide-block.sh" </dev/null; then
            echo "test-guide: FAILED: the block at line $line of $(basename "$guide"), on $m; its journal ends:" >&2
            "$bookworm" run "guide-$m" journalctl -n 25 --no-pager 2>&1 | sed 's/^/    /' >&2 || true
            return 1
        fi
    done
}

# Every board commits: its journal shows at least three commits.
wait_commits() {
    local b n deadline=$((SECONDS + 240))
    say "waiting for the boards to commit"
    for b in "${boards[@]}"; do
        while :; do
            n=$(run_in "$b" journalctl -u edgeminer -o cat --no-pager | grep -c ' committed: ' || true)
            [ "$n" -ge 3 ] && break
            if [ $SECONDS -ge $deadline ]; then
                echo "test-guide: FAILED: $b committed $n transactions, not 3; its journal ends:" >&2
                run_in "$b" journalctl -u edgeminer -o cat --no-pager | tail -n 25 >&2
                return 1
            fi
            sleep 2
        done
        echo "$b: $n commits; the last: $(run_in "$b" journalctl -u edgeminer -o cat --no-pager | grep ' committed: ' | tail -n 1)"
    done
    run_in pi-01 edgeminer ledger --state-dir /var/lib/edgeminer | head -n 6
}

# On the secured path, the broker must refuse a client without a login.
check_secured() {
    local out
    say "the secured broker refuses an anonymous client"
    out=$(run_in pc timeout 10 mosquitto_sub -h broker.lab -p 8883 --cafile /root/edgeminer/lab-broker/ca.crt \
        -t 'edgeminer/#' -C 1 -W 5 2>&1) && {
        echo "test-guide: FAILED: an anonymous client was let in: $out" >&2
        return 1
    }
    echo "mosquitto_sub without a login: $out"
}

for path in "${paths[@]}"; do
    failed=1
    setup
    say "the $path broker"
    while IFS=$'\t' read -r -u 3 _ line machine bpath file; do
        [ "$bpath" = both ] || [ "$bpath" = "$path" ] || continue
        run_block "$line" "$machine" "$file"
    done 3<"$work/index.tsv"
    wait_commits
    [ "$path" = plain ] || check_secured
    say "PASSED: the $path path of $(basename "$guide")"
    failed=""
done
stop_all
