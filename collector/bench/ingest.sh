#!/usr/bin/env bash
# Collector ingest benchmark on loopback (issue 4). Not a test: prints figures.
#
#   collector/bench/ingest.sh            # after `deploy/local/stack install`
#
# The server under test (collector, or nginx answering `return 204` as the
# ceiling) is pinned to CPU 0, the load generator to CPU 1. Closed-loop
# maximum with wrk; then open-loop latency at half that rate with oha
# (`cargo install oha`, cached like tansu).
#
# The bench starts its own in-memory tansu broker, so the figures measure
# the collector rather than the broker's disk: a fresh one for each row
# (the in-memory engine slows down as records pile up), pinned to CPU 1 with
# the load generator so that CPU 0 is the collector's alone.
#
# This machine's speed drifts by a third or more within minutes (the same
# server, 20 s apart, can answer 45 k or 75 k req/s). So each single-post
# row measures its own reference: nginx's maximum just before and just
# after the collector's (nginx stays up on CPU 0 throughout, idle while the
# collector is loaded), and the row's ratio is the collector's requests/s
# over the mean of those two. The bench runs ROUNDS rounds (an nginx row,
# the single-post rows, nginx again, the batch rows), and the summary gives
# each configuration's median (and range) over the rounds.
#
# CMCD v2 rows post event-mode reports (`application/cmcd`, one report per
# line, hls.js's keys) to /v1/cmcd/{key} in the same rounds: reports/s is
# then comparable with the beacon rows' events/s.
#
# Env: DURATION (default 10s), ROUNDS (default 3), CONNS (default 64),
# VIEWS (distinct views the bodies cycle through, default 64), KS (drain
# worker counts of the beacon rows, default "1 4"), QOE_CACHE_DIR.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$ROOT/collector/bench/common.sh"
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-64}
VIEWS=${VIEWS:-64}
KS=${KS:-1 4}
BROKER_PORT=18992
BROKERS=127.0.0.1:$BROKER_PORT
WORK=$(mktemp -d)
PORT=18980
NGINX_PORT=18981
ADMIN_ADDR=127.0.0.1:18982
trap 'kill $(jobs -p) 2>/dev/null || true; [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true; rm -rf "$WORK"' EXIT

need_tools wrk
(cd "$ROOT" && cargo build --release --quiet --bin qoe-collector)

# Bodies of VIEWS views, timed now, as compact JSON (see bodies.py). wrk
# cycles through them (prepared once, so a request costs it no more); oha
# picks one at random per request (-Z, one body per line).
python3 "$ROOT/collector/bench/bodies.py" "$WORK" "$VIEWS"
cat >"$WORK/post.lua" <<'LUA'
local requests = {}
init = function()
  local prefix, views = os.getenv("BODY"), tonumber(os.getenv("VIEWS"))
  local ext, ctype = os.getenv("EXT"), os.getenv("CTYPE")
  for i = 0, views - 1 do
    local f = io.open(prefix .. "-" .. i .. ext, "r")
    requests[#requests + 1] = wrk.format("POST", nil, {["Content-Type"] = ctype}, f:read("*a"))
    f:close()
  end
end
local next = 0
request = function()
  next = next % #requests + 1
  return requests[next]
end
LUA
nginx_conf "$WORK/nginx.conf" "$WORK" "$NGINX_PORT"
taskset -c 0 nginx -c "$WORK/nginx.conf"
NGINX_URL=http://127.0.0.1:$NGINX_PORT/
sleep 0.5

# The body files' extension and content type: CMCD for cmcd-* bodies.
body_ext() { case "$(basename "$1")" in cmcd-*) echo .txt ;; *) echo .json ;; esac; }
body_type() { case "$(basename "$1")" in cmcd-*) echo application/cmcd ;; *) echo application/json ;; esac; }

