#!/usr/bin/env bash
# Print the path of wrk, installing Debian's wrk package when it is missing.
#
#   wrk.sh    the path on stdout; what apt-get says on stderr
#
# bench/taps.py drives the gateway with wrk: an HTTP load generator in C, with LuaJIT
# scripts, that one core runs far faster than the gateway answers (a Python client does not).
set -euo pipefail
if found=$(command -v wrk); then
  echo "$found"
  exit 0
fi
echo "wrk: missing, installing Debian's wrk package" >&2
if [ "$(id -u)" -ne 0 ]; then
  echo "wrk: run as root, or install the 'wrk' package first" >&2
  exit 1
fi
apt-get update -q >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends wrk >&2
command -v wrk
