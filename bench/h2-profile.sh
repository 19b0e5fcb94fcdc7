#!/usr/bin/env bash
# Where an HTTP/2 request's CPU goes (issue 17): instructions per request counted by callgrind
# over TLS, HTTP/2 next to HTTP/1.1 on the same TLS listener, for the gateway's public and
# authenticated routes and for nginx's `http2` listener, then the gateway's most costly
# functions for an authenticated h2 request.
#
#   bench/h2-profile.sh        prints Markdown on stdout
#
# Each server runs under `valgrind --tool=callgrind`; after a warm-up the counters are zeroed,
# BENCH_REQUESTS requests (default 5000) go over one connection, one at a time (`h2load -c 1
# -m 1`, `--h1` for HTTP/1.1), and the counters are dumped. The TLS handshake is inside the
# window, spread over the requests. Environment: BENCH_REQUESTS, BENCH_KEEP=1 (keep the work
# directory and its callgrind files for `callgrind_annotate`), BENCH_BUILD=0.
set -euo pipefail
export RUST_BACKTRACE=0
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
REQUESTS=${BENCH_REQUESTS:-5000}
say() { printf '== %s\n' "$*" >&2; }
die() { printf 'h2-profile: FAILED: %s\n' "$*" >&2; exit 1; }
for tool in valgrind callgrind_control callgrind_annotate nginx h2load openssl curl python3; do
  command -v "$tool" >/dev/null 2>&1 || [[ $tool == nginx && -x /usr/sbin/nginx ]] \
    || die "$tool is missing (apt-get install -y valgrind nginx nghttp2-client openssl curl)"
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

say "building (release): passkey-gateway; debug: example bench_seed"
if [[ ${BENCH_BUILD:-1} != 0 ]]; then
  cargo build --locked -q --release --bin passkey-gateway || die "cargo build failed"
  cargo build --locked -q --example bench_seed || die "cargo build failed"
fi
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
GATEWAY="$TARGET_DIR/release/passkey-gateway"
SEED="$TARGET_DIR/debug/examples/bench_seed"

WORK=$(mktemp -d /tmp/passkey-h2-profile.XXXXXX)
PIDS=()
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null \
  || die "openssl could not make a certificate"
UP_PORT=$(free_port)
upstream_nginx_conf "$WORK/upstream" "$UP_PORT"
"$NGINX" -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" & PIDS+=($!)
wait_http "http://127.0.0.1:$UP_PORT/"

wait_https() {
  local i
  for ((i = 0; i < 600; i++)); do curl -ksf -o /dev/null "$1" && return 0; sleep 0.1; done
  die "$1 did not come up"
}

under_callgrind() { # LOG CMD...: starts CMD under callgrind, sets CG_PID
  valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out.%p" "${@:2}" >"$1" 2>&1 &
  CG_PID=$!; PIDS+=("$CG_PID")
}

# h2load over one connection, one request at a time, counted between a zero and a dump.
# Prints instructions per request; the dump's path goes to $WORK/last-dump.
count() { # PID URL PROTOCOL(h2|h1) [HEADER]
  local pid=$1 url=$2 args=(-c 1 -m 1)
  [[ $3 == h1 ]] && args+=(--h1)
  [[ -n ${4:-} ]] && args+=(-H "$4")
  h2load "${args[@]}" -n 100 "$url" >"$WORK/warm.txt" 2>&1 || die "warm-up of $url failed"
  callgrind_control -z "$pid" >/dev/null || die "callgrind_control -z failed"
  h2load "${args[@]}" -n "$REQUESTS" "$url" >"$WORK/h2load.txt" 2>&1 || die "h2load $url failed"
  grep -q "$REQUESTS succeeded" "$WORK/h2load.txt" || die "not every request to $url succeeded: $(grep requests: "$WORK/h2load.txt")"
  grep -q "status codes: $REQUESTS 2xx" "$WORK/h2load.txt" || die "non-2xx answers from $url: $(grep 'status codes' "$WORK/h2load.txt")"
  local before; before=$(ls "$WORK"/cg.out."$pid".* 2>/dev/null | wc -l)
  callgrind_control -d "$pid" >/dev/null || die "callgrind_control -d failed"
  local dump; dump=$(ls -t "$WORK"/cg.out."$pid".* | head -1)
  [[ $(ls "$WORK"/cg.out."$pid".* | wc -l) -gt $before ]] || die "no callgrind dump for $pid"
  echo "$dump" > "$WORK/last-dump"
  awk -v n="$REQUESTS" '/^summary:/ {printf "%.0f", $2 / n; found=1} END {if (!found) exit 1}' "$dump" \
    || die "no summary line in $dump"
}

