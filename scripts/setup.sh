#!/usr/bin/env bash
# Set up mlx-rpc-runtime on a fresh machine: OpenBLAS where possible, a venv, the project and its
# test tools. Safe to run again; it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

have_openblas() { ls /usr/lib/*/openblas-pthread/libopenblas.so.0 /usr/lib*/libopenblas.so.0 >/dev/null 2>&1; }

# The Linux mlx-cpu wheel links a reference BLAS (~40x slower matmuls); the runtime preloads OpenBLAS.
if [ "$(uname -s)" = Linux ] && ! have_openblas && command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO="none"; fi
  if [ "$SUDO" != none ]; then
    $SUDO apt-get install -y -q libopenblas0-pthread >/dev/null 2>&1 \
      || { $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q libopenblas0-pthread >/dev/null 2>&1; } \
      || echo "setup: could not install libopenblas0-pthread; MLX will use its slow bundled BLAS" >&2
  else
    echo "setup: no root to install libopenblas0-pthread; MLX will use its slow bundled BLAS" >&2
  fi
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

# The Node/Electron binding: installed and built where Node is present (its tests run in scripts/test.sh).
if command -v npm >/dev/null 2>&1 && [ -f bindings/node/package-lock.json ]; then
  (cd bindings/node && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build)
fi
