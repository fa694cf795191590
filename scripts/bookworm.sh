#!/usr/bin/env bash
# Booted Debian bookworm containers (systemd 252, as on Raspberry Pi OS
# bookworm) for the checks that need a real systemd: the package's install,
# upgrade and purge, the unit's behaviour, the guides' commands and the
# Ansible playbook. Runs as root on a Linux host that has systemd-nspawn and
# debootstrap (`apt-get install systemd-container debootstrap`); PID 1 of the
# host need not be systemd.
#
#   scripts/bookworm.sh rootfs              build (once) and print the cached rootfs
#   scripts/bookworm.sh boot NAME [IP/24]   a fresh copy of it, booted; with an
#                                           address, on the bridge emtest0
#                                           (host 10.77.0.1/24), else no network
#   scripts/bookworm.sh run NAME CMD...     run CMD as root inside (stdin passed)
#   scripts/bookworm.sh root NAME           print the container's root directory
#   scripts/bookworm.sh stop NAME           power it off and delete its copy
#   scripts/bookworm.sh stop-all PREFIX     the same for every NAME starting so
#
# The rootfs has, besides systemd: mosquitto and its clients, openssh-server,
# python3 (for Ansible), sudo, adduser, openssl and curl, so that what the
# guides install is already there: apt-get inside a container has no mirror
# to reach. EDGEMINER_BOOKWORM_CACHE (default /var/cache/edgeminer-test)
# holds the rootfs; EDGEMINER_DEBIAN_MIRROR picks the mirror debootstrap uses.
# `systemd-nspawn -b` needs --keep-unit, --register=no and a private network
# here (else "Failed to open system bus" when the host runs no systemd).
set -euo pipefail

cache=${EDGEMINER_BOOKWORM_CACHE:-/var/cache/edgeminer-test}
mirror=${EDGEMINER_DEBIAN_MIRROR:-http://deb.debian.org/debian}
machines=/var/lib/machines
bridge=emtest0
packages=systemd,systemd-sysv,dbus,iproute2,procps,sudo,openssh-server,python3,python3-apt,mosquitto,mosquitto-clients,openssl,ca-certificates,adduser,curl,less

die() {
    echo "bookworm: $*" >&2
    exit 1
}

rootfs() {
    local dir=$cache/bookworm
    if [ ! -x "$dir/lib/systemd/systemd" ]; then
        command -v debootstrap >/dev/null || die "no debootstrap: apt-get install systemd-container debootstrap"
        mkdir -p "$cache"
        rm -rf "$dir.new"
        echo "bookworm: debootstrap into $dir (a few minutes, once)" >&2
        debootstrap --variant=minbase --include="$packages" bookworm "$dir.new" "$mirror" >&2 ||
            die "debootstrap failed"
        # A machine id per copy (systemd makes one at first boot when empty),
        # no services that wait for a network the container lacks.
        : >"$dir.new/etc/machine-id"
        chroot "$dir.new" systemctl mask systemd-networkd-wait-online.service >/dev/null 2>&1 || true
        chroot "$dir.new" systemctl disable mosquitto.service ssh.service >/dev/null 2>&1 || true
        echo 'root:edgeminer' | chroot "$dir.new" chpasswd
        mv "$dir.new" "$dir"
    fi
    echo "$dir"
}

# The PID, in the host's namespace, of the container's init.
leader() {
    local name=$1 pid
    pid=$(cat "$cache/run/$name.pid" 2>/dev/null) || die "$name is not running"
    pgrep -P "$pid" -x systemd | head -n 1
}

run() {
    local name=$1 pid
    shift
    pid=$(leader "$name")
    [ -n "$pid" ] || die "$name has no init"
    nsenter -t "$pid" -m -u -i -n -p -r -w -- /usr/bin/env -i \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root TERM=dumb LANG=C.UTF-8 "$@"
}

ensure_bridge() {
    if ! ip link show "$bridge" >/dev/null 2>&1; then
        ip link add "$bridge" type bridge
        ip addr add 10.77.0.1/24 dev "$bridge"
        ip link set "$bridge" up
    fi
}

boot() {
    local name=$1 addr=${2:-} base dir net state
    base=$(rootfs)
    dir=$machines/$name
    [ ! -e "$cache/run/$name.pid" ] || stop "$name"
    mkdir -p "$machines" "$cache/run"
    rm -rf "$dir"
    cp -a --reflink=auto "$base" "$dir"
    echo "$name" >"$dir/etc/hostname"
    # debootstrap writes no hosts file: without one `localhost` and the
    # machine's own name do not resolve.
    printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
        "$name" >"$dir/etc/hosts"
    net=(--private-network)
    if [ -n "$addr" ]; then
        ensure_bridge
        net=(--network-bridge="$bridge")
    fi
    setsid systemd-nspawn -b -D "$dir" -M "$name" --keep-unit --register=no "${net[@]}" \
        --console=passive >"$cache/run/$name.log" 2>&1 </dev/null &
    echo $! >"$cache/run/$name.pid"
    for _ in $(seq 120); do
        state=$(run "$name" systemctl is-system-running 2>/dev/null) || true
        case "$state" in
        running | degraded) break ;;
        esac
        sleep 0.5
    done
    case "$state" in
    running | degraded) ;;
    *) die "$name did not boot (state '$state'); see $cache/run/$name.log" ;;
    esac
    if [ -n "$addr" ]; then
        run "$name" ip addr add "$addr" dev host0
        run "$name" ip link set host0 up
        run "$name" ip route add default via 10.77.0.1 2>/dev/null || true
    fi
    echo "bookworm: $name booted (systemd $(run "$name" systemctl --version | head -n 1 | cut -d' ' -f2), $state)" >&2
}

stop() {
    local name=$1 pid
    pid=$(cat "$cache/run/$name.pid" 2>/dev/null) || pid=""
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        run "$name" systemctl poweroff >/dev/null 2>&1 || true
        for _ in $(seq 40); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        kill "$pid" 2>/dev/null || true
        sleep 1
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$cache/run/$name.pid"
    rm -rf "${machines:?}/$name"
}

cmd=${1:-}
shift || true
case "$cmd" in
rootfs) rootfs ;;
boot) boot "${1:?usage: $0 boot NAME [IP/24]}" "${2:-}" ;;
run) run "${1:?usage: $0 run NAME CMD...}" "${@:2}" ;;
root) echo "$machines/${1:?usage: $0 root NAME}" ;;
stop) stop "${1:?usage: $0 stop NAME}" ;;
stop-all)
    prefix=${1:?usage: $0 stop-all PREFIX}
    for f in "$cache"/run/"$prefix"*.pid; do
        [ -e "$f" ] || continue
        n=$(basename "$f" .pid)
        stop "$n"
    done
    ;;
*)
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
