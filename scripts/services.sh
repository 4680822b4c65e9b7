#!/usr/bin/env bash
# Start (or stop) the project's own PostgreSQL and RabbitMQ on loopback for the tests,
# and install the SFTP and FTP servers the tests start themselves (OpenSSH, vsftpd), curl,
# and schemathesis (PyPI, in a virtualenv) for the import API's OpenAPI document.
#
#   scripts/services.sh up     ensure both run; print `export ...` lines on stdout
#   scripts/services.sh down   stop both
#   scripts/services.sh env    print the export lines without starting anything
#
# The tests use their OWN instances (PostgreSQL 127.0.0.1:5433, RabbitMQ node
# roster@localhost on 127.0.0.1:5673), never the machine's shared ones on 5432/5672,
# because fault tests stop and restart them. All state lives under target/services/.
# Diagnostics go to stderr; stdout carries only the export lines (use with eval).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SVC="$ROOT/target/services"

PG_PORT=5433
PG_DIR="$SVC/pg"
PG_DATA="$PG_DIR/data"
PG_LOG="$PG_DIR/server.log"
PG_START_ARGS="-p $PG_PORT -c listen_addresses=127.0.0.1 -k $PG_DIR"

RMQ_PORT=5673
RMQ_DIST_PORT=25673
RMQ_EPMD_PORT=4370
RMQ_NODE=roster@localhost
RMQ_DIR="$SVC/rmq"
RMQ_BIN=/usr/lib/rabbitmq/bin
RMQ_PID="$RMQ_DIR/rabbit.pid"

# Where the instances serving the ports live, recorded when this script starts them: a test
# run from another checkout reuses them and must control them (stop/start) where they are.
POINTERS=/tmp/roster-test-services
mkdir -p "$POINTERS"

# Adopt the folders of the instance already serving $1 (pg|rmq), if one was recorded.
adopt() {
    local dir
    dir=$(cat "$POINTERS/$1.dir" 2>/dev/null) || return 0
    [[ -d "$dir" ]] || return 0
    case $1 in
    pg) PG_DIR=$dir PG_DATA=$dir/data PG_LOG=$dir/server.log
        PG_START_ARGS="-p $PG_PORT -c listen_addresses=127.0.0.1 -k $PG_DIR" ;;
    rmq) RMQ_DIR=$dir RMQ_PID=$dir/rabbit.pid ;;
    esac
}

log() { printf '[services] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # port seconds
    local i
    for ((i = 0; i < $2 * 5; i++)); do
        port_open "$1" && return 0
        sleep 0.2
    done
    return 1
}

# True when pid $1 is a live (not zombie) process.
pid_alive() {
    local st
    [[ -n "$1" && -r "/proc/$1/stat" ]] || return 1
    st=$(sed -e 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [[ -n "$st" && "$st" != Z && "$st" != X ]]
}

# Single-quote a value for safe use in `eval`.
shq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# ---------------------------------------------------------------- PostgreSQL

pg_bin() {
    local v
    v=$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n1 || true)
    [[ -n "$v" ]] && echo "/usr/lib/postgresql/$v/bin"
}

pg_ctl_cmd() { echo "runuser -u postgres -- $(pg_bin)/pg_ctl -D $PG_DATA"; }

pg_install() {
    if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
        log "PostgreSQL binaries missing: apt-get install -y postgresql"
        DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >&2 ||
            { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >&2; }
    fi
    [[ -x "$(pg_bin)/initdb" ]] || die "no initdb under /usr/lib/postgresql/*/bin"
}

