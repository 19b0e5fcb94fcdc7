#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser that faces the network (libFuzzer via cargo-fuzz).
#
#   fuzz/run.sh                 each target for FUZZ_SECONDS (default 1800) or FUZZ_RUNS executions
#   fuzz/run.sh --smoke         each target for a few seconds (CI): catches a target that no longer
#                               builds or crashes at once
#   fuzz/run.sh TARGET ...      only these targets
#
# The stable toolchain runs cargo-fuzz with RUSTC_BOOTSTRAP=1. New inputs that add coverage are
# merged (minimized) into fuzz/corpus/<target>/, which `cargo test` replays (tests/fuzz_corpus.rs).
# A crash stops the run; its input is in fuzz/artifacts/<target>/: copy it into the corpus once fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1

SECONDS_EACH=${FUZZ_SECONDS:-1800}
RUNS=${FUZZ_RUNS:-0}
SMOKE=0
targets=()
for arg in "$@"; do
  case "$arg" in
    --smoke) SMOKE=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) targets+=("$arg") ;;
  esac
done
((${#targets[@]})) || targets=(request_target host cookie forwarded_for return_to credential config ceremony_json)
if ((SMOKE)); then SECONDS_EACH=${FUZZ_SECONDS:-5}; fi

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
cargo fuzz build -O

log=$(mktemp)
trap 'rm -f "$log"' EXIT
for target in "${targets[@]}"; do
  corpus=fuzz/corpus/$target
  mkdir -p "$corpus"
  args=(-max_total_time="$SECONDS_EACH" -print_final_stats=1)
  ((RUNS > 0)) && args+=(-runs="$RUNS")
  if ((SMOKE)); then
    # The committed corpus is only read: new inputs go to a scratch directory listed first.
    scratch=$(mktemp -d)
    dirs=("$scratch" "$corpus")
  else
    dirs=("$corpus")
  fi
  echo "== $target: ${SECONDS_EACH}s"
  if ! cargo fuzz run -O "$target" "${dirs[@]}" -- "${args[@]}" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "fuzz: $target failed; the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E '^stat::(number_of_executed_units|new_units_added|peak_rss_mb)|^Done' "$log" || true
  grep -E 'cov: [0-9]+' "$log" | tail -n 1 || true
  if ((SMOKE)); then
    rm -rf "$scratch"
  else
    # Keep only the inputs that add coverage.
    cargo fuzz cmin -O "$target" "$corpus" >/dev/null 2>&1 || true
  fi
done
