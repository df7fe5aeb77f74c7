#!/usr/bin/env bash
# Bytes on disk per event, after a load run on a local stack: ClickHouse's
# active parts of every table of database qoe on both shards (one replica),
# divided by the raw heartbeat rows (one per event), and the broker's
# SQLite files divided by the records of the heartbeat topic. `qoe-loadgen
# plan` reads the two totals from docs/benchmarks.md ("Storage per event").
#
#   QOE_STACK_DIR=... QOE_STACK_PORT_OFFSET=N loadgen/bench/storage.sh
# (after e.g. `qoe-loadgen run --viewers 20000 --ramp 20s --duration 120s`)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OFF=${QOE_STACK_PORT_OFFSET:-0}
STATE=${QOE_STACK_DIR:-$ROOT/.state/local}
shards=("http://127.0.0.1:$((8123 + OFF))" "http://127.0.0.1:$((8124 + OFF))")
q() { curl -sS --fail-with-body "$1" --data-binary "$2"; }

events=0
declare -A bytes rows
for s in "${shards[@]}"; do
  q "$s" "SYSTEM FLUSH LOGS" >/dev/null || true
  n=$(q "$s" "SELECT count() FROM qoe.heartbeats_local")
  events=$((events + n))
  while IFS=$'\t' read -r table b r; do
    bytes[$table]=$(( ${bytes[$table]:-0} + b ))
    rows[$table]=$(( ${rows[$table]:-0} + r ))
  done < <(q "$s" "SELECT table, sum(bytes_on_disk), sum(rows) FROM system.parts WHERE active AND database = 'qoe' GROUP BY table ORDER BY table FORMAT TabSeparated")
done
[ "$events" -gt 0 ] || { echo "storage.sh: no heartbeats stored; run a load first" >&2; exit 1; }

echo "events (raw heartbeat rows): $events"
echo
echo "| table | rows | bytes on disk | bytes per event |"
echo "| --- | --- | --- | --- |"
total=0
for t in $(printf '%s\n' "${!bytes[@]}" | sort); do
  total=$((total + bytes[$t]))
  printf '| %s | %s | %s | %.1f |\n' "$t" "${rows[$t]}" "${bytes[$t]}" "$(echo "${bytes[$t]} / $events" | bc -l)"
done
printf '| ClickHouse, all tables (one replica) | | %s | %.1f |\n' "$total" "$(echo "$total / $events" | bc -l)"

db="$STATE/broker/tansu.db"
if [ -f "$db" ]; then
  broker=$(du -cb "$db"* | tail -n1 | cut -f1)
  records=$(sqlite3 "$db" "SELECT count(*) FROM record r JOIN topition p ON r.topition = p.id JOIN topic t ON p.topic = t.id WHERE t.name = 'qoe.heartbeats'" 2>/dev/null || echo 0)
  if [ "$records" -gt 0 ]; then
    printf '| broker (tansu SQLite), %s records | | %s | %.1f |\n' "$records" "$broker" "$(echo "$broker / $events" | bc -l)"
  fi
fi
