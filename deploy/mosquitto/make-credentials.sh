#!/usr/bin/env bash
# Makes what a secured edgeminer broker (secure.conf) and its nodes need: a
# CA, a certificate for the broker, one MQTT login per node whose username
# is the node's id, so that the ACL (edgeminer.acl) can let each node write
# only the topics that end in its own id, and (with -g) the cluster's
# genesis listing those nodes.
#
# usage: make-credentials.sh [-o OUT] [-H NAMES] [-p PORT] [-c] [-e EDGEMINER]
#                            [-g CLUSTER [-d A..B] [-a ADMIN_KEY]]
#                            STATE_DIR|NAME...
#
#   -o OUT      where the CA, the broker's certificate and key and the password
#               file go (default: ./edgeminer-broker)
#   -H NAMES    the broker's host names and addresses, comma separated, for its
#               certificate; the first is the one nodes connect to
#               (default: localhost,127.0.0.1)
#   -p PORT     the broker's TLS port, for the nodes' settings (default: 8883)
#   -c          also give each node a client certificate (mutual TLS)
#   -e PATH     the edgeminer binary (default: $EDGEMINER, or edgeminer on PATH)
#   -g CLUSTER  also write OUT/genesis.toml: cluster CLUSTER whose members are
#               the nodes named here (each under the name of its directory),
#               and name it in every node's broker.toml; kept when it exists
#               (add later nodes with `edgeminer roster add`)
#   -d A..B     the genesis's difficulty range (default 16..20)
#   -a FILE     the genesis's admin key (created when missing), which signs
#               roster changes; it gets a login of its own too
#               (OUT/admin.credentials), to publish them
#
# Each argument is a node's state directory (anything with a slash in it, or
# a directory that exists); a bare NAME stands for OUT/nodes/NAME. A node
# without a key gets one (`edgeminer keygen`). Into each state directory go:
#
#   broker.credentials  `username = <node id>` and a random password (mode 600)
#   broker-ca.crt       the CA certificate
#   broker.toml         broker, ca_file, credentials_file (and genesis with -g),
#                       for --config
#   client.crt/.key     with -c: the node's client certificate, CN = node id
#
# OUT/observer.credentials is a read-only login for watching the traffic.
# Running the script again keeps the CA, the broker's certificate (delete
# OUT/server.crt to make a new one, e.g. for other NAMES) and every node's
# password, and adds new nodes.
#
# Runs on the lab's PC (deploy/README.md, section 3), which keeps OUT; only
# the broker's files (ca.crt, server.crt, server.key, passwd) go to the
# broker. Needs openssl, mosquitto_passwd (Debian: openssl, mosquitto) and
# edgeminer (the package, or -e). Note that
# `mosquitto_passwd -b` takes the password as an argument, which other users
# of this machine can see in `ps` for an instant: run it on a machine you
# trust.
set -euo pipefail

out=./edgeminer-broker
names=localhost,127.0.0.1
port=8883
client_certs=""
edgeminer="${EDGEMINER:-edgeminer}"
passwd_tool="${MOSQUITTO_PASSWD:-mosquitto_passwd}"
cluster=""
difficulty=16..20
admin_key=""

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit "${1:-0}"; }
while getopts "o:H:p:ce:g:d:a:h" opt; do
    case "$opt" in
        o) out=$OPTARG ;;
        g) cluster=$OPTARG ;;
        d) difficulty=$OPTARG ;;
        a) admin_key=$OPTARG ;;
        H) names=$OPTARG ;;
        p) port=$OPTARG ;;
        c) client_certs=1 ;;
        e) edgeminer=$OPTARG ;;
        h) usage 0 ;;
        *) usage 2 >&2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || { echo "make-credentials.sh: name at least one node (state directory or name); -h for help" >&2; exit 2; }
for tool in openssl "$passwd_tool" "$edgeminer"; do
    command -v "$tool" >/dev/null 2>&1 || { echo "make-credentials.sh: $tool not found" >&2; exit 1; }
done

