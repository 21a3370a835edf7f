#!/usr/bin/env bash
# Run a command against a throwaway PostgreSQL server: scripts/postgres.sh COMMAND [ARGS...]
#
# Installs Debian's postgresql package when no server binaries are found (as root, with
# apt-get), creates a new cluster in a temporary folder, serves it on 127.0.0.1 on a free
# port (its unix socket in that folder too), exports DATABASE_URL naming its `postgres`
# database, and runs the command. However the command ends, the server is stopped and
# its folder deleted; the script exits with the command's status.
#
# The tests create and drop their own databases on this server (tests/postgres.py).
set -euo pipefail

if [[ $# -eq 0 ]]; then
    echo "usage: $0 COMMAND [ARGS...]   (runs COMMAND with DATABASE_URL set)" >&2
    exit 2
fi

find_bindir() {
    # Debian keeps each major version's server in /usr/lib/postgresql/<version>/bin.
    local candidate
    for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x "$candidate/initdb" && -x "$candidate/pg_ctl" ]]; then
            echo "$candidate"
            return
        fi
    done
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        dirname "$(command -v initdb)"
    fi
}

BINDIR="$(find_bindir)"
if [[ -z "$BINDIR" ]]; then
    if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "PostgreSQL is not installed: installing Debian's postgresql package..." >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends postgresql >/dev/null
        BINDIR="$(find_bindir)"
    fi
    if [[ -z "$BINDIR" ]]; then
        echo "PostgreSQL's server is not installed, and this script can install it only as" >&2
        echo "root on Debian or Ubuntu. Install it with: sudo apt-get install postgresql" >&2
        exit 1
    fi
fi

# PostgreSQL refuses to run as root: as root, run the server as the `postgres` user
# (Debian's package creates it), or as a system user made for the purpose.
as_server_user=()
if [[ $EUID -eq 0 ]]; then
    server_user=postgres
    if ! id "$server_user" >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin "$server_user"
    fi
    as_server_user=(runuser -u "$server_user" --)
fi

workdir="$(mktemp -d "${TMPDIR:-/tmp}/vcita-connect-postgres.XXXXXX")"
started=""

cleanup() {
    local status=$?
    if [[ -n "$started" ]]; then
        "${as_server_user[@]}" "$BINDIR/pg_ctl" stop -D "$workdir/data" -m fast -s \
            >/dev/null 2>&1 || true
    fi
    rm -rf "$workdir"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Only the server user may read the cluster; the password keeps other local users out
# of the TCP port while it runs.
password="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$password" >"$workdir/password"
chmod 600 "$workdir/password"
if [[ $EUID -eq 0 ]]; then
    chown -R "$server_user" "$workdir"
fi

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"

"${as_server_user[@]}" "$BINDIR/initdb" --pgdata="$workdir/data" --username=postgres \
    --pwfile="$workdir/password" --auth-local=scram-sha-256 --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C --no-sync >"$workdir/initdb.log" 2>&1 || {
    cat "$workdir/initdb.log" >&2
    exit 1
}
rm -f "$workdir/password"

# A test server: data it loses in a crash is thrown away anyway, so skip the disk syncs.
server_options="-c listen_addresses=127.0.0.1 -p $port -k $workdir"
server_options+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
server_options+=" -c max_connections=200"
started=yes
"${as_server_user[@]}" "$BINDIR/pg_ctl" start -D "$workdir/data" -w -t 60 -s \
    -l "$workdir/server.log" -o "$server_options" || {
    cat "$workdir/server.log" >&2
    exit 1
}

export DATABASE_URL="postgresql+psycopg://postgres:$password@127.0.0.1:$port/postgres"
echo "PostgreSQL $("$BINDIR/postgres" --version | awk '{print $3}') on 127.0.0.1:$port" \
    "(throwaway, in $workdir)" >&2
set +e
"$@"
status=$?
set -e
exit "$status"
