#!/usr/bin/env bash
# Scale-out on PostgreSQL (issue 13), side by side in one run, release build:
#   (a) redb, 1 replica; (b) PostgreSQL, 1 replica; (c) PostgreSQL, 2 replicas behind an nginx
#   `upstream` (round-robin, no stickiness).
# For each: logins/s (loadgen login ceremonies, c = 8 and 32) and authenticated proxied
# requests/s (wrk, one cookie: cached sessions, c = 32), the setups interleaved run by run; then
# the cost of a session-cache miss on each backend, two ways: authenticated requests each with a
# cookie the gateway has not seen yet (loadgen touch, c = 32), and one store lookup at a time
# (bench_seed --read-cookies: the session and its user, as a cache miss reads them).
#
#   bench/replicas.sh        prints a Markdown table of medians; raw rows in bench/replicas-last-results.jsonl
#
# Environment: BENCH_RUNS (3), BENCH_WRK_SECONDS (10), BENCH_CEREMONY_SECONDS (5),
# BENCH_MISS_SESSIONS (10000 per run and backend), BENCH_PROFILE (release; debug for a smoke
# run), PKGW_BENCH_POSTGRES_URL (a role that may
# CREATE DATABASE; default postgres://pkgw:pkgw@127.0.0.1:5432/postgres), BENCH_KEEP=1,
# BENCH_PIN=1: the database server on the last CPU and everything else (gateways, load, nginx)
# on the others, as with a database on a host of its own (needs the right to move the server's
# processes, e.g. root; they are given all CPUs back at the end).
set -euo pipefail
export RUST_BACKTRACE=0

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RUNS=${BENCH_RUNS:-3}; WRK_SECONDS=${BENCH_WRK_SECONDS:-10}; CER_SECONDS=${BENCH_CEREMONY_SECONDS:-5}
MISS=${BENCH_MISS_SESSIONS:-10000}
PROFILE=${BENCH_PROFILE:-release}
# A debug build's SCRAM handshake is slow enough that many new pooled connections at once time out.
SEED_PARALLEL=32; [[ $PROFILE == debug ]] && SEED_PARALLEL=2
PG_URL=${PKGW_BENCH_POSTGRES_URL:-postgres://pkgw:pkgw@127.0.0.1:5432/postgres}
CER_CONCS=(8 32)
SETUPS=(redb pg1 pg2)

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf '\nbench: FAILED: %s\n' "$*" >&2; exit 1; }
for tool in nginx wrk curl psql; do
  command -v "$tool" >/dev/null 2>&1 || [[ -x /usr/sbin/$tool ]] || die "missing $tool (apt-get install -y ${tool/psql/postgresql-client})"
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
psql "$PG_URL" -Atc 'SELECT 1' >/dev/null || die "no PostgreSQL at $PG_URL (start one, or set PKGW_BENCH_POSTGRES_URL)"

say "building ($PROFILE): passkey-gateway, examples loadgen, bench_seed"
PROFILE_FLAG=(); [[ $PROFILE == release ]] && PROFILE_FLAG=(--release)
cargo build --locked -q "${PROFILE_FLAG[@]}" --bin passkey-gateway --example loadgen --example bench_seed || die "cargo build failed"
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
GATEWAY="$TARGET_DIR/$PROFILE/passkey-gateway"
LOADGEN="$TARGET_DIR/$PROFILE/examples/loadgen"
SEED="$TARGET_DIR/$PROFILE/examples/bench_seed"

PIN=${BENCH_PIN:-0}
LAST_CPU=$(( $(nproc) - 1 ))
pg_pids() { pgrep -x postgres || true; }
if [[ $PIN == 1 ]]; then
  (( LAST_CPU > 0 )) || die "BENCH_PIN=1 needs two CPUs at least"
  taskset -p -c "0-$((LAST_CPU - 1))" $$ >/dev/null
  for pid in $(pg_pids); do taskset -a -p -c "$LAST_CPU" "$pid" >/dev/null || die "cannot pin PostgreSQL (pid $pid)"; done
fi

