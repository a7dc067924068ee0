#!/usr/bin/env bash
# From a fresh Debian 12 machine: set-up, build, then the default demo of prefopt-train (no arguments: a tiny model
# trained from scratch with SFT, then DPO on its own checker-graded samples; a few minutes on 2 CPU cores).
# Extra arguments go to the demo (e.g. --seed 2, --quick, --help).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${PREFOPT_BUILD_DIR:-$ROOT/build}"
"$ROOT/scripts/setup.sh"
"$ROOT/scripts/build.sh"
"$BUILD/examples/prefopt-train" "$@"
