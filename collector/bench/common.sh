# Sourced by the collector benches (ingest.sh, instructions.sh): where the
# cached tools are, the bench broker, and the reference server.
CACHE_DIR=${QOE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/qoe-pipeline}
OHA="$CACHE_DIR/oha/bin/oha"
TANSU="$CACHE_DIR/tansu-0.6.0-libsql-dynostore-postgres/bin/tansu"
TOPIC=bench.heartbeats

# need_tools CMD...: stops with what to install unless each CMD (and nginx)
# is on PATH; builds oha into the cache once.
need_tools() {
  local cmd
  for cmd in nginx "$@"; do
    command -v "$cmd" >/dev/null || { echo "install $cmd (apt-get install ${cmd/nginx/nginx-light})"; exit 1; }
  done
  [ -x "$OHA" ] || cargo install oha --locked --root "$CACHE_DIR/oha" --quiet
}

# start_broker HOST:PORT [LAUNCHER...]: a fresh in-memory tansu on HOST:PORT
# with $TOPIC (8 partitions), started through LAUNCHER if given (e.g.
# `taskset -c 1`); its log in $WORK, its pid in broker_pid. In-memory, so
# the figures measure the collector rather than the broker's disk.
start_broker() {
  local addr=$1
  shift
  "$@" "$TANSU" broker --listener-url "tcp://$addr" --advertised-listener-url "tcp://$addr" \
    --storage-engine memory://tansu/ >"$WORK/tansu.log" 2>&1 &
  broker_pid=$!
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/${addr%:*}/${addr#*:}") 2>/dev/null && break; sleep 0.2; done
  "$TANSU" topic create "$TOPIC" --partitions 8 --broker "tcp://$addr" >/dev/null 2>&1 || true
}
stop_broker() { kill "$broker_pid" 2>/dev/null; wait "$broker_pid" 2>/dev/null || true; }

# nginx_conf FILE DIR PORT [foreground]: writes an nginx configuration that
# answers every request with `204` on 127.0.0.1:PORT from one worker, its
# pid and error log in DIR; `foreground` keeps it in the foreground as one
# process (for valgrind), otherwise it daemonizes.
nginx_conf() {
  local mode="daemon on;"
  [ "${4:-}" = foreground ] && mode=$'daemon off;\nmaster_process off;'
  cat >"$1" <<NGINX
worker_processes 1;
$mode
pid $2/nginx.pid;
error_log $2/nginx.err;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:$3; location / { return 204; } } }
NGINX
}
