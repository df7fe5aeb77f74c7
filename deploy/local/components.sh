# The local stack's components: how deploy/local/stack starts the broker,
# ClickHouse, ZooKeeper and Prometheus, and creates the topics. Sourced by
# the stack after its configuration; not run on its own.
# shellcheck shell=bash

start_broker() {
  mkdir -p "$STATE/broker"
  ensure_free broker "$BROKER_PORT"
  # tansu resolves a sqlite:// path against its working directory.
  local storage="sqlite://tansu.db"
  case $BROKER_STORAGE in
    sqlite) log "broker storage: sqlite (durable; measured here: $SQLITE_MEASURED)" ;;
    memory) storage="memory://tansu/"; log "broker storage: memory (fast; records are lost when it stops)" ;;
    *) die "QOE_STACK_BROKER_STORAGE must be sqlite or memory, not '$BROKER_STORAGE'" ;;
  esac
  start broker env -C "$STATE/broker" "$TANSU" broker \
    --listener-url "tcp://127.0.0.1:$BROKER_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$BROKER_PORT" \
    --storage-engine "$storage"
  wait_port broker "$BROKER_PORT"
  [ "$BROKER_STORAGE" = sqlite ] && index_headers
}

# tansu 0.6.0's SQLite schema has no index on record headers, and its fetch
# looks each returned record's headers up: a full scan of the header table
# per record (18 ms each with 183 k header rows), which stopped the broker
# once a consumer fell behind. The collector sends no headers, but the
# dead-letter topic's records have some, and a broker may hold old ones.
index_headers() {
  local db="$STATE/broker/tansu.db" i
  for ((i = 0; i < 50; i++)); do
    if sqlite3 "$db" "SELECT 1 FROM sqlite_master WHERE name = 'header'" 2>/dev/null | grep -q 1; then
      sqlite3 "$db" "PRAGMA busy_timeout = 5000; CREATE INDEX IF NOT EXISTS qoe_header_record ON header (topition, offset_id)" >/dev/null \
        || die "cannot index the broker's header table in $db"
      return 0
    fi
    sleep 0.1
  done
  die "the broker did not create its tables in $db"
}

# clickhouse_server NAME: "SHARD REPLICA HTTP TCP INTERSERVER" of a server.
clickhouse_server() {
  case $1 in
    clickhouse1) echo "1 1 $CH1_HTTP $CH1_TCP $CH1_INTER" ;;
    clickhouse2) echo "2 1 $CH2_HTTP $CH2_TCP $CH2_INTER" ;;
    clickhouse1b) echo "1 2 $CH1B_HTTP $CH1B_TCP $CH1B_INTER" ;;
    clickhouse2b) echo "2 2 $CH2B_HTTP $CH2B_TCP $CH2B_INTER" ;;
    *) die "no ClickHouse server named $1" ;;
  esac
}

