#!/usr/bin/env bash
# A throwaway PostgreSQL server for genroute's tests and benchmarks.
#
#   eval "$(bash .ci/postgres.sh)"        # start; exports GENROUTE_TEST_DATABASE_URL and GENROUTE_TEST_PGDATA
#   bash .ci/postgres.sh stop             # stop the server started above and delete its data dir
#
# Installs Debian's postgresql package when no server binaries are found (needs root and apt), runs the server
# as the `postgres` user when started as root, on a free loopback port (or $GENROUTE_PG_PORT), with a fresh data
# dir under $TMPDIR. fsync is off: the data is disposable. Only the export lines go to stdout; the rest to stderr.
set -euo pipefail

log() { echo "postgres.sh: $*" >&2; }

find_bindir() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [[ -n "$dir" && -x "$dir/initdb" ]]; then echo "$dir"; return; fi
    if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; fi
}

as_owner() {  # run a server binary as the data dir's owner (initdb and postgres refuse to run as root)
    if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [[ "${1:-}" == "stop" ]]; then
    data="${2:-${GENROUTE_TEST_PGDATA:-}}"
    [[ -n "$data" && -d "$data" ]] || { log "no data dir to stop (pass it or set GENROUTE_TEST_PGDATA)"; exit 1; }
    bindir=$(find_bindir)
    as_owner "$bindir/pg_ctl" -D "$data/data" -m fast -w -t 30 stop >&2 || true
    rm -rf "$data"
    exit 0
fi

bindir=$(find_bindir)
if [[ -z "$bindir" ]]; then
    [[ $(id -u) -eq 0 ]] || { log "PostgreSQL is not installed and installing it needs root (apt-get install postgresql)"; exit 1; }
    log "installing Debian's postgresql package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
    bindir=$(find_bindir)
fi
[[ -n "$bindir" ]] || { log "PostgreSQL server binaries not found after install"; exit 1; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

root=$(mktemp -d "${TMPDIR:-/tmp}/genroute-pg.XXXXXX")
chmod 755 "$root"
if [[ $(id -u) -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir "$root" --shell /bin/false postgres
    chown postgres: "$root"
fi
password="genroute-test"
as_owner bash -c "printf '%s\n' 'postgres-$RANDOM$RANDOM' > '$root/pw'"
as_owner "$bindir/initdb" -D "$root/data" -U postgres --pwfile="$root/pw" -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 --no-sync >"$root/initdb.log" 2>&1 \
    || { cat "$root/initdb.log" >&2; exit 1; }

# A port that looked free may be taken before the server binds it (another server starting at the same moment,
# as when two checkouts run their tests at once): then the next free port is tried, up to ten times.
start_on() {
    as_owner "$bindir/pg_ctl" -D "$root/data" -l "$root/server.log" -w -t 60 \
        -o "-p $1 -k $root -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >&2
}
port=""
if [[ -n "${GENROUTE_PG_PORT:-}" ]]; then
    start_on "$GENROUTE_PG_PORT" || { cat "$root/server.log" >&2; exit 1; }
    port=$GENROUTE_PG_PORT
else
    tries=0
    for candidate in $(seq 54329 54429); do
        port_free "$candidate" || continue
        if start_on "$candidate"; then port=$candidate; break; fi
        tries=$((tries + 1))
        if ! grep -q "could not bind\|Address already in use" "$root/server.log" || [[ $tries -ge 10 ]]; then
            cat "$root/server.log" >&2; exit 1
        fi
        log "port $candidate was taken while starting; trying the next"
    done
fi
[[ -n "$port" ]] || { log "no free port in 54329-54429"; exit 1; }

psql_admin() { as_owner "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$root" -p "$port" -U postgres -d postgres "$@"; }
for _ in $(seq 1 60); do  # pg_ctl -w already waited; this guards against a slow first connection
    if psql_admin -c "SELECT 1" >/dev/null 2>&1; then break; fi
    sleep 0.5
done
psql_admin -c "CREATE ROLE genroute LOGIN PASSWORD '$password'" >&2
psql_admin -c "CREATE DATABASE genroute_test OWNER genroute" >&2
log "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port, data in $root"

echo "export GENROUTE_TEST_DATABASE_URL=postgresql://genroute:$password@127.0.0.1:$port/genroute_test"
echo "export GENROUTE_TEST_PGDATA=$root"