pg_up() {
    pg_install
    local bin
    bin=$(pg_bin)
    mkdir -p "$PG_DIR"
    chown postgres: "$PG_DIR"

    if [[ ! -f "$PG_DATA/PG_VERSION" ]]; then
        log "initdb $PG_DATA"
        rm -rf "$PG_DATA"
        (cd "$PG_DIR" && runuser -u postgres -- "$bin/initdb" -D "$PG_DATA" -U postgres \
            --auth-local=trust --auth-host=trust -E UTF8 >&2)
    fi
    # Put the listen settings into the config too, so a plain `pg_ctl start` (without -o)
    # also comes back on the same port and socket directory.
    if ! grep -q '^# roster-test settings' "$PG_DATA/postgresql.conf"; then
        cat >>"$PG_DATA/postgresql.conf" <<EOF
# roster-test settings
port = $PG_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_DIR'
fsync = off
EOF
    fi

    if port_open "$PG_PORT"; then
        if "$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; then
            log "PostgreSQL already running on 127.0.0.1:$PG_PORT"
            adopt pg
            return 0
        fi
        # Port taken but not ready: maybe still starting up; give it a moment.
        log "port $PG_PORT open but PostgreSQL not ready yet; waiting"
    else
        # Stale postmaster.pid / socket lock (e.g. after a kill or a zombie) must not block start.
        local pid=""
        [[ -f "$PG_DATA/postmaster.pid" ]] && pid=$(head -n1 "$PG_DATA/postmaster.pid" || true)
        if [[ -n "$pid" ]] && pid_alive "$pid"; then
            log "PostgreSQL pid $pid alive but port $PG_PORT closed; stopping it"
            runuser -u postgres -- "$bin/pg_ctl" -D "$PG_DATA" stop -m immediate -w -t 30 >&2 || true
        fi
        if [[ -f "$PG_DATA/postmaster.pid" ]]; then
            pid=$(head -n1 "$PG_DATA/postmaster.pid" || true)
            if ! pid_alive "$pid"; then
                log "removing stale postmaster.pid (pid $pid)"
                rm -f "$PG_DATA/postmaster.pid"
            fi
        fi
        rm -f "$PG_DIR/.s.PGSQL.$PG_PORT" "$PG_DIR/.s.PGSQL.$PG_PORT.lock"
        log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
        echo "$PG_DIR" > "$POINTERS/pg.dir"
        (cd "$PG_DIR" && runuser -u postgres -- "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" \
            -w -t 60 -o "$PG_START_ARGS" start >&2) ||
            { tail -n 30 "$PG_LOG" >&2 || true; die "PostgreSQL did not start"; }
    fi

    local i
    for ((i = 0; i < 300; i++)); do
        "$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && { log "PostgreSQL ready"; return 0; }
        sleep 0.2
    done
    die "PostgreSQL not ready on 127.0.0.1:$PG_PORT"
}

pg_down() {
    local bin
    bin=$(pg_bin) || return 0
    [[ -n "$bin" && -f "$PG_DATA/PG_VERSION" ]] || return 0
    if [[ -f "$PG_DATA/postmaster.pid" ]] || port_open "$PG_PORT"; then
        log "stopping PostgreSQL"
        (cd "$PG_DIR" && runuser -u postgres -- "$bin/pg_ctl" -D "$PG_DATA" stop -m fast -w -t 60 >&2) || true
    fi
}

# ---------------------------------------------------------------- RabbitMQ

# Environment shared by the server and the CLI tools for our node. Everything else
# lives in our own rabbitmq-env.conf (written by rmq_files), which also keeps the
# system one (/etc/rabbitmq/rabbitmq-env.conf) out.
rmq_env() {
    cat <<EOF
HOME=$RMQ_DIR/home
RABBITMQ_CONF_ENV_FILE=$RMQ_DIR/rabbitmq-env.conf
ERL_EPMD_PORT=$RMQ_EPMD_PORT
EOF
}

rmq_ctl_cmd() { echo "env $(rmq_env | tr '\n' ' ')$RMQ_BIN/rabbitmqctl -n $RMQ_NODE"; }

rmq_run() { # tool args...
    local tool=$1
    shift
    local -a envs
    mapfile -t envs < <(rmq_env)
    env "${envs[@]}" "$RMQ_BIN/$tool" "$@"
}

rmq_ctl() { rmq_run rabbitmqctl -n "$RMQ_NODE" "$@"; }

rmq_install() {
    if [[ ! -x "$RMQ_BIN/rabbitmq-server" ]]; then
        log "RabbitMQ binaries missing: apt-get install -y rabbitmq-server"
        DEBIAN_FRONTEND=noninteractive apt-get install -y rabbitmq-server >&2 ||
            { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y rabbitmq-server >&2; }
    fi
    [[ -x "$RMQ_BIN/rabbitmq-server" ]] || die "no $RMQ_BIN/rabbitmq-server"
}

