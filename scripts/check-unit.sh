#!/usr/bin/env bash
# Checks systemd/edgeminer.service the way systemd 252 (Raspberry Pi OS
# bookworm) reads it:
#  - `systemd-analyze verify` on a copy whose ExecStart names BIN (verify
#    insists that the binary exists, and /usr/bin/edgeminer is where the
#    package installs it, not where a build leaves it);
#  - `systemd-analyze security --offline=true`: prints the exposure score
#    and fails above the limit (2.0 unless MAX is given).
#  - the service's behaviour: started without waiting for the broker (no
#    endless start timeout), reloaded with SIGHUP, and a start limit that
#    stops a restart loop but not an operator's "fix, restart" loop.
#
# usage: scripts/check-unit.sh [BIN] [MAX]
#   BIN  the edgeminer binary (default: $CARGO_TARGET_DIR or target, /debug/edgeminer)
set -euo pipefail
cd "$(dirname "$0")/.."

unit=systemd/edgeminer.service
bin=${1:-${CARGO_TARGET_DIR:-target}/debug/edgeminer}
max=${2:-2.0}
command -v systemd-analyze >/dev/null || { echo "check-unit: systemd-analyze not found (apt-get install systemd)" >&2; exit 1; }
[ -x "$bin" ] || { echo "check-unit: no executable $bin (cargo build --bin edgeminer, or give its path)" >&2; exit 1; }
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
grep -q '^ExecStart=/usr/bin/edgeminer ' "$unit" || { echo "check-unit: $unit does not start /usr/bin/edgeminer" >&2; exit 1; }
sed "s|^ExecStart=/usr/bin/edgeminer |ExecStart=$bin |" "$unit" >"$work/edgeminer.service"
# verify prints problems and exits non-zero on errors; warnings about the
# unit fail the check too.
out=$(systemd-analyze verify --man=no "$work/edgeminer.service" 2>&1) || { echo "$out" >&2; echo "check-unit: systemd-analyze verify failed" >&2; exit 1; }
if [ -n "$out" ]; then echo "$out" >&2; echo "check-unit: systemd-analyze verify complained" >&2; exit 1; fi
echo "check-unit: systemd-analyze verify: ok ($(systemd-analyze --version | head -1))"

# The ExecStart line parses with this build: the same flags plus --help.
args=$(sed -n 's|^ExecStart=/usr/bin/edgeminer ||p' "$unit")
# shellcheck disable=SC2086 # the unit's words, split as systemd does
"$bin" $args --help >/dev/null || { echo "check-unit: $bin refuses the unit's flags: $args" >&2; exit 1; }

# The unit's own settings, as systemd reads them (the last one wins).
setting() { sed -n "s/^$1=//p" "$unit" | tail -1; }
# Seconds of a time span: 300, 300s, 5min.
seconds() {
  case $1 in
    *min) echo $((${1%min} * 60)) ;;
    *s) echo "${1%s}" ;;
    *[!0-9]* | '') echo "check-unit: cannot read the time span '$1'" >&2; exit 1 ;;
    *) echo "$1" ;;
  esac
}
fail() { echo "check-unit: $*" >&2; exit 1; }
start_timeout=$(setting TimeoutStartSec)
[ "$start_timeout" != infinity ] || fail "TimeoutStartSec=infinity: a node whose broker is down would hold the boot in 'starting' (READY=1 does not wait for the broker)"
# shellcheck disable=SC2016 # a literal $MAINPID, as the unit spells it
grep -q '^ExecReload=/bin/kill -HUP \$MAINPID$' "$unit" || fail "no ExecReload=/bin/kill -HUP \$MAINPID: the node reloads on SIGHUP"
interval=$(seconds "$(setting StartLimitIntervalSec)")
burst=$(setting StartLimitBurst)
restart=$(seconds "$(setting RestartSec)")
# A restart loop (a start every RestartSec) reaches the limit; an operator
# restarting by hand, 10 s or more apart, never does.
[ $(((burst - 1) * restart)) -lt "$interval" ] || fail "StartLimitBurst=$burst in ${interval}s: a restart loop every ${restart}s never reaches it"
[ $(((burst - 1) * 10)) -ge "$interval" ] || fail "StartLimitBurst=$burst in ${interval}s: $burst starts by hand 10 s apart reach it (start-limit-hit)"
echo "check-unit: start limit $burst in ${interval}s, restart after ${restart}s, start timeout $start_timeout, reload on SIGHUP: ok"

report=$(systemd-analyze security --offline=true "$unit" 2>&1) || true
score=$(printf '%s\n' "$report" | sed -n 's/.*Overall exposure level for edgeminer.service: \([0-9.]*\).*/\1/p')
[ -n "$score" ] || { echo "$report" >&2; echo "check-unit: no exposure score" >&2; exit 1; }
printf '%s\n' "$report" | grep '✗' || true
echo "check-unit: systemd-analyze security --offline=true: exposure $score (limit $max)"
awk -v s="$score" -v m="$max" 'BEGIN { exit !(s <= m) }' || { echo "check-unit: exposure $score is above $max" >&2; exit 1; }
