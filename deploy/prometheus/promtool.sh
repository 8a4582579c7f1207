#!/usr/bin/env bash
# Print the path of promtool, installing Debian's prometheus package when it is missing.
#
#   promtool.sh    the path on stdout; what apt-get says on stderr
#
# allim needs only the package's promtool (tests/deploy/test_promtool.py): the Prometheus
# server it brings is neither started by the installation (policy-rc.d) nor left enabled.
set -euo pipefail
if found=$(command -v promtool); then
  echo "$found"
  exit 0
fi
echo "promtool: missing, installing Debian's prometheus package" >&2
if [ "$(id -u)" -ne 0 ]; then
  echo "promtool: run as root, or install the 'prometheus' package first" >&2
  exit 1
fi
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  # invoke-rc.d and deb-systemd-invoke ask it; 101: the action is not allowed
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
apt-get update -q >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >&2
if [ -d /run/systemd/system ]; then
  systemctl disable --now prometheus >&2 || true
elif command -v update-rc.d >/dev/null; then
  update-rc.d prometheus disable >&2 || true
fi
command -v promtool
