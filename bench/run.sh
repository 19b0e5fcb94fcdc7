#!/usr/bin/env bash
# The passkey-gateway benchmark: proxy overhead, ceremonies, footprint. Method: bench/README.md.
#
#   bench/run.sh            full run (3 interleaved runs per scenario), writes BENCHMARKS.md
#   bench/run.sh --smoke    every scenario for ~1 s, exits non-zero on any error (CI)
#
# Environment: BENCH_RUNS, BENCH_WRK_SECONDS, BENCH_CEREMONY_SECONDS, BENCH_USERS (footprint),
# BENCH_TOKENS, BENCH_PROFILE (release|debug; --smoke defaults to debug, the full run to release),
# BENCH_KEEP=1 keeps the work directory, BENCH_OUT (report path), BENCH_ONLY (subset, see below).
set -euo pipefail
export RUST_BACKTRACE=0

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
COMMAND="bench/run.sh $*"
SMOKE=0
for arg in "$@"; do
  case "$arg" in
    --smoke) SMOKE=1 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

if [[ $SMOKE == 1 ]]; then
  RUNS=${BENCH_RUNS:-1}; WRK_SECONDS=${BENCH_WRK_SECONDS:-1}; CER_SECONDS=${BENCH_CEREMONY_SECONDS:-1}
  USERS=${BENCH_USERS:-2000}; TOKENS=${BENCH_TOKENS:-3000}; PROFILE=${BENCH_PROFILE:-debug}
  OUT=${BENCH_OUT:-}
else
  RUNS=${BENCH_RUNS:-3}; WRK_SECONDS=${BENCH_WRK_SECONDS:-10}; CER_SECONDS=${BENCH_CEREMONY_SECONDS:-5}
  USERS=${BENCH_USERS:-100000}; TOKENS=${BENCH_TOKENS:-60000}; PROFILE=${BENCH_PROFILE:-release}
  OUT=${BENCH_OUT:-$ROOT/BENCHMARKS.md}
fi
WRK_THREADS=2
# BENCH_ONLY=proxy,ceremonies,footprint runs a subset (for profiling); it never writes BENCHMARKS.md.
ONLY=${BENCH_ONLY:-proxy,ceremonies,footprint}
[[ -n ${BENCH_ONLY:-} ]] && OUT=""
wants() { [[ ",$ONLY," == *",$1,"* ]]; }
PROXY_CONCS=(32 128)
CER_CONCS=(1 8 32)

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf '\nbench: FAILED: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------------------------------------
# What the benchmark needs: nginx, wrk, a Python venv with fastapi-passkeys, the Rust binaries.

need_apt=()
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || need_apt+=(nginx)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
install_missing "${need_apt[@]}"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

VENV="$ROOT/bench/.venv"
HAVE_FASTAPI=1
if [[ ! -x $VENV/bin/uvicorn ]] || ! "$VENV/bin/python" -c 'import fastapi_passkeys' 2>/dev/null; then
  say "creating $VENV with fastapi-passkeys and uvicorn (pip)"
  python3 -m venv "$VENV" || { command -v apt-get >/dev/null && [[ $(id -u) == 0 ]] \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null \
    && python3 -m venv "$VENV"; } || die "cannot create a Python venv (python3-venv missing?)"
  if ! "$VENV/bin/pip" install -q --disable-pip-version-check 'fastapi-passkeys==0.1.2' uvicorn; then
    if "$VENV/bin/pip" download -q --no-deps -d "$(mktemp -d)" uvicorn >/dev/null 2>&1; then
      die "pip could install fastapi-passkeys/uvicorn although PyPI answers"
    fi
    HAVE_FASTAPI=0
    printf '\n!!!!!!!!\n!!! PyPI IS UNREACHABLE: fastapi-passkeys CANNOT BE INSTALLED; ITS BASELINE IS SKIPPED.\n!!!!!!!!\n' >&2
    [[ $SMOKE == 1 ]] || die "the full benchmark needs fastapi-passkeys"
  fi
fi

say "building ($PROFILE): passkey-gateway, examples loadgen, bench_seed, pingora_floor"
PROFILE_FLAG=(); PROFILE_DIR=debug
if [[ $PROFILE == release ]]; then PROFILE_FLAG=(--release); PROFILE_DIR=release; fi
cargo build --locked -q "${PROFILE_FLAG[@]}" --bin passkey-gateway --example loadgen --example bench_seed --example pingora_floor \
  || die "cargo build failed"
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
GATEWAY="$TARGET_DIR/$PROFILE_DIR/passkey-gateway"
LOADGEN="$TARGET_DIR/$PROFILE_DIR/examples/loadgen"
SEED="$TARGET_DIR/$PROFILE_DIR/examples/bench_seed"
FLOOR="$TARGET_DIR/$PROFILE_DIR/examples/pingora_floor"