start_clickhouse() { # NAME
  local name=$1 dir="$STATE/$1" shard http tcp inter
  read -r shard _ http tcp inter <<<"$(clickhouse_server "$name")"
  ensure_free "$name" "$http" "$tcp" "$inter"
  mkdir -p "$dir"/{data,tmp,user_files,format_schemas}
  # Every server knows every replica of both shards (remote_servers).
  local s other its_shard its_tcp zookeeper="" replicas=("" "" "")
  for s in 1 2; do
    for other in "${CLICKHOUSE[@]}"; do
      read -r its_shard _ _ its_tcp _ <<<"$(clickhouse_server "$other")"
      [ "$its_shard" = "$s" ] && replicas[s]+="<replica><host>127.0.0.1</host><port>$its_tcp</port></replica>"
    done
  done
  [ $REPLICATED = 1 ] && zookeeper="<zookeeper><node><host>127.0.0.1</host><port>$ZK_PORT</port></node></zookeeper>"
  local config; config=$(<"$HERE/clickhouse/config.xml.in")
  config=${config//@STATE@/$dir}; config=${config//@HTTP_PORT@/$http}; config=${config//@TCP_PORT@/$tcp}
  config=${config//@INTERSERVER_PORT@/$inter}; config=${config//@SHARD@/$shard}; config=${config//@REPLICA@/$name}
  config=${config//@SHARD1_REPLICAS@/${replicas[1]}}; config=${config//@SHARD2_REPLICAS@/${replicas[2]}}
  config=${config//@ZOOKEEPER@/$zookeeper}
  printf '%s\n' "$config" >"$dir/config.xml"
  cp "$HERE/clickhouse/users.xml" "$dir/users.xml"
  start "$name" clickhouse-server --config-file="$dir/config.xml"
}

wait_clickhouse() { local http; read -r _ _ http _ <<<"$(clickhouse_server "$1")"; wait_for "$1" "http://127.0.0.1:$http/ping"; }

# ZooKeeper (Debian's package, run standalone) for the replicated tables.
start_zookeeper() {
  local dir="$STATE/zookeeper"
  ensure_free zookeeper "$ZK_PORT"
  mkdir -p "$dir/data"
  cat >"$dir/zoo.cfg" <<EOF
tickTime=2000
dataDir=$dir/data
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr
maxClientCnxns=0
EOF
  start zookeeper java -Xmx256m -cp /etc/zookeeper/conf:/usr/share/java/zookeeper.jar \
    org.apache.zookeeper.server.ZooKeeperServerMain "$dir/zoo.cfg"
  wait_port zookeeper "$ZK_PORT"
  # Its port opens before it serves sessions (it first loads its data);
  # ClickHouse 18.16 exits at start when its ZooKeeper handshake fails.
  local i
  for ((i = 0; i < 300; i++)); do zookeeper_ok && return 0; sleep 0.2; done
  die "ZooKeeper did not start serving within 60s; see $STATE/zookeeper/zookeeper.log"
}

# Serving sessions: `srvr` answers with its mode, not "not currently serving".
zookeeper_ok() {
  local answer=""
  exec 4<>"/dev/tcp/127.0.0.1/$ZK_PORT" 2>/dev/null || return 1
  printf srvr >&4; answer=$(timeout 2 cat <&4 || true); exec 4>&-
  [[ "$answer" == *"Mode: "* ]]
}

# Prometheus scraping the services' admin /metrics, evaluating
# deploy/prometheus/rules.yml (each alert's page: deploy/runbooks/alerts/).
start_prometheus() {
  local dir="$STATE/prometheus"
  ensure_free prometheus "$PROMETHEUS_PORT"
  mkdir -p "$dir/data"
  sed -e "s#@RULES@#$ROOT/deploy/prometheus/rules.yml#" -e "s/@COLLECTOR_ADMIN@/$COLLECTOR_ADMIN/" \
      -e "s/@PROCESSOR_ADMIN@/$PROCESSOR_ADMIN/" -e "s/@API_ADMIN@/$API_ADMIN/" \
      -e "s/@PROMETHEUS_PORT@/$PROMETHEUS_PORT/" \
      "$ROOT/deploy/prometheus/prometheus.yml.in" >"$dir/prometheus.yml"
  start prometheus prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
    --storage.tsdb.retention.time=15d --web.listen-address="127.0.0.1:$PROMETHEUS_PORT"
  wait_for prometheus "http://127.0.0.1:$PROMETHEUS_PORT/-/ready"
}

create_topics() {
  local existing topic
  existing=$("$TANSU" topic list --broker "tcp://$BROKERS" 2>/dev/null || true)
  for topic in "$TOPIC" "$DLQ_TOPIC"; do
    if grep -qw -- "$topic" <<<"$existing"; then continue; fi
    "$TANSU" topic create "$topic" --partitions "$PARTITIONS" --broker "tcp://$BROKERS" >/dev/null \
      || die "cannot create topic $topic on $BROKERS"
    log "created topic $topic ($PARTITIONS partitions)"
  done
}
