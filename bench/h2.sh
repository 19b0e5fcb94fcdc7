#!/usr/bin/env bash
# HTTP/2 over TLS (issue 17): h2load against the gateway's TLS listener (ALPN h2) and nginx's
# `http2` TLS listener, both proxying to the same upstream over HTTP/1.1, interleaved in one run.
#
#   bench/h2.sh            3 interleaved runs x c = 32, 128 (-m 10 streams each), 10 s each
#   bench/h2.sh --smoke    1 run, 2 s each, debug build: checks the whole path works
#
# Scenarios: nginx (h2 -> upstream), the gateway's public route, the gateway's authenticated
# route (a session seeded into the store, sent as a cookie with -H). Prints a Markdown table of
# medians: requests/s, p50 and p99 (from h2load's per-request log) and the ratio to nginx.
# Environment: BENCH_RUNS, BENCH_SECONDS, BENCH_PROFILE (release|debug), BENCH_KEEP=1.
set -euo pipefail
export RUST_BACKTRACE=0

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SMOKE=0
for arg in "$@"; do
  case "$arg" in
    --smoke) SMOKE=1 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done
if [[ $SMOKE == 1 ]]; then
  RUNS=${BENCH_RUNS:-1}; SECONDS_EACH=${BENCH_SECONDS:-2}; PROFILE=${BENCH_PROFILE:-debug}
else
  RUNS=${BENCH_RUNS:-3}; SECONDS_EACH=${BENCH_SECONDS:-10}; PROFILE=${BENCH_PROFILE:-release}
fi
CONCS=(32 128)
STREAMS=10

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf '\nbench: FAILED: %s\n' "$*" >&2; exit 1; }