rmq_files() {
    mkdir -p "$RMQ_DIR"/{mnesia,log,home}
    [[ -f "$RMQ_DIR/enabled_plugins" ]] || echo '[].' >"$RMQ_DIR/enabled_plugins"
    printf 'listeners.tcp.1 = 127.0.0.1:%s\nloopback_users.guest = true\n' "$RMQ_PORT" >"$RMQ_DIR/rabbitmq.conf"
    cat >"$RMQ_DIR/rabbitmq-env.conf" <<EOF
# Roster test node (written by scripts/services.sh). Sourced by rabbitmq-server and
# rabbitmqctl when RABBITMQ_CONF_ENV_FILE points here.
NODENAME=$RMQ_NODE
NODE_IP_ADDRESS=127.0.0.1
NODE_PORT=$RMQ_PORT
DIST_PORT=$RMQ_DIST_PORT
ERL_EPMD_PORT=$RMQ_EPMD_PORT
ERL_EPMD_ADDRESS=127.0.0.1
MNESIA_BASE=$RMQ_DIR/mnesia
LOG_BASE=$RMQ_DIR/log
CONFIG_FILE=$RMQ_DIR/rabbitmq.conf
ENABLED_PLUGINS_FILE=$RMQ_DIR/enabled_plugins
PID_FILE=$RMQ_PID
SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
EOF
}

epmd_bin() {
    local e
    for e in /usr/lib/erlang/erts-*/bin/epmd /usr/bin/epmd; do
        [[ -x "$e" ]] && { echo "$e"; return 0; }
    done
    return 1
}

rmq_up() {
    rmq_install
    # A node started from another checkout may be serving: control it where it lives.
    local own_dir=$RMQ_DIR
    adopt rmq
    if [[ "$RMQ_DIR" != "$own_dir" ]] && ! rmq_ctl ping --timeout 5 >/dev/null 2>&1; then
        RMQ_DIR=$own_dir RMQ_PID=$own_dir/rabbit.pid
    fi
    rmq_files

    if port_open "$RMQ_PORT"; then
        log "RabbitMQ already listening on 127.0.0.1:$RMQ_PORT"
        rmq_ctl await_startup --timeout 60 >&2 || true
        return 0
    fi

    # Node alive but the app stopped (e.g. after a test's stop_app)?
    if rmq_ctl ping --timeout 5 >/dev/null 2>&1; then
        log "node $RMQ_NODE is up with the app stopped; start_app"
        rmq_ctl start_app >&2
    else
        # Clean up after a dead node: stale pid file, and an epmd on our port that still
        # holds a registration for the node name (that would refuse the new node).
        rm -f "$RMQ_PID"
        if port_open "$RMQ_EPMD_PORT"; then
            local e
            e=$(epmd_bin || true)
            if [[ -n "$e" ]] && ERL_EPMD_PORT=$RMQ_EPMD_PORT "$e" -port "$RMQ_EPMD_PORT" -names 2>/dev/null |
                grep -q "^name ${RMQ_NODE%@*} "; then
                log "epmd on $RMQ_EPMD_PORT holds a stale '${RMQ_NODE%@*}' registration; restarting epmd"
                ERL_EPMD_PORT=$RMQ_EPMD_PORT "$e" -port "$RMQ_EPMD_PORT" -kill >&2 || true
                sleep 0.5
            fi
        fi
        if port_open "$RMQ_DIST_PORT"; then
            log "WARNING: distribution port $RMQ_DIST_PORT is taken by something else"
        fi
        log "starting RabbitMQ node $RMQ_NODE on 127.0.0.1:$RMQ_PORT"
        echo "$RMQ_DIR" > "$POINTERS/rmq.dir"
        (cd "$RMQ_DIR" && rmq_run rabbitmq-server -detached >&2 2>&1) || true
        if ! rmq_ctl wait --timeout 90 "$RMQ_PID" >&2; then
            tail -n 40 "$RMQ_DIR/log/$RMQ_NODE.log" >&2 2>/dev/null || true
            die "RabbitMQ node did not start"
        fi
    fi
    rmq_ctl await_startup --timeout 90 >&2 || die "RabbitMQ did not finish booting"
    wait_port "$RMQ_PORT" 60 || die "RabbitMQ not listening on 127.0.0.1:$RMQ_PORT"
    log "RabbitMQ ready"
}

