#!/usr/bin/env python3
"""Soak bookkeeping for bench/soak.sh (standard library, plus gnuplot for the plots).

  soak_report.py progress < SAMPLES.jsonl     one progress line per sample on stderr
  soak_report.py render SAMPLES META OUT_DIR  write OUT_DIR/results.md (verdict, criteria,
                                              table) and OUT_DIR/*.svg; exit 1 if a pass
                                              criterion fails

SAMPLES is `loadgen soak`'s output: one `sample` line per minute (index 0 at the start, the
last one after the last request answered) and a `summary` line.
"""

from __future__ import annotations

import json
import subprocess
import sys

# Pass criteria (stated in the report).
WARM_UP_MIN = 5  # the full run fits its trends from this minute on
RSS_SLOPE_MAX_MIB_PER_MIN = 0.1  # 6 MiB an hour: far below a leak of one allocation per request
# Open descriptors follow the connections in use, which follow latency spikes (the client opens
# more when answers are slow): ±30 between minutes on this shared machine, a slope standard error
# of ~0.5/min over 25 minutes. A leak per request or per account operation grows by hundreds a
# minute; 1/min still catches one leaked descriptor a minute.
FDS_SLOPE_MAX_PER_MIN = 1.0
# The smoke (too short for a trend): last sample against the first after minute 0.
SMOKE_RSS_TOLERANCE_MIB = 8.0
# Sockets swing with latency spikes: pingora keeps up to 128 idle upstream connections and the
# client up to 8 idle ones, beyond those in flight. A leak per proxied request adds ~12,000 a
# minute; leaks of other descriptors are caught exactly by OTHER_FDS_TOLERANCE.
SMOKE_FDS_TOLERANCE = 160
# Descriptors other than sockets (the store, the log, pipes, epoll and event fds) do not follow
# connections: they may not move by more than this after warm-up, in either run.
OTHER_FDS_TOLERANCE = 2
# The store may grow by at most this per account operation (each writes a few rows: a user, a
# passkey, a session, audit events), plus a fixed allowance for redb's allocation steps.
STORE_BYTES_PER_OP = 8192
STORE_SLACK_BYTES = 4 * 1024 * 1024
OPS = ("registrations", "logins", "logouts", "revokes", "removals", "rotations")
MIN_RATE_SHARE = 0.9  # each full minute answers at least 90 % of the configured rate


def load(path: str) -> tuple[list[dict], dict | None]:
    samples, summary = [], None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            row = json.loads(line)
            if row.get("type") == "sample":
                samples.append(row)
            elif row.get("type") == "summary":
                summary = row
    return samples, summary


def minute(row: dict) -> float:
    return row["t_s"] / 60.0


def mib(kib_or_bytes: float | None, unit: int) -> float | None:
    return None if kib_or_bytes is None else kib_or_bytes / unit


def ops(row: dict) -> int:
    return sum(row.get(k, 0) for k in OPS)


