#!/usr/bin/env bash
# Start, stop or drop a throwaway PostgreSQL cluster for allim, on loopback.
#
#   postgres.sh start STATE_DIR   install Debian's server if missing, initdb once, start, create the db
#   postgres.sh stop STATE_DIR    stop it (fast shutdown)
#   postgres.sh drop STATE_DIR    stop it and delete the cluster
#   postgres.sh status STATE_DIR  exit 0 when it runs
#
# The port is picked once (free loopback port) and kept in STATE_DIR/postgres/port.
# initdb refuses to run as root, so as root the cluster belongs to the `postgres` user.
set -euo pipefail
cmd=${1:?usage: postgres.sh start|stop|drop|status STATE_DIR}
state=$(mkdir -p "${2:?usage: postgres.sh start|stop|drop|status STATE_DIR}" && cd "$2" && pwd)
dir="$state/postgres"
data="$dir/data"

bindir() {
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$found" ] || [ ! -x "$found/initdb" ]; then
    echo "postgres: server binaries missing, installing Debian's postgresql package" >&2
    if [ "$(id -u)" -ne 0 ]; then
      echo "postgres: run as root, or install the 'postgresql' package first" >&2
      exit 1
    fi
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
    found=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  fi
  echo "$found"
}

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

running() {
  [ -f "$data/postmaster.pid" ] && [ -x "$(bindir)/pg_ctl" ] && as_owner "$(bindir)/pg_ctl" -D "$data" status >/dev/null 2>&1
}

case "$cmd" in
start)
  bin=$(bindir)
  mkdir -p "$dir"
  [ -f "$dir/port" ] || free_port > "$dir/port"
  port=$(cat "$dir/port")
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres "$dir"
    # the postgres user must be able to reach the folder
    p="$dir"; while [ "$p" != / ]; do chmod o+x "$p" 2>/dev/null || true; p=$(dirname "$p"); done
  fi
  if [ ! -f "$data/PG_VERSION" ]; then
    as_owner "$bin/initdb" -D "$data" -U allim --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    cat >> "$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 200
shared_buffers = 256MB
fsync = on
synchronous_commit = on
timezone = 'UTC'
CONF
  fi
  if running; then
    echo "postgres: already running on 127.0.0.1:$port" >&2
  else
    as_owner "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 start >/dev/null
    echo "postgres: ready on 127.0.0.1:$port" >&2
  fi
  if ! "$bin/psql" -h 127.0.0.1 -p "$port" -U allim -d postgres -tAc "select 1 from pg_database where datname='allim'" | grep -q 1; then
    "$bin/createdb" -h 127.0.0.1 -p "$port" -U allim allim
  fi
  ;;
stop)
  if running; then
    as_owner "$(bindir)/pg_ctl" -D "$data" -m fast -w stop >/dev/null
    echo "postgres: stopped" >&2
  fi
  ;;
drop)
  "$0" stop "$state"
  rm -rf "$dir"
  ;;
status)
  running
  ;;
*)
  echo "usage: postgres.sh start|stop|drop|status STATE_DIR" >&2
  exit 2
  ;;
esac