WORK=$(mktemp -d /tmp/passkey-replicas.XXXXXX)
RESULTS="$WORK/results.jsonl"; : > "$RESULTS"
PIDS=()
DBS=()
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
finish() {
  cleanup
  local db
  for db in "${DBS[@]}"; do psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; done
  if [[ $PIN == 1 ]]; then
    for pid in $(pg_pids); do taskset -a -p -c "0-$LAST_CPU" "$pid" >/dev/null 2>&1 || true; done
  fi
}
trap finish EXIT

# A database of this run's own; prints its URL.
new_database() { # NAME
  local db="pkgw_bench_$1_$$"
  psql "$PG_URL" -qc "CREATE DATABASE $db" >/dev/null || die "cannot create database $db"
  DBS+=("$db")
  python3 -c 'import sys, urllib.parse as u; p=u.urlparse(sys.argv[1]); print(p._replace(path="/"+sys.argv[2]).geturl())' "$PG_URL" "$db"
}

# bench/lib.sh's gateway config, listening on LISTEN_PORT (the public origin stays PUBLIC_PORT's),
# with `[store]` on PostgreSQL when a URL is given. Prints the path.
replica_config() { # DATA_DIR LISTEN_PORT PUBLIC_PORT [DB_URL]
  local conf; conf=$(gateway_config "$1" "$3" "$UP_PORT")
  sed -i "s/^listen = .*/listen = [\"127.0.0.1:$2\"]/" "$conf"
  if [[ -n ${4:-} ]]; then
    printf '[store]\nbackend = "postgres"\nurl = "%s"\nkey_encryption_key_file = "%s"\n' "$4" "$WORK/kek" >>"$conf"
  fi
  echo "$conf"
}

start_replica() { # CONFIG LOG PORT
  "$GATEWAY" --config "$1" serve >"$2" 2>&1 & PIDS+=($!)
  wait_http "http://127.0.0.1:$3/passkeys/health"
}

python3 -c 'import secrets; print(secrets.token_hex(32))' >"$WORK/kek"
UP_PORT=$(free_port); REDB_PORT=$(free_port); PG1_PORT=$(free_port)
PG2A_PORT=$(free_port); PG2B_PORT=$(free_port); LB_PORT=$(free_port)
upstream_nginx_conf "$WORK/upstream" "$UP_PORT"
"$NGINX" -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" & PIDS+=($!)
wait_http "http://127.0.0.1:$UP_PORT/"

# The balancer in front of (c): round-robin over two replicas, upstream keep-alive, the Host
# (with its port) passed on so the origin is the balancer's.
mkdir -p "$WORK/lb"
{ nginx_head "$WORK/lb" 1 off; cat <<EOF
  upstream replicas { server 127.0.0.1:$PG2A_PORT; server 127.0.0.1:$PG2B_PORT; keepalive 256; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$LB_PORT;
    location / {
      proxy_pass http://replicas;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
EOF
} >"$WORK/lb/nginx.conf"

TOKENS=$(( (8 + 32) * RUNS + 10 ))
say "seeding: $TOKENS enrollment tokens and $((MISS * RUNS)) signed-in users per backend"
PG1_URL=$(new_database pg1); PG2_URL=$(new_database pg2)
REDB_CONF=$(replica_config "$WORK/redb" "$REDB_PORT" "$REDB_PORT")
PG1_CONF=$(replica_config "$WORK/pg1" "$PG1_PORT" "$PG1_PORT" "$PG1_URL")
PG2A_CONF=$(replica_config "$WORK/pg2a" "$PG2A_PORT" "$LB_PORT" "$PG2_URL")
PG2B_CONF=$(replica_config "$WORK/pg2b" "$PG2B_PORT" "$LB_PORT" "$PG2_URL")
for setup in redb pg1 pg2; do
  conf=$REDB_CONF; [[ $setup == pg1 ]] && conf=$PG1_CONF; [[ $setup == pg2 ]] && conf=$PG2A_CONF
  users=(); [[ $setup != pg2 ]] && users=(--users "$((MISS * RUNS))" --passkeys-per-user 1 --sessions --cookies-out "$WORK/$setup-cookies.txt")
  "$SEED" --config "$conf" --parallel "$SEED_PARALLEL" --tokens "$TOKENS" --tokens-out "$WORK/$setup-tokens.txt" --prefix "$setup" "${users[@]}" \
    || die "seeding $setup failed"
done
# The store-level lookup needs a redb file no gateway holds open: a second one, seeded alike.
"$SEED" --data-dir "$WORK/redb-lookup" --users "$MISS" --passkeys-per-user 1 --sessions \
  --cookies-out "$WORK/redb-lookup-cookies.txt" --prefix lookup || die "seeding the lookup store failed"

say "starting (a) redb, (b) PostgreSQL x1, (c) PostgreSQL x2 behind nginx"
start_replica "$REDB_CONF" "$WORK/redb.log" "$REDB_PORT"
start_replica "$PG1_CONF" "$WORK/pg1.log" "$PG1_PORT"
start_replica "$PG2A_CONF" "$WORK/pg2a.log" "$PG2A_PORT"
start_replica "$PG2B_CONF" "$WORK/pg2b.log" "$PG2B_PORT"
"$NGINX" -p "$WORK/lb" -c "$WORK/lb/nginx.conf" & PIDS+=($!)
wait_http "http://127.0.0.1:$LB_PORT/passkeys/health"

port_of() { case $1 in redb) echo "$REDB_PORT" ;; pg1) echo "$PG1_PORT" ;; pg2) echo "$LB_PORT" ;; esac; }