rmq_down() {
    [[ -x "$RMQ_BIN/rabbitmqctl" && -d "$RMQ_DIR" ]] || return 0
    if rmq_ctl ping --timeout 5 >/dev/null 2>&1; then
        log "stopping RabbitMQ node $RMQ_NODE"
        if [[ -f "$RMQ_PID" ]]; then
            rmq_ctl stop "$RMQ_PID" >&2 || true
        else
            rmq_ctl stop >&2 || true
        fi
    fi
    rm -f "$RMQ_PID"
    # The epmd on our private port was started for our node only.
    local e
    if port_open "$RMQ_EPMD_PORT" && e=$(epmd_bin); then
        log "stopping epmd on port $RMQ_EPMD_PORT"
        ERL_EPMD_PORT=$RMQ_EPMD_PORT "$e" -port "$RMQ_EPMD_PORT" -kill >&2 || true
    fi
}

# ---------------------------------------------------------------- file servers

# The SFTP and FTP tests start their own sshd and vsftpd (each test its own, on a free
# port, under a temporary folder): only the programs must be installed.
servers_install() {
    local missing=()
    [[ -x /usr/sbin/sshd ]] || missing+=(openssh-server)
    command -v ssh >/dev/null 2>&1 && command -v sftp >/dev/null 2>&1 &&
        command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
    [[ -x /usr/sbin/vsftpd ]] || missing+=(vsftpd)
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    command -v python3 >/dev/null 2>&1 && python3 -c 'import venv, ensurepip' 2>/dev/null ||
        missing+=(python3 python3-venv)
    [[ ${#missing[@]} -eq 0 ]] && return 0
    log "missing: apt-get install -y ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
        { apt-get update >&2 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2; }
}

# ---------------------------------------------------------------- schemathesis

# The import API's OpenAPI document is checked by schemathesis (PyPI), in a virtualenv of
# its own, installed once at this version.
SCHEMATHESIS_VERSION=4.32.5
SCHEMATHESIS_VENV="${ROSTER_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/roster}/schemathesis-$SCHEMATHESIS_VERSION"

schemathesis_install() {
    [[ -x "$SCHEMATHESIS_VENV/bin/st" ]] && return 0
    log "installing schemathesis $SCHEMATHESIS_VERSION into $SCHEMATHESIS_VENV"
    rm -rf "$SCHEMATHESIS_VENV"
    python3 -m venv "$SCHEMATHESIS_VENV" >&2
    "$SCHEMATHESIS_VENV/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION" >&2
}

# ---------------------------------------------------------------- main

print_env() {
    printf 'export ROSTER_TEST_PG_URL=%s\n' "$(shq "postgres://postgres@127.0.0.1:$PG_PORT/postgres")"
    printf 'export ROSTER_TEST_PG_CTL=%s\n' "$(shq "$(pg_ctl_cmd)")"
    printf 'export ROSTER_TEST_PG_START_ARGS=%s\n' "$(shq "$PG_START_ARGS")"
    printf 'export ROSTER_TEST_PG_LOG=%s\n' "$(shq "$PG_LOG")"
    printf 'export ROSTER_TEST_AMQP_URL=%s\n' "$(shq "amqp://guest:guest@127.0.0.1:$RMQ_PORT/%2f")"
    printf 'export ROSTER_TEST_RABBITMQ_CTL=%s\n' "$(shq "$(rmq_ctl_cmd)")"
    printf 'export ROSTER_TEST_SCHEMATHESIS=%s\n' "$(shq "$SCHEMATHESIS_VENV/bin/st")"
}

case "${1:-}" in
up)
    servers_install
    schemathesis_install
    pg_up
    rmq_up
    print_env
    ;;
down)
    adopt rmq
    adopt pg
    rmq_down
    pg_down
    ;;
env)
    adopt rmq
    adopt pg
    print_env
    ;;
*)
    echo "usage: $0 up|down|env" >&2
    exit 2
    ;;
esac
