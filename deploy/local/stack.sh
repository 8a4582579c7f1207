#!/usr/bin/env bash
# The local stack's data services: PostgreSQL and Kafka, on loopback ports of their own.
#
#   stack.sh up STATE_DIR     start both (idempotent) and write STATE_DIR/stack.env
#   stack.sh down STATE_DIR   stop both, keep their data
#   stack.sh drop STATE_DIR   stop both and delete their data
#
# STATE_DIR/stack.env holds ALLIM_DATABASE_URL and ALLIM_KAFKA_BOOTSTRAP for the services.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cmd=${1:?usage: stack.sh up|down|drop STATE_DIR}
state=${2:?usage: stack.sh up|down|drop STATE_DIR}
mkdir -p "$state"
state=$(cd "$state" && pwd)

case "$cmd" in
up)
  "$here/postgres/postgres.sh" start "$state"
  "$here/kafka/kafka.sh" start "$state"
  cat > "$state/stack.env" <<ENV
ALLIM_DATABASE_URL=postgresql+asyncpg://allim@127.0.0.1:$(cat "$state/postgres/port")/allim
ALLIM_KAFKA_BOOTSTRAP=127.0.0.1:$(cat "$state/kafka/port")
ENV
  ;;
down)
  "$here/kafka/kafka.sh" stop "$state" || true
  "$here/postgres/postgres.sh" stop "$state" || true
  ;;
drop)
  "$here/kafka/kafka.sh" stop "$state" || true
  "$here/postgres/postgres.sh" drop "$state" || true
  rm -rf "$state"
  ;;
*)
  echo "usage: stack.sh up|down|drop STATE_DIR" >&2
  exit 2
  ;;
esac