declare -A COOKIE
for setup in "${SETUPS[@]}"; do
  port=$(port_of "$setup")
  COOKIE[$setup]=$("$LOADGEN" enroll --base "http://127.0.0.1:$port" --origin "http://localhost:$port" \
    --tokens "$WORK/$setup-tokens.txt" | python3 -c 'import json,sys; print(json.load(sys.stdin)["cookie"])') \
    || die "enrollment on $setup failed"
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: ${COOKIE[$setup]}" "http://127.0.0.1:$port/app/")
  [[ $code == 200 ]] || die "$setup: the authenticated route answered $code with a cookie"
  wrk -t2 -c32 -d2s -H "Cookie: ${COOKIE[$setup]}" "http://127.0.0.1:$port/app/" >/dev/null 2>&1 || true
done

record() { python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r.update(json.loads(sys.argv[2])); print(json.dumps(r))' "$1" "$2" >>"$RESULTS"; }

logins() { # SETUP CONC RUN
  local port; port=$(port_of "$1")
  local out
  out=$("$LOADGEN" ceremonies --target gateway --base "http://127.0.0.1:$port" --origin "http://localhost:$port" \
    --tokens "$WORK/$1-tokens.txt" --kind login --concurrency "$2" --duration "$CER_SECONDS" --label "$1") \
    || die "$1: login ceremonies failed"
  record "$out" "{\"what\":\"logins\",\"setup\":\"$1\",\"conc\":$2,\"run\":$3}"
  echo "   $1 logins c=$2 run $3: $(echo "$out" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(round(r["per_sec"],1), "/s, errors", r["errors"])')" >&2
}

proxied() { # SETUP RUN
  local port; port=$(port_of "$1")
  wrk -t2 -c32 -d"${WRK_SECONDS}s" --latency -H "Cookie: ${COOKIE[$1]}" "http://127.0.0.1:$port/app/" >"$WORK/wrk.txt" 2>&1 || true
  record "$(python3 bench/report.py wrk "$WORK/wrk.txt")" "{\"what\":\"proxied\",\"setup\":\"$1\",\"conc\":32,\"run\":$2}"
  tail -n 1 "$RESULTS" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("   %s proxied c=32 run %s: %.0f req/s, errors %d" % (r["setup"], r["run"], r["rps"], r["errors"]))' >&2
}

say "logins (c = ${CER_CONCS[*]}, ${CER_SECONDS}s) and proxied requests (wrk c = 32, ${WRK_SECONDS}s): $RUNS runs, interleaved"
for ((run = 1; run <= RUNS; run++)); do
  for conc in "${CER_CONCS[@]}"; do
    for setup in "${SETUPS[@]}"; do logins "$setup" "$conc" "$run"; done
  done
  for setup in "${SETUPS[@]}"; do proxied "$setup" "$run"; done
done

say "session-cache misses: $MISS fresh cookies per run through the gateway (c = 32), and store lookups one at a time"
for setup in redb pg1; do split -n "l/$RUNS" -d "$WORK/$setup-cookies.txt" "$WORK/$setup-miss-"; done
for ((run = 1; run <= RUNS; run++)); do
  part=$(printf '%02d' $((run - 1)))
  for setup in redb pg1; do
    out=$("$LOADGEN" touch --url "http://127.0.0.1:$(port_of "$setup")/app/" --cookies "$WORK/$setup-miss-$part" --concurrency 32) \
      || die "$setup: touching sessions failed"
    record "$out" "{\"what\":\"misses\",\"setup\":\"$setup\",\"conc\":32,\"run\":$run}"
  done
  out=$("$SEED" --data-dir "$WORK/redb-lookup" --read-cookies "$WORK/redb-lookup-cookies.txt" 2>/dev/null) || die "redb lookups failed"
  record "$out" "{\"what\":\"lookup\",\"setup\":\"redb\",\"run\":$run}"
  out=$("$SEED" --config "$PG1_CONF" --read-cookies "$WORK/pg1-miss-$part" 2>/dev/null) || die "PostgreSQL lookups failed"
  record "$out" "{\"what\":\"lookup\",\"setup\":\"pg1\",\"run\":$run}"
done

cp "$RESULTS" "$ROOT/bench/replicas-last-results.jsonl"
PINNED=""; [[ $PIN == 1 ]] && PINNED=", PostgreSQL pinned to CPU $LAST_CPU and the rest to 0-$((LAST_CPU - 1))"
say "medians of $RUNS runs (commit $(git rev-parse --short HEAD)$(git diff --quiet || echo ' dirty'), load $(cut -d' ' -f1-3 /proc/loadavg)$PINNED)"
python3 - "$RESULTS" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(what, setup, key, conc=None):
    vals = [r[key] for r in rows if r["what"] == what and r["setup"] == setup and (conc is None or r.get("conc") == conc)]
    return statistics.median(vals) if vals else float("nan")
errors = sum(int(r.get("errors") or 0) for r in rows)
names = {"redb": "(a) redb, 1 replica", "pg1": "(b) PostgreSQL, 1 replica", "pg2": "(c) PostgreSQL, 2 replicas + nginx"}
print("| setup | logins/s c=8 | logins/s c=32 | proxied req/s c=32 (cached session) | cache-miss req/s c=32 | store lookup per miss |")
print("|---|---|---|---|---|---|")
for s in ("redb", "pg1", "pg2"):
    miss = med("misses", s, "per_sec") if s != "pg2" else None
    look = med("lookup", s, "us_per_lookup") if s != "pg2" else None
    print(f"| {names[s]} | {med('logins', s, 'per_sec', 8):.0f} | {med('logins', s, 'per_sec', 32):.0f} | {med('proxied', s, 'rps'):.0f} | "
          + (f"{miss:.0f} | {look:.0f} µs |" if miss is not None else "— | — |"))
print()
for s in ("pg1", "pg2"):
    print(f"- {names[s]} / redb: logins c=8 ×{med('logins', s, 'per_sec', 8) / med('logins', 'redb', 'per_sec', 8):.2f}, "
          f"c=32 ×{med('logins', s, 'per_sec', 32) / med('logins', 'redb', 'per_sec', 32):.2f}, "
          f"proxied ×{med('proxied', s, 'rps') / med('proxied', 'redb', 'rps'):.2f}")
print(f"- cache misses, PostgreSQL / redb: req/s ×{med('misses', 'pg1', 'per_sec') / med('misses', 'redb', 'per_sec'):.2f}, "
      f"store lookup ×{med('lookup', 'pg1', 'us_per_lookup') / med('lookup', 'redb', 'us_per_lookup'):.1f} the time")
print(f"- errors over all measurements: {errors}")
sys.exit(1 if errors else 0)
EOF