# wrk_run URL BODY_PREFIX -> "req/s 2xx_req/s p50_ms p99_ms non2xx"
wrk_run() {
  BODY=$2 VIEWS=$VIEWS EXT=$(body_ext "$2") CTYPE=$(body_type "$2") taskset -c 1 wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s "$WORK/post.lua" "$1" >"$WORK/wrk.out"
  python3 - "$WORK/wrk.out" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
def ms(p):
    m = re.search(r"\s%s%%\s+([\d.]+)(us|ms|s)" % p, t)
    v, u = float(m.group(1)), m.group(2)
    return v / 1000 if u == "us" else v * 1000 if u == "s" else v
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
bad = int(non2xx.group(1)) if non2xx else 0
total = int(re.search(r"(\d+) requests in", t).group(1))
ok_rps = rps * (total - bad) / total
print(f"{rps:.0f} {ok_rps:.0f} {ms(50):.2f} {ms(99):.2f} {bad}")
PY
}
# oha_run URL BODY_PREFIX RATE -> "p50_ms p99_ms non2xx [(why)]"
oha_run() {
  local body=(-Z "$2.lines")
  [ -f "$2.lines" ] || body=(-D "$2-0$(body_ext "$2")")
  taskset -c 1 "$OHA" --no-tui -z "$DURATION" -w -c "$CONNS" -q "$3" --latency-correction -m POST \
    -H "content-type: $(body_type "$2")" "${body[@]}" --output-format json "$1" >"$WORK/oha.json" 2>/dev/null
  python3 - "$WORK/oha.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
p = d["latencyPercentiles"]
# Answers other than 2xx by status, and requests that got none by oha's
# reason (-w waits for those in flight at the end, so none is cut off).
bad = {code: n for code, n in d["statusCodeDistribution"].items() if not code.startswith("2")}
bad.update(d.get("errorDistribution", {}))
why = "; ".join(f"{k}: {n}" for k, n in bad.items())
print(f"{p['p50']*1000:.2f} {p['p99']*1000:.2f} {sum(bad.values())}{f' ({why})' if why else ''}")
PY
}

# refusals: the collector's non-2xx answers by reason, from its /metrics
# ("-" for nginx, which has none).
refusals() {
  [ -n "${ADMIN:-}" ] || { echo "-"; return; }
  curl -s "http://$ADMIN/metrics" | python3 -c '
import re, sys
drops = {m.group(1): int(float(m.group(2))) for m in
         re.finditer(r"qoe_collector_drops_total\{reason=\"(\w+)\"\} (\S+)", sys.stdin.read())}
print(", ".join(f"{k} {v}" for k, v in sorted(drops.items()) if v) or "none")'
}

# row NAME URL BODY EVENTS_PER_REQUEST [paired]: prints one table row and
# keeps its figures (tab-separated) in $WORK/rows for the summary. With
# `paired`, nginx's maximum is measured just before and just after this
# row's, as its reference.
row() {
  local before=- after=- around=- ratio=-
  [ "${5:-}" = paired ] && read -r _ before _ < <(wrk_run "$NGINX_URL" "$3")
  read -r rps ok p50 p99 bad < <(wrk_run "$2" "$3")
  why=$(refusals)
  if [ "${5:-}" = paired ]; then
    read -r _ after _ < <(wrk_run "$NGINX_URL" "$3")
    around=$(( (${before%.*} + ${after%.*}) / 2 ))
    ratio=$(python3 -c "print(f'{$ok / $around:.2f}')")
  fi
  read -r hp50 hp99 hbad < <(oha_run "$2" "$3" $((${ok%.*} / 2)))
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s (%s) | %s | %s / %s | %s |\n' "$round" "$1" "$rps" "$(( ${ok%.*} * $4 ))" \
    "$p50" "$p99" "$hp50" "$hp99" "$bad" "$why" "$hbad" "$before" "$after" "$ratio"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$1" "$ok" "$(( ${ok%.*} * $4 ))" "$hp99" "$around" >>"$WORK/rows"
}

