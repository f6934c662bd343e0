#!/usr/bin/env bash
# Regenerates every result of the load-test suite.
#
#   bench/run.sh            full run   -> bench/results/full/
#   bench/run.sh quick      smoke run  -> bench/results/quick/  (about two minutes)
#   bench/run.sh full -profile -targets ours,peer   (extra flags go to cmd/loadtest)
set -euo pipefail
cd "$(dirname "$0")"
mode=${1:-full}
[ $# -gt 0 ] && shift
bin="$(mktemp -d)/loadtest"
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./cmd/loadtest
case "$mode" in
quick) "$bin" -scenario all -quick "$@" ;;
full) "$bin" -scenario all "$@" ;;
*) echo "usage: $0 [quick|full] [loadtest flags]" >&2; exit 2 ;;
esac
