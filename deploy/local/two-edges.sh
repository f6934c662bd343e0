#!/usr/bin/env bash
# Two edges sharing one backbone on this machine, through Google's Pub/Sub
# emulator: the README's walk-through as one script, with readiness waits
# and cleanup (Ctrl-C, or the end of --check, stops everything it started).
#
#   deploy/local/two-edges.sh          # run, watch edge B, publish on edge A
#   deploy/local/two-edges.sh --check  # the same, non-interactive: exits 0
#                                      # once B's watcher printed A's message
#
# Needs gcloud with the pubsub-emulator component (README). Ports: EMU_PORT
# (8085), A_PORT (8080), B_PORT (8081).
set -euo pipefail
cd "$(dirname "$0")/../.."

EMU_PORT=${EMU_PORT:-8085} A_PORT=${A_PORT:-8080} B_PORT=${B_PORT:-8081}
check=false
[ "${1:-}" = "--check" ] && check=true
command -v gcloud >/dev/null || { echo "gcloud not found: install the Google Cloud SDK with the pubsub-emulator component (see README)" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
killed=() # process groups that needed SIGKILL
cleanup() {
  for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 1 300); do kill -0 -- "-$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$p" 2>/dev/null && killed+=("$p")
  done
  pids=()
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# Each in its own process group, so that cleanup stops it whole (the
# emulator is a Java process under a Python launcher).
start() { setsid "$@" & pids+=($!); }

wait_for() { # what, command...
  local what=$1; shift
  for _ in $(seq 1 600); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "timed out waiting for $what" >&2; return 1
}

echo "building cmd/edge and cmd/watch" >&2
go build -o "$tmp/edge" ./cmd/edge
go build -o "$tmp/watch" ./cmd/watch

start gcloud beta emulators pubsub start --host-port="127.0.0.1:$EMU_PORT" --project=demo --quiet 2>"$tmp/emulator.log"
wait_for "the emulator on :$EMU_PORT" bash -c "exec 3<>/dev/tcp/127.0.0.1/$EMU_PORT"
export PUBSUB_EMULATOR_HOST=127.0.0.1:$EMU_PORT

# Both edges share one API key and one token secret (HS256), so a token
# issued by A is good on B. Made up per run; in production they come from
# your secret store (docs/operations.md, "Access control").
export EDGE_API_KEYS="demo:$(head -c 18 /dev/urandom | base64 | tr -dc A-Za-z0-9)"
export EDGE_TOKEN_HMAC_SECRET="$(head -c 32 /dev/urandom | base64)"
start "$tmp/edge" -addr "127.0.0.1:$A_PORT" -pubsub-project demo -edge-id a 2>"$tmp/a.log"
start "$tmp/edge" -addr "127.0.0.1:$B_PORT" -pubsub-project demo -edge-id b 2>"$tmp/b.log"
wait_for "edge A ready" curl -sf "127.0.0.1:$A_PORT/readyz"
wait_for "edge B ready" curl -sf "127.0.0.1:$B_PORT/readyz"

# A subscriber token from edge A, used on edge B.
token=$(curl -sf -X POST -H "Authorization: Bearer $EDGE_API_KEYS" "127.0.0.1:$A_PORT/v1/tokens" \
  -d '{"subject":"watcher","ttl":3600,"capability":{"odds:*":["subscribe"]}}' | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
[ -n "$token" ] || { echo "no token from edge A"; cat "$tmp/a.log"; exit 1; }
WATCH_TOKEN=$token start "$tmp/watch" -url "ws://127.0.0.1:$B_PORT" -channels odds:match-1 >"$tmp/watch.out" 2>"$tmp/watch.err"
wait_for "the watcher attached" grep -q "attached odds:match-1" "$tmp/watch.err"

curl -s -X POST -H "Authorization: Bearer $EDGE_API_KEYS" "127.0.0.1:$A_PORT/v1/channels/odds:match-1/messages" -d '{"name":"price","data":{"home":2.0}}'
echo
if wait_for "edge B's watcher to print the message" grep -q '"home":2' "$tmp/watch.out"; then
  cat "$tmp/watch.out"
else
  echo "--- edge A log"; cat "$tmp/a.log"; echo "--- edge B log"; cat "$tmp/b.log"; echo "--- watcher"; cat "$tmp/watch.err"
  exit 1
fi
if $check; then
  # Stop everything as Ctrl-C would, then check that it all stopped on
  # SIGTERM alone and left no port taken.
  logs=$(mktemp -d); cp "$tmp"/*.log "$tmp"/watch.* "$logs"/
  cleanup
  trap - EXIT INT TERM
  status=0
  if [ ${#killed[@]} -gt 0 ]; then
    echo "two-edges: process groups ${killed[*]} did not stop within 30 s of SIGTERM and were killed" >&2; status=1
  fi
  for port in "$EMU_PORT" "$A_PORT" "$B_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "two-edges: port $port still taken after the stop" >&2; status=1
    fi
  done
  if [ $status -ne 0 ]; then
    for f in "$logs"/*; do echo "--- $f"; cat "$f"; done >&2
  fi
  rm -rf "$logs"
  [ $status -eq 0 ] && echo "two-edges: ok (everything stopped, ports free)" >&2
  exit $status
fi
echo "edges on :$A_PORT and :$B_PORT, watcher on B (output below); publish on A with curl -H 'Authorization: Bearer $EDGE_API_KEYS'; Ctrl-C stops everything" >&2
tail -f "$tmp/watch.out"