nginx_row() { row "nginx return 204, single" "$NGINX_URL" "$WORK/single" 1; }
# collector_row K NAME BODY EVENTS [paired]: a fresh broker and collector,
# one row (CMCD bodies go to the CMCD route).
collector_row() {
  local route=beacon
  case "$(basename "$3")" in cmcd-*) route=cmcd ;; esac
  start_broker "$BROKERS" taskset -c 1
  ADMIN=$ADMIN_ADDR
  [ -n "${RDKAFKA_CONFIG:-}" ] && extra=(--config "$RDKAFKA_CONFIG") || extra=()
  QOE_KAFKA__BROKERS=$BROKERS QOE_KAFKA__TOPIC=$TOPIC QOE_HTTP__LISTEN=127.0.0.1:$PORT \
  QOE_ADMIN__LISTEN=$ADMIN QOE_PRODUCER__WORKERS=$1 QOE_LOG__LEVEL=warn QOE_PRODUCER__SPILL_DIR="$WORK/spill-$1-$RANDOM" \
    taskset -c 0 "$ROOT/target/release/qoe-collector" "${extra[@]}" &
  pid=$!
  for _ in $(seq 50); do curl -s -o /dev/null -X OPTIONS "http://127.0.0.1:$PORT/v1/beacon" && break; sleep 0.2; done
  # Warm-up: one batch delivered to the broker before the load, as a load
  # balancer's health checks give a real node time to connect. Otherwise
  # the flood's first few hundred ms (the idempotent producer obtaining its
  # id, which /readyz does not wait for) fill the backlog and are shed, and
  # the row mixes start-up with steady state.
  curl -s -o /dev/null -X POST -H 'content-type: application/json' \
    --data-binary @"$WORK/batch-0.json" "http://127.0.0.1:$PORT/v1/beacon/dev-key"
  for _ in $(seq 50); do
    curl -s "http://$ADMIN/metrics" | grep -q '^qoe_collector_delivered_total [1-9]' && break
    sleep 0.2
  done
  row "collector K=$1, $2" "http://127.0.0.1:$PORT/v1/$route/dev-key" "$3" "$4" "${5:-}"
  kill -TERM $pid; wait $pid || true
  unset ADMIN
  stop_broker
}
echo "| round | server (CPU 0) | requests/s | accepted events/s | p50 ms | p99 ms | p50 ms @ ½ rate | p99 ms @ ½ rate | non-2xx at max (why) | non-2xx or errors @ ½ rate | nginx req/s just before / after | × nginx |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for round in $(seq "$ROUNDS"); do
  nginx_row
  for k in $KS; do collector_row "$k" single "$WORK/single" 1 paired; done
  collector_row 1 "CMCD single report" "$WORK/cmcd-single" 1 paired
  nginx_row
  for k in $KS; do collector_row "$k" "20-event batch" "$WORK/batch" 20; done
  collector_row 1 "CMCD 20-report batch" "$WORK/cmcd-batch" 20
done

# The summary: per configuration, the median over the rounds and the range;
# single posts as a ratio to the mean of nginx just before and after them.
python3 - "$WORK/rows" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
def spread(values, fmt):
    values = sorted(values)
    return f"{fmt(statistics.median(values))} ({fmt(values[0])}–{fmt(values[-1])})"
print()
print("| configuration | requests/s | accepted events/s | × nginx just before and after | p99 ms @ ½ rate |")
print("| --- | --- | --- | --- | --- |")
for name in dict.fromkeys(row[1] for row in rows):
    mine = [row for row in rows if row[1] == name]
    rps = [float(row[2]) for row in mine]
    events = [float(row[3]) for row in mine]
    ratio = [float(row[2]) / float(row[5]) for row in mine if row[5] != "-"]
    p99 = [float(row[4]) for row in mine]
    print(f"| {name} | {spread(rps, lambda v: f'{v / 1000:.1f} k')} "
          f"| {spread(events, lambda v: f'{v / 1000:.0f} k')} "
          f"| {spread(ratio, lambda v: f'{v:.2f}') if ratio else '–'} "
          f"| {spread(p99, lambda v: f'{v:.2f}')} |")
PY
