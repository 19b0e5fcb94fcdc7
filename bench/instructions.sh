#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind: repeatable on a busy or noisy machine
# where wall-clock CPU per request is not (the same binary and load give the same count).
#
#   bench/instructions.sh [LABEL=GATEWAY_BINARY]...
#
# With no argument it measures this tree's release build. Each gateway binary runs under
# `valgrind --tool=callgrind` in front of an nginx upstream; after a warm-up the counters are
# zeroed, BENCH_REQUESTS requests (default 2000) go over one keep-alive connection (curl), and the
# counters are dumped: the total divided by the requests is that binary's instructions per
# request, for an authenticated route (`/app`, with a session cookie) and a public one (`/pub`).
# pingora alone (`examples/pingora_floor`) is measured the same way as the floor.
#
# Binaries from other commits work as long as they speak today's CLI and ceremony API (`user add`,
# `register/begin|complete`): build one with `git worktree add /tmp/base REV` and
# `cargo build --release --bin passkey-gateway` there.
#
# Prints one table (markdown) on stdout. Environment: BENCH_REQUESTS, BENCH_KEEP=1 (keep the work
# directory with the callgrind files, for `callgrind_annotate`), BENCH_BUILD=0 (use the release
# binaries already built, e.g. while the next build runs), FLOOR_VARIANTS: more rows for
# pingora alone with other knobs, `;`-separated `LABEL|[VAR=VALUE...] EXAMPLE [ARGS...]`, e.g.
# `mimalloc|pingora_floor_mimalloc 2;1 thread|pingora_floor 1;pool 1|FLOOR_POOL=1 pingora_floor 2`
# (EXAMPLE is an example binary, ARGS follow LISTEN and UPSTREAM; the knobs are listed in
# `examples/support/floor.rs`). The ratios stay against the plain `pingora_floor`. BENCH_NGINX=1
# adds nginx as the same plain proxy (one process, `master_process off`), access log off and on.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
REQUESTS=${BENCH_REQUESTS:-2000}
say() { printf '== %s\n' "$*" >&2; }
die() { printf 'instructions: FAILED: %s\n' "$*" >&2; exit 1; }

for tool in valgrind callgrind_control nginx curl python3; do
  command -v "$tool" >/dev/null 2>&1 || [[ $tool == nginx && -x /usr/sbin/nginx ]] \
    || die "$tool is missing (apt-get install -y valgrind nginx curl)"
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

