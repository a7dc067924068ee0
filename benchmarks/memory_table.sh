#!/usr/bin/env bash
# Runs prefopt_memory_benchmark once per variant (each in its own process, since peak RSS only grows) and prints
# the table docs/performance.md records. Build first: scripts/build.sh -DPREFOPT_BUILD_BENCHMARKS=ON.
# Usage: benchmarks/memory_table.sh [extra arguments for every run, e.g. --steps 2 --threads 2]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${PREFOPT_BUILD_DIR:-$ROOT/build}/benchmarks/prefopt_memory_benchmark"
[ -x "$BIN" ] || { echo "$BIN is not built (scripts/build.sh -DPREFOPT_BUILD_BENCHMARKS=ON)" >&2; exit 1; }
for variant in full fused checkpointing bf16 lora lora_bf16; do
  "$BIN" "$variant" "$@"
done
