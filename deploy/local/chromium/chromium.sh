#!/usr/bin/env bash
# Print the path of Debian's Chromium, installing the `chromium` package when it is missing.
#
#   chromium.sh    the console's browser tests run it before they launch the browser
#
# The browser tests drive this Chromium by its path (Playwright's own browser downloads are
# not used), so a fresh machine gets it from Debian's mirrors like postgres.sh gets PostgreSQL.
set -euo pipefail
path=/usr/bin/chromium
if [ ! -x "$path" ]; then
  echo "chromium: missing, installing Debian's chromium package" >&2
  if [ "$(id -u)" -ne 0 ]; then
    echo "chromium: run as root, or install the 'chromium' package first" >&2
    exit 1
  fi
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >&2
fi
echo "$path"