# ------------------------------------------------------------------------------------------
# Work directory, processes we start (stopped by pid at exit), ports.

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
WORK=$(mktemp -d /tmp/passkey-bench.XXXXXX)
RESULTS="$WORK/results.jsonl"
: > "$RESULTS"
PIDS=()
trap cleanup EXIT

stop_pid() {
  local pid=$1 i
  kill "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local keep=()
  for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

UP_PORT=$(free_port); NGX_PORT=$(free_port); FLOOR_PORT=$(free_port); GW_PORT=$(free_port); FA1_PORT=$(free_port); FA2_PORT=$(free_port)
upstream_nginx_conf "$WORK/upstream" "$UP_PORT"
# nginx as a plain reverse proxy: same worker count as the gateway's threads, upstream keepalive,
# one access-log line per request (the gateway logs one too).
proxy_nginx_conf "$WORK/proxy" "$NGX_PORT" "$UP_PORT" 2

GW_PID=""
start_gateway() { # DATA_DIR PORT LOG
  local conf; conf=$(gateway_config "$1" "$2" "$UP_PORT")
  "$GATEWAY" --config "$conf" serve >"$3" 2>&1 &
  GW_PID=$!; PIDS+=("$GW_PID")
}

rss_mib() { awk '/^VmRSS/ {printf "%.2f", $2/1024}' "/proc/$1/status"; }
hwm_mib() { awk '/^VmHWM/ {printf "%.2f", $2/1024}' "/proc/$1/status"; }
now_ns() { date +%s%N; }

# ------------------------------------------------------------------------------------------
say "starting the upstream, nginx proxy, gateway$([[ $HAVE_FASTAPI == 1 ]] && echo ', fastapi-passkeys x2')"
"$NGINX" -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" & PIDS+=($!)
"$NGINX" -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf" & PIDS+=($!)
wait_http "http://127.0.0.1:$UP_PORT/"
wait_http "http://127.0.0.1:$NGX_PORT/"
# pingora with no filters and no logging, 2 threads: the floor under the gateway's proxy path.
"$FLOOR" "127.0.0.1:$FLOOR_PORT" "127.0.0.1:$UP_PORT" 2 >"$WORK/floor.log" 2>&1 & FLOOR_PID=$!; PIDS+=($FLOOR_PID)
wait_http "http://127.0.0.1:$FLOOR_PORT/"

say "seeding $TOKENS enrollment tokens for the ceremony benchmark"
GW_DATA="$WORK/gw-data"
"$SEED" --data-dir "$GW_DATA" --tokens "$TOKENS" --tokens-out "$WORK/tokens.txt" --prefix tok \
  || die "seeding tokens failed"
start_gateway "$GW_DATA" "$GW_PORT" "$WORK/gateway.log"
wait_http "http://127.0.0.1:$GW_PORT/passkeys/health"
GW_BASE="http://127.0.0.1:$GW_PORT"
GW_ORIGIN="http://localhost:$GW_PORT"

# One real registration gives the cookie for the authenticated route.
COOKIE=$("$LOADGEN" enroll --base "$GW_BASE" --origin "$GW_ORIGIN" --tokens "$WORK/tokens.txt" | python3 -c 'import json,sys; print(json.load(sys.stdin)["cookie"])') \
  || die "enrollment for the proxy cookie failed"
# Sanity: the authenticated route passes with the cookie and refuses without it.
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $COOKIE" "$GW_BASE/app/")
[[ $code == 200 ]] || die "authenticated route with a cookie answered $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Accept: application/json' "$GW_BASE/app/")
[[ $code == 401 ]] || die "authenticated route without a cookie answered $code (want 401)"
# The same for forward-auth: 200 with an assertion with the cookie, 401 without.
FA_HEADERS=(-H "X-Original-URL: http://localhost:$GW_PORT/app/" -H "X-Original-Method: GET")
curl -s -D - -o /dev/null -H "Cookie: $COOKIE" "${FA_HEADERS[@]}" "$GW_BASE/passkeys/auth" | grep -qi '^x-passkey-assertion: ey' \
  || die "forward-auth with a cookie answered no assertion"
code=$(curl -s -o /dev/null -w '%{http_code}' "${FA_HEADERS[@]}" "$GW_BASE/passkeys/auth")
[[ $code == 401 ]] || die "forward-auth without a cookie answered $code (want 401)"

FA_PIDS=()
start_fastapi() {
  FA_PIDS=()
  local port
  for port in "$FA1_PORT" "$FA2_PORT"; do
    BENCH_ORIGIN="http://localhost:$FA1_PORT" "$VENV/bin/uvicorn" --app-dir "$ROOT/bench" fastapi_app:app \
      --host 127.0.0.1 --port "$port" --workers 1 --log-level warning --no-access-log \
      >>"$WORK/fastapi-$port.log" 2>&1 &
    FA_PIDS+=($!); PIDS+=($!)
  done
  wait_http "http://127.0.0.1:$FA1_PORT/health"
  wait_http "http://127.0.0.1:$FA2_PORT/health"
}
stop_fastapi() { local pid; for pid in "${FA_PIDS[@]}"; do stop_pid "$pid"; done; FA_PIDS=(); }

# ------------------------------------------------------------------------------------------
# 1. Proxy overhead

CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system, in clock ticks

run_wrk() { # SCENARIO CONC RUN URL [COOKIE] [SERVER_PID] [HEADER...]
  local scenario=$1 conc=$2 run=$3 url=$4 cookie=${5:-} pid=${6:-} out="$WORK/wrk-$1-$2-$3.txt"
  shift 6 2>/dev/null || shift $#
  local args=(-t"$WRK_THREADS" -c"$conc" -d"${WRK_SECONDS}s" --latency) header before=""
  [[ -n $cookie ]] && args+=(-H "Cookie: $cookie")
  for header in "$@"; do args+=(-H "$header"); done
  [[ -n $pid ]] && before=$(cpu_ticks "$pid")
  wrk "${args[@]}" "$url" >"$out" 2>&1 || true
  local extra=()
  # The server's CPU (user + system) over the run, for "CPU per request" next to the throughput.
  [[ -n $pid ]] && extra+=(cpu_s="$(python3 -c "print(($(cpu_ticks "$pid") - $before) / $CLK_TCK)")")
  python3 bench/report.py wrk "$out" scenario="$scenario" conc="$conc" run="$run" "${extra[@]}" >>"$RESULTS"
  tail -n 1 "$RESULTS" | python3 bench/report.py show
}

proxy_round() { # RUN CONC
  run_wrk direct "$2" "$1" "http://127.0.0.1:$UP_PORT/app/"
  run_wrk nginx "$2" "$1" "http://127.0.0.1:$NGX_PORT/app/"
  run_wrk floor "$2" "$1" "http://127.0.0.1:$FLOOR_PORT/app/" "" "$FLOOR_PID"
  run_wrk gw_public "$2" "$1" "$GW_BASE/pub/" "" "$GW_PID"
  run_wrk gw_auth "$2" "$1" "$GW_BASE/app/" "$COOKIE" "$GW_PID"
  # Forward-auth: the same decision for the same URL, answered with the identity headers instead
  # of proxied (wrk stands in for nginx's auth_request sub-request).
  run_wrk gw_forward_auth "$2" "$1" "$GW_BASE/passkeys/auth" "$COOKIE" "$GW_PID" \
    "X-Original-URL: http://localhost:$GW_PORT/app/" "X-Original-Method: GET"
}

say "1. proxy overhead: wrk -t$WRK_THREADS, ${WRK_SECONDS}s, concurrency ${PROXY_CONCS[*]}, $RUNS run(s), interleaved"
if [[ $SMOKE == 0 ]]; then
  # Warm-up (not recorded): connections, caches, the assertion cache.
  for url in "http://127.0.0.1:$UP_PORT/" "http://127.0.0.1:$NGX_PORT/app/" "http://127.0.0.1:$FLOOR_PORT/app/" "$GW_BASE/pub/"; do
    wrk -t2 -c32 -d2s "$url" >/dev/null 2>&1 || true
  done
  wrk -t2 -c32 -d2s -H "Cookie: $COOKIE" "$GW_BASE/app/" >/dev/null 2>&1 || true
  wrk -t2 -c32 -d2s -H "Cookie: $COOKIE" -H "X-Original-URL: http://localhost:$GW_PORT/app/" \
    -H "X-Original-Method: GET" "$GW_BASE/passkeys/auth" >/dev/null 2>&1 || true
fi
for ((run = 1; run <= RUNS; run++)); do
  wants proxy || break
  for conc in "${PROXY_CONCS[@]}"; do proxy_round "$run" "$conc"; done
done

# ------------------------------------------------------------------------------------------
# 2. Ceremonies

run_ceremony() { # TARGET_NAME KIND CONC RUN
  local name=$1 kind=$2 conc=$3 run=$4 out="$WORK/cer.json" args
  case $name in
    gateway) args=(--target gateway --base "$GW_BASE" --origin "$GW_ORIGIN" --tokens "$WORK/tokens.txt") ;;
    fastapi-1p) args=(--target fastapi --base "http://127.0.0.1:$FA1_PORT" --origin "http://localhost:$FA1_PORT") ;;
    fastapi-2p) args=(--target fastapi --base "http://127.0.0.1:$FA1_PORT,http://127.0.0.1:$FA2_PORT" --origin "http://localhost:$FA1_PORT") ;;
  esac
  if "$LOADGEN" ceremonies "${args[@]}" --kind "$kind" --concurrency "$conc" --duration "$CER_SECONDS" \
      --label "$name" >"$out" 2>"$WORK/cer.err"; then
    python3 - "$out" "$name" "$run" >>"$RESULTS" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1])); r.update(type="ceremony", target_name=sys.argv[2], run=int(sys.argv[3]))
