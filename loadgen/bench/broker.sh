#!/usr/bin/env bash
# Broker storage engines compared (issue 22). Not a test: prints figures.
#
#   loadgen/bench/broker.sh                 # ENGINES="memory sqlite postgres", RECORDS=30000
#
# For each engine: starts a private tansu on loopback in a fresh directory,
# creates an 8-partition topic, and has `qoe-loadgen generate` produce
# RECORDS records as fast as the broker acknowledges them (lz4, acks=all,
# linger 50 ms, non-idempotent as the local stack runs it), twice — without
# and with the `qoe-format` header the collector sends (tansu stores each
# header as a row of its own). Prints records/s and produce latency
# p50/p99. Then restarts the broker and asks for the topic's metadata
# through the Kafka protocol (`qoe-probe`): does the topic survive?
# Nothing else should run: the engine's CPU is the limit being measured.
#
# postgres: a throwaway PostgreSQL cluster (Debian's `postgresql`; initdb as
# the `postgres` user) on PGPORT, with the tables of tansu-postgres.sql
# beside this script (tansu ships no PostgreSQL schema), fsync on.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE_DIR=${QOE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/qoe-pipeline}
TANSU="$CACHE_DIR/tansu-0.6.0-libsql-dynostore-postgres/bin/tansu"
ENGINES=${ENGINES:-"memory sqlite postgres"}
N=${RECORDS:-30000}
PORT=${PORT:-28092}
PGPORT=${PGPORT:-25433}
BROKERS=127.0.0.1:$PORT
BIN="$ROOT/target/release"
WORK=$(mktemp -d)
PID=""
PGDATA=""
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
pg() { runuser -u postgres -- "$PGBIN/$1" "${@:2}"; }
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null
  [ -n "$PGDATA" ] && pg pg_ctl -D "$PGDATA" -m immediate stop >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
[ -x "$TANSU" ] || { echo "tansu missing: run deploy/local/stack install" >&2; exit 1; }

(cd "$ROOT" && cargo build --release --quiet --bin qoe-loadgen --bin qoe-probe)

start_broker() { # STORAGE DIR
  (cd "$2" && exec "$TANSU" broker --listener-url "tcp://$BROKERS" \
    --advertised-listener-url "tcp://$BROKERS" --storage-engine "$1" >>broker.log 2>&1) &
  PID=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return; sleep 0.1; done
  echo "broker did not start" >&2; exit 1
}
stop_broker() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""; }

printf '| engine | header | records/s | produce p50 | produce p99 | not acked | topic after restart |\n'
printf '| --- | --- | --- | --- | --- | --- | --- |\n'
for engine in $ENGINES; do
  case $engine in
    memory) storage=memory://tansu/ ;;
    sqlite) storage=sqlite://tansu.db ;;
    postgres) storage="postgres://postgres@127.0.0.1:$PGPORT/tansu"
      [ -n "$PGBIN" ] || { echo "install postgresql for the postgres engine" >&2; exit 1; } ;;
    *) echo "unknown engine $engine (memory, sqlite, postgres)" >&2; exit 1 ;;
  esac
  for header in "" --format-header; do
    dir="$WORK/$engine${header:+-h}"; mkdir -p "$dir"
    if [ "$engine" = postgres ]; then
      PGDATA="$dir/pg"; mkdir -p "$PGDATA"; chown postgres "$PGDATA"; chmod 755 "$WORK" "$dir"
      pg initdb -D "$PGDATA" -A trust -U postgres >/dev/null
      pg pg_ctl -D "$PGDATA" -o "-p $PGPORT -k $PGDATA -c listen_addresses=127.0.0.1" -l "$PGDATA/log" -w start >/dev/null
      pg psql -q -h 127.0.0.1 -p "$PGPORT" -U postgres -c 'create database tansu'
      pg psql -q -h 127.0.0.1 -p "$PGPORT" -U postgres -d tansu -f - <"$ROOT/loadgen/bench/tansu-postgres.sql"
    fi
    start_broker "$storage" "$dir"
    topic=bench
    "$TANSU" topic create "$topic" --partitions 8 --broker "tcp://$BROKERS" >/dev/null
    out=$(QOE_KAFKA__BROKERS=$BROKERS QOE_KAFKA__TOPIC=$topic QOE_KAFKA__IDEMPOTENT_PRODUCER=false \
      "$BIN/qoe-loadgen" generate --heartbeats "$N" $header 2>/dev/null | tail -n1)
    stop_broker
    start_broker "$storage" "$dir"
    if "$BIN/qoe-probe" kafka --brokers "$BROKERS" --timeout 5s "$topic" >/dev/null 2>&1; then
      survived=yes; else survived=no; fi
    stop_broker
    if [ -n "$PGDATA" ]; then pg pg_ctl -D "$PGDATA" -m fast stop >/dev/null; PGDATA=""; fi
    rate=$(sed -E 's/.*\(([0-9]+)\/s\).*/\1/' <<<"$out")
    p50=$(sed -E 's/.*p50 ([0-9]+) ms.*/\1/' <<<"$out")
    p99=$(sed -E 's/.*p99 ([0-9]+) ms.*/\1/' <<<"$out")
    lost=$(sed -E 's/.*; ([0-9]+) not acknowledged.*/\1/' <<<"$out")
    printf '| %s | %s | %s | %s ms | %s ms | %s | %s |\n' "$engine" "$( [ -n "$header" ] && echo yes || echo no )" \
      "$rate" "$p50" "$p99" "$lost" "$survived"
  done
done
