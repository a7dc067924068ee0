#!/usr/bin/env bash
# Configures (once) and builds prefopt in build/ against the torch of .venv, with Ninja and ccache.
# Extra arguments go to the first configure, e.g. scripts/build.sh -DPREFOPT_BUILD_BENCHMARKS=ON.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
BUILD="${PREFOPT_BUILD_DIR:-$ROOT/build}"
export PATH="$VENV/bin:$PATH"
if [ -d /usr/local/cuda/bin ]; then export PATH="$PATH:/usr/local/cuda/bin"; fi

if [ ! -f "$BUILD/CMakeCache.txt" ] || [ "$#" -gt 0 ]; then
  torch_prefix="$("$VENV/bin/python" -c 'import torch; print(torch.utils.cmake_prefix_path)')"
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$torch_prefix" -DPython3_EXECUTABLE="$VENV/bin/python" "$@"
fi
cmake --build "$BUILD" --parallel "$(nproc)"
