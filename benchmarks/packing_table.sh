#!/usr/bin/env bash
# Padded against packed DPO steps (prefopt_packing_benchmark), each variant in its own process (peak RSS only
# grows), interleaved padded, packed, padded, packed, ... over REPS repetitions on the same data, so that a noisy
# machine slows both alike; prints every run, then the medians and the packed/padded ratios that
# docs/performance.md records. Build first: scripts/build.sh -DPREFOPT_BUILD_BENCHMARKS=ON.
# Usage: benchmarks/packing_table.sh [REPS] [extra arguments for every run, e.g. --fused 1 --threads 2]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${PREFOPT_BUILD_DIR:-$ROOT/build}/benchmarks/prefopt_packing_benchmark"
[ -x "$BIN" ] || { echo "$BIN is not built (scripts/build.sh -DPREFOPT_BUILD_BENCHMARKS=ON)" >&2; exit 1; }
REPS="${1:-3}"
shift || true
OUT="$(mktemp)"
trap 'rm -f "$OUT"' EXIT
for ((r = 0; r < REPS; r++)); do
  for variant in padded packed; do
    "$BIN" "$variant" "$@" | tee -a "$OUT"
  done
done
python3 - "$OUT" <<'PY'
import re, statistics, sys
runs = {"padded": [], "packed": []}
for line in open(sys.argv[1]):
    m = re.match(r"variant (\w+)\s+fused \d+: (\d+) tokens/s, ([\d.]+) s/step, peak RSS (\d+) MiB \(model built: (\d+)", line)
    if m:
        runs[m[1]].append((float(m[2]), float(m[3]), float(m[4]), float(m[5])))
med = {k: [statistics.median(x[i] for x in v) for i in range(4)] for k, v in runs.items()}
print()
print("| variant | tokens/s (median) | s/step | peak RSS MiB | peak RSS above the built model MiB |")
print("|---|---|---|---|---|")
for k in ("padded", "packed"):
    t, s, rss, base = med[k]
    print(f"| {k} | {t:.0f} | {s:.2f} | {rss:.0f} | {rss - base:.0f} |")
pt, pp = med["padded"], med["packed"]
print(f"\npacked/padded tokens/s: {pp[0] / pt[0]:.2f}x; peak RSS: {pp[2] / pt[2]:.2f} "
      f"({100 * (1 - pp[2] / pt[2]):.0f}% less); above the built model: {100 * (1 - (pp[2] - pp[3]) / (pt[2] - pt[3])):.0f}% less")
PY
