# Shared by bench/run.sh and bench/instructions.sh (sourced; the caller defines `die`): free
# ports, waiting for a server, and the two configurations both measure, so a figure from one
# script compares with the other's.

# Stops every process in PIDS, then removes WORK (kept with BENCH_KEEP=1). Set as the EXIT trap.
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
}

# Installs the Debian packages named (apt-get, as root); otherwise names them and stops. A
# caller passes only the ones it found missing; none: nothing happens.
install_missing() { # PACKAGE...
  (( $# )) || return 0
  printf '\n== installing %s (apt-get)\n' "$*" >&2
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null \
      || die "apt-get install $* failed"
  else
    die "missing $*: install them (apt-get install -y $*) and run again"
  fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits until URL answers 2xx, at most TRIES tenths of a second (default 300).
wait_http() {
  local url=$1 tries=${2:-300} i
  for ((i = 0; i < tries; i++)); do
    curl -fs -o /dev/null "$url" && return 0
    sleep 0.1
  done
  die "$url did not come up"
}

# The head of every nginx.conf here, up to the open `http {` block's keep-alive settings:
# WORKERS processes (`single`: one process with no master, for callgrind), files in DIR, access
# log ACCESS_LOG ("off" for none).
nginx_head() { # DIR WORKERS ACCESS_LOG
  local dir=$1 processes="worker_processes $2;"
  [[ $2 == single ]] && processes="worker_processes 1; master_process off;"
  cat <<CONF
$([[ $(id -u) == 0 ]] && echo "user root;")
$processes
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 8192; }
http {
  access_log $3;
  client_body_temp_path $dir/body; proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fcgi; uwsgi_temp_path $dir/uwsgi; scgi_temp_path $dir/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
CONF
}

# The upstream: nginx, one worker, a small static body, keep-alive. Writes DIR/nginx.conf.
upstream_nginx_conf() { # DIR PORT
  local dir=$1 port=$2
  mkdir -p "$dir"
  { nginx_head "$dir" 1 off; cat <<CONF
  server {
    listen 127.0.0.1:$port;
    location / { default_type text/plain; return 200 "hello from the upstream: a small static body\n"; }
  }
}
CONF
  } > "$dir/nginx.conf"
}

# The gateway: 2 threads, a public (`/pub`) and an authenticated (`/app`) route to the same
# upstream, no ceremony rate limit (one client address makes every request here), loopback as
# the trusted fronting proxy (wrk plays one in the forward-auth scenario). Prints the path.
gateway_config() { # DATA_DIR PORT UPSTREAM_PORT
  local dir=$1 port=$2 up=$3 conf="$1.toml"
  cat > "$conf" <<CONF
public_url = "http://localhost:$port"
[server]
listen = ["127.0.0.1:$port"]
data_dir = "$dir"
threads = 2
grace_period = "1s"
ceremony_rate_per_minute = 0
trusted_proxies = ["127.0.0.1/32"]
[webauthn]
rp_id = "localhost"
[[route]]
name = "pub"
path = "/pub"
upstream = "http://127.0.0.1:$up"
access = "public"
[[route]]
name = "app"
path = "/app"
upstream = "http://127.0.0.1:$up"
access = "authenticated"
CONF
  echo "$conf"
}

# nginx as a plain reverse proxy in front of UP_PORT: upstream keepalive, `WORKERS` workers, an
# access-log line per request unless LOG is `off`. `WORKERS=single` runs one process with no master
# (for callgrind). With CERT and KEY it listens with TLS and HTTP/2 (bench/h2.sh). Writes
# DIR/nginx.conf.
proxy_nginx_conf() { # DIR PORT UP_PORT WORKERS [LOG] [CERT KEY]
  local dir=$1 port=$2 up=$3 workers=$4 log=${5:-$1/access.log} cert=${6:-} key=${7:-}
  local listen="listen 127.0.0.1:$port;" tls=""
  if [[ -n $cert ]]; then
    listen="listen 127.0.0.1:$port ssl http2;"
    tls="ssl_certificate $cert; ssl_certificate_key $key;"
  fi
  mkdir -p "$dir"
  { nginx_head "$dir" "$workers" "$log"; cat <<CONF
  upstream app { server 127.0.0.1:$up; keepalive 256; keepalive_requests 1000000; }
  server {
    $listen
    $tls
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
    }
  }
}
CONF
  } > "$dir/nginx.conf"
}
