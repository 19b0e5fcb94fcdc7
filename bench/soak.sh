#!/usr/bin/env bash
# The soak test: one gateway under a steady mixed load for SOAK_MINUTES, sampled every minute
# (RSS, open descriptors, store size, errors, proxied p50/p99), then checked. Method: bench/README.md.
#
#   bench/soak.sh           30 minutes, release build; table, plots and raw samples in bench/soak/
#   bench/soak.sh --smoke   2 minutes, debug build, nothing written; exits non-zero on any error
#                           or failed pass criterion (CI)
#
# Environment: SOAK_MINUTES (30; smoke 2), SOAK_RATE (proxied requests/s, 200; smoke 50), SOAK_CEREMONY_EVERY
# (seconds between account operations, 1), SOAK_MAX_USERS (64; smoke 16), SOAK_PROFILE (release|debug), SOAK_OUT (results
# directory; default bench/soak for the full run, none for the smoke), BENCH_KEEP=1 keeps the
# work directory (gateway log, raw samples).
set -euo pipefail
export RUST_BACKTRACE=0

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
COMMAND="bench/soak.sh $*"
# The commit and date the run starts from (edits made while it runs do not change them).
COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
STARTED="$(date -u '+%Y-%m-%d %H:%M UTC')"
case "$*" in
  "") SMOKE=0 ;;
  --smoke) SMOKE=1 ;;
  -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
  *) echo "usage: bench/soak.sh [--smoke]" >&2; exit 2 ;;
esac
if [[ $SMOKE == 1 ]]; then
  MINUTES=${SOAK_MINUTES:-2}; PROFILE=${SOAK_PROFILE:-debug}; OUT=${SOAK_OUT:-}; MAX_USERS=${SOAK_MAX_USERS:-16}; SAMPLE_SECONDS=10
else
  MINUTES=${SOAK_MINUTES:-30}; PROFILE=${SOAK_PROFILE:-release}; OUT=${SOAK_OUT:-$ROOT/bench/soak}; MAX_USERS=${SOAK_MAX_USERS:-64}; SAMPLE_SECONDS=60
fi
# The smoke runs the debug build on whatever CI shares the machine with: a quarter of the rate.
RATE=${SOAK_RATE:-$([[ $SMOKE == 1 ]] && echo 50 || echo 200)}
CEREMONY_EVERY=${SOAK_CEREMONY_EVERY:-1}

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf '\nsoak: FAILED: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------------------------------------
# Tools: nginx (the upstream), curl, gnuplot (the plots); the gateway and the load client.

need_apt=()
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || need_apt+=(nginx)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v gnuplot >/dev/null 2>&1 || need_apt+=(gnuplot-nox)
install_missing "${need_apt[@]}"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

say "building ($PROFILE): passkey-gateway, example loadgen"
PROFILE_FLAG=(); PROFILE_DIR=debug
if [[ $PROFILE == release ]]; then PROFILE_FLAG=(--release); PROFILE_DIR=release; fi
cargo build --locked -q "${PROFILE_FLAG[@]}" --bin passkey-gateway --example loadgen || die "cargo build failed"
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
GATEWAY="$TARGET_DIR/$PROFILE_DIR/passkey-gateway"
LOADGEN="$TARGET_DIR/$PROFILE_DIR/examples/loadgen"

# ------------------------------------------------------------------------------------------
# The upstream and the gateway (bench/lib.sh's configuration: /pub public, /app authenticated).

# A short path: the admin socket lives in the data directory (Unix socket paths ≤ ~108 bytes).
WORK=$(mktemp -d /tmp/soak.XXXXXX)
PIDS=()
trap cleanup EXIT
UP_PORT=$(free_port); GW_PORT=$(free_port)

upstream_nginx_conf "$WORK/upstream" "$UP_PORT"
"$NGINX" -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" & PIDS+=($!)
wait_http "http://127.0.0.1:$UP_PORT/"

GW_DATA="$WORK/gw"
GW_CONF=$(gateway_config "$GW_DATA" "$GW_PORT" "$UP_PORT")
# Audit events older than 5 minutes are purged (upkeep every 15 s), so with users and sessions
# capped by the load the store's live data reaches a steady state within the run.
printf '[audit]\nretention = "5m"\n' >>"$GW_CONF"
"$GATEWAY" --config "$GW_CONF" serve >"$WORK/gateway.log" 2>&1 & GW_PID=$!; PIDS+=($GW_PID)
wait_http "http://127.0.0.1:$GW_PORT/passkeys/health"

# ------------------------------------------------------------------------------------------
say "soak: $MINUTES min, $RATE proxied requests/s (half /app with a session, half /pub), one account operation every ${CEREMONY_EVERY}s, at most $MAX_USERS users, keys rotate at half time"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
SAMPLES="$WORK/samples.jsonl"
"$LOADGEN" soak --base "http://127.0.0.1:$GW_PORT" --origin "http://localhost:$GW_PORT" \
  --gateway "$GATEWAY" --config "$GW_CONF" --pid "$GW_PID" --store "$GW_DATA/gateway.redb" \
  --duration "$((MINUTES * 60))" --rate "$RATE" --ceremony-every "$CEREMONY_EVERY" --max-users "$MAX_USERS" --sample-seconds "$SAMPLE_SECONDS" \
  | tee "$SAMPLES" | python3 bench/soak_report.py progress \
  || die "the load client stopped (see above)"
kill -0 "$GW_PID" 2>/dev/null || die "the gateway exited during the soak (log: $WORK/gateway.log)"
# A panic is a failure even when the request it broke was answered.
if grep -q 'panicked' "$WORK/gateway.log"; then
  grep -m3 'panicked' "$WORK/gateway.log" >&2
  die "the gateway panicked during the soak"
fi

# ------------------------------------------------------------------------------------------
# Report and verdict

cpu=$(awk -F: '/^model name/ {gsub(/^ +/, "", $2); print $2; exit}' /proc/cpuinfo)
python3 - "$WORK/meta.json" <<EOF
import json, sys
json.dump({
  "date": "$STARTED",
  "command": "$COMMAND",
  "commit": "$COMMIT",
  "machine": "$(nproc) cores ($cpu), $(free -h | awk '/^Mem:/ {print $2}') RAM, shared with other sessions",
  "profile": "$PROFILE",
  "minutes": $MINUTES,
  "smoke": $([[ $SMOKE == 1 ]] && echo True || echo False),
  "load_average": "$LOAD_START at start, $(cut -d' ' -f1-3 /proc/loadavg) at end",
}, open(sys.argv[1], "w"), indent=1)
EOF
REPORT_OUT=${OUT:-$WORK/report}
mkdir -p "$REPORT_OUT"
cp "$SAMPLES" "$REPORT_OUT/samples.jsonl"
verdict=0
python3 bench/soak_report.py render "$REPORT_OUT/samples.jsonl" "$WORK/meta.json" "$REPORT_OUT" || verdict=$?
[[ -n $OUT ]] && say "table, plots and samples written to $OUT"
sed -n '/^| minute/,$p' "$REPORT_OUT/results.md" >&2
(( verdict == 0 )) || die "a pass criterion failed (see above)"
say "soak: OK"
