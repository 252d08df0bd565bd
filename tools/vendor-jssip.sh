#!/bin/sh
# Rebuild crmtel/push/static/vendor/jssip.js: JsSIP from the npm registry bundled once (with its dependencies:
# debug, events, sdp-transform) into one ES module the page imports. The page itself has no build step; this is
# the only place JsSIP is built, and only when its version changes. Needs node + npm (registry access).
#   tools/vendor-jssip.sh            # the pinned version below
#   JSSIP_VERSION=3.13.9 tools/vendor-jssip.sh
set -eu
JSSIP_VERSION="${JSSIP_VERSION:-3.13.8}"
ESBUILD_VERSION="${ESBUILD_VERSION:-0.25.12}"
here="$(cd "$(dirname "$0")/.." && pwd)"
out="$here/crmtel/push/static/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm init -y >/dev/null
npm install --no-audit --no-fund --save-exact "jssip@$JSSIP_VERSION" "esbuild@$ESBUILD_VERSION" >/dev/null
printf 'import JsSIP from "jssip";\nexport default JsSIP;\n' > entry.mjs
mkdir -p "$out"
# debug's browser build reads localStorage.debug: JsSIP stays silent unless a developer sets it.
npx --no-install esbuild entry.mjs --bundle --format=esm --platform=browser --target=es2020 --minify \
  --legal-comments=none --banner:js="/* JsSIP $JSSIP_VERSION (MIT, https://jssip.net) with debug, events, sdp-transform (MIT); built by tools/vendor-jssip.sh */" \
  --outfile="$out/jssip.js"
{
  echo "JsSIP $JSSIP_VERSION — bundled with its dependencies by tools/vendor-jssip.sh (esbuild $ESBUILD_VERSION)."
  echo
  for pkg in jssip debug events sdp-transform ms; do
    dir="node_modules/$pkg"
    [ -d "$dir" ] || continue
    version="$(node -p "require('./$dir/package.json').version")"
    echo "=============================================================================="
    echo "$pkg $version"
    echo "=============================================================================="
    found=""
    for f in "$dir"/[Ll][Ii][Cc][Ee][Nn][Ss][Ee]*; do
      [ -f "$f" ] && cat "$f" && echo && found=1 && break
    done
    [ -n "$found" ] || { echo "no licence file in $dir" >&2; exit 1; }
  done
} > "$out/jssip.LICENSE"
echo "wrote $out/jssip.js ($(wc -c < "$out/jssip.js") bytes) and jssip.LICENSE"