def slope(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares slope of y over x, and its standard error."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if n < 3 or not sxx:
        return 0.0, float("nan")
    b = sum((x - mx) * (y - my) for x, y in points) / sxx
    residual = sum((y - my - b * (x - mx)) ** 2 for x, y in points)
    return b, (residual / (n - 2) / sxx) ** 0.5


def fmt(value, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


# ------------------------------------------------------------------------------------------
# Criteria: each returns (name, passed, what was measured).


def check_errors(samples, summary):
    total = summary.get("errors_total", 0) if summary else None
    windows = sum(s.get("errors", 0) for s in samples)
    first = summary.get("first_error") if summary else "no summary line: the load client stopped"
    detail = f"{fmt(total)} errors" + (f" (first: {first})" if first else "")
    return "0 errors", total == 0 and windows == 0, detail


def check_mix(samples, summary):
    s = summary or {}
    counts = {k: s[k] for k in OPS if k in s}  # (removals: not in runs before they were added)
    passed = all(counts[k] >= 1 for k in counts) and counts["rotations"] == 1
    return "every operation ran; keys rotated once", passed, ", ".join(f"{k} {v:,}" for k, v in counts.items())


def check_rate(samples, summary, rate):
    full = [s for s in samples[1:-1]]  # the first and last windows are partial or empty
    if not full:
        full = samples[1:]
    seconds = samples[1]["t_s"] - samples[0]["t_s"]  # the sampling period
    short = [s["index"] for s in full if s["authenticated"] + s["public"] < MIN_RATE_SHARE * rate * seconds]
    return (
        f"each full sampling period answered ≥ {MIN_RATE_SHARE:.0%} of {rate:g} req/s",
        not short,
        "all periods" if not short else f"short periods (sample index): {short}",
    )


def check_process_alive(samples, summary):
    missing = [s["index"] for s in samples if s.get("rss_kib") is None or s.get("fds") is None]
    return "the gateway ran throughout", not missing, "read at every sample" if not missing else f"unreadable at {missing}"


def other_fds(row: dict) -> int | None:
    return None if row.get("socket_fds") is None else row["fds"] - row["socket_fds"]


def check_other_fds(after: list[dict]):
    values = [other_fds(s) for s in after]
    if None in values:
        return "descriptors other than sockets flat", True, "not sampled (older loadgen)"
    return (
        f"descriptors other than sockets: max − min after warm-up ≤ {OTHER_FDS_TOLERANCE}",
        max(values) - min(values) <= OTHER_FDS_TOLERANCE,
        f"{min(values)}–{max(values)}",
    )


def check_flat(samples, smoke: bool):
    """RSS and fds flat after warm-up: a slope (full run) or first-vs-last (smoke)."""
    results = []
    if smoke:
        # Samples every 10 s; the floor (minimum) of the last half minute against the floor of
        # the half minute before minute 1: a leak raises the floor, a latency spike only peaks.
        end = minute(samples[-1])
        early = [s for s in samples if 0.5 <= minute(s) <= 1.01]
        late = [s for s in samples if minute(s) >= end - 0.51]
        results.append(check_other_fds([s for s in samples if minute(s) >= 0.5]))
        d_rss = (min(s["rss_kib"] for s in late) - min(s["rss_kib"] for s in early)) / 1024
        d_fds = min(s["fds"] for s in late) - min(s["fds"] for s in early)
        results.append((f"RSS: floor of the last 30 s − floor of minute 0.5..1 ≤ {SMOKE_RSS_TOLERANCE_MIB:g} MiB", d_rss <= SMOKE_RSS_TOLERANCE_MIB, f"{d_rss:+.2f} MiB"))
        results.append((f"fds: floor of the last 30 s − floor of minute 0.5..1 ≤ {SMOKE_FDS_TOLERANCE}", d_fds <= SMOKE_FDS_TOLERANCE, f"{d_fds:+d}"))
        return results
    after = [s for s in samples if minute(s) >= WARM_UP_MIN - 0.01]
    results.append(check_other_fds(after))
    rss, rss_se = slope([(minute(s), s["rss_kib"] / 1024) for s in after])
    fds, fds_se = slope([(minute(s), s["fds"]) for s in after])
    span = f"minutes {WARM_UP_MIN}..{minute(samples[-1]):.0f}"
    rss_range = f"{min(s['rss_kib'] for s in after) / 1024:.1f}–{max(s['rss_kib'] for s in after) / 1024:.1f} MiB"
    fds_range = f"{min(s['fds'] for s in after)}–{max(s['fds'] for s in after)}"
    results.append((f"RSS slope over {span} ≤ {RSS_SLOPE_MAX_MIB_PER_MIN} MiB/min", rss <= RSS_SLOPE_MAX_MIB_PER_MIN, f"{rss:+.4f} ± {rss_se:.4f} MiB/min (range {rss_range})"))
    results.append((f"fds slope over {span} ≤ {FDS_SLOPE_MAX_PER_MIN:g}/min", fds <= FDS_SLOPE_MAX_PER_MIN, f"{fds:+.3f} ± {fds_se:.3f}/min (range {fds_range})"))
    return results


def check_store(samples, summary):
    first, last = samples[0], samples[-1]
    n_ops = ops(last) - ops(first)
    bound = first["store_bytes"] + STORE_BYTES_PER_OP * n_ops + STORE_SLACK_BYTES
    per_op = (last["store_bytes"] - first["store_bytes"]) / n_ops if n_ops else 0.0
    return (
        f"store ≤ start + {STORE_BYTES_PER_OP:,} B × account operations + {STORE_SLACK_BYTES >> 20} MiB",
        last["store_bytes"] <= bound,
        f"{last['store_bytes'] / 2**20:.2f} MiB ≤ {bound / 2**20:.2f} MiB "
        f"({n_ops:,} operations; {per_op:,.0f} B per operation)",
    )


# ------------------------------------------------------------------------------------------


def table(samples: list[dict]) -> list[str]:
    out = [
        "| minute | RSS MiB | fds (sockets) | store MiB | proxied (auth + pub) | errors | p50 ms | p99 ms | max ms | live sessions | account ops (total) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in samples:
        out.append(
            f"| {minute(s):.1f} | {fmt(mib(s.get('rss_kib'), 1024))} | {fmt(s.get('fds'))} ({fmt(s.get('socket_fds'))}) "
            f"| {fmt(mib(s.get('store_bytes'), 2**20))} | {s['authenticated'] + s['public']:,} "
            f"| {s['errors']} | {fmt(s.get('p50_ms'), 3)} | {fmt(s.get('p99_ms'), 3)} "
            f"| {fmt(s.get('max_ms'), 1)} | {s.get('live_sessions', 0)} | {ops(s):,} |"
        )
    return out


PLOTS = {
    "memory_fds.svg": """
set title "Gateway RSS and open file descriptors"
set xlabel "minute"; set ylabel "RSS (MiB)"; set y2label "open fds"
set ytics nomirror; set y2tics; set yrange [0:*]; set y2range [0:*]; set key bottom right
plot DATA using 1:2 with linespoints title "RSS (MiB)", DATA using 1:3 axes x1y2 with linespoints title "fds"
""",
    "latency.svg": """
set title "Proxied requests: latency per minute"
set xlabel "minute"; set ylabel "ms"; set yrange [0:*]; set key top right
plot DATA using 1:5 with linespoints title "p50", DATA using 1:6 with linespoints title "p99"
""",
    "store.svg": """
set title "Store file size and account operations"
set xlabel "minute"; set ylabel "store (MiB)"; set y2label "account operations (total)"
set ytics nomirror; set y2tics; set yrange [0:*]; set y2range [0:*]; set key top left
plot DATA using 1:4 with linespoints title "store (MiB)", DATA using 1:7 axes x1y2 with lines title "operations"
""",
}


def plot(samples: list[dict], out_dir: str) -> list[str]:
    data = f"{out_dir}/plot.dat"
    with open(data, "w", encoding="utf-8") as f:
        f.write("# minute rss_mib fds store_mib p50_ms p99_ms ops\n")
        for s in samples:
            row = [minute(s), mib(s.get("rss_kib"), 1024), s.get("fds"), mib(s.get("store_bytes"), 2**20), s.get("p50_ms"), s.get("p99_ms"), ops(s)]
            f.write(" ".join("NaN" if v is None else f"{v}" for v in row) + "\n")
    made = []
    for name, body in PLOTS.items():
        script = f'set terminal svg size 720,360 dynamic font "sans,11"\nset output "{out_dir}/{name}"\nDATA = "{data}"\nset grid\n{body}'
        subprocess.run(["gnuplot"], input=script, text=True, check=True)
        made.append(name)
    return made


def render(samples_path: str, meta_path: str, out_dir: str) -> int:
    samples, summary = load(samples_path)
    meta = json.load(open(meta_path, encoding="utf-8"))
    if len(samples) < 2:
        print("soak: fewer than two samples", file=sys.stderr)
        return 1
    rate = (summary or {}).get("rate", 0)
    criteria = [
        check_errors(samples, summary),
        check_mix(samples, summary),
        check_process_alive(samples, summary),
    ]
    if all(c[1] for c in criteria[2:]):
        criteria += [check_rate(samples, summary, rate), *check_flat(samples, meta["smoke"]), check_store(samples, summary)]
    passed = all(c[1] for c in criteria)
    plots = plot(samples, out_dir)
    s = summary or {}
    lines = [
        f"**Verdict: {'PASS' if passed else 'FAIL'}** ({meta['minutes']} min, {meta['profile']} build)",
        "",
        f"- command: `{meta['command']}`; commit {meta['commit']}; {meta['date']}",
        f"- machine: {meta['machine']}; load average {meta['load_average']}",
        f"- load: {rate:g} proxied requests/s (half `/app/` with a live session cookie, half `/pub/`), "
        f"one account operation every {s.get('ceremony_every', '?')} s cycling {s.get('cycle', '?')}, "
        f"oldest sessions logged out beyond 32 live, oldest users removed beyond the cap, `keys rotate` once at half time; "
        f"{fmt(s.get('proxied_total'))} proxied requests in all",
        "",
        "| criterion | measured | pass |",
        "|---|---|---|",
        *[f"| {name} | {detail} | {'yes' if ok else '**NO**'} |" for name, ok, detail in criteria],
        "",
        *table(samples),
        "",
        *[f"![{p}]({p})" for p in plots],
    ]
    with open(f"{out_dir}/results.md", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    for name, ok, detail in criteria:
        print(f"   {'ok  ' if ok else 'FAIL'} {name}: {detail}", file=sys.stderr)
    return 0 if passed else 1


def progress() -> None:
    for line in sys.stdin:
        row = json.loads(line)
        if row.get("type") != "sample":
            continue
        print(
            f"   minute {minute(row):5.1f}: RSS {fmt(mib(row.get('rss_kib'), 1024))} MiB, fds {row.get('fds')}, "
            f"store {fmt(mib(row.get('store_bytes'), 2**20))} MiB, {row['authenticated'] + row['public']:,} proxied, "
            f"p50 {fmt(row.get('p50_ms'), 3)} ms, p99 {fmt(row.get('p99_ms'), 3)} ms, errors {row['errors_total']}, "
            f"ops {ops(row):,}",
            file=sys.stderr,
            flush=True,
        )


def main() -> int:
    if len(sys.argv) >= 2 and sys.argv[1] == "progress":
        progress()
        return 0
    if len(sys.argv) == 5 and sys.argv[1] == "render":
        return render(*sys.argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
