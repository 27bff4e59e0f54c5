#!/usr/bin/env bash
# Full-page screenshot of a generated report, for looking at it without a browser:
#   scripts/screenshot-report.sh REPORT_DIR OUT.png [WIDTH]
# Opens REPORT_DIR/index.html in headless Chromium (installed with apt-get when missing and
# running as root) and writes OUT.png, WIDTH pixels wide (default 1400) and as tall as the
# page. The page loads nothing from the network; neither does this script.
set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
    echo "usage: $0 REPORT_DIR OUT.png [WIDTH]" >&2
    exit 2
fi
report_dir=$1
out=$2
width=${3:-1400}

index="$(cd "$report_dir" && pwd)/index.html"
if [[ ! -f $index ]]; then
    echo "$0: no index.html in $report_dir" >&2
    exit 1
fi

browser=""
for name in chromium chromium-browser google-chrome; do
    if command -v "$name" >/dev/null 2>&1; then
        browser=$name
        break
    fi
done
if [[ -z $browser ]]; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "$0: no chromium found; install it (apt-get install -y chromium)" >&2
        exit 1
    fi
    echo "$0: installing chromium" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    browser=chromium
fi

out_abs="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT

# The page's height at this width: a copy of the page (plots are inlined, so it renders the
# same from anywhere) with one more script that writes the height into the DOM, dumped.
measure="$profile/measure.html"
sed 's#</body>#<script>document.documentElement.setAttribute("data-page-height", document.documentElement.scrollHeight);</script></body>#' \
    "$index" >"$measure"
height=$(
    timeout 60 "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --user-data-dir="$profile/measure-profile" --window-size="$width,1000" \
        --virtual-time-budget=2000 --dump-dom "file://$measure" 2>/dev/null |
        sed -n 's/.*data-page-height="\([0-9]*\)".*/\1/p' | head -n1 || true
)
height=${height:-4000}

timeout 120 "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --user-data-dir="$profile/shot-profile" --window-size="$width,$height" \
    --virtual-time-budget=2000 \
    --run-all-compositor-stages-before-draw \
    --screenshot="$out_abs" "file://$index" >/dev/null 2>&1
echo "$out_abs (${width}x${height})"
