#!/usr/bin/env bash
# Print the path of Debian's Chromium, installing the `chromium` package when it is missing,
# and `fonts-nanum` when no Korean font is installed (the console's labels, and its
# screenshots, would show empty boxes).
#
#   chromium.sh    the console's browser tests run it before they launch the browser
#
# The browser tests drive this Chromium by its path (Playwright's own browser downloads are
# not used), so a fresh machine gets it from Debian's mirrors like postgres.sh gets PostgreSQL.
set -euo pipefail
path=/usr/bin/chromium
missing=()
[ -x "$path" ] || missing+=(chromium)
[ -n "$(fc-list :lang=ko 2>/dev/null)" ] || missing+=(fonts-nanum)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "chromium: missing ${missing[*]}, installing Debian's packages" >&2
  if [ "$(id -u)" -ne 0 ]; then
    echo "chromium: run as root, or install the packages ${missing[*]} first" >&2
    exit 1
  fi
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi
echo "$path"
