#!/bin/sh
# Render an HTML report in headless Chromium and save a screenshot, to look at the plots:
#   scripts/screenshot_report.sh report.html report.png
# Needs Debian's chromium (apt-get install -y chromium).
set -eu
html=$(realpath "$1"); png=${2:-${1%.html}.png}
profile=$(mktemp -d); trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
  --disable-sync --no-first-run --disable-dev-shm-usage --user-data-dir="$profile" --hide-scrollbars \
  --window-size=1280,2400 --screenshot="$png" "file://$html" 2>/dev/null
echo "$png"
