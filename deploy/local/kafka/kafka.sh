#!/usr/bin/env bash
# Start, stop or check a single-node KRaft Kafka broker for allim, on loopback.
#
#   kafka.sh start STATE_DIR   fetch jars (cached), format storage once, start, wait until it answers
#   kafka.sh stop STATE_DIR    stop it cleanly (SIGTERM, then SIGKILL after 30 s)
#   kafka.sh status STATE_DIR  exit 0 when it runs
#
# The port is picked once (free loopback port) and kept in STATE_DIR/kafka/port.
# Jars are cached in ${ALLIM_KAFKA_LIBS:-$HOME/.cache/allim/kafka-libs}.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cmd=${1:?usage: kafka.sh start|stop|status STATE_DIR}
state=${2:?usage: kafka.sh start|stop|status STATE_DIR}
dir="$state/kafka"
libs=${ALLIM_KAFKA_LIBS:-$HOME/.cache/allim/kafka-libs}
heap=${ALLIM_KAFKA_HEAP:-384m}
mkdir -p "$dir"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

running() {
  [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null
}

fetch_jars() {
  if [ -f "$libs/.complete" ] && [ "$(cat "$libs/.complete")" = "$(sha256sum "$here/pom.xml" | cut -d' ' -f1)" ]; then
    return
  fi
  echo "kafka: fetching broker jars from Maven Central into $libs" >&2
  rm -rf "$libs" && mkdir -p "$libs"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$libs" >&2
  sha256sum "$here/pom.xml" | cut -d' ' -f1 > "$libs/.complete"
}

java_opts() {
  java_args=(java -Xms64m -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -Dlog4j2.configurationFile="$here/log4j2.properties" -Dkafka.logs.dir="$dir"
    -cp "$libs/*")
}

wait_ready() {
  local port=$1 deadline=$((SECONDS + ${ALLIM_KAFKA_START_TIMEOUT:-90}))
  while ((SECONDS < deadline)); do
    if ! running; then
      echo "kafka: broker exited during start-up; see $dir/server.log and $dir/stdout.log" >&2
      tail -20 "$dir/stdout.log" >&2 || true
      return 1
    fi
    if "$here/../../../.venv/bin/python" - "$port" <<'PY' 2>/dev/null; then
import asyncio, sys
from aiokafka.admin import AIOKafkaAdminClient
async def main() -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=f"127.0.0.1:{sys.argv[1]}", request_timeout_ms=3000)
    await admin.start()
    try:
        await admin.list_topics()
    finally:
        await admin.close()
asyncio.run(main())
PY
      return 0
    fi
    sleep 0.5
  done
  echo "kafka: broker did not answer within the timeout; see $dir/server.log" >&2
  return 1
}

case "$cmd" in
start)
  if running; then
    echo "kafka: already running on 127.0.0.1:$(cat "$dir/port")" >&2
    exit 0
  fi
  fetch_jars
  if [ ! -f "$dir/port" ]; then
    free_port > "$dir/port"
    free_port > "$dir/controller_port"
  fi
  port=$(cat "$dir/port")
  cport=$(cat "$dir/controller_port")
  sed -e "s|@PORT@|$port|g" -e "s|@CONTROLLER_PORT@|$cport|g" -e "s|@DATA_DIR@|$dir/data|g" \
    "$here/server.properties.template" > "$dir/server.properties"
  java_opts
  if [ ! -f "$dir/data/meta.properties" ]; then
    cluster=$("${java_args[@]}" -Xmx128m kafka.tools.StorageTool random-uuid)
    "${java_args[@]}" -Xmx128m kafka.tools.StorageTool format -t "$cluster" -c "$dir/server.properties" \
      --standalone > "$dir/format.log" 2>&1 || { cat "$dir/format.log" >&2; exit 1; }
  fi
  # setsid: the broker outlives the shell that started it and gets no terminal signals.
  setsid "${java_args[@]}" -Xmx"$heap" kafka.Kafka "$dir/server.properties" > "$dir/stdout.log" 2>&1 < /dev/null &
  echo $! > "$dir/pid"
  wait_ready "$port"
  echo "kafka: ready on 127.0.0.1:$port" >&2
  ;;
stop)
  if running; then
    pid=$(cat "$dir/pid")
    kill -TERM "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "kafka: stopped" >&2
  fi
  rm -f "$dir/pid"
  ;;
status)
  running
  ;;
*)
  echo "usage: kafka.sh start|stop|status STATE_DIR" >&2
  exit 2
  ;;
esac
