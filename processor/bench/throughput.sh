#!/usr/bin/env bash
# Processor throughput benchmark (issue 5). Not a test: prints figures.
#
#   deploy/local/stack up --infra        # the two ClickHouse shards (ports 8123/8124, 9000/9001)
#   processor/bench/throughput.sh        # HEARTBEATS=2000000 by default
#
# 1. Starts its own in-memory tansu broker and fills a topic (8 partitions)
#    with HEARTBEATS realistic heartbeats from `qoe-loadgen generate`.
# 2. Runs `qoe-processor` pinned to CPU 0 on a fresh database and times it
#    from its first record to the last row acknowledged by ClickHouse, with
#    the CPU seconds it used.
# 3. The ceiling, same run: exports the rows it wrote (Native format) and
#    times `clickhouse-client` inserting them into a second fresh database
#    with the same tables (materialized views included), shard by shard.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE_DIR=${QOE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/qoe-pipeline}
TANSU="$CACHE_DIR/tansu-0.6.0-libsql-dynostore-postgres/bin/tansu"
N=${HEARTBEATS:-2000000}
BROKER_PORT=18993
ADMIN_PORT=18994
BROKERS=127.0.0.1:$BROKER_PORT
SHARDS=${SHARDS:-http://127.0.0.1:8123,http://127.0.0.1:8124}
TCP_PORTS=${TCP_PORTS:-"9000 9001"}
DB=bench_$(date +%s)
WORK=$(mktemp -d)
BIN="$ROOT/target/release"
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  for db in "$DB" "${DB}_ceiling"; do
    for url in ${SHARDS//,/ }; do curl -s "$url/" --data-binary "DROP DATABASE IF EXISTS $db" >/dev/null || true; done
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

(cd "$ROOT" && cargo build --release --quiet --bin qoe-processor --bin qoe-loadgen --bin qoe-migrate)
"$TANSU" broker --listener-url "tcp://$BROKERS" --advertised-listener-url "tcp://$BROKERS" \
  --storage-engine memory://tansu/ >"$WORK/tansu.log" 2>&1 &
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$BROKER_PORT") 2>/dev/null && break; sleep 0.2; done
"$TANSU" topic create bench --partitions 8 --broker "tcp://$BROKERS" >/dev/null
for db in "$DB" "${DB}_ceiling"; do
  QOE_CLICKHOUSE__SHARDS=$SHARDS QOE_CLICKHOUSE__DATABASE=$db "$BIN/qoe-migrate" >/dev/null
done

echo "filling the topic with $N heartbeats" >&2
QOE_KAFKA__BROKERS=$BROKERS QOE_KAFKA__TOPIC=bench "$BIN/qoe-loadgen" generate --heartbeats "$N" 2>/dev/null

QOE_KAFKA__BROKERS=$BROKERS QOE_KAFKA__TOPIC=bench QOE_KAFKA__DEAD_LETTER_TOPIC=bench \
QOE_CLICKHOUSE__SHARDS=$SHARDS QOE_CLICKHOUSE__DATABASE=$DB QOE_PROCESSOR__GROUP=bench-$DB \
QOE_PROCESSOR__BATCH_ROWS=${BATCH_ROWS:-100000} QOE_PROCESSOR__BATCH_INTERVAL=1s \
QOE_ADMIN__LISTEN=127.0.0.1:$ADMIN_PORT QOE_LOG__LEVEL=warn \
  taskset -c 0 "$BIN/qoe-processor" &
pid=$!
metric() { curl -s "127.0.0.1:$ADMIN_PORT/metrics" | awk -v m="$1" '$1 ~ "^"m {s += $2} END {print s + 0}'; }
t0=""; last=0
while :; do
  sleep 0.25
  records=$(metric qoe_processor_records_total)
  [ -z "$t0" ] && [ "${records%.*}" -gt 0 ] && t0=$(date +%s.%N)
  written=$(metric qoe_processor_rows_written_total)
  if [ "${written%.*}" -ge "$N" ]; then t1=$(date +%s.%N); break; fi
  if [ "$(date +%s)" -ge $((last + 5)) ]; then last=$(date +%s); echo "processor: $records read, $written written" >&2; fi
done
read -r utime stime < <(awk '{print $14, $15}' "/proc/$pid/stat")
cpu=$(echo "($utime + $stime) / $(getconf CLK_TCK)" | bc -l)
kill -TERM $pid; wait $pid || true
wall=$(echo "$t1 - $t0" | bc -l)

rows=0; ceil_time=0
for port in $TCP_PORTS; do
  clickhouse-client --port "$port" --query "SELECT * FROM $DB.heartbeats_local FORMAT Native" >"$WORK/rows.native"
  n=$(clickhouse-client --port "$port" --query "SELECT count() FROM $DB.heartbeats_local")
  s=$(date +%s.%N)
  clickhouse-client --port "$port" --query "INSERT INTO ${DB}_ceiling.heartbeats_local FORMAT Native" <"$WORK/rows.native"
  e=$(date +%s.%N)
  rows=$((rows + n)); ceil_time=$(echo "$ceil_time + $e - $s" | bc -l)
done

printf '| heartbeats | processor wall s | processor CPU s | heartbeats/s | heartbeats/s per CPU s | clickhouse-client rows/s (ceiling) | processor ÷ ceiling |\n'
printf '| --- | --- | --- | --- | --- | --- | --- |\n'
printf '| %d | %.1f | %.1f | %.0f | %.0f | %.0f | %.2f |\n' "$N" "$wall" "$cpu" \
  "$(echo "$N / $wall" | bc -l)" "$(echo "$N / $cpu" | bc -l)" \
  "$(echo "$rows / $ceil_time" | bc -l)" "$(echo "($N / $wall) / ($rows / $ceil_time)" | bc -l)"