print(json.dumps(r))
EOF
  else
    python3 -c 'import json,sys; print(json.dumps({"type":"ceremony","target_name":sys.argv[1],"kind":sys.argv[2],"concurrency":int(sys.argv[3]),"run":int(sys.argv[4]),"errors":1,"failed":True,"first_error":open(sys.argv[5]).read()[-2000:]}))' \
      "$name" "$kind" "$conc" "$run" "$WORK/cer.err" >>"$RESULTS"
  fi
  tail -n 1 "$RESULTS" | python3 bench/report.py show
}

TARGETS=(gateway)
[[ $HAVE_FASTAPI == 1 ]] && TARGETS+=(fastapi-1p fastapi-2p)
say "2. ceremonies: ${CER_SECONDS}s each, concurrency ${CER_CONCS[*]}, targets ${TARGETS[*]}, $RUNS run(s), interleaved"
for ((run = 1; run <= RUNS; run++)); do
  wants ceremonies || break
  # fastapi-passkeys' in-memory repository scans every credential to list one user's: a fresh
  # process per run keeps that from growing across runs.
  [[ $HAVE_FASTAPI == 1 ]] && start_fastapi
  for conc in "${CER_CONCS[@]}"; do
    for kind in login register; do
      for target in "${TARGETS[@]}"; do run_ceremony "$target" "$kind" "$conc" "$run"; done
    done
  done
  [[ $HAVE_FASTAPI == 1 ]] && stop_fastapi
