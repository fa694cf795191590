#!/usr/bin/env bash
# Makes, or updates, a signed apt repository of edgeminer packages that the
# lab's boards install and upgrade from (`apt install edgeminer`, `apt
# upgrade`). Any static HTTP server can serve it; deploy/ansible/README.md
# shows how, and the sources entry the boards use.
#
#   usage: deploy/apt-repo.sh [-r REPO] [-k KEYDIR] [-n NAME] [DEB...]
#
#   -r REPO    the repository, made when missing (default ./apt-repo)
#   -k KEYDIR  the GnuPG home holding the repository's signing key, made
#              (with a new key) when missing (default REPO-signing, beside
#              REPO). Keep it off the web server: only REPO is served.
#   -n NAME    the key's user id when one is made
#              (default "edgeminer lab repository")
#
# Each DEB is copied into REPO/pool/main/ (a version already there is left
# as it is); then the indexes of suite `stable`, component `main` and the
# architectures amd64, arm64 and armhf are written again from everything in
# the pool, and signed (InRelease and Release.gpg). Older versions stay in
# the pool: `apt install edgeminer=VERSION` goes back to one. The public key
# is REPO/edgeminer-archive-keyring.gpg, the file boards name in Signed-By.
#
# Needs apt-ftparchive (Debian: apt-utils) and gpg (gnupg).
set -euo pipefail

repo=./apt-repo
keydir=""
name="edgeminer lab repository"
suite=stable
component=main
archs=(amd64 arm64 armhf)

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit "${1:-0}"
}
die() {
    echo "apt-repo: $*" >&2
    exit 1
}

while getopts r:k:n:h opt; do
    case "$opt" in
    r) repo=$OPTARG ;;
    k) keydir=$OPTARG ;;
    n) name=$OPTARG ;;
    h) usage 0 ;;
    *) usage 2 >&2 ;;
    esac
done
shift $((OPTIND - 1))
repo=${repo%/}
[ -n "$keydir" ] || keydir=$repo-signing

command -v apt-ftparchive >/dev/null || die "no apt-ftparchive: apt-get install apt-utils"
command -v gpg >/dev/null || die "no gpg: apt-get install gnupg"

for deb in "$@"; do
    [ -f "$deb" ] || die "no such file: $deb"
    pkg=$(dpkg-deb -f "$deb" Package) || die "not a Debian package: $deb"
    [ "$pkg" = edgeminer ] || die "$deb is package '$pkg', not edgeminer"
done

# The signing key: made once, without a passphrase (the repository is
# signed unattended); the key directory is the secret to keep.
if [ ! -d "$keydir" ]; then
    mkdir -p "$keydir"
    chmod 700 "$keydir"
    gpg --homedir "$keydir" --batch --quiet --pinentry-mode loopback --passphrase '' \
        --quick-gen-key "$name" ed25519 sign never
    echo "apt-repo: made the signing key in $keydir: keep it, and keep it private" >&2
fi
fpr=$(gpg --homedir "$keydir" --batch --with-colons --list-secret-keys |
    awk -F: '$1 == "fpr" { print $10; exit }')
[ -n "$fpr" ] || die "no secret key in $keydir"

mkdir -p "$repo/pool/$component"
for deb in "$@"; do
    v=$(dpkg-deb -f "$deb" Version)
    a=$(dpkg-deb -f "$deb" Architecture)
    dest=$repo/pool/$component/edgeminer_${v//:/%3a}_$a.deb
    if [ -e "$dest" ]; then
        cmp -s "$deb" "$dest" || die "$dest exists with other contents: a version is published once (give the new package a new version)"
        echo "apt-repo: edgeminer $v ($a) is already in the pool" >&2
    else
        cp "$deb" "$dest"
        chmod 644 "$dest"
        echo "apt-repo: added edgeminer $v ($a)" >&2
    fi
done

# The indexes, from the repository's root so that Filename: is
# pool/main/... as apt expects.
dists=dists/$suite
(
    cd "$repo"
    for a in "${archs[@]}"; do
        d=$dists/$component/binary-$a
        mkdir -p "$d"
        apt-ftparchive --arch "$a" packages "pool/$component" >"$d/Packages"
        gzip -9nc "$d/Packages" >"$d/Packages.gz"
    done
    rm -f "$dists/Release" "$dists/InRelease" "$dists/Release.gpg"
    apt-ftparchive \
        -o APT::FTPArchive::Release::Origin=edgeminer \
        -o APT::FTPArchive::Release::Label=edgeminer \
        -o APT::FTPArchive::Release::Suite="$suite" \
        -o APT::FTPArchive::Release::Codename="$suite" \
        -o APT::FTPArchive::Release::Architectures="${archs[*]}" \
        -o APT::FTPArchive::Release::Components="$component" \
        -o APT::FTPArchive::Release::Description="edgeminer packages for the lab's boards" \
        release "$dists" >"$dists/Release.new"
    mv "$dists/Release.new" "$dists/Release"
)
gpg --homedir "$keydir" --batch --yes --local-user "$fpr" --clearsign \
    -o "$repo/$dists/InRelease" "$repo/$dists/Release"
gpg --homedir "$keydir" --batch --yes --local-user "$fpr" --armor --detach-sign \
    -o "$repo/$dists/Release.gpg" "$repo/$dists/Release"
gpg --homedir "$keydir" --batch --yes --export "$fpr" >"$repo/edgeminer-archive-keyring.gpg"
chmod 644 "$repo/edgeminer-archive-keyring.gpg" "$repo/$dists/InRelease" "$repo/$dists/Release.gpg"

echo "apt-repo: $repo signed by key $fpr; it holds:" >&2
for a in "${archs[@]}"; do
    awk -v a="$a" '/^Version:/ { printf "  edgeminer %s (%s)\n", $2, a }' \
        "$repo/$dists/$component/binary-$a/Packages"
done >&2
