#!/usr/bin/env bash
# Installs what the tests need beyond Go, only where it is missing:
#   - xdelta3 (Debian package), a third-party VCDIFF decoder for codec/vcdiff;
#   - the node_modules of codec/vcdiff/testdata/jsdecode (Ably's
#     @ably/vcdiff-decoder, pinned by the committed package-lock.json).
# Safe to run again; .ci/run calls it before the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v xdelta3 >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq xdelta3
  else
    echo "xdelta3 is missing: install the Debian package xdelta3 (as root: apt-get install -y xdelta3)" >&2
    exit 1
  fi
fi
echo "xdelta3: $(command -v xdelta3)"

js=codec/vcdiff/testdata/jsdecode
if [ ! -d "$js/node_modules" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "npm is missing: install Node.js (node and npm) to run codec/vcdiff's tests" >&2
    exit 1
  fi
  (cd "$js" && npm ci --no-audit --no-fund)
fi
echo "@ably/vcdiff-decoder: $(node -p "require('./$js/node_modules/@ably/vcdiff-decoder/package.json').version")"
