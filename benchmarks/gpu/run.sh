#!/usr/bin/env bash
# One script for a GPU machine (torch, nvcc, cmake, ninja, pytest; no Debian packages, no network): builds
# prefopt against that machine's own torch, runs the CUDA tests (GoogleTest where it is installed, and always the
# pytest CUDA-vs-CPU checks), then the GPU benchmark at N=16384, V=128256 bf16, which prints achieved bandwidth as a
# fraction of a device-to-device copy measured in the same run on the same card.
#
#   bash benchmarks/gpu/run.sh [build-dir]      (default: build-gpu; PREFOPT_CUDA_ARCH overrides the arch list)
#
# Header-only dependencies the library needs (nlohmann_json) come from the git-ignored folder .deps/ when the GPU
# machine lacks them; fill it on a machine that has them, before the tree is copied over:
#   mkdir -p .deps/include .deps/share/cmake
#   cp -r /usr/include/nlohmann .deps/include/ && cp -r /usr/share/cmake/nlohmann_json .deps/share/cmake/
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${1:-$ROOT/build-gpu}"
PY="${PYTHON:-python3}"
if [ -d /usr/local/cuda/bin ]; then export PATH="$PATH:/usr/local/cuda/bin"; fi

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "device", torch.cuda.get_device_name(0))'

TORCH_PREFIX="$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')"
if [ -d "$ROOT/.deps" ]; then TORCH_PREFIX="$TORCH_PREFIX;$ROOT/.deps"; fi
ARCH="${PREFOPT_CUDA_ARCH:-$("$PY" -c 'import torch; m, n = torch.cuda.get_device_capability(0); print(f"{m}.{n}")')}"
GENERATOR=()
if command -v ninja > /dev/null; then GENERATOR=(-G Ninja); fi

configure() {
  cmake -S "$ROOT" -B "$BUILD" "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" \
    -DPython3_EXECUTABLE="$(command -v "$PY")" -DPREFOPT_WITH_CUDA=ON -DPREFOPT_CUDA_ARCH_LIST="$ARCH" \
    -DPREFOPT_BUILD_EXAMPLES=OFF -DPREFOPT_BUILD_BENCHMARKS=OFF -DPREFOPT_INSTALL=OFF "$@"
}

echo "== build (CUDA arch $ARCH)"
HAVE_GTEST=1
if ! configure -DPREFOPT_BUILD_TESTS=ON > "$BUILD.configure.log" 2>&1; then
  echo "GoogleTest/Eigen not found: building the library only, CUDA checks run from pytest"
  HAVE_GTEST=0
  rm -rf "$BUILD"
  configure -DPREFOPT_BUILD_TESTS=OFF
fi
JOBS="$(nproc)"
cmake --build "$BUILD" --target prefopt --parallel "$JOBS"
export PREFOPT_LIBRARY="$BUILD/libprefopt.so"

STATUS=0
echo "== CUDA tests (GoogleTest)"
if [ "$HAVE_GTEST" = 1 ]; then
  cmake --build "$BUILD" --target prefopt_kernel_tests prefopt_model_tests prefopt_train_tests --parallel "$JOBS"
  "$BUILD/tests/prefopt_kernel_tests" --gtest_filter='*Cuda*' || STATUS=1
  # The packed forward's variable-length flash attention against per-sequence attention.
  "$BUILD/tests/prefopt_model_tests" --gtest_filter='*Cuda*' || STATUS=1
  # Data parallel on NCCL: collectives and a training run with world size 1 (2 ranks where there are 2 GPUs).
  "$BUILD/tests/prefopt_train_tests" --gtest_filter='TrainDistributedCuda.*' || STATUS=1
else
  echo "skipped: GoogleTest is not installed on this machine"
fi

echo "== CUDA tests (pytest: CUDA kernel vs CPU kernel)"
(cd "$ROOT" && "$PY" -m pytest -q -rs tests/python -m cuda) || STATUS=1

echo "== benchmark N=16384 V=128256 bf16"
"$PY" "$ROOT/benchmarks/gpu/bench.py" --rows 16384 --vocab 128256 --dtype bf16 || STATUS=1
exit "$STATUS"