umask 077
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# An absolute path, for the nodes' settings.
abspath() { (cd "$(dirname "$1")" && printf '%s/%s\n' "$(pwd)" "$(basename "$1")"); }
# Runs openssl quietly, showing its messages only when it fails.
ossl() { openssl "$@" 2>"$work/openssl.err" || { cat "$work/openssl.err" >&2; exit 1; }; }
newkey() { ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
serial() { printf '0x%s' "$(openssl rand -hex 16)"; }

# Signs a certificate for key $1 with subject CN $2 and the extensions in
# file $3, into $4.
sign() {
    ossl req -new -key "$1" -subj "/CN=$2" -out "$work/req.csr"
    ossl x509 -req -in "$work/req.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" \
        -set_serial "$(serial)" -days 825 -sha256 -extfile "$3" -out "$4"
}

# The CA: kept when it exists.
if [ ! -s "$out/ca.crt" ] || [ ! -s "$out/ca.key" ]; then
    cat >"$work/ca.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = edgeminer lab CA
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
EOF
    newkey "$out/ca.key"
    ossl req -x509 -new -key "$out/ca.key" -config "$work/ca.cnf" -extensions ca \
        -days 3650 -sha256 -set_serial "$(serial)" -out "$out/ca.crt"
    chmod 644 "$out/ca.crt"
    echo "made the CA: $out/ca.crt (its key: $out/ca.key; keep it private)"
fi

# The broker's certificate, for every name and address it is reached by.
first=${names%%,*}
if [ ! -s "$out/server.crt" ] || [ ! -s "$out/server.key" ]; then
    san=""
    IFS=, read -r -a list <<<"$names"
    for n in "${list[@]}"; do
        if [[ $n =~ ^[0-9.]+$ || $n == *:* ]]; then san+="IP:$n,"; else san+="DNS:$n,"; fi
    done
    cat >"$work/server.ext" <<EOF
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = ${san%,}
EOF
    newkey "$out/server.key"
    sign "$out/server.key" "$first" "$work/server.ext" "$out/server.crt"
    chmod 644 "$out/server.crt"
    echo "made the broker's certificate for ${san%,}: $out/server.crt"
fi

if [[ $first == *:* ]]; then url="mqtts://[$first]:$port"; else url="mqtts://$first:$port"; fi

# Adds or updates a login in the broker's password file.
add_login() {
    if [ -s "$out/passwd" ]; then
        "$passwd_tool" -b "$out/passwd" "$1" "$2"
    else
        "$passwd_tool" -c -b "$out/passwd" "$1" "$2"
    fi
}

# The password already in a credentials file, or a new one.
password_for() {
    local pw=""
    if [ -s "$1" ]; then pw=$(sed -n 's/^password = //p' "$1"); fi
    [ -n "$pw" ] || pw=$(openssl rand -hex 16)
    printf '%s' "$pw"
}

write_credentials() {
    printf 'username = %s\npassword = %s\n' "$2" "$3" >"$1.new"
    chmod 600 "$1.new"
    mv "$1.new" "$1"
}

# Every node's state directory and key first: the genesis lists them all.
dirs=()
members=()
for arg in "$@"; do
    if [[ $arg == */* || -d $arg ]]; then dir=$arg; else dir="$out/nodes/$arg"; fi
    mkdir -p "$dir"
    dir=$(abspath "$dir")
    if [ -e "$dir/node.key" ]; then
        id=$("$edgeminer" id --state-dir "$dir")
    else
        id=$("$edgeminer" keygen --state-dir "$dir")
    fi
    dirs+=("$dir")
    members+=(--member "$id=$(basename "$dir")")
done

genesis=""
if [ -n "$cluster" ]; then
    genesis="$out/genesis.toml"
    if [ -s "$genesis" ]; then
        echo "kept the genesis $genesis (nodes not in it join with \`edgeminer roster add\`)"
    else
        admin_args=()
        [ -z "$admin_key" ] || admin_args=(--admin-key "$admin_key")
        cluster_id=$("$edgeminer" genesis --cluster "$cluster" --difficulty "$difficulty" \
            "${members[@]}" "${admin_args[@]}" --out "$genesis")
        chmod 644 "$genesis"
        echo "made the genesis of cluster $cluster ($cluster_id): $genesis; copy it to every board"
    fi
fi

for dir in "${dirs[@]}"; do
    id=$("$edgeminer" id --state-dir "$dir")
    creds="$dir/broker.credentials"
    pw=$(password_for "$creds")
    add_login "$id" "$pw"
    write_credentials "$creds" "$id" "$pw"
    install -m 644 "$out/ca.crt" "$dir/broker-ca.crt"
    {
        echo "# The secured broker of this node (made by make-credentials.sh)."
        echo "broker = \"$url\""
        echo "ca_file = \"$dir/broker-ca.crt\""
        echo "credentials_file = \"$creds\""
        [ -z "$genesis" ] || echo "genesis = \"$genesis\""
    } >"$dir/broker.toml"
    if [ -n "$client_certs" ]; then
        if [ ! -s "$dir/client.crt" ] || [ ! -s "$dir/client.key" ]; then
            printf '%s\n' "basicConstraints = critical,CA:FALSE" \
                "keyUsage = critical,digitalSignature" \
                "extendedKeyUsage = clientAuth" >"$work/client.ext"
            newkey "$dir/client.key"
            sign "$dir/client.key" "$id" "$work/client.ext" "$dir/client.crt"
        fi
        {
            echo "client_cert = \"$dir/client.crt\""
            echo "client_key = \"$dir/client.key\""
        } >>"$dir/broker.toml"
    fi
    echo "node $(basename "$dir"): id $id, login and settings in $dir/broker.toml"
done

observer="$out/observer.credentials"
pw=$(password_for "$observer")
add_login observer "$pw"
write_credentials "$observer" observer "$pw"

if [ -n "$admin_key" ]; then
    # The admin publishes roster changes on roster/<its id>: a login of its own.
    admin_id=$("$edgeminer" id --key-file "$admin_key")
    creds="$out/admin.credentials"
    pw=$(password_for "$creds")
    add_login "$admin_id" "$pw"
    write_credentials "$creds" "$admin_id" "$pw"
    echo "admin: id $admin_id, login in $creds (for edgeminer roster --credentials-file)"
fi

echo "broker: password file $out/passwd; read-only login in $observer"
if [ -n "$genesis" ]; then
    echo "nodes:  edgeminer run --config STATE_DIR/broker.toml --state-dir STATE_DIR"
else
    echo "nodes:  edgeminer run --config STATE_DIR/broker.toml --state-dir STATE_DIR --genesis FILE"
fi
