#!/usr/bin/env bash
# Installs what prefopt needs on Debian 12 and nothing else: the Debian packages (only those missing) and the
# repository's virtual environment .venv with requirements.txt (only when that file changed since the last
# install). Safe to run again; a second run downloads nothing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

APT_PACKAGES=(build-essential git ccache python3 python3-venv python3-dev
              libeigen3-dev nlohmann-json3-dev pkg-config libpcre2-dev libutf8proc-dev
              libgtest-dev libgmock-dev libbenchmark-dev libgloo-dev)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The torch wheel is a CUDA build: its CMake config needs a CUDA toolkit even for CPU-only use.
if ! command -v nvcc >/dev/null 2>&1 && [ ! -x /usr/local/cuda/bin/nvcc ]; then
  echo "setup: error: no CUDA toolkit found (nvcc). The torch==2.11.0 wheel is a CUDA 13.0 build whose CMake" >&2
  echo "setup: config requires the toolkit; install CUDA 13.0 (nvcc in PATH or /usr/local/cuda)." >&2
  exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "${PYTHON:-python3}" -m venv "$VENV"
fi
stamp="$VENV/.requirements.sha256"
want="$(sha256sum "$ROOT/requirements.txt" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing Python requirements into $VENV"
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$ROOT/requirements.txt"
  echo "$want" > "$stamp"
fi