need_apt=()
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || need_apt+=(nginx)
command -v h2load >/dev/null 2>&1 || need_apt+=(nghttp2-client)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
if (( ${#need_apt[@]} )); then
  say "installing ${need_apt[*]} (apt-get)"
  [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null \
    || die "missing ${need_apt[*]}: install them (apt-get install -y ${need_apt[*]}) and run again"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null \
    || die "apt-get install ${need_apt[*]} failed"
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

say "building ($PROFILE): passkey-gateway; debug: example bench_seed"
PROFILE_FLAG=(); PROFILE_DIR=debug
if [[ $PROFILE == release ]]; then PROFILE_FLAG=(--release); PROFILE_DIR=release; fi
cargo build --locked -q "${PROFILE_FLAG[@]}" --bin passkey-gateway || die "cargo build failed"
# The seeder writes one session: its profile does not matter, and a release example would build
# every dev-dependency in release first.
cargo build --locked -q --example bench_seed || die "cargo build failed"
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
GATEWAY="$TARGET_DIR/$PROFILE_DIR/passkey-gateway"
SEED="$TARGET_DIR/debug/examples/bench_seed"

WORK=$(mktemp -d /tmp/passkey-h2.XXXXXX)
PIDS=()
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
trap cleanup EXIT
UP_PORT=$(free_port); NGX_PORT=$(free_port); GW_PORT=$(free_port)

say "certificate, upstream, nginx (http2, ssl), gateway (tls)"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null \
  || die "openssl could not make a certificate"
upstream_nginx_conf "$WORK/upstream" "$UP_PORT"
# nginx as in bench/run.sh, listening with TLS and HTTP/2 on the same P-256 certificate.
proxy_nginx_conf "$WORK/proxy" "$NGX_PORT" "$UP_PORT" 2 "$WORK/proxy/access.log" "$WORK/cert.pem" "$WORK/key.pem"
"$NGINX" -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" & PIDS+=($!)
"$NGINX" -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf" & PIDS+=($!)
wait_http "http://127.0.0.1:$UP_PORT/"

# One user with a live session, seeded before the gateway opens the store.
"$SEED" --data-dir "$WORK/gw-data" --users 1 --passkeys-per-user 1 --sessions \
  --cookies-out "$WORK/cookies.txt" --prefix h2 2>"$WORK/seed.log" || { cat "$WORK/seed.log" >&2; die "seeding failed"; }
COOKIE="__Host-passkey_session=$(head -1 "$WORK/cookies.txt")"
conf=$(gateway_config "$WORK/gw-data" "$GW_PORT" "$UP_PORT")
sed -i "s|^public_url = \"http://|public_url = \"https://|" "$conf"
printf '[server.tls]\ncert = "%s"\nkey = "%s"\n' "$WORK/cert.pem" "$WORK/key.pem" >> "$conf"
"$GATEWAY" --config "$conf" serve >"$WORK/gateway.log" 2>&1 & PIDS+=($!)
# As lib.sh's wait_http, over TLS with the self-signed certificate.
wait_https() {
  local i
  for ((i = 0; i < 300; i++)); do curl -ksf -o /dev/null "$1" && return 0; sleep 0.1; done
  die "$1 did not come up"
}
wait_https "https://127.0.0.1:$NGX_PORT/"
wait_https "https://127.0.0.1:$GW_PORT/pub/"

# Sanity: h2 is negotiated everywhere, the authenticated route passes with the cookie only.
for url in "https://127.0.0.1:$NGX_PORT/" "https://127.0.0.1:$GW_PORT/pub/"; do
  [[ $(curl -ks --http2 -o /dev/null -w '%{http_version}' "$url") == 2 ]] || die "$url did not answer in HTTP/2"
done
code=$(curl -ks --http2 -o /dev/null -w '%{http_code}' -H "Cookie: $COOKIE" "https://127.0.0.1:$GW_PORT/app/")
[[ $code == 200 ]] || die "authenticated route with the cookie answered $code"
code=$(curl -ks --http2 -o /dev/null -w '%{http_code}' "https://127.0.0.1:$GW_PORT/app/")
[[ $code == 401 ]] || die "authenticated route without a cookie answered $code (want 401)"

RESULTS="$WORK/results.jsonl"; : > "$RESULTS"
# One h2load run: requests/s from its summary, p50/p99 from its per-request log.
run_h2load() { # SCENARIO CONC RUN URL [HEADER...]
  local scenario=$1 conc=$2 run=$3 url=$4 out="$WORK/h2load-$1-$2-$3"
  shift 4
  local headers=() h
  for h in "$@"; do headers+=(-H "$h"); done
  h2load -t 2 -c "$conc" -m "$STREAMS" -D "$SECONDS_EACH" --warm-up-time=1 "${headers[@]}" \
    --log-file="$out.log" "$url" > "$out.txt" 2>&1 || die "h2load $scenario failed: $(tail -3 "$out.txt")"
  grep -q '^Application protocol: h2' "$out.txt" || die "$scenario: h2 was not negotiated"
  python3 - "$scenario" "$conc" "$run" "$out.txt" "$out.log" >> "$RESULTS" <<'PY'
import json, re, sys
scenario, conc, run, summary, log = sys.argv[1:]
text = open(summary).read()
rps = float(re.search(r"finished in [\d.]+s, ([\d.]+) req/s", text).group(1))
m = re.search(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored", text)
total, ok, failed, errored = map(int, m.groups())
statuses = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text).groups()
times = sorted(int(line.split()[2]) for line in open(log) if line.strip())
pick = lambda q: times[min(len(times) - 1, int(q * len(times)))] / 1000.0
print(json.dumps({"scenario": scenario, "conc": int(conc), "run": int(run), "rps": rps,
                  "p50_ms": pick(0.50), "p99_ms": pick(0.99), "requests": total,
                  "failed": failed + errored, "non_2xx": sum(map(int, statuses[1:]))}))
PY
}

for ((run = 1; run <= RUNS; run++)); do
  for conc in "${CONCS[@]}"; do
    say "run $run/$RUNS, c = $conc, -m $STREAMS: nginx, gateway /pub, gateway /app"
    run_h2load nginx "$conc" "$run" "https://127.0.0.1:$NGX_PORT/"
    run_h2load gw_pub "$conc" "$run" "https://127.0.0.1:$GW_PORT/pub/"
    run_h2load gw_auth "$conc" "$run" "https://127.0.0.1:$GW_PORT/app/" "cookie: $COOKIE"
  done
done

[[ ${BENCH_KEEP:-0} == 1 ]] && cp "$RESULTS" "$ROOT/bench/last-h2-results.jsonl"
python3 - "$RESULTS" "$RUNS" "$SECONDS_EACH" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
bad = [r for r in rows if r["failed"] or r["non_2xx"]]
if bad:
    sys.exit(f"errors or non-2xx answers: {bad}")
med = lambda s, c, k: statistics.median(r[k] for r in rows if r["scenario"] == s and r["conc"] == c)
names = {"nginx": "nginx `http2` TLS proxy", "gw_pub": "gateway, public route", "gw_auth": "gateway, authenticated route"}
print(f"Medians of {sys.argv[2]} interleaved runs, {sys.argv[3]} s each, `h2load -t 2 -m 10`, P-256 certificate.\n")
print("| c | target | req/s | vs nginx | p50 ms | p99 ms | p99 vs nginx |")
print("|---|---|---|---|---|---|---|")
for c in sorted({r["conc"] for r in rows}):
    for s in ["nginx", "gw_pub", "gw_auth"]:
        rps, p50, p99 = med(s, c, "rps"), med(s, c, "p50_ms"), med(s, c, "p99_ms")
        print(f"| {c} | {names[s]} | {rps:,.0f} | {rps / med('nginx', c, 'rps'):.2f}x | {p50:.2f} | {p99:.2f} | {p99 / med('nginx', c, 'p99_ms'):.2f}x |")
PY
