#!/usr/bin/env bash
# The whole test suite from a fresh Debian 12 machine: set-up, build, the C++ tests (CTest, which also
# builds an outside project against the installed package), then the Python tests (pytest, last, so the
# run ends with its summary). CUDA cases skip with their reason when no GPU is present.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${PREFOPT_BUILD_DIR:-$ROOT/build}"
"$ROOT/scripts/setup.sh"
"$ROOT/scripts/build.sh"
export PATH="$ROOT/.venv/bin:$PATH"
(cd "$BUILD" && ctest --output-on-failure --parallel "$(nproc)")
cd "$ROOT"
PREFOPT_LIBRARY="$BUILD/libprefopt.so" "$ROOT/.venv/bin/python" -m pytest tests/python -rs -q