say "building (release): passkey-gateway, examples loadgen and pingora_floor"
[[ ${BENCH_BUILD:-1} == 0 ]] || cargo build --locked -q --release --bin passkey-gateway --example loadgen --example pingora_floor \
  --example pingora_floor_mimalloc || die "cargo build failed"
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
LOADGEN="$TARGET_DIR/release/examples/loadgen"
FLOOR="$TARGET_DIR/release/examples/pingora_floor"
GATEWAYS=("$@")
((${#GATEWAYS[@]})) || GATEWAYS=("this-tree=$TARGET_DIR/release/passkey-gateway")

WORK=$(mktemp -d /tmp/passkey-instructions.XXXXXX)
PIDS=()
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
trap cleanup EXIT

UP_PORT=$(free_port)
upstream_nginx_conf "$WORK/upstream" "$UP_PORT"
"$NGINX" -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" & PIDS+=($!)
wait_http "http://127.0.0.1:$UP_PORT/"

# Requests over one keep-alive connection (curl's URL range), counted between a zero and a dump.
count() { # PID URL [COOKIE] -> instructions per request
  local pid=$1 url=$2 cookie=${3:-} args=(-s -o /dev/null --fail)
  [[ -n $cookie ]] && args+=(-H "Cookie: $cookie")
  curl "${args[@]}" "$url/warm[1-50]" || die "warm-up of $url failed"
  callgrind_control -z "$pid" >/dev/null || die "callgrind_control -z failed"
  curl "${args[@]}" "$url/r[1-$REQUESTS]" || die "requests to $url failed"
  local before; before=$(ls "$WORK"/cg.out."$pid".* 2>/dev/null | wc -l)
  callgrind_control -d "$pid" >/dev/null || die "callgrind_control -d failed"
  local dump; dump=$(ls -t "$WORK"/cg.out."$pid".* | head -1)
  [[ $(ls "$WORK"/cg.out."$pid".* | wc -l) -gt $before ]] || die "no callgrind dump for $pid"
  awk -v n="$REQUESTS" '/^summary:/ {printf "%.0f", $2 / n; found=1} END {if (!found) exit 1}' "$dump" \
    || die "no summary line in $dump"
}

under_callgrind() { # LOG CMD...: starts CMD under callgrind, sets CG_PID
  valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out.%p" "${@:2}" >"$1" 2>&1 &
  CG_PID=$!; PIDS+=("$CG_PID")
}

stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

gateway_round() { # LABEL BINARY -> "LABEL auth public"
  local label=$1 bin=$2 port dir conf token cookie auth public
  port=$(free_port); dir="$WORK/gw-$label"
  conf=$(gateway_config "$dir" "$port" "$UP_PORT")
  token=$("$bin" --config "$conf" user add bench 2>&1 | sed -n 's/.*#token=\([^ ]*\).*/\1/p' | head -1)
  [[ -n $token ]] || die "$label: user add printed no enrollment token"
  echo "$token bench" > "$dir.tokens"
  under_callgrind "$dir.log" "$bin" --config "$conf" serve
  local pid=$CG_PID
  wait_http "http://127.0.0.1:$port/passkeys/health" 600
  cookie=$("$LOADGEN" enroll --base "http://127.0.0.1:$port" --origin "http://localhost:$port" --tokens "$dir.tokens" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["cookie"])') || die "$label: enrollment failed"
  auth=$(count "$pid" "http://127.0.0.1:$port/app" "$cookie")
  public=$(count "$pid" "http://127.0.0.1:$port/pub")
  stop "$pid"
  echo "$label $auth $public"
}

say "pingora alone (examples/pingora_floor) under callgrind"
FLOOR_PORT=$(free_port)
under_callgrind "$WORK/floor.log" "$FLOOR" "127.0.0.1:$FLOOR_PORT" "127.0.0.1:$UP_PORT" 2
wait_http "http://127.0.0.1:$FLOOR_PORT/" 600
FLOOR_IR=$(count "$CG_PID" "http://127.0.0.1:$FLOOR_PORT/app")
stop "$CG_PID"

FLOOR_ROWS=()
IFS=';' read -r -a VARIANTS <<<"${FLOOR_VARIANTS:-}"
for variant in "${VARIANTS[@]}"; do
  [[ -n $variant ]] || continue
  label=${variant%%|*}; read -r -a words <<<"${variant#*|}"
  envs=(); while [[ ${words[0]:-} == *=* ]]; do envs+=("${words[0]}"); words=("${words[@]:1}"); done
  [[ -x $TARGET_DIR/release/examples/${words[0]:-} ]] || die "floor variant '$label': no example ${words[0]:-}"
  say "pingora alone, $label, under callgrind"
  port=$(free_port)
  # `env` runs valgrind (not the reverse), so callgrind follows the floor and its pid is ours.
  env "${envs[@]}" valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out.%p" \
    "$TARGET_DIR/release/examples/${words[0]}" "127.0.0.1:$port" "127.0.0.1:$UP_PORT" "${words[@]:1}" \
    >"$WORK/floor-variant.log" 2>&1 &
  CG_PID=$!; PIDS+=("$CG_PID")
  wait_http "http://127.0.0.1:$port/" 600
  FLOOR_ROWS+=("pingora alone, $label|$(count "$CG_PID" "http://127.0.0.1:$port/app")")
  stop "$CG_PID"
done

if [[ ${BENCH_NGINX:-0} == 1 ]]; then
  for log in off on; do
    say "nginx alone, access log $log, under callgrind"
    port=$(free_port)
    proxy_nginx_conf "$WORK/nginx-$log" "$port" "$UP_PORT" single \
      "$([[ $log == off ]] && echo off || echo "$WORK/nginx-$log/access.log")"
    under_callgrind "$WORK/nginx-$log.log" "$NGINX" -p "$WORK/nginx-$log" -c "$WORK/nginx-$log/nginx.conf"
    wait_http "http://127.0.0.1:$port/" 600
    FLOOR_ROWS+=("nginx, access log $log|$(count "$CG_PID" "http://127.0.0.1:$port/app")")
    stop "$CG_PID"
  done
fi

ROWS=()
for spec in "${GATEWAYS[@]}"; do
  label=${spec%%=*}; bin=${spec#*=}
  [[ -x $bin ]] || die "$bin is not an executable"
  say "$label ($bin) under callgrind, $REQUESTS requests per route"
  ROWS+=("$(gateway_round "$label" "$bin")")
done

echo
echo "Instructions per request (callgrind, $REQUESTS requests over one keep-alive connection, after 50 warm-up requests):"
echo
echo "| binary | authenticated \`/app\` | × pingora alone | public \`/pub\` | × pingora alone |"
echo "|---|---:|---:|---:|---:|"
echo "| pingora alone (\`examples/pingora_floor\`) | $FLOOR_IR | 1.00 | $FLOOR_IR | 1.00 |"
for row in "${FLOOR_ROWS[@]}"; do
  python3 -c 'import sys; l,a,f=sys.argv[1],int(sys.argv[2]),int(sys.argv[3]); print(f"| {l} | {a} | {a/f:.2f} | {a} | {a/f:.2f} |")' \
    "${row%%|*}" "${row#*|}" "$FLOOR_IR"
done
for row in "${ROWS[@]}"; do
  read -r label auth public <<<"$row"
  python3 -c 'import sys; l,a,p,f=sys.argv[1],int(sys.argv[2]),int(sys.argv[3]),int(sys.argv[4]); print(f"| {l} | {a} | {a/f:.2f} | {p} | {p/f:.2f} |")' \
    "$label" "$auth" "$public" "$FLOOR_IR"
done
