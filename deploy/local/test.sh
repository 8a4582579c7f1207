#!/usr/bin/env bash
# `make test`'s runner: a fresh Kafka and PostgreSQL, pytest against them, and both
# stopped and deleted afterwards, also when the tests fail or are interrupted.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
state="${ALLIM_TEST_STATE:-$root/.local/test}"
"$here/stack.sh" drop "$state" >/dev/null 2>&1 || true
trap '"$here/stack.sh" drop "$state" >/dev/null 2>&1 || true' EXIT
"$here/stack.sh" up "$state"
set -a
# shellcheck disable=SC1091
. "$state/stack.env"
set +a
export ALLIM_ENVIRONMENT=test ALLIM_TRACKING_SECRET=test-tracking-secret-0123456789
cd "$root"
"$root/.venv/bin/pytest" "$@"