done
stop_pid "$GW_PID"
stop_pid "$FLOOR_PID"

# ------------------------------------------------------------------------------------------
# 3. Footprint

if wants footprint; then
say "3. footprint: seeding $USERS users x 2 passkeys + $USERS sessions"
FP_DATA="$WORK/fp-data"; EMPTY_DATA="$WORK/empty-data"; FP_PORT=$(free_port)
seed_started=$(now_ns)
"$SEED" --data-dir "$FP_DATA" --users "$USERS" --passkeys-per-user 2 --sessions \
  --cookies-out "$WORK/cookies.txt" --prefix fp 2>"$WORK/seed.log" || { cat "$WORK/seed.log" >&2; die "seeding failed"; }
cat "$WORK/seed.log" >&2
seed_s=$(python3 -c "print(($(now_ns) - $seed_started) / 1e9)")
store_mib=$(python3 -c "import os; print(os.path.getsize('$FP_DATA/gateway.redb') / 1048576)")
echo "{\"type\":\"footprint\",\"what\":\"seed\",\"users\":$USERS,\"passkeys\":$((USERS * 2)),\"sessions\":$USERS,\"seconds\":$seed_s,\"store_mib\":$store_mib}" >>"$RESULTS"
mkdir -p "$EMPTY_DATA"

measure_ready() { # STORE_LABEL DATA_DIR RUN ; leaves the gateway running (GW_PID)
  local since; since=$(now_ns)
  start_gateway "$2" "$FP_PORT" "$WORK/gateway-fp.log"
  local got
  got=$("$LOADGEN" ready --url "http://127.0.0.1:$FP_PORT/passkeys/health" --since-ns "$since") \
    || die "gateway on the $1 store never became ready"
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r.update(type="footprint",what="ready",store=sys.argv[2],run=int(sys.argv[3])); print(json.dumps(r))' \
    "$got" "$1" "$3" >>"$RESULTS"
  echo "   ready ($1 store, run $3): $(echo "$got" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["ready_ms"],1))') ms" >&2
}