say "nginx (ssl http2, one process) under callgrind"
NGX_PORT=$(free_port)
proxy_nginx_conf "$WORK/nginx" "$NGX_PORT" "$UP_PORT" single off "$WORK/cert.pem" "$WORK/key.pem"
under_callgrind "$WORK/nginx.log" "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf"
wait_https "https://127.0.0.1:$NGX_PORT/"
NGX_H2=$(count "$CG_PID" "https://127.0.0.1:$NGX_PORT/app/" h2)
NGX_H1=$(count "$CG_PID" "https://127.0.0.1:$NGX_PORT/app/" h1)
kill "$CG_PID" 2>/dev/null || true; wait "$CG_PID" 2>/dev/null || true

say "gateway (TLS, h2 and http/1.1) under callgrind, $REQUESTS requests per row"
"$SEED" --data-dir "$WORK/gw-data" --users 1 --passkeys-per-user 1 --sessions \
  --cookies-out "$WORK/cookies.txt" --prefix h2 2>"$WORK/seed.log" || { cat "$WORK/seed.log" >&2; die "seeding failed"; }
COOKIE="cookie: __Host-passkey_session=$(head -1 "$WORK/cookies.txt")"
GW_PORT=$(free_port)
conf=$(gateway_config "$WORK/gw-data" "$GW_PORT" "$UP_PORT")
sed -i "s|^public_url = \"http://|public_url = \"https://|" "$conf"
printf '[server.tls]\ncert = "%s"\nkey = "%s"\n' "$WORK/cert.pem" "$WORK/key.pem" >> "$conf"
under_callgrind "$WORK/gateway.log" "$GATEWAY" --config "$conf" serve
GW_PID=$CG_PID
wait_https "https://127.0.0.1:$GW_PORT/pub/"
GW_PUB_H1=$(count "$GW_PID" "https://127.0.0.1:$GW_PORT/pub/" h1)
GW_AUTH_H1=$(count "$GW_PID" "https://127.0.0.1:$GW_PORT/app/" h1 "$COOKIE")
GW_PUB_H2=$(count "$GW_PID" "https://127.0.0.1:$GW_PORT/pub/" h2)
GW_AUTH_H2=$(count "$GW_PID" "https://127.0.0.1:$GW_PORT/app/" h2 "$COOKIE")
AUTH_H2_DUMP=$(cat "$WORK/last-dump")
kill "$GW_PID" 2>/dev/null || true; wait "$GW_PID" 2>/dev/null || true

echo "Instructions per request over TLS (callgrind; $REQUESTS requests on one connection, one at a time, handshake included):"
echo
echo "| server, route | HTTP/1.1 | HTTP/2 | h2 / h1 |"
echo "|---|---:|---:|---:|"
row() { python3 -c 'import sys; l,a,b=sys.argv[1],int(sys.argv[2]),int(sys.argv[3]); print(f"| {l} | {a:,} | {b:,} | {b/a:.2f} |")' "$@"; }
row "nginx \`ssl http2\`" "$NGX_H1" "$NGX_H2"
row "gateway, public \`/pub\`" "$GW_PUB_H1" "$GW_PUB_H2"
row "gateway, authenticated \`/app\`" "$GW_AUTH_H1" "$GW_AUTH_H2"
echo
echo "Gateway, authenticated route over h2: the 25 functions with the most instructions of their own"
echo "(per request; \`callgrind_annotate\`, inlined code counted in its caller):"
echo
echo '```'
callgrind_annotate --inclusive=no --threshold=100 "$AUTH_H2_DUMP" 2>/dev/null \
  | python3 -c '
import re, sys
n = int(sys.argv[1]); rows = []
for line in sys.stdin:
    m = re.match(r"\s*([\d,]+)\s+\([\s\d.]+%\)\s+(\S.*)", line)
    if m and "PROGRAM TOTALS" not in line:
        rows.append((int(m.group(1).replace(",", "")), m.group(2)))
# Frames still open when the counters are zeroed and dumped (thread starts, the runtime loop)
# come out with the whole window as their own cost: no function does 90 % of a request itself.
total = max((ir for ir, _ in rows), default=0)
rows = [(ir, name) for ir, name in rows if ir < 0.9 * total]
for ir, name in rows[:25]:
    name = re.sub(r"^\S*?:", "", name, count=1) if name.startswith("/") or name.startswith("???") else name
    name = re.sub(r" \[[^\]]*\]$", "", name)
    print(f"{ir / n:9,.0f}  {name[:130]}")
' "$REQUESTS"
echo '```'
