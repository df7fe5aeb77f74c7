#!/usr/bin/env bash
# User-space instructions per request, counted by valgrind's callgrind: the
# collector (K=1 drain worker) for a single-event post, a 20-event SDK
# batch, one CMCD v2 report and 20 CMCD reports of a session, and nginx
# answering `return 204` as the reference. Not a test:
# prints figures.
#
#   collector/bench/instructions.sh      # after `deploy/local/stack install`
#
# Why: on a shared, noisy machine requests/s of the same build vary by a
# third from run to run, while instruction counts repeat to within a
# fraction of a percent. They miss the kernel's share (the loopback TCP
# work, a third or more of the collector's core under load) and cache
# effects, so they complement `ingest.sh`, not replace it.
#
# Each server runs under callgrind (some 50x slower); after WARMUP requests
# its counters are zeroed, then REQUESTS requests are posted with oha and
# the counters dumped. The broker is a fresh in-memory tansu.
#
# Env: REQUESTS (default 2000), WARMUP (default 200), QOE_CACHE_DIR.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$ROOT/collector/bench/common.sh"
REQUESTS=${REQUESTS:-2000}
WARMUP=${WARMUP:-200}
BROKERS=127.0.0.1:18993
PORT=18983
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

need_tools valgrind
[ -x "$TANSU" ] || { echo "run deploy/local/stack install first (tansu)"; exit 1; }
(cd "$ROOT" && cargo build --release --quiet --bin qoe-collector)
python3 "$ROOT/collector/bench/bodies.py" "$WORK" 1

post() { # url body n
  local type=application/json
  case "$(basename "$2")" in cmcd-*) type=application/cmcd ;; esac
  "$OHA" --no-tui -n "$3" -c 8 -m POST -H "content-type: $type" -D "$2" "$1" >/dev/null 2>&1
}
wait_up() { # url
  for _ in $(seq 150); do curl -s -o /dev/null -X OPTIONS "$1" && return; sleep 0.2; done
  echo "server at $1 did not come up"; exit 1
}
# count PID URL BODY -> instructions per request after the warm-up
count() {
  post "$2" "$3" "$WARMUP"
  callgrind_control --zero "$1" >/dev/null 2>&1
  post "$2" "$3" "$REQUESTS"
  callgrind_control --dump=measured "$1" >/dev/null 2>&1
  local total=0 n
  for f in "$WORK"/cg.out.*; do
    grep -q '^desc: Trigger: dump measured' "$f" 2>/dev/null || continue
    n=$(awk '/^summary:|^totals:/{print $2; exit}' "$f")
    total=$((total + n))
  done
  rm -f "$WORK"/cg.out.*
  echo $((total / REQUESTS))
}

echo "| server | body | instructions per request (user space) |"
echo "| --- | --- | --- |"
nginx_conf "$WORK/nginx.conf" "$WORK" "$PORT" foreground
valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out.%p" nginx -c "$WORK/nginx.conf" 2>"$WORK/vg.log" &
server=$!
wait_up "http://127.0.0.1:$PORT/"
echo "| nginx return 204 | single | $(count $server "http://127.0.0.1:$PORT/" "$WORK/single-0.json") |"
kill $server; wait $server 2>/dev/null || true

start_broker "$BROKERS"
QOE_KAFKA__BROKERS=$BROKERS QOE_KAFKA__TOPIC=$TOPIC QOE_HTTP__LISTEN=127.0.0.1:$PORT \
QOE_ADMIN__LISTEN=127.0.0.1:18984 QOE_PRODUCER__WORKERS=1 QOE_LOG__LEVEL=warn QOE_PRODUCER__SPILL_DIR="$WORK/spill" \
  valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out.%p" "$ROOT/target/release/qoe-collector" 2>"$WORK/vg.log" &
server=$!
url="http://127.0.0.1:$PORT/v1/beacon/dev-key"
wait_up "$url"
for body in single batch; do
  echo "| collector K=1 | $body | $(count $server "$url" "$WORK/$body-0.json") |"
done
for body in cmcd-single cmcd-batch; do
  echo "| collector K=1 | $body | $(count $server "${url/beacon/cmcd}" "$WORK/$body-0.txt") |"
done
kill -INT $server; wait $server 2>/dev/null || true