for ((run = 1; run <= RUNS; run++)); do
  for store in empty seeded; do
    dir=$EMPTY_DATA; [[ $store == seeded ]] && dir=$FP_DATA
    measure_ready "$store" "$dir" "$run"
    if (( run == RUNS )); then
      sleep 1
      echo "{\"type\":\"footprint\",\"what\":\"rss_idle\",\"store\":\"$store\",\"rss_mib\":$(rss_mib "$GW_PID")}" >>"$RESULTS"
      echo "   RSS idle ($store store): $(rss_mib "$GW_PID") MiB" >&2
    fi
    if (( run == RUNS )) && [[ $store == seeded ]]; then
      say "using each of the $USERS sessions once (authenticated GET through the gateway)"
      "$LOADGEN" touch --url "http://127.0.0.1:$FP_PORT/app/" --cookies "$WORK/cookies.txt" --concurrency 32 \
        >"$WORK/touch.json" || die "touching sessions failed"
      python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); r.update(type="footprint",what="touch"); print(json.dumps(r))' \
        "$WORK/touch.json" >>"$RESULTS"
      sleep 1
      echo "{\"type\":\"footprint\",\"what\":\"rss_live\",\"sessions\":$USERS,\"rss_mib\":$(rss_mib "$GW_PID"),\"hwm_mib\":$(hwm_mib "$GW_PID")}" >>"$RESULTS"
      echo "   RSS with $USERS live sessions: $(rss_mib "$GW_PID") MiB (peak $(hwm_mib "$GW_PID") MiB)" >&2
    fi
    stop_pid "$GW_PID"
  done
done
fi

# ------------------------------------------------------------------------------------------
# Report

cpu=$(awk -F: '/^model name/ {gsub(/^ +/, "", $2); print $2; exit}' /proc/cpuinfo)
python3 - "$WORK/meta.json" <<EOF
import json, sys
json.dump({
  "date": "$(date -u '+%Y-%m-%d %H:%M UTC')",
  "command": "$COMMAND",
  "commit": "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (dirty)')",
  "nproc": "$(nproc)",
  "cpu": "$cpu",
  "ram": "$(free -h | awk '/^Mem:/ {print $2}')",
  "kernel": "$(uname -r)",
  "profile": "$PROFILE",
  "rustc": "$(rustc --version)",
  "nginx": "$("$NGINX" -v 2>&1 | sed 's/.*: //')",
  "wrk": "$(wrk -v 2>&1 | head -n1 | awk '{print $1, $2}')",
  "python": "$(python3 --version)",
  "fastapi_passkeys": "$([[ $HAVE_FASTAPI == 1 ]] && "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("fastapi-passkeys"), "+ uvicorn", m.version("uvicorn"))' || echo skipped)",
  "load_average": "$LOAD_START at start, $(cut -d' ' -f1-3 /proc/loadavg) at end (other work on the machine shows here)",
  "durations": "wrk ${WRK_SECONDS}s, ceremonies ${CER_SECONDS}s, $RUNS run(s)",
  "runs": $RUNS, "wrk_seconds": $WRK_SECONDS, "wrk_threads": $WRK_THREADS, "ceremony_seconds": $CER_SECONDS,
}, open(sys.argv[1], "w"), indent=1)
EOF
if [[ -n $OUT ]]; then
  cp "$RESULTS" "$ROOT/bench/last-results.jsonl"
  # Hand-written analysis below the marker survives a regeneration (re-check it against the new numbers).
  analysis=""
  if [[ -f $OUT ]] && grep -q '^<!-- analysis -->' "$OUT"; then
    analysis=$(sed -n '/^<!-- analysis -->/,$p' "$OUT")
  fi
  python3 bench/report.py render "$RESULTS" "$WORK/meta.json" >"$OUT"
  { echo; echo '## Raw results'; echo; echo 'Every measurement, one JSON object per line: `bench/last-results.jsonl`.'; } >>"$OUT"
  [[ -n $analysis ]] && printf '\n%s\n' "$analysis" >>"$OUT"
  say "report written to $OUT"
else
  python3 bench/report.py render "$RESULTS" "$WORK/meta.json" | sed -n '/^## Targets/,$p' >&2
fi
if ! python3 bench/report.py check "$RESULTS"; then
  die "some measurements had errors (see above)"
fi
say "bench: OK"
