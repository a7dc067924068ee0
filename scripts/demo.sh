#!/usr/bin/env bash
# From a fresh Debian 12 machine: set-up, build, then the demo (DPO losses and metrics on a few sequences).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${PREFOPT_BUILD_DIR:-$ROOT/build}"
"$ROOT/scripts/setup.sh"
"$ROOT/scripts/build.sh"
"$BUILD/examples/prefopt-dpo-demo" "$@"
