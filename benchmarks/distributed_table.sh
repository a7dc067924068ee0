#!/usr/bin/env bash
# One process against two data-parallel processes (torchrun, Gloo on loopback) with the same global batch, each run
# prefopt_distributed_benchmark, alternating over REPS repetitions; the machine's cores are split evenly (one
# process with all of them, or each rank with its share). Prints every run, then the medians and the ratio.
# Build first: scripts/build.sh -DPREFOPT_BUILD_BENCHMARKS=ON.
# Usage: benchmarks/distributed_table.sh [REPS] [extra arguments for every run, e.g. --global_batch 8 --seq 256]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${PREFOPT_BUILD_DIR:-$ROOT/build}/benchmarks/prefopt_distributed_benchmark"
[ -x "$BIN" ] || { echo "$BIN is not built (scripts/build.sh -DPREFOPT_BUILD_BENCHMARKS=ON)" >&2; exit 1; }
TORCHRUN="${TORCHRUN:-$ROOT/.venv/bin/torchrun}"
REPS="${1:-3}"
shift || true
CORES="$(nproc)"
OUT="$(mktemp)"
trap 'rm -f "$OUT"' EXIT
for ((r = 0; r < REPS; r++)); do
  "$BIN" --threads "$CORES" "$@" | tee -a "$OUT"
  GLOO_SOCKET_IFNAME=lo OMP_NUM_THREADS=$((CORES / 2 > 0 ? CORES / 2 : 1)) \
    "$TORCHRUN" --standalone --nproc-per-node 2 --no-python "$BIN" --threads $((CORES / 2 > 0 ? CORES / 2 : 1)) "$@" \
    2> /dev/null | tee -a "$OUT"
done
python3 - "$OUT" <<'PY'
import re, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    m = re.match(r"world (\d+): ([\d.]+) s/step.*all-reduce ([\d.]+) s/step in (\d+) buckets, (\d+)% of it behind", line)
    if m:
        runs.setdefault(int(m[1]), []).append((float(m[2]), float(m[3]), float(m[5])))
one, two = runs[1], runs[2]
s1 = statistics.median(x[0] for x in one)
s2 = statistics.median(x[0] for x in two)
print(f"\n1 process: {s1:.3f} s/step (median of {len(one)}); 2 processes: {s2:.3f} s/step (median of {len(two)}); "
      f"speed-up {s1 / s2:.2f}x; all-reduce {statistics.median(x[1] for x in two):.3f} s/step, "
      f"{statistics.median(x[2] for x in two):.0f}% behind the backward (medians)")
PY
