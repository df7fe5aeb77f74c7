# Sourced by the collector benches: the reference server's configuration.
#
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
